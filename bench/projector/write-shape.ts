/**
 * bench/projector/write-shape: the ceiling of the live apply's WRITE SHAPE, beside raw COPY
 * in the same run (issue 16). What fraction of a raw COPY do the statements a live batch
 * sends allow, with no NATS, no parse, no fold and no statement building at all?
 *
 *  1. Record: the projector's own `projectInTransaction` applies the bench log in batches of
 *     `--batch` commits (as the live consumer hands them in a catch-up) into a scratch
 *     database, and every statement it sends is recorded as sent: round trip 1 (begin, the
 *     apply lock, the checkpoint, the reads), the COPY of the event index (its bytes), round
 *     trip 2 (the write statement and commit). Untimed.
 *  2. Replay, timed, into a fresh database each, alternated round by round with a raw COPY
 *     of the same rows (bench/projector's raw limit: the event-index rows, 50,000 per COPY):
 *     - `live`: the recorded statements exactly, one batch after the other on one
 *       connection — the write shape's ceiling: what the live apply would reach if the
 *       Node side cost nothing;
 *     - `staged`: the same rows, set-based: each `json(b)_to_recordset(<literal>)` of the write
 *       statement COPYed into a temp staging table first (`on commit delete rows`), the
 *       upserts then `insert … select … from <staging> on conflict do update` (the same
 *       statement otherwise);
 *     - `live_b<N>` for each further `--batches` size: the recorded statements of a
 *       recording at that batch size (a catch-up batch of N commits touches each row once).
 *  Each replay's figure: events/s (wall), and the Postgres backend's CPU per event (/proc:
 *  the replay's one connection), which a loaded machine blurs least; raw COPY's the same.
 *
 * A diagnostic: no goals; `live_over_raw` is the ceiling the write shape permits.
 *
 * Run: node bench/projector/write-shape.ts --events 200000 [--batches 2000,8000] [--rounds 2]
 *      (BENCH_QUICK=1: 10,000 events, one round)
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { CairnEvent } from "@cairn/events";
import { migrateToLatest, openDatabase, toEventIndexRow } from "@cairn/projector";
import { createDatabase, findPostgres } from "@cairn/testkit";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { eventIndexCopyText } from "../../services/projector/src/repository/event-index-copy.ts";
import { stagedField } from "../../services/projector/src/repository/recordset.ts";
import { printResult, QUICK } from "../lib/report.ts";
import { benchLog, deliveredMessage as message } from "./log.ts";

const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: process.env.BENCH_EVENTS ?? (QUICK ? "10000" : "200000") },
    batches: { type: "string", default: "2000" },
    rounds: { type: "string", default: QUICK ? "1" : "2" },
    variants: { type: "string", default: "raw,live,staged" },
    /** The projector build whose statements are recorded (its `src` folder; default this one). */
    src: { type: "string", default: new URL("../../services/projector/src/", import.meta.url).pathname },
  },
});
const fromSrc = (path: string) => import(pathToFileURL(resolve(args.src, path)).href);
const { projectInTransaction } = await fromSrc("projection.ts");
const src = {
  openDatabase: (await fromSrc("db/database.ts")).openDatabase as typeof openDatabase,
  migrateToLatest: (await fromSrc("db/migrate.ts")).migrateToLatest as typeof migrateToLatest,
};
/** The `pg` that build uses (another worktree has its own node_modules). */
const srcPg = (await import(pathToFileURL(createRequire(resolve(args.src, "x.js")).resolve("pg")).href))
  .default as typeof pg;
const EVENTS = Number(args.events);
const BATCHES = args.batches.split(",").map(Number);
const ROUNDS = Number(args.rounds);
const say = (line: string) =>
  process.stderr.write(`bench/write-shape: ${line} (load ${loadavg()[0]!.toFixed(1)})\n`);

/** One thing a batch sent: a simple query, or a COPY with its bytes. */
type Op = { readonly query: string } | { readonly copy: string; readonly data: Buffer };
interface Batch {
  readonly events: number;
  readonly ops: Op[];
}

const postgres = await findPostgres();

// ── 1. Record ────────────────────────────────────────────────────────────────────────
let recording: Op[] | undefined;
const srcClientQuery = srcPg.Client.prototype.query;
srcPg.Client.prototype.query = function (this: pg.Client, ...a: unknown[]) {
  const [q] = a as [unknown];
  if (recording) {
    if (typeof q === "string") recording.push({ query: q });
    else if (q && typeof (q as { text?: unknown }).text === "string" && "_write" in (q as object)) {
      // A COPY FROM stream: keep its bytes as they go through.
      // biome-ignore lint/suspicious/noExplicitAny: the stream's own private write methods, wrapped as they are
      type Write = (...args: any[]) => unknown;
      const stream = q as { text: string; _write: Write; _writev?: Write };
      const chunks: Buffer[] = [];
      const op = { copy: stream.text, data: Buffer.alloc(0) };
      recording.push(op);
      const w = stream._write.bind(stream);
      stream._write = (chunk: Buffer, enc: BufferEncoding, cb: () => void) => {
        chunks.push(Buffer.from(chunk));
        op.data = Buffer.concat(chunks);
        return w(chunk, enc, cb);
      };
      if (stream._writev) {
        const wv = stream._writev.bind(stream);
        stream._writev = (list: { chunk: Buffer }[], cb: () => void) => {
          for (const c of list) chunks.push(Buffer.from(c.chunk));
          op.data = Buffer.concat(chunks);
          return wv(list, cb);
        };
      }
    }
  }
  return (srcClientQuery as (...args: unknown[]) => unknown).apply(this, a);
} as typeof pg.Client.prototype.query;

async function record(batchSize: number): Promise<Batch[]> {
  const database = await createDatabase(postgres, "bench_write_shape_rec");
  const db = src.openDatabase(database.url, { max: 1 });
  try {
    await src.migrateToLatest(db, "cairn");
    const target = { db, schema: "cairn", name: "projector" };
    const noReader = { firstSequence: async () => 1, get: async () => undefined };
    const out: Batch[] = [];
    let msgs: ReturnType<typeof message>[] = [];
    let seq = 0;
    const flush = async () => {
      recording = [];
      const r = await projectInTransaction(target, msgs, async () => {}, noReader);
      out.push({ events: r.events, ops: recording });
      recording = undefined;
      msgs = [];
    };
    for (const c of benchLog(EVENTS)) {
      msgs.push(message(++seq, c.subject, c.body));
      if (msgs.length >= batchSize) await flush();
    }
    if (msgs.length > 0) await flush();
    return out;
  } finally {
    recording = undefined;
    await db.destroy();
    await database.dispose();
  }
}

// ── 2. The staged (set-based) form of a recorded batch ────────────────────────────────
const RECORDSET = /(json|jsonb)_to_recordset\((\$j\d*\$)([\s\S]*?)\2::(?:json|jsonb)\) as r\(([^)]*)\)/g;

/** Staging tables by their column definitions: `create temp table` statements to run once per connection. */
const stagingTables = new Map<string, string>();
function stagingTable(defs: string): string {
  let name = stagingTables.get(defs);
  if (!name) {
    name = `stage_${stagingTables.size}`;
    stagingTables.set(defs, name);
  }
  return name;
}

function staged(batch: Batch): Batch {
  const ops: Op[] = [];
  for (const op of batch.ops) {
    if (!("query" in op) || !op.query.includes("_to_recordset(")) {
      ops.push(op);
      continue;
    }
    const copies: Op[] = [];
    const query = op.query.replace(RECORDSET, (_m, _kind, _tag, literal: string, defs: string) => {
      const table = stagingTable(defs);
      const columns = defs.split(/,\s*(?=")/).map((d) => {
        const m = /^"((?:[^"]|"")*)"\s+(.+)$/.exec(d.trim())!;
        return { key: m[1]!.replaceAll('""', '"'), type: m[2]!.trim() };
      });
      let text = "";
      for (const row of JSON.parse(literal) as Record<string, unknown>[])
        text += `${columns.map((c) => stagedField(row[c.key], c.type)).join("\t")}\n`;
      copies.push({ copy: `copy pg_temp.${table} from stdin`, data: Buffer.from(text) });
      return `pg_temp.${table} as r`;
    });
    ops.push(...copies, { query });
  }
  return { events: batch.events, ops };
}

// ── 3. Replay and raw COPY, each into a fresh database ───────────────────────────────
const ticksOf = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]);
};

interface Measured {
  ms: number;
  events: number;
  pgTicks: number;
  /** Wall time per kind of op (ms): rt1 (begin … reads), copy, rt2 (write, commit). */
  split: Record<string, number>;
  /** The read models the replay left (clusters, commands, nodes, index count, checkpoint). */
  digest?: string;
}

async function fresh<T>(f: (client: pg.Client) => Promise<T>): Promise<T> {
  const database = await createDatabase(postgres, "bench_write_shape");
  const db = openDatabase(database.url, { max: 1 });
  const client = new pg.Client({ connectionString: database.url });
  try {
    await migrateToLatest(db, "cairn");
    await migrateToLatest(db, "raw");
    await db.destroy();
    await client.connect();
    return await f(client);
  } finally {
    await client.end().catch(() => {});
    await database.dispose();
  }
}

async function copyIn(client: pg.Client, sqlText: string, data: Buffer): Promise<void> {
  const stream = client.query(copyFrom(sqlText));
  await new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve).on("error", reject);
    stream.end(data);
  });
}

async function replay(batches: readonly Batch[]): Promise<Measured> {
  return await fresh(async (client) => {
    for (const [defs, name] of stagingTables)
      await client.query(`create temp table ${name} (${defs}) on commit delete rows`);
    const pid = ((await client.query("select pg_backend_pid() as pid")).rows[0] as { pid: number }).pid;
    const m: Measured = { ms: 0, events: 0, pgTicks: 0, split: { rt1: 0, copy: 0, rt2: 0 } };
    const t0 = ticksOf(pid);
    const start = performance.now();
    for (const b of batches) {
      for (const op of b.ops) {
        const s = performance.now();
        if ("query" in op) {
          await client.query(op.query);
          m.split[op.query.startsWith("begin") ? "rt1" : "rt2"]! += performance.now() - s;
        } else {
          await copyIn(client, op.copy, op.data);
          m.split.copy! += performance.now() - s;
        }
      }
      m.events += b.events;
    }
    m.ms = performance.now() - start;
    m.pgTicks = ticksOf(pid) - t0;
    // What the replay left, to check that every shape writes the same read models.
    const digest = await client.query(
      `select (select md5(coalesce(string_agg(to_jsonb(t)::text, ',' order by id), '')) from cairn.clusters t) as c,
              (select md5(coalesce(string_agg(to_jsonb(t)::text, ',' order by command_id), '')) from cairn.commands t) as k,
              (select md5(coalesce(string_agg(to_jsonb(t)::text, ',' order by id), '')) from cairn.nodes t) as n,
              (select count(*) from cairn.event_index) as i,
              (select last_sequence from cairn.projector_checkpoint) as s`,
    );
    m.digest = JSON.stringify(digest.rows[0]);
    return m;
  });
}

/** bench/projector's raw limit (log.ts `rawCopy`), with its backend's CPU. */
async function rawCopy(text: Buffer[], events: number): Promise<Measured> {
  return await fresh(async (client) => {
    const pid = ((await client.query("select pg_backend_pid() as pid")).rows[0] as { pid: number }).pid;
    const t0 = ticksOf(pid);
    const start = performance.now();
    for (const chunk of text)
      await copyIn(
        client,
        "copy raw.event_index (aggregate_type, aggregate_id, position, sequence, event_id, type, command_id, causation_id, correlation_id, actor, trace_id, time, data) from stdin",
        chunk,
      );
    const ms = performance.now() - start;
    return { ms, events, pgTicks: ticksOf(pid) - t0, split: {} };
  });
}

say(`recording ${EVENTS.toLocaleString("en-US")} events in batches of ${BATCHES.join(", ")}`);
const recorded = new Map<number, Batch[]>();
for (const size of BATCHES) recorded.set(size, await record(size));
const first = recorded.get(BATCHES[0]!)!;
const stagedBatches = first.map(staged);
const rawText: Buffer[] = [];
{
  let rows: ReturnType<typeof toEventIndexRow>[] = [];
  let seq = 0;
  for (const c of benchLog(EVENTS)) {
    seq++;
    for (const e of JSON.parse(c.body).events as CairnEvent[]) rows.push(toEventIndexRow(e, seq));
    if (rows.length >= 50_000) {
      rawText.push(Buffer.from(eventIndexCopyText(rows)));
      rows = [];
    }
  }
  if (rows.length > 0) rawText.push(Buffer.from(eventIndexCopyText(rows)));
}
const bytes = (bs: readonly Batch[]) =>
  bs.reduce((n, b) => n + b.ops.reduce((k, o) => k + ("query" in o ? o.query.length : o.data.length), 0), 0);
say(
  `recorded: ${first.length} batches; bytes sent per event: live ${(bytes(first) / EVENTS).toFixed(0)}, raw COPY ${(rawText.reduce((n, b) => n + b.length, 0) / EVENTS).toFixed(0)}`,
);

const wanted = args.variants.split(",");
const variants: [string, () => Promise<Measured>][] = [];
if (wanted.includes("raw")) variants.push(["raw", () => rawCopy(rawText, EVENTS)]);
if (wanted.includes("live")) variants.push(["live", () => replay(first)]);
if (wanted.includes("staged")) variants.push(["staged", () => replay(stagedBatches)]);
for (const size of BATCHES.slice(1)) variants.push([`live_b${size}`, () => replay(recorded.get(size)!)]);

const totals = new Map<string, Measured[]>();
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? variants : [...variants].reverse();
  for (const [name, run] of order) {
    const l0 = loadavg()[0]!;
    const m = await run();
    const l1 = loadavg()[0]!;
    const split = Object.entries(m.split)
      .map(([k, v]) => `${k} ${Math.round(v)}`)
      .join(" · ");
    process.stdout.write(
      `round ${round + 1} ${name.padEnd(12)} ${Math.round((m.events * 1000) / m.ms)
        .toLocaleString("en-US")
        .padStart(
          8,
        )} events/s  Postgres CPU ${((m.pgTicks * 10_000) / m.events).toFixed(1)} µs/event  ${split ? `(ms: ${split})` : ""}  load ${l0.toFixed(1)}→${l1.toFixed(1)}\n`,
    );
    totals.set(name, [...(totals.get(name) ?? []), m]);
  }
}
await postgres.stop();
const digests = new Set([...totals.values()].flat().flatMap((m) => (m.digest ? [m.digest] : [])));
process.stdout.write(
  digests.size === 1
    ? `every replay left the same read models (${[...digests][0]})\n`
    : `REPLAYS DIFFER: ${[...digests].join(" | ")}\n`,
);
if (digests.size > 1) process.exitCode = 1;

const figures: Record<string, number> = {};
const ratios: Record<string, number> = {};
const sum = (ms: Measured[]) => ({
  rate: (ms.reduce((n, m) => n + m.events, 0) * 1000) / ms.reduce((n, m) => n + m.ms, 0),
  cpu: (ms.reduce((n, m) => n + m.pgTicks, 0) * 10_000) / ms.reduce((n, m) => n + m.events, 0),
});
for (const [name, ms] of totals) {
  const s = sum(ms);
  figures[`${name}_per_s`] = Math.round(s.rate);
  figures[`${name}_postgres_cpu_us_per_event`] = Math.round(s.cpu * 10) / 10;
}
const raw = totals.get("raw");
if (raw) {
  const r = sum(raw);
  for (const [name, ms] of totals) {
    if (name === "raw") continue;
    const s = sum(ms);
    ratios[`${name}_over_raw`] = s.rate / r.rate;
    ratios[`${name}_over_raw_cpu`] = s.cpu / r.cpu;
  }
}
for (const [k, v] of Object.entries(ratios))
  process.stdout.write(`${k.padEnd(28)} ${(v * 100).toFixed(1)} %\n`);
printResult({
  bench: "projector-write-shape",
  params: { quick: QUICK, events: EVENTS, batches: args.batches, rounds: ROUNDS, src: args.src },
  figures,
  ratios,
  goals: {},
});
