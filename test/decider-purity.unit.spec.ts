/**
 * The lint rule that keeps deciders pure (biome.json's override) really fires, and it
 * covers an aggregate's whole pure core, not only its `decider.ts`.
 *
 * The rule. An aggregate's folder is a folder of `services/<service>/src` that holds a
 * `decider.ts`. Every `.ts` file in it is the aggregate's pure core, except the files
 * named as effectful:
 *  - specs: `*.spec.ts`;
 *  - reactors: `reactor.ts`, `*-reactor.ts`; followers (another aggregate's events
 *    turned into commands): `*-follower.ts`; probes: `*-probe.ts`;
 *  - the reactors' helpers and intakes named one by one in biome.json (drain-first,
 *    admission, retired-nodes, watcher, watched-clusters; the idle-detector's admission,
 *    session-index, sweep).
 * A file of the pure core imports no NATS, Postgres, AWS or Kubernetes SDK, file system,
 * process, host, network or timer module, no adapter, no effectful file of its folder,
 * nothing of the service harness (`@cairn/service`), and from `@cairn/events` only types
 * and rules: not its bus, store, consumers, connection, logger or tracer, nor `newId`.
 * Any `decider.ts` or `*.decider.ts` elsewhere is held to the same rule.
 *
 * The tests lint copies in a scratch folder that mirrors the real paths (the globs in
 * biome.json start with `**`), so the real tree is never written to.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const scratch = join(root, "test", `.tmp-lint-${process.pid}`);
const biome = join(root, "node_modules", ".bin", "biome");
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let runs = 0;
/** Lints `files` (path → source, paths relative to the repository) in one biome run. */
function lintAll(files: Readonly<Record<string, string>>): Map<string, string[]> {
  const dir = join(scratch, `run-${++runs}`);
  for (const [file, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), source);
  }
  let out: string;
  try {
    out = execFileSync(biome, ["lint", "--reporter=json", "--max-diagnostics=none", dir], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    out = (err as { stdout: string }).stdout;
  }
  const report = JSON.parse(out) as {
    diagnostics: { category: string; message: string; location: { path: string } }[];
  };
  const found = new Map<string, string[]>(Object.keys(files).map((f) => [f, []]));
  for (const d of report.diagnostics) {
    if (d.category !== "lint/style/noRestrictedImports") continue;
    const file = relative(dir, resolve(root, d.location.path));
    found.get(file)?.push(d.message);
  }
  return found;
}
const lint = (file: string, source: string) => lintAll({ [file]: source }).get(file) ?? [];

/** A line that imports `line`'s binding, and a use of it (an unused import is another rule's). */
const using = (line: string) =>
  `${line}\nexport const used = [${line
    .match(/\{ (?:type )?(\w+) \}|import (\w+)/)
    ?.slice(1)
    .find(Boolean)}];\n`;

/** The folders of `services/<service>/src` that hold a `decider.ts`: the aggregates' folders. */
function aggregateFolders(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== "node_modules") walk(`${dir}/${e.name}`);
      else if (e.name === "decider.ts") found.push(dir);
    }
  };
  for (const service of readdirSync(join(root, "services"))) {
    try {
      walk(`services/${service}/src`);
    } catch {
      // A service without src/ has no aggregate.
    }
  }
  return found.sort();
}

const PLANTED = 'import { randomUUID } from "node:crypto";\nexport const planted = [randomUUID];\n';
const FORBIDDEN: readonly (readonly [string, string])[] = [
  ['import { connect } from "@nats-io/transport-node";', "no NATS"],
  ['import pg from "pg";', "no Postgres"],
  ['import { EC2Client } from "@aws-sdk/client-ec2";', "no AWS SDK"],
  ['import { CoreV1Api } from "@kubernetes/client-node";', "no Kubernetes SDK"],
  ['import { readFileSync } from "node:fs";', "no file system"],
  ['import { randomUUID } from "node:crypto";', "ids and randomness come in with the command"],
  ['import { hostname } from "node:os";', "no host, network or timers"],
  ['import { setTimeout } from "node:timers/promises";', "no host, network or timers"],
  ['import { ec2 } from "../adapters/ec2.ts";', "never imports an adapter"],
  ['import { acquireLeadership } from "@cairn/service";', "the process harness"],
  ['import { EventStore } from "@cairn/events";', "not I/O"],
  ['import { type Nats } from "@cairn/events";', "not I/O"],
  ['import { newId } from "@cairn/events";', "nor new ids"],
  ['import { startReactor } from "./reactor.ts";', "never imports an effectful file"],
  ['import { startProbe } from "./health-probe.ts";', "never imports an effectful file"],
];

// Linting the whole tree takes seconds; at load 26 it passed vitest's 5 s default.
describe("decider purity", { timeout: 30_000 }, () => {
  // One biome run for every case: each forbidden import in a decider, and in another
  // pure file of an aggregate's folder.
  const inDecider = (i: number) => `svc/cluster/${i}/decider.ts`;
  const inCore = (i: number) => `services/installer/src/install/${i}/steps.ts`;
  let refused: Map<string, string[]>;
  beforeAll(() => {
    refused = lintAll(
      Object.fromEntries(
        FORBIDDEN.flatMap(([line], i) => [
          [inDecider(i), using(line)],
          [inCore(i), using(line)],
        ]),
      ),
    );
  });

  it.each(FORBIDDEN.map(([line, why], i) => [line, why, i] as const))(
    "refuses %s in a decider",
    (_, why, i) => {
      expect(refused.get(inDecider(i))).toEqual([expect.stringContaining(why)]);
    },
  );

  it.each(FORBIDDEN.map(([line, why], i) => [line, why, i] as const))(
    "refuses %s in any other pure file of an aggregate's folder",
    (_, why, i) => {
      expect(refused.get(inCore(i))).toEqual([expect.stringContaining(why)]);
    },
  );

  it("covers every aggregate's folder: a violation planted in a new file of each fires", () => {
    const folders = aggregateFolders();
    // The walk finds the aggregates we know, so the check below is not vacuous.
    expect(folders).toEqual(
      expect.arrayContaining([
        "services/installer/src/install",
        "services/node-ops/src/kube",
        "services/node-ops/src/nodeop",
        "services/provisioner/src/cluster",
      ]),
    );
    const found = lintAll(Object.fromEntries(folders.map((f) => [`${f}/planted.ts`, PLANTED])));
    for (const f of folders)
      expect({ file: `${f}/planted.ts`, messages: found.get(`${f}/planted.ts`) }).toEqual({
        file: `${f}/planted.ts`,
        messages: [expect.stringContaining("ids and randomness")],
      });
  });

  it("holds for the tree: the pure core passes, and every file named effectful really is", () => {
    const sources: { folder: string; file: string; source: string }[] = [];
    for (const folder of aggregateFolders())
      for (const name of readdirSync(join(root, folder))) {
        if (!name.endsWith(".ts") || name.endsWith(".spec.ts")) continue;
        sources.push({
          folder,
          file: `${folder}/${name}`,
          source: readFileSync(join(root, folder, name), "utf8"),
        });
      }
    // 1. Which files the rule holds to purity: a violation planted in a copy fires.
    const planted = lintAll(Object.fromEntries(sources.map((s) => [s.file, PLANTED + s.source])));
    const pure = sources.filter((s) =>
      (planted.get(s.file) ?? []).some((m) => m.includes("ids and randomness")),
    );
    const effectful = sources.filter((s) => !pure.includes(s));
    expect(pure.map((s) => basename(s.file))).toEqual(
      expect.arrayContaining(["decider.ts", "state.ts", "steps.ts"]),
    );
    expect(effectful.map((s) => basename(s.file))).toEqual(
      expect.arrayContaining(["reactor.ts", "health-probe.ts"]),
    );
    // 2. The pure core as it is passes; each file named effectful, linted as if it were
    //    pure, does not (so no pure file hides behind an effectful name).
    const asPure = (s: { file: string }) => s.file.replace(/\.ts$/, ".as-pure.ts");
    const found = lintAll({
      ...Object.fromEntries(pure.map((s) => [s.file, s.source])),
      ...Object.fromEntries(effectful.map((s) => [asPure(s), s.source])),
    });
    expect(pure.filter((s) => (found.get(s.file) ?? []).length > 0).map((s) => s.file)).toEqual([]);
    expect(effectful.filter((s) => (found.get(asPure(s)) ?? []).length === 0).map((s) => s.file)).toEqual([]);
    // 3. Nor does the pure core reach an effect through a sibling: biome's patterns know
    //    the naming conventions, this knows every file named effectful.
    const effectfulFiles = new Set(effectful.map((s) => s.file));
    const reaching = pure.flatMap((s) =>
      [...s.source.matchAll(/from "(\.{1,2}\/[^"]+)"/g)]
        .map((m) => relative(root, resolve(root, s.folder, m[1] as string)))
        .filter((target) => effectfulFiles.has(target))
        .map((target) => `${s.file} imports ${target}`),
    );
    expect(reaching).toEqual([]);
  });

  it("allows the same imports in a reactor of an aggregate's folder, and outside one", () => {
    const source = using('import { connect } from "@nats-io/transport-node";');
    const found = lintAll({
      "services/installer/src/install/reactor.ts": source,
      "services/installer/src/install/intake-reactor.ts": source,
      "services/installer/src/install/health-probe.ts": source,
      "services/installer/src/install/decider.int.spec.ts": source,
      "services/installer/src/adapters/ssm.ts": source,
      "svc/cluster/reactor.ts": source,
    });
    expect([...found.values()].flat()).toEqual([]);
  });

  it("allows a pure file that imports the events library's types and rules", () => {
    expect(
      lint(
        "services/installer/src/install/upgrade.ts",
        'import { type Decider, reject } from "@cairn/events";\nimport { after } from "./state.ts";\nexport const used = [reject, after];\nexport type D = Decider<never, never, never>;\n',
      ),
    ).toEqual([]);
  });
});
