// Writes docs/events.md from the schemas: `npm run docs:events`.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { renderCatalogue } from "./docs.ts";

const target = fileURLToPath(new URL("../../../../docs/events.md", import.meta.url));
await writeFile(target, renderCatalogue());
process.stdout.write(`wrote ${target}\n`);
