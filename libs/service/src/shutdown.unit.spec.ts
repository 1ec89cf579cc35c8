import type { DestinationStream } from "pino";
import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";
import { createShutdown } from "./shutdown.ts";

function capturingLogger() {
  const raw: string[] = [];
  const destination: DestinationStream = { write: (s: string) => void raw.push(s) };
  const log = createLogger({ service: "shutdown-test", level: "debug", destination });
  return { log, lines: () => raw.map((s) => JSON.parse(s) as Record<string, unknown>) };
}

describe("createShutdown", () => {
  it("runs closers in reverse registration order, one at a time", async () => {
    const { log } = capturingLogger();
    const s = createShutdown(log);
    const order: string[] = [];
    let running = 0;
    let maxRunning = 0;
    for (const name of ["telemetry", "nats", "http"]) {
      s.onShutdown(name, async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 5));
        order.push(name);
        running -= 1;
      });
    }
    const result = await s.shutdown("test");
    expect(order).toEqual(["http", "nats", "telemetry"]);
    expect(maxRunning).toBe(1);
    expect(result).toEqual({ reason: "test", failed: [] });
  });

  it("survives a closer that throws and one that hangs, logging both", async () => {
    const { log, lines } = capturingLogger();
    const s = createShutdown(log, { timeoutMs: 50 });
    const ran: string[] = [];
    s.onShutdown("last", () => void ran.push("last"));
    s.onShutdown("hangs", () => new Promise(() => {}));
    s.onShutdown("throws", () => {
      throw new Error("boom");
    });
    s.onShutdown("rejects", async () => {
      throw new Error("async boom");
    });

    const started = Date.now();
    const result = await s.shutdown("test");
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(result.failed).toEqual(["rejects", "throws", "hangs"]);
    expect(ran).toEqual(["last"]);

    const errors = lines().filter((l) => l.level === "error");
    expect(errors.map((l) => l.closer)).toEqual(["rejects", "throws", "hangs"]);
    const errs = errors.map((l) => l.err as { type: string; message: string });
    expect(errs[0]?.type).toBe("CloserFailedError");
    expect(errs[1]?.message).toContain("boom");
    expect(errs[2]?.type).toBe("ShutdownTimeoutError");
  });

  it("honours a per-closer timeout", async () => {
    const { log } = capturingLogger();
    const s = createShutdown(log, { timeoutMs: 10_000 });
    s.onShutdown("slow", () => new Promise(() => {}), { timeoutMs: 20 });
    const started = Date.now();
    expect((await s.shutdown("test")).failed).toEqual(["slow"]);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it("is idempotent: the same promise, closers run once", async () => {
    const { log } = capturingLogger();
    const s = createShutdown(log);
    let runs = 0;
    s.onShutdown("once", () => {
      runs += 1;
    });
    const a = s.shutdown("first");
    const b = s.shutdown("second");
    expect(b).toBe(a);
    expect((await b).reason).toBe("first");
    await s.shutdown("third");
    expect(runs).toBe(1);
  });

  it("skips unregistered closers", async () => {
    const { log } = capturingLogger();
    const s = createShutdown(log);
    const ran: string[] = [];
    s.onShutdown("a", () => void ran.push("a"));
    const off = s.onShutdown("b", () => void ran.push("b"));
    off();
    await s.shutdown("test");
    expect(ran).toEqual(["a"]);
  });

  it("on a signal shuts down then exits; a second signal exits at once", async () => {
    const { log } = capturingLogger();
    const codes: number[] = [];
    const s = createShutdown(log, { exit: (code) => void codes.push(code) });
    let release!: () => void;
    const closing = new Promise<void>((r) => {
      release = r;
    });
    s.onShutdown("slow", () => closing);
    const uninstall = s.install();
    expect(s.install()).toBe(uninstall);
    try {
      process.emit("SIGTERM", "SIGTERM");
      await new Promise((r) => setTimeout(r, 10));
      expect(codes).toEqual([]);
      process.emit("SIGINT", "SIGINT");
      expect(codes).toEqual([130]);
      release();
      await s.shutdown("ignored");
      await new Promise((r) => setTimeout(r, 0));
      expect(codes).toEqual([130, 0]);
    } finally {
      uninstall();
    }
    expect(process.listenerCount("SIGTERM")).toBe(0);
  });
});
