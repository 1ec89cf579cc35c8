/**
 * Postgres COPY's text format, for every COPY the projector sends (the event index's, the
 * staging tables' of a big batch): one field's escaping, and one COPY run.
 */
import { finished, pipeline } from "node:stream/promises";
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

/**
 * Starts `statement` (a `copy … from stdin`) with `text` as its data, on `client` (in the
 * caller's transaction), and resolves once the text is written to the connection (Postgres
 * has answered the COPY and is reading it): the caller may then do CPU work while Postgres
 * inserts the rows. `done()` ends the COPY and waits for Postgres to have taken it (or its
 * error); it must be awaited before the connection's next query.
 */
export async function startCopyText(
  client: pg.ClientBase,
  statement: string,
  text: string,
): Promise<{ done(): Promise<void> }> {
  if (text.length === 0) return { done: async () => {} };
  const stream = client.query(copyFrom(statement));
  const ended = finished(stream);
  ended.catch(() => {}); // awaited by done(); not unhandled before that
  // The write's callback runs once its data is handed to the socket (after Postgres's
  // CopyInResponse, or its drain); a COPY Postgres refuses ends `ended` instead.
  await Promise.race([new Promise<void>((resolve) => stream.write(text, () => resolve())), ended]);
  return {
    done: async () => {
      if (!stream.destroyed && !stream.writableEnded) stream.end();
      await ended;
    },
  };
}
