/**
 * What the fuzz suite checks after sending its cases:
 *
 * 1. every case was answered — a `*.rejected` event naming its command id, a dead letter
 *    of its message (by stream and sequence), a duplicate acknowledgement, or an HTTP 4xx
 *    with a message; never a 5xx, never silence; and no case's command was accepted;
 * 2. nothing else changed — the read models (a content hash of every table the projector
 *    keeps, rows as JSON) and the logs of the aggregates no case named are equal before
 *    and after. A rejection is an event of the aggregate it names, so a victim's row may
 *    move its bookkeeping (version, last sequence, last event, update time, last
 *    rejection) and nothing else; the event index and the command table may only gain
 *    rejections.
 */
import { createHash } from "node:crypto";
import type { Nats } from "@cairn/events";
import { DEFAULT_SCHEMA, openDatabase } from "@cairn/projector";
import { DeliverPolicy } from "@nats-io/jetstream";
import { sql } from "kysely";
import type { Stack } from "../harness/stack.ts";
import type { Case, Fixtures } from "./cases.ts";

/** The read models' tables; the event index and the command table are checked apart. */
const STATE_TABLES = ["clusters", "installs", "nodes", "nodeops", "sessions", "step_durations"] as const;

/** Bookkeeping a rejection moves on its aggregate's row (columns, and keys of `doc`). */
const BOOKKEEPING = new Set([
  "version",
  "updated_at",
  "updatedAt",
  "last_event_type",
  "lastEventType",
  "last_sequence",
  "lastSequence",
  "rejection",
]);

function stripBookkeeping(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripBookkeeping);
  if (v && typeof v === "object")
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => !BOOKKEEPING.has(k))
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, x]) => [k, stripBookkeeping(x)]),
    );
  return v;
}

const sha = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex").slice(0, 16);

export interface Snapshot {
  /** Per state table: row count and hash of its rows without bookkeeping, and the rows (for the report). */
  readonly tables: Record<string, { rows: number; hash: string; content: string[] }>;
  /** Every event-index row and command row up to the fuzz's first sequence, hashed whole. */
  readonly before: { eventIndex: string; commands: string };
  /** Rows the fuzz may only have added as rejections. */
  readonly added: { events: string[]; commands: string[] };
  /** Each untouched subject: its messages (sequence and hash of the body). */
  readonly logs: Record<string, string[]>;
}

/** The EVT stream's last sequence. */
export async function lastEventSequence(nats: Nats): Promise<number> {
  return (await nats.jsm.streams.info("EVT")).state.last_seq;
}

/** Waits until nothing is appended to EVT for `quietMs` (what the fixtures set going has settled). */
export async function settled(nats: Nats, quietMs = 3_000, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = await lastEventSequence(nats);
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error(`EVT did not settle within ${timeoutMs} ms (at #${last})`);
    await new Promise((r) => setTimeout(r, 250));
    const now = await lastEventSequence(nats);
    if (now !== last) [last, since] = [now, Date.now()];
  }
  return last;
}

/** Waits until the projector's checkpoint has reached `seq` (every event up to it projected). */
export async function projectedUpTo(stack: Stack, seq: number, timeoutMs = 60_000): Promise<void> {
  const db = openDatabase(stack.databaseUrl, { max: 1 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await sql<{ n: number }>`
        select coalesce(max(last_sequence), 0)::bigint as n from ${sql.table(`${DEFAULT_SCHEMA}.projector_checkpoint`)}`.execute(
        db,
      );
      const at = Number(r.rows[0]?.n ?? 0);
      if (at >= seq) return;
      if (Date.now() > deadline)
        throw new Error(`the projector reached #${at}, not #${seq}, in ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 200));
    }
  } finally {
    await db.destroy();
  }
}

/** The subjects of aggregates no case may name: the untouched cluster's and session's. */
export function untouchedSubjects(fx: Fixtures): string[] {
  const { clusterId, sessionId } = fx.untouched;
  return [
    `evt.cluster.${clusterId}`,
    `evt.install.${clusterId}`,
    `evt.session.${sessionId}`,
    `evt.workload.${sessionId}`,
    `evt.nodeop.${clusterId}=*`,
    `evt.kube.${clusterId}`,
  ];
}

/** The read models and the untouched logs, as they are now; `since`: the fuzz's first sequence. */
export async function snapshot(stack: Stack, fx: Fixtures, since: number): Promise<Snapshot> {
  const db = openDatabase(stack.databaseUrl, { max: 1 });
  const table = (t: string) => sql.table(`${DEFAULT_SCHEMA}.${t}`);
  try {
    const tables: Snapshot["tables"] = {};
    for (const t of STATE_TABLES) {
      const r = await sql<{ row: unknown }>`select to_jsonb(t) as row from ${table(t)} t`.execute(db);
      const rows = r.rows.map((x) => JSON.stringify(stripBookkeeping(x.row))).sort();
      tables[t] = { rows: rows.length, hash: sha(rows.join("\n")), content: rows };
    }
    const hashOf = async (q: ReturnType<typeof sql<{ h: string }>>) => (await q.execute(db)).rows[0]?.h ?? "";
    const eventIndex = await hashOf(sql<{ h: string }>`
      select md5(coalesce(string_agg(md5(t::text), '' order by aggregate_type, aggregate_id, position), '')) as h
      from ${table("event_index")} t where sequence < ${since}`);
    const commands = await hashOf(sql<{ h: string }>`
      select md5(coalesce(string_agg(md5(t::text), '' order by command_id), '')) as h
      from ${table("commands")} t where first_sequence < ${since}`);
    const events = await sql<{ d: string }>`
      select type || ' #' || sequence || ' on ' || aggregate_type || ' ' || left(aggregate_id, 40) as d
      from ${table("event_index")} where sequence >= ${since} and type not like '%.rejected'`.execute(db);
    const cmds = await sql<{ d: string }>`
      select coalesce(command_type, '?') || ' ' || command_id || ' ' || status as d
      from ${table("commands")} where first_sequence >= ${since} and status <> 'rejected'`.execute(db);
    const logs: Snapshot["logs"] = {};
    for (const s of untouchedSubjects(fx))
      logs[s] = (await stack.raw(s)).map((m) => `${m.subject} #${m.seq} ${sha(m.data)}`);
    return {
      tables,
      before: { eventIndex, commands },
      added: { events: events.rows.map((r) => r.d), commands: cmds.rows.map((r) => r.d) },
      logs,
    };
  } finally {
    await db.destroy();
  }
}

/** What differs between two snapshots, as sentences. */
export function changes(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const [t, b] of Object.entries(before.tables)) {
    const a = after.tables[t];
    if (!a || a.rows !== b.rows || a.hash !== b.hash) {
      const gone = b.content.filter((r) => !a?.content.includes(r));
      const came = (a?.content ?? []).filter((r) => !b.content.includes(r));
      out.push(
        `read model ${t} changed: ${b.rows} rows → ${a?.rows} rows; before: ${gone.join(" | ").slice(0, 1500)}; after: ${came.join(" | ").slice(0, 1500)}`,
      );
    }
  }
  if (before.before.eventIndex !== after.before.eventIndex)
    out.push("the event index changed below the fuzz's first sequence");
  if (before.before.commands !== after.before.commands)
    out.push("a command answered before the fuzz changed its row (a reused command id took it over?)");
  for (const e of after.added.events) out.push(`the event index gained ${e}, not a rejection`);
  for (const c of after.added.commands) out.push(`the command table gained ${c}`);
  for (const [s, b] of Object.entries(before.logs)) {
    const a = after.logs[s] ?? [];
    if (a.join() !== b.join())
      out.push(
        `the log of untouched ${s} changed: ${b.length} → ${a.length} messages (${a.slice(b.length).join(", ")})`,
      );
  }
  return out;
}

// ---- answers --------------------------------------------------------------------------------

/** What became of one case as it was sent. */
export interface Sent {
  readonly index: number;
  readonly case: Case;
  /** The command id the case's message carries (after a reuse), or the API's 202 answered with. */
  readonly commandId?: string | undefined;
  /** Bus: the stream sequence it was stored at, or that JetStream dropped it as a duplicate. */
  readonly seq?: number;
  readonly duplicate?: boolean;
  /** Bus: the server refused the publish (too large, a bad subject): answered, to the publisher. */
  readonly publishError?: string;
  /** API or request: the status and what it said. */
  readonly status?: number;
  readonly message?: string;
  /** The request never got an answer (a reset, a timeout). */
  readonly error?: string;
}

/** One event after the fuzz began, as the answer index needs it. */
interface Logged {
  readonly seq: number;
  readonly type: string;
  readonly commandId: string | undefined;
  readonly reason: string | undefined;
}

/** Every commit on EVT from `since` on, read loosely (garbage skipped), event by event. */
export async function eventsSince(nats: Nats, since: number): Promise<Logged[]> {
  const last = await lastEventSequence(nats);
  if (last < since) return [];
  const consumer = await nats.js.consumers.get("EVT", {
    deliver_policy: DeliverPolicy.StartSequence,
    opt_start_seq: since,
  });
  const out: Logged[] = [];
  const messages = await consumer.consume({ max_messages: 1024 });
  const dec = new TextDecoder();
  try {
    for await (const m of messages) {
      try {
        const c = JSON.parse(dec.decode(m.data)) as { events?: unknown };
        if (Array.isArray(c.events))
          for (const e of c.events as {
            type?: unknown;
            meta?: { commandId?: unknown };
            data?: { reason?: unknown };
          }[])
            out.push({
              seq: m.seq,
              type: String(e?.type),
              commandId: typeof e?.meta?.commandId === "string" ? e.meta.commandId : undefined,
              reason: typeof e?.data?.reason === "string" ? e.data.reason : undefined,
            });
      } catch {
        // garbage the fuzz put there: its answer is a dead letter
      }
      if (m.info.pending === 0 || m.seq >= last) break;
    }
  } finally {
    messages.stop();
  }
  return out;
}

export interface Verdict {
  /** One line per case that got no answer, or a wrong one. */
  readonly problems: string[];
  /** How the cases were answered: rejected, dead letter, 4xx, duplicate, … */
  readonly answers: Record<string, number>;
}

/** Checks every sent case against the log and the dead letters. */
export async function judge(
  stack: Stack,
  sent: readonly Sent[],
  since: number,
  earlierCommandIds: readonly string[] = [],
): Promise<Verdict> {
  // An earlier command's own events may still come (its reactions): they accept nothing of a case.
  const earlier = new Set(earlierCommandIds);
  const events = await eventsSince(stack.nats, since);
  const byCommand = new Map<string, Logged[]>();
  for (const e of events)
    if (e.commandId) byCommand.set(e.commandId, [...(byCommand.get(e.commandId) ?? []), e]);
  const letters = new Map<string, string | undefined>();
  for (const d of await stack.deadLetters()) letters.set(`${d.fromStream}:${d.fromSequence}`, d.reason);
  const answers: Record<string, number> = {};
  const problems: string[] = [];
  const count = (k: string) => {
    answers[k] = (answers[k] ?? 0) + 1;
  };
  const describe = (s: Sent) => `#${s.index} ${s.case.via} ${s.case.label.slice(0, 140)}`;
  for (const s of sent) {
    const c = s.case;
    const rejections = s.commandId ? (byCommand.get(s.commandId) ?? []) : [];
    const accepted =
      s.commandId && earlier.has(s.commandId) ? [] : rejections.filter((e) => !e.type.endsWith(".rejected"));
    if (accepted.length > 0) {
      problems.push(`${describe(s)}: accepted (${accepted.map((e) => `${e.type} #${e.seq}`).join(", ")})`);
      continue;
    }
    const rejected = rejections.find((e) => e.type.endsWith(".rejected"));
    if (c.via === "bus") {
      const stream = c.subject.startsWith("evt.") ? "EVT" : "CMD";
      const letter = s.seq !== undefined ? letters.get(`${stream}:${s.seq}`) : undefined;
      if (s.publishError) count("refused at publish");
      else if (s.duplicate) count("dropped as a duplicate");
      else if (letter !== undefined) {
        if (letter.length === 0) problems.push(`${describe(s)}: dead letter without a reason`);
        count(`dead letter (${stream})`);
      } else if (rejected && stream === "CMD") {
        if (!rejected.reason) problems.push(`${describe(s)}: rejected without a reason`);
        count("rejected");
      } else problems.push(`${describe(s)}: no answer (stored as ${stream} #${s.seq})`);
    } else if (c.via === "request") {
      if (s.error) problems.push(`${describe(s)}: no answer (${s.error})`);
      else if (s.status !== undefined && s.status >= 400 && s.status < 500 && s.message)
        count("request refused");
      else problems.push(`${describe(s)}: answered ${s.status} ${s.message ?? ""}`);
    } else {
      if (s.error) problems.push(`${describe(s)}: no HTTP answer (${s.error})`);
      else if (s.status === undefined || s.status >= 500)
        problems.push(`${describe(s)}: HTTP ${s.status} ${s.message ?? ""}`);
      else if (c.method === "GET") count(s.status >= 400 ? "HTTP read refused" : "HTTP read answered");
      else if (s.status >= 400) {
        if (!s.message) problems.push(`${describe(s)}: HTTP ${s.status} without a message`);
        count("HTTP 4xx");
      } else if (s.status === 202 && rejected) count("HTTP 202, then rejected");
      else if (s.status === 202)
        problems.push(`${describe(s)}: HTTP 202 (command ${s.commandId}) but no rejection`);
      else problems.push(`${describe(s)}: HTTP ${s.status}, not a refusal`);
    }
  }
  return { problems, answers };
}
