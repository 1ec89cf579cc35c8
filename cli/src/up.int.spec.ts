import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const main = join(dirname(fileURLToPath(import.meta.url)), "main.ts");
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `cairn up` as a process; its exit code and stderr (killed after `ms`). */
async function cairnUp(
  env: NodeJS.ProcessEnv,
  ms = 20_000,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [main, "up"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), ms);
  const code = await new Promise<number | null>((res) => child.once("exit", (c) => res(c)));
  clearTimeout(killer);
  return { code, stderr };
}

describe("cairn up", () => {
  it("refuses a taken API port: names the port and CAIRN_API_PORT, exits non-zero, never says it is up", async () => {
    // A stranger on the port that even answers /readyz like a healthy projector would.
    const stranger: Server = createServer((s) => s.end("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"));
    await new Promise<void>((r) => stranger.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => stranger.close(() => r())));
    const port = (stranger.address() as { port: number }).port;
    const dataDir = await mkdtemp(join(tmpdir(), "cairn-up-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));

    const { code, stderr } = await cairnUp({ CAIRN_API_PORT: String(port), CAIRN_DATA_DIR: dataDir });

    expect(code).toBe(1);
    expect(stderr).toContain(`port ${port}`);
    expect(stderr).toContain("CAIRN_API_PORT");
    expect(stderr).not.toContain("Cairn is up");
    // Nothing else was started for it.
    expect(stderr).not.toContain("started nats-server");
  });
});
