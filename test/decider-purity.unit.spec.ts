/**
 * The lint rule that keeps deciders pure (biome.json overrides for `decider.ts`)
 * really fires: a decider that imports NATS, Postgres, an AWS or Kubernetes SDK, the
 * file system or an adapter fails lint, and the same import elsewhere does not.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..");
const scratch = join(root, "test", `.tmp-lint-${process.pid}`);
const biome = join(root, "node_modules", ".bin", "biome");
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function lint(file: string, source: string): string[] {
  const path = join(scratch, file);
  mkdirSync(resolve(path, ".."), { recursive: true });
  writeFileSync(path, source);
  let out: string;
  try {
    out = execFileSync(biome, ["lint", "--reporter=json", path], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch (err) {
    out = (err as { stdout: string }).stdout;
  }
  const report = JSON.parse(out) as { diagnostics: { category: string; message: string }[] };
  return report.diagnostics
    .filter((d) => d.category === "lint/style/noRestrictedImports")
    .map((d) => d.message);
}

describe("decider purity", () => {
  it.each([
    ['import { connect } from "@nats-io/transport-node";', "no NATS"],
    ['import pg from "pg";', "no Postgres"],
    ['import { EC2Client } from "@aws-sdk/client-ec2";', "no AWS SDK"],
    ['import { CoreV1Api } from "@kubernetes/client-node";', "no Kubernetes SDK"],
    ['import { readFileSync } from "node:fs";', "no file system"],
    ['import { randomUUID } from "node:crypto";', "ids and randomness come in with the command"],
    ['import { ec2 } from "../adapters/ec2.ts";', "never imports an adapter"],
  ])("refuses %s in a decider", (line, why) => {
    const messages = lint(
      "svc/cluster/decider.ts",
      `${line}\nexport const used = [${line
        .match(/\{ (\w+) \}|import (\w+)/)
        ?.slice(1)
        .find(Boolean)}];\n`,
    );
    expect(messages).toEqual([expect.stringContaining(why)]);
  });

  it("allows the same import outside a decider", () => {
    expect(
      lint(
        "svc/cluster/reactor.ts",
        'import { connect } from "@nats-io/transport-node";\nexport const used = [connect];\n',
      ),
    ).toEqual([]);
  });

  it("allows a decider that imports only the events library", () => {
    expect(
      lint(
        "svc/cluster/ok/decider.ts",
        'import { reject } from "@cairn/events";\nexport const used = [reject];\n',
      ),
    ).toEqual([]);
  });
});
