import { describe, expect, it } from "vitest";
import {
  fromSelectorObject,
  labelValueError,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  qualifiedNameError,
  SelectorError,
  selectorString,
} from "./selectors.ts";

const match = (sel: string, labels: Record<string, string>) => matchesLabels(parseLabelSelector(sel), labels);

describe("label selectors", () => {
  it("parses every operator", () => {
    expect(parseLabelSelector("a=b, c==d,e!=f,g,!h,i in (x, y),j notin (z),k>3,l<2")).toEqual([
      { key: "a", op: "=", value: "b" },
      { key: "c", op: "=", value: "d" },
      { key: "e", op: "!=", value: "f" },
      { key: "g", op: "exists" },
      { key: "h", op: "!exists" },
      { key: "i", op: "in", values: ["x", "y"] },
      { key: "j", op: "notin", values: ["z"] },
      { key: "k", op: ">", value: 3 },
      { key: "l", op: "<", value: 2 },
    ]);
    expect(parseLabelSelector("")).toEqual([]);
    expect(parseLabelSelector("node-role.kubernetes.io/control-plane=true")).toEqual([
      { key: "node-role.kubernetes.io/control-plane", op: "=", value: "true" },
    ]);
  });
  it("matches like the API server", () => {
    expect(match("a=b", { a: "b" })).toBe(true);
    expect(match("a=b", { a: "c" })).toBe(false);
    expect(match("a!=b", {})).toBe(true);
    expect(match("a", { a: "" })).toBe(true);
    expect(match("!a", { a: "" })).toBe(false);
    expect(match("a in (x,y)", { a: "y" })).toBe(true);
    expect(match("a in (x,y)", {})).toBe(false);
    expect(match("a notin (x,y)", {})).toBe(true);
    expect(match("n>3", { n: "4" })).toBe(true);
    expect(match("n>3", { n: "x" })).toBe(false);
    expect(match("a=b,c=d", { a: "b" })).toBe(false);
    expect(match("", {})).toBe(true);
  });
  it("rejects malformed selectors", () => {
    for (const bad of ["a=b,", "a in x", "a in ()", "=b", "a=b c", "bad key!=1", "a=has space", "a>x"]) {
      expect(() => parseLabelSelector(bad), bad).toThrow(SelectorError);
    }
  });
  it("turns LabelSelector objects into requirements", () => {
    const sel = fromSelectorObject({
      matchLabels: { app: "web" },
      matchExpressions: [
        { key: "tier", operator: "In", values: ["a", "b"] },
        { key: "x", operator: "DoesNotExist" },
      ],
    })!;
    expect(matchesLabels(sel, { app: "web", tier: "b" })).toBe(true);
    expect(matchesLabels(sel, { app: "web", tier: "b", x: "1" })).toBe(false);
    expect(selectorString(sel)).toBe("!x,app=web,tier in (a,b)");
    expect(fromSelectorObject(undefined)).toBeUndefined();
    expect(fromSelectorObject({})).toEqual([]);
  });
});

describe("field selectors", () => {
  it("parses =, ==, != with escapes", () => {
    expect(parseFieldSelector("spec.nodeName=n1,status.phase!=Running,metadata.name==a\\,b")).toEqual([
      { field: "spec.nodeName", op: "=", value: "n1" },
      { field: "status.phase", op: "!=", value: "Running" },
      { field: "metadata.name", op: "=", value: "a,b" },
    ]);
    expect(() => parseFieldSelector("nonsense")).toThrow(SelectorError);
  });
  it("matches through a getter (a missing field is the empty string)", () => {
    const get = (f: string) => ({ "spec.nodeName": "n1" })[f];
    expect(matchesFields(parseFieldSelector("spec.nodeName=n1"), get)).toBe(true);
    expect(matchesFields(parseFieldSelector("spec.nodeName!=n1"), get)).toBe(false);
    expect(matchesFields(parseFieldSelector("status.phase="), get)).toBe(true);
  });
});

describe("label validation", () => {
  it("checks values and qualified names", () => {
    expect(labelValueError("")).toBeUndefined();
    expect(labelValueError("a.b_c-d")).toBeUndefined();
    expect(labelValueError("-a")).toBeDefined();
    expect(labelValueError("x".repeat(64))).toBe("must be no more than 63 characters");
    expect(qualifiedNameError("cairn.dev/pool")).toBeUndefined();
    expect(qualifiedNameError("Cairn.dev/pool")).toMatch(/^prefix part/);
    expect(qualifiedNameError("a/b/c")).toBeDefined();
    expect(qualifiedNameError("/x")).toBe("prefix part must be non-empty");
  });
});
