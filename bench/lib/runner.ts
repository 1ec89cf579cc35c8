/**
 * Runs benches as child processes and reads each one's last line (issue 16): bench/run.ts
 * is the command, this the part a test can drive with stand-in scripts.
 *
 * A bench passes when it exits 0 within its timeout and its last non-empty stdout line
 * is a valid result (./report.ts `BenchResultSchema`). Whether its goals are met is
 * reported, never a failure: timings on a shared 2-core machine are not a test.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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

/** The benches running now (see `killRunning`). */
const running = new Set<number>();

/**
 * Every process below `root` (Linux /proc; none elsewhere). Read before a kill: once the
 * bench is gone its children belong to init. The process group alone is not enough —
 * the test kit starts nats-server in a group of its own (so a Ctrl-C does not stop NATS
 * before the services using it), which a group kill misses.
 */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid …; comm may hold spaces and parentheses: read after the last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = [];
  for (let todo = [root]; todo.length > 0; ) {
    const next = todo.flatMap((p) => children.get(p) ?? []);
    out.push(...next);
    todo = next;
  }
  return out;
}

/** Signals a bench's process group and every process below it; returns the pids signalled. */
function killTree(pid: number, signal: NodeJS.Signals, known: number[] = []): number[] {
  const pids = [...new Set([...known, ...descendants(pid)])];
  for (const target of [-pid, ...pids]) {
    try {
      process.kill(target, signal);
    } catch {
      // Already gone.
    }
  }
  return pids;
}

/**
 * Kills every running bench with all it started. A bench runs in a process group of its
 * own, which a Ctrl-C on the terminal does not reach: the command calls this on SIGINT
 * and SIGTERM.
 */
export function killRunning(signal: NodeJS.Signals = "SIGKILL"): void {
  for (const pid of running) killTree(pid, signal);
}

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
  const pid = child.pid;
  if (pid !== undefined) running.add(pid);
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
  /** What the bench had started when it overstayed: killed again after the grace. */
  let tree: number[] = [];
  let timedOut = false;
  let killer: NodeJS.Timeout | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    if (pid === undefined) return;
    tree = killTree(pid, "SIGTERM");
    killer = setTimeout(() => killTree(pid, "SIGKILL", tree), KILL_GRACE_MS);
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
      // Whatever the bench left in its group (a child it did not stop) goes with it, and
      // after a timeout whatever it had started.
      if (pid !== undefined) {
        killTree(pid, "SIGKILL", tree);
        running.delete(pid);
      }
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
