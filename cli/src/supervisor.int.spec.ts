import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { RestartPolicy } from "./restart-policy.ts";
import { type ProcessSpec, type Supervisor, type SupervisorEvent, supervise } from "./supervisor.ts";

const tiny = join(dirname(fileURLToPath(import.meta.url)), "testing", "tiny-service.ts");
const service = (name: string, ...extra: string[]): ProcessSpec => ({
  name,
  command: process.execPath,
  args: [tiny, name, ...extra],
});
const fast: RestartPolicy = {
  initialDelayMs: 100,
  factor: 2,
  maxDelayMs: 400,
  resetAfterMs: 60_000,
  crashLoopWindowMs: 60_000,
  crashLoopCrashes: 3,
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A supervisor over real processes, with everything it logged and emitted. */
function watched(specs: ProcessSpec[], policy = fast) {
  const lines: string[] = [];
  const events: SupervisorEvent[] = [];
  const sup = supervise(specs, {
    policy,
    log: (l) => lines.push(l),
    onEvent: (e) => events.push(e),
    stopGraceMs: 5_000,
  });
  running.push(sup);
  const readies = (name: string) => events.filter((e) => e.type === "ready" && e.service === name);
  const starts = (name: string) => events.filter((e) => e.type === "started" && e.service === name);
  return { sup, lines, events, readies, starts };
}

const running: Supervisor[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

describe("supervise", () => {
  it("restarts a SIGKILLed service and leaves the other running; stop() leaves no process behind", async () => {
    const { sup, lines, events, readies, starts } = watched([service("alpha"), service("beta")]);
    await until("both ready", () => readies("alpha").length === 1 && readies("beta").length === 1);
    const alpha = sup.pid("alpha");
    const beta = sup.pid("beta");
    expect(alpha).toBeTypeOf("number");

    process.kill(alpha as number, "SIGKILL");
    await until("alpha ready again", () => readies("alpha").length === 2);

    const again = sup.pid("alpha");
    expect(again).not.toBe(alpha);
    expect(alive(again as number)).toBe(true);
    expect(sup.pid("beta")).toBe(beta);
    expect(starts("beta")).toHaveLength(1);
    expect(events.filter((e) => e.type === "exited" && e.service === "beta")).toHaveLength(0);
    expect(lines.find((l) => l.startsWith("alpha exited"))).toMatch(
      /^alpha exited \(signal SIGKILL\) after .+; restarting it in 100 ms \(crash 1 in the last 60 s\)$/,
    );

    await sup.stop();
    expect(alive(again as number)).toBe(false);
    expect(alive(beta as number)).toBe(false);
    // Stopped processes are not restarted.
    await new Promise((r) => setTimeout(r, 300));
    expect(starts("alpha")).toHaveLength(2);
    expect(starts("beta")).toHaveLength(1);
  });

  it("keeps restarting a crash-looping service at the capped pace, says so loudly, and the rest keeps running", async () => {
    const { sup, lines, events, readies } = watched([service("gamma", "--crash", "7"), service("delta")]);
    await until("gamma called a crash loop", () =>
      lines.some((l) => l.startsWith("!!! gamma is crash-looping")),
    );
    await until(
      "a fourth crash",
      () => events.filter((e) => e.type === "exited" && e.service === "gamma").length >= 4,
    );

    const crashes = events.flatMap((e) => (e.type === "exited" && e.service === "gamma" ? [e] : []));
    expect(crashes.every((e) => e.code === 7 && e.signal === null)).toBe(true);
    expect(crashes.map((e) => e.restart?.delayMs).slice(0, 4)).toEqual([100, 200, 400, 400]);
    expect(crashes.map((e) => e.restart?.crashLoop).slice(0, 4)).toEqual([false, false, true, true]);
    expect(lines.find((l) => l.startsWith("!!! gamma"))).toContain(
      "crash-looping: 3 crashes in the last 60 s",
    );
    expect(readies("delta")).toHaveLength(1);
    expect(events.filter((e) => e.type === "exited" && e.service === "delta")).toHaveLength(0);
    expect(alive(sup.pid("delta") as number)).toBe(true);
  });

  it("cancels a pending restart when stopping", async () => {
    const slow: RestartPolicy = { ...fast, initialDelayMs: 10_000, maxDelayMs: 10_000 };
    const { sup, events, starts } = watched([service("epsilon", "--crash", "1")], slow);
    await until("the crash", () => events.some((e) => e.type === "exited"));
    expect(sup.pid("epsilon")).toBeUndefined();

    const t0 = Date.now();
    await sup.stop();
    expect(Date.now() - t0).toBeLessThan(1_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(starts("epsilon")).toHaveLength(1);
  });
});
