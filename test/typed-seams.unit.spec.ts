/**
 * Where services meet, data is parsed against the catalogue once and passed on typed
 * (issue 11, "typed seams"): no service casts an event's or a command's `data` to a
 * shape of its own (`e.data as { slot: number }`), which would hide contract drift from
 * the compiler. A reader narrows on `type` (`if (e.type === "cluster.instance-launched")
 * e.data.slot`) and the catalogue's union gives the data its type.
 *
 * And every service reacts through the one runtime: no service starts a consumer of its
 * own (`startConsumer`) — `startReactor` and `serveCommands`/`serveAggregate` are the ways
 * in; the projector's batched projection is the one exception, named here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sources(path));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".spec.ts")) out.push(path);
  }
  return out;
}

const services = readdirSync(join(root, "services")).flatMap((s) =>
  sources(join(root, "services", s, "src")),
);

/** `<file>:<line>: <text>` of every line that matches. */
function offenders(files: readonly string[], pattern: RegExp): string[] {
  return files.flatMap((f) =>
    readFileSync(f, "utf8")
      .split("\n")
      .flatMap((line, i) => (pattern.test(line) ? [`${relative(root, f)}:${i + 1}: ${line.trim()}`] : [])),
  );
}

/** A cast of some `data` (an event's, a command's) to a shape: `.data as X`, `data as { … }`. */
const DATA_CAST = /\bdata\s+as\s+(?!const\b)[A-Za-z{(]/;

describe("typed seams", () => {
  it("the pattern finds what it should and nothing else", () => {
    expect(DATA_CAST.test("const d = e.data as { slot: number };")).toBe(true);
    expect(DATA_CAST.test("const d = event.data as Record<string, unknown>;")).toBe(true);
    expect(DATA_CAST.test("return (cmd.data as Spec).region")).toBe(true);
    expect(DATA_CAST.test("const { slot } = e.data;")).toBe(false);
    expect(DATA_CAST.test("const metadata = x as Meta;")).toBe(false);
    expect(DATA_CAST.test("const data = [1, 2] as const;")).toBe(false);
  });

  it("no service casts an event's or a command's data", () => {
    expect(services.length).toBeGreaterThan(50);
    expect(offenders(services, DATA_CAST)).toEqual([]);
  });

  it("no service starts a consumer of its own: reactions go through the one runtime", () => {
    const own = offenders(services, /\bstartConsumer\s*\(/).filter(
      // The projector applies batches in Postgres transactions with their checkpoint: the
      // runner's batch mode, not a reactor. Test stand-ins (`src/testing/`) play another
      // service's command server in a suite; they are not the service.
      (line) => !line.startsWith("services/projector/src/projection.ts:") && !line.includes("/src/testing/"),
    );
    expect(own).toEqual([]);
  });
});
