import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Writes `<dataDir>/endpoints.json` whole or not at all: to a file of its own, then renamed
 * over the old one, so a reader (the CLI, a test, `cairn up` itself as services report their
 * metrics) never meets it truncated or half written. `mode` 0600 when it holds a password.
 */
export async function writeEndpointsFile(dataDir: string, endpoints: unknown, mode?: number): Promise<void> {
  const path = join(dataDir, "endpoints.json");
  const partial = `${path}.${process.pid}.partial`;
  await writeFile(partial, `${JSON.stringify(endpoints, null, 2)}\n`, mode !== undefined ? { mode } : {});
  await rename(partial, path);
}
