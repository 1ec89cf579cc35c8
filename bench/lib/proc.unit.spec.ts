import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { childrenMatching, cpuMeter, cpuMs, pidsMatching } from "./proc.ts";

const linux = process.platform === "linux";

describe.runIf(linux)("CPU of processes from /proc", () => {
  it("counts the CPU a group of processes spent over a phase, this process's too", async () => {
    const child = spawn(process.execPath, ["-e", "for (;;) {}", "cairn-proc-spec"]);
    try {
      await new Promise((r) => setTimeout(r, 50));
      expect(childrenMatching(/cairn-proc-spec/)).toEqual([child.pid]);
      expect(pidsMatching(/cairn-proc-spec/)).toContain(child.pid);
      const meter = cpuMeter([
        { name: "child", pids: () => childrenMatching(/cairn-proc-spec/) },
        { name: "self", self: true },
      ]);
      const t = Date.now();
      while (Date.now() - t < 100) {}
      await new Promise((r) => setTimeout(r, 500));
      const spent = meter.stop();
      // The child spins the whole phase, this process 100 ms of it: each gets what a shared
      // machine gives it, never nothing (clock ticks are 10 ms).
      expect(spent.child).toBeGreaterThanOrEqual(10);
      expect(spent.self).toBeGreaterThanOrEqual(10);
      expect(Number.isNaN(cpuMs(2 ** 22 + 12345))).toBe(true);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
