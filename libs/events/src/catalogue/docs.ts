import { z } from "zod";
import { allCommandDefinitions, allEventDefinitions } from "./index.ts";

/** A compact, readable type of a JSON schema, e.g. `{ clusterId: string, count?: integer }`. */
function shape(schema: unknown, depth = 0): string {
  const s = schema as Record<string, unknown>;
  if (!s || typeof s !== "object") return "unknown";
  if (Array.isArray(s.enum)) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (Array.isArray(s.anyOf)) return (s.anyOf as unknown[]).map((x) => shape(x, depth)).join(" | ");
  switch (s.type) {
    case "object": {
      const props = (s.properties ?? {}) as Record<string, unknown>;
      const required = new Set((s.required as string[] | undefined) ?? []);
      const keys = Object.keys(props);
      if (keys.length === 0) {
        return s.additionalProperties && typeof s.additionalProperties === "object"
          ? `{ [key]: ${shape(s.additionalProperties, depth + 1)} }`
          : "{}";
      }
      return `{ ${keys.map((k) => `${k}${required.has(k) ? "" : "?"}: ${shape(props[k], depth + 1)}`).join(", ")} }`;
    }
    case "array":
      return `${shape(s.items, depth + 1)}[]`;
    default:
      return String(s.type ?? "unknown");
  }
}

/** A table cell: `|` would end the cell. */
const cell = (text: string) => text.replaceAll("|", "\\|");

function jsonSchema(schema: z.ZodType): unknown {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" });
}

/** The event catalogue as Markdown, generated from the zod schemas (docs/events.md). */
export function renderCatalogue(): string {
  const lines = [
    "# Event catalogue",
    "",
    "Generated from the zod schemas in `libs/events/src/catalogue` by `npm run docs:events`; do not edit by hand.",
    "A test fails when this file and the schemas disagree.",
    "",
    "Every event travels in the envelope `{ id, type, version, aggregate: { type, id }, position, time, data, meta: { commandId?, causationId, correlationId, actor, traceparent?, links? } }`,",
    "inside a commit `{ commitId, aggregate, events: [...] }` on subject `evt.<aggregate>.<id>` (stream `EVT`).",
    "Commands travel as `{ id, type, data, meta?: { actor, links? } }` on `cmd.<aggregate>.<verb>` (stream `CMD`); `links`: the lifecycle traces the command belongs to besides its own (docs/observability.md).",
    "Poison messages go to `dlq.<stream>` (stream `DLQ`). KV buckets: `cairn_leases` (leader leases), `cairn_heartbeats`",
    "(session activity, key = session id) and `cairn_snapshots` (aggregate snapshots, key `<aggregate>.<id>`, value",
    "`{ schema, aggregate, sequence, commitId, version, state, commits }`; written by the aggregate's owner, a shortcut",
    'checked against `EVT` before use, never the record: docs/architecture.md, "Snapshots and looks").',
    "",
  ];
  const aggregates = [...new Set([...allCommandDefinitions, ...allEventDefinitions].map((d) => d.aggregate))];
  for (const agg of aggregates) {
    lines.push(`## ${agg}`, "");
    const commands = allCommandDefinitions.filter((d) => d.aggregate === agg);
    if (commands.length > 0) {
      lines.push("### Commands", "", "| type | subject | data | what it asks |", "|---|---|---|---|");
      for (const c of commands) {
        lines.push(
          `| \`${c.type}\` | \`cmd.${c.type}\` | \`${cell(shape(jsonSchema(c.schema)))}\` | ${c.description} |`,
        );
      }
      lines.push("");
    }
    lines.push("### Events", "", "| type | version | data | what it means |", "|---|---|---|---|");
    for (const e of allEventDefinitions.filter((d) => d.aggregate === agg)) {
      lines.push(
        `| \`${e.type}\` | ${e.version} | \`${cell(shape(jsonSchema(e.schema)))}\` | ${e.description} |`,
      );
    }
    lines.push("");
  }
  return `${lines.join("\n").trimEnd()}\n`;
}
