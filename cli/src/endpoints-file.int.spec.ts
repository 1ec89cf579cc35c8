import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { writeEndpointsFile } from "./endpoints-file.ts";

it("endpoints.json is never read half written, however often it is rewritten (a walking-skeleton e2e read it empty)", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-endpoints-"));
  try {
    const big = {
      natsUrl: "nats://127.0.0.1:4222",
      metrics: Object.fromEntries(
        Array.from({ length: 200 }, (_, i) => [`s${i}`, `http://127.0.0.1:${9000 + i}/metrics`]),
      ),
    };
    await writeEndpointsFile(dir, big);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 200; i++)
        await writeEndpointsFile(dir, { ...big, apiUrl: `http://127.0.0.1:${i}` });
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const parsed = JSON.parse(await readFile(join(dir, "endpoints.json"), "utf8"));
      expect(parsed.natsUrl).toBe(big.natsUrl);
      reads++;
    }
    await writer;
    expect(reads).toBeGreaterThan(0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
