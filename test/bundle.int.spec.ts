/**
 * The services' bundles (`npm run build`, scripts/build.ts) in chunks, a package each: V8
 * compiles each chunk's top level on its own, so the malloc peak of start-up — which glibc
 * keeps as the process's heap for its life — is the largest package's, not the whole
 * bundle's. node-ops, the largest (@kubernetes/client-node), as one 3.8 MB file: 32 MB of
 * V8's malloced memory at start-up; in chunks: ~15 MB.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { buildService, chunkOf } from "../scripts/build.ts";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "cairn-bundle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("chunkOf", () => {
  it("names a package's chunk after the package, scoped or not, and keeps Cairn's own code in main", () => {
    expect(chunkOf("/r/node_modules/@kubernetes/client-node/dist/gen/models/V1Pod.js")).toBe(
      "_kubernetes_client-node",
    );
    expect(chunkOf("/r/node_modules/zod/v4/core/core.js")).toBe("zod");
    expect(chunkOf("/r/node_modules/.pnpm/x/node_modules/undici/index.js")).toBe("undici");
    expect(chunkOf("/r/libs/events/src/index.ts")).toBeNull();
    expect(chunkOf("/r/services/node-ops/src/main.ts")).toBeNull();
  });
});

describe("a service's bundle", () => {
  it("is main.mjs and a chunk a package, starts, and peaks at a fraction of one file's malloced memory", async () => {
    const out = join(dir, "node-ops");
    const { file, chunks } = await buildService("node-ops", out);
    const names = readdirSync(out).filter((n) => n.endsWith(".mjs"));
    expect(names).toContain("main.mjs");
    expect(chunks).toBe(names.length);
    expect(names.some((n) => n.startsWith("_kubernetes_client-node-"))).toBe(true);
    expect(names.some((n) => n.startsWith("_aws-sdk_client-ssm-"))).toBe(true);
    // Cairn's own code and nothing of a package's stays in main.mjs: it is the smaller part.
    const largest = Math.max(...names.map((n) => statSync(join(out, n)).size));
    expect(statSync(file).size).toBeLessThan(largest);

    // Started with a NATS nobody answers: it loads every chunk, evaluates them, and waits
    // for NATS; after 3 s it tells V8's malloced peak (a chunk that fails to evaluate ends
    // the process first, and nothing is told).
    const probe = join(dir, "probe.mjs");
    writeFileSync(
      probe,
      `import v8 from "node:v8";
       setTimeout(() => {
         console.log("PEAK " + v8.getHeapStatistics().peak_malloced_memory);
         process.exit(0);
       }, 3000);`,
    );
    const { stdout } = await run(process.execPath, ["--import", probe, file], {
      env: { PATH: process.env.PATH, NATS_URL: "nats://127.0.0.1:1", LOG_LEVEL: "error" },
      timeout: 30_000,
    });
    const peak = Number(/PEAK (\d+)/.exec(stdout)?.[1]);
    // Measured: 15.4 MB in chunks, 32.0 MB as one file (Node 24). V8's parser, not the
    // machine's load, decides it.
    expect(peak).toBeGreaterThan(0);
    expect(peak / 1048576).toBeLessThan(22);
  }, 120_000);
});
