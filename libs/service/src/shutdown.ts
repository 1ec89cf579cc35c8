/**
 * Graceful shutdown. Resources register a closer as they open; on SIGINT/SIGTERM (or a call to
 * `shutdown()`) closers run one at a time in reverse registration order, so what opened last
 * (the HTTP server, consumers) closes before what it depends on (NATS, telemetry).
 */
import type { Logger } from "pino";
import { LogKeys } from "./log-keys.ts";

/** A closer did not settle within its time box. */
export class ShutdownTimeoutError extends Error {
  override readonly name = "ShutdownTimeoutError";
  readonly closer: string;
  readonly timeoutMs: number;

  constructor(closer: string, timeoutMs: number) {
    super(`closer ${closer} did not finish within ${timeoutMs} ms`);
    this.closer = closer;
    this.timeoutMs = timeoutMs;
  }
}

/** A closer threw or rejected; `cause` is what it threw. */
export class CloserFailedError extends Error {
  override readonly name = "CloserFailedError";
  readonly closer: string;

  constructor(closer: string, cause: unknown) {
    super(`closer ${closer} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.closer = closer;
  }
}

export type Closer = () => unknown;

export interface ShutdownResult {
  reason: string;
  /** Names of closers that threw or timed out, in the order they ran. */
  failed: string[];
}

export interface ShutdownOptions {
  /** Default time box per closer. Default 10 000 ms. */
  timeoutMs?: number;
  /** How the process ends after a signal; injectable for tests. Default `process.exit`. */
  exit?: (code: number) => void;
}

export interface Shutdown {
  /**
   * Registers a closer; returns a function that unregisters it (for resources closed earlier).
   * Registered after shutdown began: it runs at once, still time-boxed, errors logged.
   */
  onShutdown(name: string, fn: Closer, opts?: { timeoutMs?: number }): () => void;
  /** Runs all closers. Idempotent: every call returns the same promise. Never rejects. */
  shutdown(reason: string): Promise<ShutdownResult>;
  /**
   * Hooks SIGINT and SIGTERM (idempotent). First signal: shut down, then exit 0 (1 if a closer
   * failed). Second signal: exit at once with 128+signal number. Returns an uninstaller.
   */
  install(): () => void;
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;

/**
 * Creates the process's shutdown coordinator.
 * @example
 * const shutdown = createShutdown(log);
 * shutdown.install();
 * shutdown.onShutdown("nats", () => nc.drain());
 * shutdown.onShutdown("health", () => health.close()); // closes first
 */
export function createShutdown(logger: Logger, opts: ShutdownOptions = {}): Shutdown {
  const defaultTimeoutMs = opts.timeoutMs ?? 10_000;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const closers: { name: string; fn: Closer; timeoutMs: number }[] = [];
  let running: Promise<ShutdownResult> | undefined;
  let uninstall: (() => void) | undefined;

  /** Runs one closer within its time box; resolves to the error, if any. Never rejects. */
  const runCloser = async (name: string, fn: Closer, timeoutMs: number): Promise<Error | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    const started = Date.now();
    const timedOut = new Promise<Error>((resolve) => {
      timer = setTimeout(() => resolve(new ShutdownTimeoutError(name, timeoutMs)), timeoutMs);
      // A hung closer must not keep the process alive once everything else is done.
      timer.unref();
    });
    const done = (async () => {
      try {
        await fn();
        return undefined;
      } catch (err) {
        return new CloserFailedError(name, err);
      }
    })();
    const err = await Promise.race([done, timedOut]);
    clearTimeout(timer);
    if (err) logger.error({ err, [LogKeys.closer]: name }, "shutdown: closer failed");
    else
      logger.debug(
        { [LogKeys.closer]: name, [LogKeys.durationMs]: Date.now() - started },
        "shutdown: closed",
      );
    return err;
  };

  const shutdown = (reason: string): Promise<ShutdownResult> => {
    running ??= (async () => {
      logger.info({ [LogKeys.reason]: reason }, "shutting down");
      const failed: string[] = [];
      // Reverse registration order; snapshot so closers that unregister others cannot skip one.
      for (const c of [...closers].reverse()) {
        if (await runCloser(c.name, c.fn, c.timeoutMs)) failed.push(c.name);
      }
      logger.info({ [LogKeys.reason]: reason, failed }, "shut down");
      return { reason, failed };
    })();
    return running;
  };

  return {
    onShutdown(name, fn, closerOpts) {
      const entry = { name, fn, timeoutMs: closerOpts?.timeoutMs ?? defaultTimeoutMs };
      if (running) {
        void runCloser(entry.name, entry.fn, entry.timeoutMs);
        return () => {};
      }
      closers.push(entry);
      return () => {
        const i = closers.indexOf(entry);
        if (i >= 0) closers.splice(i, 1);
      };
    },
    shutdown,
    install() {
      if (uninstall) return uninstall;
      let signals = 0;
      const handler = (signal: keyof typeof SIGNALS) => {
        signals += 1;
        if (signals > 1) {
          logger.warn({ [LogKeys.signal]: signal }, "second signal: exiting without waiting for closers");
          exit(128 + SIGNALS[signal]);
          return;
        }
        void shutdown(signal).then((result) => exit(result.failed.length > 0 ? 1 : 0));
      };
      const onInt = () => handler("SIGINT");
      const onTerm = () => handler("SIGTERM");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
      uninstall = () => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        uninstall = undefined;
      };
      return uninstall;
    },
  };
}
