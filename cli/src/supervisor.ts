/**
 * Keeps a set of service processes running (`cairn up`): a process that exits on its own is
 * started again after the restart policy's delay, and the others are left alone. Each process
 * runs in its own process group, so a Ctrl-C reaches only the supervisor, which stops the
 * group once, in order (a second signal in a service would skip its drain), and a service's
 * own children go with it. `stop()` cancels pending restarts and waits for every group.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { isReadyMessage } from "@cairn/service/supervised";
import {
  type CrashHistory,
  DEFAULT_RESTART_POLICY,
  NO_CRASHES,
  nextRestart,
  type RestartDecision,
  type RestartPolicy,
} from "./restart-policy.ts";

export interface ProcessSpec {
  /** The service's name: in every log line about it. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Where its stdout and stderr go (an open file descriptor); default: the supervisor's own. */
  readonly output?: number;
}

export type SupervisorEvent =
  | { readonly type: "started"; readonly service: string; readonly pid: number; readonly start: number }
  /** The process said it serves (runService's ready message over IPC), with its /healthz /readyz /metrics address. */
  | {
      readonly type: "ready";
      readonly service: string;
      readonly pid: number;
      readonly start: number;
      readonly health?: string;
    }
  | {
      readonly type: "exited";
      readonly service: string;
      readonly pid: number | undefined;
      readonly code: number | null;
      readonly signal: NodeJS.Signals | null;
      readonly uptimeMs: number;
      /** Absent when the supervisor is stopping: no restart then. */
      readonly restart?: RestartDecision;
    };

export interface SupervisorOptions {
  readonly policy?: RestartPolicy;
  /** One line per start, crash and restart; default: stderr prefixed `cairn: `. */
  readonly log?: (line: string) => void;
  readonly onEvent?: (event: SupervisorEvent) => void;
  /** How long a stopping process may drain before its group is killed. Default 15 s. */
  readonly stopGraceMs?: number;
}

export interface Supervisor {
  /** The live process of a service, undefined while it waits for a restart. */
  pid(service: string): number | undefined;
  /**
   * Stops every process (SIGTERM to its group, SIGKILL after the grace) and cancels pending
   * restarts; resolves when all are gone. Idempotent.
   */
  stop(): Promise<void>;
  /**
   * A signal to every live group now, SIGKILL by default (a second Ctrl-C); synchronous, so
   * usable from a process 'exit' handler. It does not end supervision: after `stop()` (a
   * second Ctrl-C) nothing comes back, otherwise the processes are restarted as after a crash.
   */
  kill(signal?: NodeJS.Signals): void;
}

interface Managed {
  readonly spec: ProcessSpec;
  child?: ChildProcess;
  /** Resolves when the current child is gone. */
  gone?: Promise<void>;
  startedAt: number;
  starts: number;
  history: CrashHistory;
  restartTimer?: NodeJS.Timeout;
}

export function supervise(specs: readonly ProcessSpec[], opts: SupervisorOptions = {}): Supervisor {
  const policy = opts.policy ?? DEFAULT_RESTART_POLICY;
  const log = opts.log ?? ((line: string) => process.stderr.write(`cairn: ${line}\n`));
  const emit = opts.onEvent ?? (() => {});
  const graceMs = opts.stopGraceMs ?? 15_000;
  const managed = new Map<string, Managed>();
  let stopping: Promise<void> | undefined;

  const start = (m: Managed) => {
    if (stopping) return;
    m.starts += 1;
    const start = m.starts;
    const child = spawn(m.spec.command, [...m.spec.args], {
      ...(m.spec.env ? { env: m.spec.env } : {}),
      // fd 3 is the IPC channel the ready message comes on.
      stdio: ["ignore", m.spec.output ?? "inherit", m.spec.output ?? "inherit", "ipc"],
      detached: true,
    });
    m.child = child;
    m.startedAt = Date.now();
    let settle = () => {};
    m.gone = new Promise<void>((res) => {
      settle = res;
    });
    let over = false;
    // 'exit' may or may not follow a spawn 'error'; whichever comes first ends this child.
    const ended = (code: number | null, signal: NodeJS.Signals | null) => {
      if (over) return;
      over = true;
      settle();
      exited(m, child, code, signal);
    };
    child.once("exit", ended);
    child.once("error", (err) => {
      log(`${m.spec.name}: ${err.message}`);
      if (child.pid === undefined) ended(null, null);
    });
    child.on("message", (msg) => {
      if (!isReadyMessage(msg) || child.pid === undefined) return;
      if (start > 1) log(`${m.spec.name} is ready again (pid ${child.pid}, start ${start})`);
      emit({
        type: "ready",
        service: m.spec.name,
        pid: child.pid,
        start,
        ...(msg.health ? { health: msg.health } : {}),
      });
    });
    if (child.pid !== undefined) {
      log(`started ${m.spec.name} (pid ${child.pid})`);
      emit({ type: "started", service: m.spec.name, pid: child.pid, start });
    }
  };

  const exited = (m: Managed, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null) => {
    if (m.child === child) m.child = undefined;
    const exitedAt = Date.now();
    const uptimeMs = exitedAt - m.startedAt;
    const base = { type: "exited", service: m.spec.name, pid: child.pid, code, signal, uptimeMs } as const;
    if (stopping) return emit(base);
    const restart = nextRestart(m.history, { startedAt: m.startedAt, exitedAt }, policy);
    m.history = restart.history;
    log(
      `${m.spec.name} exited (${signal ? `signal ${signal}` : `code ${code}`}) after ${seconds(uptimeMs)}; ` +
        `restarting it in ${seconds(restart.delayMs)} (crash ${restart.crashesInWindow} in the last ${seconds(policy.crashLoopWindowMs)})`,
    );
    if (restart.crashLoop)
      log(
        `!!! ${m.spec.name} is crash-looping: ${restart.crashesInWindow} crashes in the last ${seconds(policy.crashLoopWindowMs)}. ` +
          `The rest of Cairn keeps running and ${m.spec.name} keeps being restarted (at most every ${seconds(policy.maxDelayMs)}); ` +
          `its log above says why (docs/runbooks.md: "A service keeps restarting").`,
      );
    emit({ ...base, restart });
    m.restartTimer = setTimeout(() => {
      m.restartTimer = undefined;
      start(m);
    }, restart.delayMs);
  };

  const signalGroup = (child: ChildProcess, signal: NodeJS.Signals) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      // The whole group: the service and anything it started.
      process.kill(-child.pid, signal);
    } catch {
      child.kill(signal);
    }
  };

  for (const spec of specs) {
    if (managed.has(spec.name)) throw new Error(`two processes named ${spec.name}`);
    const m: Managed = { spec, startedAt: 0, starts: 0, history: NO_CRASHES };
    managed.set(spec.name, m);
    start(m);
  }

  return {
    pid: (service) => managed.get(service)?.child?.pid,
    stop: () => {
      stopping ??= (async () => {
        await Promise.all(
          [...managed.values()].map(async (m) => {
            clearTimeout(m.restartTimer);
            m.restartTimer = undefined;
            const child = m.child;
            if (!child) return;
            signalGroup(child, "SIGTERM");
            const killer = setTimeout(() => {
              log(`${m.spec.name} did not stop within ${seconds(graceMs)}; killing it`);
              signalGroup(child, "SIGKILL");
            }, graceMs);
            await m.gone;
            clearTimeout(killer);
          }),
        );
      })();
      return stopping;
    },
    kill: (signal = "SIGKILL") => {
      for (const m of managed.values()) if (m.child) signalGroup(m.child, signal);
    },
  };
}

function seconds(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${Number((ms / 1_000).toFixed(1))} s`;
}
