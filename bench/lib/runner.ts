/**
 * Runs benches as child processes and reads each one's last line (issue 16): bench/run.ts
 * is the command, this the part a test can drive with stand-in scripts.
 *
 * A bench passes when it exits 0 within its timeout and its last non-empty stdout line
 * is a valid result (./report.ts `BenchResultSchema`). Whether its goals are met is
 * reported, never a failure: timings on a shared 2-core machine are not a test.
 */
import { spawn } from "node:child_process";
import { type BenchResult, parseResultLine } from "./report.ts";

export interface BenchSpec {
  /** The name the summary shows and `--only` picks (the result's own `bench` may differ). */
  name: string;
  /** The script, run with this Node. */
  file: string;
  /** More environment for its smoke run only (a bench whose own quick size is too big for CI). */
  smokeEnv?: Record<string, string>;
}

export type Outcome =
  | { name: string; ok: true; ms: number; result: BenchResult }
  | { name: string; ok: false; ms: number; reason: string; result?: BenchResult };

export interface RunOptions {
  /** BENCH_QUICK=1 for the child: the smoke size. */
  quick: boolean;
  /** Past this the bench's whole process group is killed and the bench fails as hung. */
  timeoutMs: number;
  /** Each stdout line of the bench as it comes (the human table); default: this stdout. */
  echo?: (line: string) => void;
  /** More environment for the child. */
  env?: Record<string, string>;
}

/** Grace between SIGTERM and SIGKILL when a bench overstays. */
const KILL_GRACE_MS = 5_000;

export function runBench(spec: BenchSpec, options: RunOptions): Promise<Outcome> {
  const echo = options.echo ?? ((line: string) => process.stdout.write(`${line}\n`));
  const t0 = performance.now();
  const child = spawn(process.execPath, [spec.file], {
    env: {
      ...process.env,
      ...(options.quick ? { BENCH_QUICK: "1", ...spec.smokeEnv } : {}),
      ...options.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
    // Its own process group: a bench starts nats-server, Postgres and services as children,
    // and a hung one must take them all with it.
    detached: true,
  });
  let last = "";
  let pending = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      echo(line);
      if (line.trim() !== "") last = line.trim();
    }
  });
  const group = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  let timedOut = false;
  let killer: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    group("SIGTERM");
    killer = setTimeout(() => group("SIGKILL"), KILL_GRACE_MS);
  }, options.timeoutMs);
  return new Promise((resolve) => {
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({
        name: spec.name,
        ok: false,
        ms: performance.now() - t0,
        reason: `could not start: ${err.message}`,
      });
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      // Whatever the bench left in its group (a child it did not stop) goes with it.
      group("SIGKILL");
      if (pending.trim() !== "") {
        echo(pending);
        last = pending.trim();
      }
      const ms = performance.now() - t0;
      const line = parseResultLine(last);
      const result = line.ok ? line.result : undefined;
      const fail = (reason: string): Outcome => ({
        name: spec.name,
        ok: false,
        ms,
        reason,
        ...(result ? { result } : {}),
      });
      if (timedOut) return resolve(fail(`hung: no exit within ${Math.round(options.timeoutMs / 1000)} s`));
      if (code !== 0) return resolve(fail(`exited with ${code ?? signal}`));
      if (!line.ok) return resolve(fail(last === "" ? "printed nothing" : line.reason));
      resolve({ name: spec.name, ok: true, ms, result: line.result });
    });
  });
}

/** The summary bench/run.ts prints after the benches: one line each, and what failed why. */
export function summary(outcomes: Outcome[], quick: boolean): string {
  const lines = [
    `\nbenchmarks (${quick ? "quick: BENCH_QUICK=1, a smoke run; its timings mean little" : "full size"})`,
  ];
  lines.push(`  ${"bench".padEnd(14)} ${"run".padEnd(8)} ${"seconds".padStart(8)}  goals`);
  for (const o of outcomes) {
    const goals = o.result
      ? Object.entries(o.result.goals)
          .filter(([, met]) => !met)
          .map(([goal]) => goal)
      : [];
    const goalText = !o.result
      ? "—"
      : Object.keys(o.result.goals).length === 0
        ? "none set"
        : goals.length === 0
          ? `all ${Object.keys(o.result.goals).length} met`
          : `NOT met: ${goals.join(", ")}`;
    lines.push(
      `  ${o.name.padEnd(14)} ${(o.ok ? "ok" : "FAILED").padEnd(8)} ${(o.ms / 1000).toFixed(1).padStart(8)}  ${goalText}`,
    );
  }
  for (const o of outcomes) if (!o.ok) lines.push(`  ${o.name}: ${o.reason}`);
  return lines.join("\n");
}
