/**
 * The batch upserts as SQL text with their rows inlined as one JSON literal, read back
 * with `jsonb_to_recordset`. Why: the rows used to travel as one bind parameter per
 * column (`unnest($1::text[], …)`), and node-postgres escapes every element of every
 * array in JavaScript, a character at a time — the largest CPU cost of a live batch
 * (profiled, docs/projector.md "Performance"). `JSON.stringify` is native, and a statement
 * without parameters goes out as a simple query, so several can share one round trip
 * (`begin; …; commit`), which the extended protocol of node-postgres cannot do.
 */
import { copyField } from "./copy-text.ts";

/**
 * `text` as a dollar-quoted SQL literal: nothing inside is an escape, so it is the text
 * as it is, whatever `standard_conforming_strings` says. The tag is one `text` does not hold.
 */
export function dollarQuoted(text: string): string {
  let tag = "$j$";
  for (let n = 0; text.includes(tag); n++) tag = `$j${n}$`;
  return `${tag}${text}${tag}`;
}

/** A `text[]` literal of `values` (`{"a","b"}`), ready to splice into SQL. */
export function textArrayLiteral(values: Iterable<string>): string {
  const parts: string[] = [];
  for (const v of values) parts.push(`"${v.replaceAll(/[\\"]/g, "\\$&")}"`);
  return `${dollarQuoted(`{${parts.join(",")}}`)}::text[]`;
}

/** One column of a recordset upsert: its name in the table, its key in each row's JSON, its type. */
export interface RecordsetColumn {
  readonly column: string;
  readonly key: string;
  readonly type: string;
}

const quoteIdent = (s: string) => `"${s.replaceAll('"', '""')}"`;

/**
 * `insert into <table> (<columns>) select … from jsonb_to_recordset(<rows as JSON>)
 * on conflict (<key>) do update set <every other column>`. `rows` is serialised with
 * `JSON.stringify`: each object's keys are the columns' `key`s (others are ignored, a
 * missing one is null), a `jsonb` column takes the nested value as it is. `jsonb`, not
 * `json`: `json_to_recordset` parses each nested document again for a `jsonb` column,
 * several times slower on the 2 kB cluster rows (EXPLAIN ANALYZE: 40–250 ms against
 * 6–20 ms for 500 rows).
 * A table without `jsonb` columns (clusters, whose documents are `json`; commands) reads
 * its rows with `json_to_recordset` from a `json` literal instead: `json_in` only checks
 * the text, where `jsonb_in` builds the binary form of the whole batch (for 1,000 cluster
 * rows the upsert took a third to a half of the time; docs/projector.md "Live apply,
 * third pass").
 * Rows must be unique by the conflict key (Postgres refuses to update a row twice).
 * `keepWhenNull`: `json` columns whose row value may be left out (or null) to keep the
 * stored one on update (a document the batch did not change, not sent again). The row then
 * carries JSON `null` (Postgres checks NOT NULL on the proposed row before it finds the
 * conflict), which the update takes to mean "keep"; an insert must send the value.
 */
export function recordsetUpsert(
  table: string,
  columns: readonly RecordsetColumn[],
  conflict: readonly string[],
  rows: readonly unknown[],
  keepWhenNull: readonly string[] = [],
  /** When given, the rows go to a staging table by COPY instead of inline (see `Staging`). */
  staging?: Staging,
): string {
  const names = columns.map((c) => quoteIdent(c.column)).join(", ");
  const keys = columns
    .map((c) =>
      keepWhenNull.includes(c.column)
        ? `coalesce(r.${quoteIdent(c.key)}, 'null'::json)`
        : `r.${quoteIdent(c.key)}`,
    )
    .join(", ");
  const defs = columns.map((c) => `${quoteIdent(c.key)} ${c.type}`).join(", ");
  const sets = columns
    .filter((c) => !conflict.includes(c.column))
    .map((c) => {
      const col = quoteIdent(c.column);
      return keepWhenNull.includes(c.column)
        ? `${col} = case when excluded.${col}::text = 'null' then t.${col} else excluded.${col} end`
        : `${col} = excluded.${col}`;
    })
    .join(", ");
  const json = columns.some((c) => c.type === "jsonb") ? "jsonb" : "json";
  const source = staging
    ? `${staging.add(defs, columns, rows)} as r`
    : `${json}_to_recordset(${dollarQuoted(JSON.stringify(rows))}::${json}) as r(${defs})`;
  return `insert into ${table} as t (${names})
    select ${keys} from ${source}
    on conflict (${conflict.map(quoteIdent).join(", ")}) do update set ${sets}`;
}

/** One field of a staged row in COPY's text format (a `json`/`jsonb` column's value as its JSON). */
export function stagedField(v: unknown, type: string): string {
  if (v === undefined || v === null) return copyField(null);
  return copyField(type === "json" || type === "jsonb" ? JSON.stringify(v) : String(v));
}
/** A staging table's rows, ready to COPY: `create` makes the table if the session lacks it. */
export interface StagedTable {
  /** `create temp table if not exists … on commit delete rows` (idempotent, per session). */
  readonly create: string;
  /** `copy pg_temp.… from stdin`. */
  readonly copy: string;
  /** The rows in COPY's text format. */
  readonly text: string;
}

/**
 * The set-based form of a batch's upserts (docs/projector.md "Live apply, sixth pass"):
 * instead of the rows inline as one JSON literal that Postgres parses, analyses and takes
 * apart with `json(b)_to_recordset`, each upsert's rows are COPYed into a temporary
 * staging table of the session (`on commit delete rows`: empty again at the transaction's
 * end, whatever its outcome), and the upsert reads them from there:
 * `insert … select … from pg_temp.<staging> as r on conflict do update` — the same
 * statement otherwise. In bench/projector/write-shape.ts this halved Postgres's CPU per
 * event for the same rows. The caller sends `tables()`' creates and COPYs, in its
 * transaction, before the statement that reads them.
 */
export class Staging {
  readonly #tables: StagedTable[] = [];

  /** Stages `rows` for an upsert with these column definitions; returns the table to read them from. */
  add(defs: string, columns: readonly RecordsetColumn[], rows: readonly unknown[]): string {
    // Numbered in the order a batch stages them, keyed by shape: a session keeps one table
    // per name, and tables of different shapes never share one.
    const name = `cairn_stage_${this.#tables.length}_${shapeKey(defs)}`;
    let text = "";
    for (const row of rows as Record<string, unknown>[]) {
      let line = "";
      for (let i = 0; i < columns.length; i++) {
        const c = columns[i]!;
        line += (i === 0 ? "" : "\t") + stagedField(row[c.key], c.type);
      }
      text += `${line}\n`;
    }
    this.#tables.push({
      create: `create temp table if not exists ${name} (${defs}) on commit delete rows`,
      copy: `copy pg_temp.${name} from stdin`,
      text,
    });
    return `pg_temp.${name}`;
  }

  tables(): readonly StagedTable[] {
    return this.#tables;
  }
}

/** A short stable key of a column list (FNV-1a, hex): staging tables of different shapes never share a name. */
function shapeKey(defs: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < defs.length; i++) h = Math.imul(h ^ defs.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16);
}

/** A qualified table name (`schema` is a checked identifier, `assertSchemaName`). */
export const qualified = (schema: string, table: string) => `${quoteIdent(schema)}.${quoteIdent(table)}`;
