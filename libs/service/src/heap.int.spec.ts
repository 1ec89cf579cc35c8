/**
 * CAIRN_HEAP_GROWING_PERCENT: with the factor set at start-up, a process that promotes a lot
 * of garbage keeps its old space near its live heap; with V8's own factor it grows several
 * times past it. Two real node processes, the same garbage loop.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { applyHeapGrowing } from "./heap.ts";

const run = promisify(execFile);
const HEAP = fileURLToPath(new URL("./heap.ts", import.meta.url));

/** Peak V8 heap total (MB) of a node process that keeps ~20 MB live and churns garbage into the old space. */
async function peakHeapMb(percent: number): Promise<number> {
  const script = `
    const { applyHeapGrowing } = await import(${JSON.stringify(HEAP)});
    applyHeapGrowing(${percent});
    const live = [];
    for (let i = 0; i < 150000; i++) live.push({ i, s: "x" + i, a: [i, i] });
    let peak = 0, keep = [];
    for (let r = 0; r < 150; r++) {
      for (let i = 0; i < 20000; i++) keep.push({ r, i, s: "y" + i, arr: new Array(8).fill(i) });
      if (keep.length > 60000) keep = keep.slice(-20000); // survives the young generation, dies old
      peak = Math.max(peak, process.memoryUsage().heapTotal);
    }
    console.log(JSON.stringify({ peak: peak / 1048576, live: live.length }));
  `;
  const { stdout } = await run(
    process.execPath,
    ["--max-semi-space-size=1", "--input-type=module", "-e", script],
    {
      env: { ...process.env, NODE_OPTIONS: "" },
    },
  );
  return (JSON.parse(stdout.trim()) as { peak: number }).peak;
}

describe("applyHeapGrowing", () => {
  it("keeps the old space near the live heap where V8's own factor lets it grow several times past it", async () => {
    // One after the other: side by side on a busy machine, their concurrent marking lagged
    // and the 20 % run's peak doubled (71 MB in a CI run, against ~35 MB quiet).
    const own = await peakHeapMb(0);
    const twenty = await peakHeapMb(20);
    // Measured: ~125 MB with V8's factor, ~35 MB with 20 % (~20 MB live). The bound is
    // relative: what the setting promises is a smaller old space than V8's own factor, on
    // the same machine in the same minute, not an absolute size.
    expect(twenty).toBeLessThan(own * 0.6);
  }, 60_000);

  it("refuses a negative or fractional percent", () => {
    expect(() => applyHeapGrowing(-1)).toThrow(/integer ≥ 0/);
    expect(() => applyHeapGrowing(1.5)).toThrow(/integer ≥ 0/);
  });
});
