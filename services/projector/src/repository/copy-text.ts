/**
 * Postgres COPY's text format, for every COPY the projector sends (the event index's, the
 * staging tables' of a big batch): one field's escaping, and one COPY run.
 */
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";

/** One field: `\N` is null (or undefined); backslash, tab, newline and carriage return escaped. */
export function copyField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return "\\N";
  if (typeof v === "number") return String(v);
  return /[\\\t\n\r]/.test(v)
    ? v.replaceAll("\\", "\\\\").replaceAll("\t", "\\t").replaceAll("\n", "\\n").replaceAll("\r", "\\r")
    : v;
}

/** `statement` (a `copy … from stdin`) with `text` as its data, on `client` (in the caller's transaction). */
export async function copyText(client: pg.ClientBase, statement: string, text: string): Promise<void> {
  if (text.length === 0) return;
  const stream = client.query(copyFrom(statement));
  await pipeline(
    (async function* () {
      yield text;
    })(),
    stream,
  );
}
