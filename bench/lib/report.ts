/** Small helpers every benchmark shares: timing, rates, the printed table and the JSON last line. */
import { z } from "zod";

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The raw limit measured in the same run, when the figure has one. */
  raw?: number;
  /** The ratio the issue asks for (value / raw), as a fraction. */
  goal?: number;
}

export async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const t0 = performance.now();
  const result = await f();
  return { ms: performance.now() - t0, result };
}

export const rate = (count: number, ms: number) => (count * 1000) / ms;

/** Runs `task(i)` for i in [0, n) with at most `limit` in flight. */
export async function bounded(
  n: number,
  limit: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await task(i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

export function printFigures(title: string, figures: Figure[]): void {
  const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(2));
  console.log(`\n${title}`);
  for (const f of figures) {
    let line = `  ${f.name.padEnd(46)} ${fmt(f.value).padStart(12)} ${f.unit}`;
    if (f.raw !== undefined) {
      const ratio = f.value / f.raw;
      line += `   raw ${fmt(f.raw)} ${f.unit}   ratio ${(ratio * 100).toFixed(1)}%`;
      if (f.goal !== undefined)
        line +=
          ratio >= f.goal ? `   (goal ≥ ${f.goal * 100}%: met)` : `   (goal ≥ ${f.goal * 100}%: NOT met)`;
    }
    console.log(line);
  }
}

// ── the machine-readable last line ──────────────────────────────────────────────────

/** A measured number: zod 4's number is finite (NaN or Infinity would print as `null`). */
const measured = z.number();
/** snake_case keys, so a reader can take them as identifiers. */
const key = z.string().regex(/^[a-z][a-z0-9_]*$/, "keys are snake_case");

/**
 * The one JSON object every bench prints as its last line (issue 16): what a machine reads
 * (bench/run.ts, CI, docs/benchmarks.md). `goals` are the goals, each met or not;
 * `met` is all of them. `params` are the run's size (quick or not, counts, scales), so a
 * reader never compares a smoke run with a full one.
 */
export const BenchResultSchema = z
  .object({
    bench: z.string().regex(/^[a-z][a-z0-9-]*$/, "bench names are kebab-case"),
    params: z.record(key, z.union([z.string(), z.number(), z.boolean(), z.array(z.string())])).optional(),
    figures: z.record(key, measured),
    ratios: z.record(key, measured),
    goals: z.record(key, z.boolean()),
    met: z.boolean(),
  })
  .strict()
  .refine((r) => r.met === Object.values(r.goals).every(Boolean), {
    message: "met must be true exactly when every goal is met",
    path: ["met"],
  });
export type BenchResult = z.infer<typeof BenchResultSchema>;

/** `BENCH_QUICK=1`: the smoke size (under a minute), which CI runs so the benches never rot. */
export const QUICK = process.env.BENCH_QUICK === "1";

/**
 * Prints the bench's result as its last line, after its human table. `met` is computed
 * from `goals`. Throws (the bench exits non-zero) when the result breaks the schema — a
 * NaN figure is a broken bench, not a figure — so a reader never gets a line it cannot trust.
 */
export function printResult(result: Omit<BenchResult, "met">): BenchResult {
  // Six significant digits: more is noise on a shared machine, and the line stays readable.
  const round = (r: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(r).map(([k, v]) => [k, Number.isFinite(v) ? Number(v.toPrecision(6)) : v]),
    );
  const full = {
    ...result,
    figures: round(result.figures),
    ratios: round(result.ratios),
    met: Object.values(result.goals).every(Boolean),
  };
  const parsed = BenchResultSchema.safeParse(full);
  if (!parsed.success)
    throw new Error(`bench ${result.bench}: result breaks the schema: ${z.prettifyError(parsed.error)}`);
  console.log(JSON.stringify(parsed.data));
  return parsed.data;
}

/** Reads a bench's last line: the result, or why it is not a valid one. */
export function parseResultLine(
  line: string,
): { ok: true; result: BenchResult } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, reason: `the last line is not JSON: ${JSON.stringify(line.slice(0, 200))}` };
  }
  const parsed = BenchResultSchema.safeParse(json);
  return parsed.success
    ? { ok: true, result: parsed.data }
    : { ok: false, reason: `the last line breaks the schema: ${z.prettifyError(parsed.error)}` };
}
