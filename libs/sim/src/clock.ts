/**
 * Simulated time. Sim time runs `timeScale` times faster than wall time, and tests
 * can jump it forward (`advance`). State that changes with time (an instance booting,
 * an agent registering) is derived lazily from `now()` when it is read, so the sim
 * needs no timers to move the world and stays deterministic for a given seed.
 */
export class SimClock {
  readonly timeScale: number;
  readonly #realStart = performance.now();
  readonly #simStart: number;
  #offset = 0;
  /** While set, time stands still at this sim time (a journal replay). */
  #frozen: number | undefined;

  constructor(opts: { timeScale?: number; start?: number } = {}) {
    this.timeScale = opts.timeScale ?? 1;
    if (!(this.timeScale > 0)) throw new Error(`timeScale must be > 0, got ${this.timeScale}`);
    this.#simStart = opts.start ?? Date.UTC(2026, 0, 1);
  }

  /** Sim time in epoch milliseconds. */
  now(): number {
    if (this.#frozen !== undefined) return this.#frozen;
    return this.#simStart + (performance.now() - this.#realStart) * this.timeScale + this.#offset;
  }

  /** Jumps sim time forward by `ms` sim milliseconds. */
  advance(ms: number): void {
    if (ms < 0) throw new Error("sim time never goes back");
    this.#offset += ms;
    // Standing still (a replay), time still jumps: a replayed advance must not be lost.
    if (this.#frozen !== undefined) this.#frozen += ms;
  }

  /** Stops time at `t` (sim epoch ms, not before now): a replay sets each call's time. */
  freezeAt(t: number): void {
    this.#frozen = Math.max(t, this.now());
  }

  /** Lets time run again from `t` (not before now). */
  resumeFrom(t: number): void {
    const at = Math.max(t, this.now());
    this.#frozen = undefined;
    this.#offset = 0;
    this.#offset = at - this.now();
  }

  /**
   * Runs `act` with time standing still at `t` (a jump it makes is kept): a call the journal
   * dates at `t` acts at `t`, as its replay will, not at whatever the clock says after the
   * journal's write (~1 ms of wall time, minutes of sim time at high scales). `act` must do
   * its work synchronously; what it leaves for later runs on the moving clock.
   */
  heldAt<T>(t: number, act: () => T): T {
    const frozen = this.#frozen;
    const offset = this.#offset;
    this.#frozen = t;
    try {
      return act();
    } finally {
      this.#frozen = frozen === undefined ? undefined : frozen + (this.#offset - offset);
    }
  }

  /** Real milliseconds that `simMs` of sim time take. */
  realMs(simMs: number): number {
    return simMs / this.timeScale;
  }

  /** Resolves after `simMs` of sim time (wall time scaled; `advance` does not shorten it). */
  sleep(simMs: number): Promise<void> {
    return new Promise((r) => setTimeout(r, Math.max(0, this.realMs(simMs))));
  }

  iso(t = this.now()): string {
    return new Date(t).toISOString();
  }
}

/** Latencies of the simulated cloud, in sim seconds (realistic values; scaled by the clock). */
export interface Latencies {
  /** RunInstances → running. */
  instanceBoot: number;
  /** stopping → stopped. */
  instanceStop: number;
  /** shutting-down → terminated. */
  instanceTerminate: number;
  /** running → known to SSM (the agent registered). */
  ssmRegistration: number;
  /** A first K3s server's install script. */
  k3sServerInstall: number;
  /** A joining server or agent's install script. */
  k3sJoin: number;
  /** Any other script. */
  scriptDefault: number;
  /** A Deployment reaching its ready replicas. */
  deploymentReady: number;
  /** The first pull of an image on a node (later pods of that image on that node pull nothing). */
  imagePull: number;
  /** A pod, once evicted or deleted, gone. */
  podTermination: number;
  /**
   * A PodDisruptionBudget created or changed → the disruption controller has processed it
   * (`status.observedGeneration` catches up). Until then evictions it covers answer 429.
   */
  pdbSync: number;
  /**
   * A kubelet stopped posting status → its node Ready=Unknown (the node lifecycle
   * controller's `--node-monitor-grace-period`, 40 s).
   */
  nodeMonitorGrace: number;
  /**
   * A Node deleted → the pods bound to it force-deleted (the pod GC controller: a 40 s
   * quarantine checked every 20 s, so 40–60 s; the sim takes the upper bound).
   */
  orphanPodGc: number;
  /** Spot interruption notice → termination. */
  spotInterruptionNotice: number;
  /** Added to every API answer (real network and AWS processing time). */
  apiCall: number;
}

export const REALISTIC_LATENCIES: Latencies = {
  instanceBoot: 30,
  instanceStop: 15,
  instanceTerminate: 10,
  ssmRegistration: 20,
  k3sServerInstall: 60,
  k3sJoin: 30,
  scriptDefault: 2,
  deploymentReady: 10,
  imagePull: 5,
  podTermination: 2,
  pdbSync: 0.1,
  nodeMonitorGrace: 40,
  orphanPodGc: 60,
  spotInterruptionNotice: 120,
  apiCall: 0.05,
};

/** Every latency zero: for benchmarks of Cairn's own overhead. */
export const ZERO_LATENCIES: Latencies = Object.fromEntries(
  Object.keys(REALISTIC_LATENCIES).map((k) => [k, 0]),
) as unknown as Latencies;
