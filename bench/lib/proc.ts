/**
 * CPU time of the processes a bench drives, from /proc (Linux; NaN elsewhere).
 *
 * CPU per operation is the figure a shared machine blurs least: a rate or a latency measures
 * the other sessions' load too, the CPU an operation costs each process barely does. A bench
 * names groups of processes (a service, nats-server, the Postgres backends of its database,
 * itself) and reads each group's CPU over a phase.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { descendants } from "./runner.ts";

const TICKS_PER_S = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process so far, in ms (NaN when it is gone or /proc is not there). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_S;
  } catch {
    return Number.NaN;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}

/** Every process whose command line matches (e.g. Postgres backends: `postgres: … <db> …`). */
export function pidsMatching(re: RegExp): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) if (/^\d+$/.test(e) && re.test(cmdline(Number(e)))) out.push(Number(e));
  return out;
}

/** This process's children and theirs whose command line matches. */
export function childrenMatching(re: RegExp): number[] {
  return descendants(process.pid).filter((pid) => re.test(cmdline(pid)));
}

/** A group of processes, found afresh at each reading (Postgres backends come and go with pools). */
export type Group =
  | { readonly name: string; readonly pids: () => number[] }
  | { readonly name: string; readonly self: true };

/**
 * Reads each group's CPU at the start; `stop()` gives each group's CPU (ms) since. A process
 * that appeared meanwhile counts from zero; one that went counts what it had at the start as
 * spent nowhere (it is lost, a pool's backend rarely goes mid-phase).
 */
export function cpuMeter(groups: readonly Group[]): { stop(): Record<string, number> } {
  const read = (g: Group) => {
    const m = new Map<number, number>();
    if ("self" in g) {
      const u = process.cpuUsage();
      m.set(process.pid, (u.user + u.system) / 1000);
    } else for (const pid of g.pids()) m.set(pid, cpuMs(pid));
    return m;
  };
  const before = groups.map(read);
  return {
    stop() {
      const out: Record<string, number> = {};
      groups.forEach((g, i) => {
        let ms = 0;
        for (const [pid, now] of read(g)) {
          const was = before[i]!.get(pid) ?? 0;
          if (Number.isFinite(now) && Number.isFinite(was)) ms += now - was;
        }
        out[g.name] = ms;
      });
      return out;
    },
  };
}
