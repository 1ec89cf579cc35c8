import { describe, expect, it } from "vitest";
import { storable, storableBody, storableString } from "./storable.ts";

describe("storable: what Postgres text and jsonb can hold", () => {
  it("NUL and unpaired surrogates become U+FFFD; pairs and everything else stay", () => {
    expect(storableString("a\u0000b")).toBe("a\uFFFDb");
    expect(storableString("\uD800")).toBe("\uFFFD");
    expect(storableString("x\uDFFF\uD800y")).toBe("x\uFFFD\uFFFDy");
    expect(storableString("🙂 é 日本")).toBe("🙂 é 日本");
  });

  it("walks objects and arrays, keys included, and returns the same object when nothing changed", () => {
    const clean = { a: ["x", { b: 1, c: null }], d: true };
    expect(storable(clean)).toBe(clean);
    expect(storable({ "k\u0000": ["ok", "\uD83D"], n: 2 })).toEqual({ "k\uFFFD": ["ok", "\uFFFD"], n: 2 });
  });

  it("reads a message body, walking it only when its text has an escape that may need it", () => {
    const text = JSON.stringify({ reason: "nul\u0000inside", actor: "\uD800", fine: "🙂" });
    expect(text).toContain("\\u0000");
    expect(storableBody({ string: () => text })).toEqual({
      reason: "nul\uFFFDinside",
      actor: "\uFFFD",
      fine: "🙂",
    });
    expect(storableBody({ string: () => '{"a":"b"}' })).toEqual({ a: "b" });
    expect(() => storableBody({ string: () => "{" })).toThrow(SyntaxError);
  });
});
