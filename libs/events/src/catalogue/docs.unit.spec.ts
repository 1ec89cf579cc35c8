import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { renderCatalogue } from "./docs.ts";

describe("docs/events.md", () => {
  it("is what the schemas say (run `npm run docs:events` after changing a schema)", async () => {
    const committed = await readFile(
      fileURLToPath(new URL("../../../../docs/events.md", import.meta.url)),
      "utf8",
    );
    expect(committed).toBe(renderCatalogue());
  });
  it("documents every command of the public contract", () => {
    const doc = renderCatalogue();
    for (const t of [
      "cluster.create",
      "cluster.scale",
      "cluster.rollback",
      "cluster.delete",
      "node.cordon",
      "node.drain",
      "session.create",
      "session.wake",
    ]) {
      expect(doc).toContain(`\`${t}\``);
    }
  });
});
