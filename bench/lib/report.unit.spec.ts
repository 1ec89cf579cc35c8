import { afterEach, describe, expect, it, vi } from "vitest";
import { BenchResultSchema, parseResultLine, printResult } from "./report.ts";

const good = {
  bench: "event-store",
  params: { quick: true, n: 2000, parts: ["a", "b"] },
  figures: { append_per_s: 8574.2, raw_publish_per_s: 13272 },
  ratios: { append_over_raw: 0.646 },
  goals: { append_ge_80pct_raw: false, consume_ge_70pct_raw: true },
  met: false,
};

describe("BenchResultSchema", () => {
  it("takes the shape of issue 16, params optional", () => {
    expect(BenchResultSchema.safeParse(good).success).toBe(true);
    const { params: _, ...noParams } = good;
    expect(BenchResultSchema.safeParse(noParams).success).toBe(true);
    expect(BenchResultSchema.safeParse({ ...good, goals: {}, met: true }).success).toBe(true);
  });

  it.each([
    ["an unknown key", { ...good, extra: 1 }],
    ["a missing ratios", { ...good, ratios: undefined }],
    ["a figure that is null (NaN printed)", { ...good, figures: { a: null } }],
    ["a figure that is a string", { ...good, figures: { a: "12" } }],
    ["a goal that is a number", { ...good, goals: { a: 1 } }],
    ["met true with a goal not met", { ...good, met: true }],
    ["met false with every goal met", { ...good, goals: { a: true }, met: false }],
    ["a key not snake_case", { ...good, figures: { "Append/s": 1 } }],
    ["a bench name with spaces", { ...good, bench: "event store" }],
  ])("refuses %s", (_what, value) => {
    expect(BenchResultSchema.safeParse(value).success).toBe(false);
  });
});

describe("printResult", () => {
  afterEach(() => vi.restoreAllMocks());

  it("prints one line that parses back, met from the goals", () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const { met: _, ...input } = good;
    const out = printResult({ ...input, goals: { a: true, b: true } });
    expect(out.met).toBe(true);
    expect(log).toHaveBeenCalledTimes(1);
    const line = String(log.mock.calls[0]![0]);
    expect(line).not.toContain("\n");
    expect(parseResultLine(line)).toEqual({ ok: true, result: out });
  });

  it("throws on a figure that is not finite, printing nothing", () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    expect(() => printResult({ bench: "x", figures: { p99_ms: Number.NaN }, ratios: {}, goals: {} })).toThrow(
      /figures.p99_ms/,
    );
    expect(() =>
      printResult({ bench: "x", figures: {}, ratios: { r: Number.POSITIVE_INFINITY }, goals: {} }),
    ).toThrow(/ratios.r/);
    expect(log).not.toHaveBeenCalled();
  });
});

describe("parseResultLine", () => {
  it("says why a line is not a result", () => {
    expect(parseResultLine("goals: {}")).toMatchObject({ ok: false, reason: /not JSON/ });
    expect(parseResultLine('{"bench":"x"}')).toMatchObject({ ok: false, reason: /schema/ });
  });
});
