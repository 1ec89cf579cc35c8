import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runBench } from "./runner.ts";

// Stand-in benches: tiny scripts, so the runner's verdicts are tested without a real bench.
const dir = mkdtempSync(join(tmpdir(), "bench-runner-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const script = (name: string, body: string) => {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, body);
  return { name, file };
};
const valid = JSON.stringify({
  bench: "fake",
  figures: { x: 1 },
  ratios: {},
  goals: { g: false },
  met: false,
});
const run = (spec: { name: string; file: string }, timeoutMs = 10_000) =>
  runBench(spec, { quick: true, timeoutMs, echo: () => {} });

describe("runBench", () => {
  it("accepts a bench whose last line is a valid result, goals not met or not", async () => {
    const o = await run(
      script(
        "good",
        `console.log("table"); console.log(process.env.BENCH_QUICK === "1" ? ${JSON.stringify(valid)} : "not quick"); console.log("");`,
      ),
    );
    expect(o).toMatchObject({ ok: true, result: { bench: "fake", met: false } });
  });

  it("rejects a bench whose last line is not JSON", async () => {
    const o = await run(
      script("table-only", `console.log(${JSON.stringify(valid)}); console.log("goals: met");`),
    );
    expect(o).toMatchObject({ ok: false, reason: /not JSON/ });
  });

  it("rejects a bench whose last line breaks the schema", async () => {
    const bad = JSON.stringify({ bench: "fake", figures: { x: null }, ratios: {}, goals: {}, met: true });
    const o = await run(script("bad-schema", `console.log(${JSON.stringify(bad)});`));
    expect(o).toMatchObject({ ok: false, reason: /schema/ });
  });

  it("rejects a bench that prints nothing", async () => {
    expect(await run(script("silent", ""))).toMatchObject({ ok: false, reason: "printed nothing" });
  });

  it("rejects a bench that crashes, even after a valid line", async () => {
    const o = await run(script("crash", `console.log(${JSON.stringify(valid)}); process.exit(3);`));
    expect(o).toMatchObject({ ok: false, reason: "exited with 3" });
  });

  it("kills a bench that hangs, with what it started", async () => {
    const lines: string[] = [];
    const o = await runBench(
      script(
        "hang",
        `import { spawn } from "node:child_process";
         const c = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
         // In a group of its own, as the test kit starts nats-server.
         const d = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore", detached: true });
         console.log(String(c.pid)); console.log(String(d.pid)); setInterval(() => {}, 1000);`,
      ),
      { quick: true, timeoutMs: 1_000, echo: (l) => lines.push(l) },
    );
    expect(o).toMatchObject({ ok: false, reason: /hung/ });
    // The grandchildren went with it, the one in its own group too (gone, or a zombie
    // nobody has reaped yet).
    for (const pid of [Number(lines[0]), Number(lines[1])]) {
      expect(pid).toBeGreaterThan(0);
      const alive = () => {
        try {
          return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 40 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(alive()).toBe(false);
    }
  });
});
