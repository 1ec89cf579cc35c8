/**
 * A realistic event log for the projector bench: many clusters, each through a whole
 * life (requested, provisioned slot by slot, a failure and retry, pool labels, a scale,
 * a rejected command, a rollback, deletion), their commits interleaved as a busy
 * control plane would write them. Deterministic: the same count gives the same log.
 */
import { type CairnEvent, clusterSpec, exampleClusterCreate } from "@cairn/events";
import { eventIndexCopyText, toEventIndexRow } from "@cairn/projector";
import type { JetStreamClient } from "@nats-io/jetstream";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";

export interface BenchCommit {
  readonly subject: string;
  readonly body: string;
  readonly events: number;
}

type E = { type: string; data: unknown; command?: boolean };

const specTemplate = clusterSpec.parse(exampleClusterCreate("bench").data);
const placement = { instanceType: "t3.large", capacityType: "spot" };
const slot = (n: number) => ({ slot: n, pool: "workers", ordinal: n - 1000, role: "agent" });

/** The commits of one cluster's life: 1–3 events each; `command` marks those a user command caused. */
function life(id: string): E[][] {
  const spec = { ...specTemplate, clusterId: id, name: id };
  const slots = [slot(1000), slot(1001), slot(1002)];
  return [
    [{ type: "cluster.requested", data: { spec }, command: true }],
    [
      {
        type: "cluster.provisioning-started",
        data: { slots: [{ slot: 0, pool: "servers", ordinal: 0, role: "server" }, ...slots] },
      },
    ],
    slots.map((s) => ({ type: "cluster.instance-launch-requested", data: { ...s, attempt: 1, placement } })),
    ...slots.map((s) => [
      {
        type: "cluster.instance-launched",
        data: { slot: s.slot, attempt: 1, instanceId: `i-${id}-${s.slot}` },
      },
    ]),
    ...slots.map((s) => [
      { type: "cluster.instance-running", data: { slot: s.slot, instanceId: `i-${id}-${s.slot}` } },
    ]),
    [{ type: "cluster.instances-ready", data: { count: 3 } }],
    [
      {
        type: "cluster.pool-updated",
        data: { pool: "workers", labels: { tier: "batch" }, taints: [] },
        command: true,
      },
    ],
    [{ type: "cluster.scale-requested", data: { pool: "workers", from: 2, to: 3 }, command: true }],
    [{ type: "cluster.instance-launch-requested", data: { ...slot(1003), attempt: 1, placement } }],
    [
      {
        type: "cluster.instance-launch-failed",
        data: {
          slot: 1003,
          attempt: 1,
          placement,
          code: "InsufficientInstanceCapacity",
          reason: "no spot capacity",
          capacity: true,
        },
      },
    ],
    [{ type: "cluster.scale-failed", data: { reason: "no capacity", spec } }],
    [
      {
        type: "cluster.rejected",
        data: {
          commandId: `rej-${id}`,
          commandType: "cluster.scale",
          code: "conflict",
          reason: "already scaling",
        },
        command: true,
      },
    ],
    [{ type: "cluster.deletion-requested", data: {}, command: true }],
    slots.map((s) => ({
      type: "cluster.instance-termination-requested",
      data: { slot: s.slot, instanceId: `i-${id}-${s.slot}` },
    })),
    [{ type: "cluster.deleted", data: { terminated: slots.map((s) => `i-${id}-${s.slot}`) } }],
  ];
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");
const T0 = Date.UTC(2026, 0, 1);

/**
 * Commits holding `totalEvents` events (the last commit may go one or two over), from
 * `window` clusters alive at once, round-robin.
 */
export function* benchLog(totalEvents: number, window = 1_000, prefix = "b"): Generator<BenchCommit> {
  let nextCluster = 0;
  let eventNo = 0;
  const active: { id: string; commits: E[][]; next: number; position: number }[] = [];
  const open = () => {
    const id = `${prefix}${nextCluster++}`;
    return { id, commits: life(id), next: 0, position: 0 };
  };
  for (let i = 0; i < window; i++) active.push(open());
  for (let turn = 0; eventNo < totalEvents; turn++) {
    const k = turn % window;
    let c = active[k]!;
    if (c.next >= c.commits.length) active[k] = c = open();
    const events = c.commits[c.next++]!;
    const trace = hex(c.position + 1, 16);
    const commandId = events.some((e) => e.command) ? `cmd-${c.id}-${c.next}` : undefined;
    const envelopes = events.map((e) => {
      eventNo++;
      c.position++;
      return {
        id: `00000000-0000-7000-8000-${hex(eventNo, 12)}`,
        type: e.type,
        version: 1,
        aggregate: { type: "cluster", id: c.id },
        position: c.position,
        time: new Date(T0 + eventNo).toISOString(),
        data: e.data,
        meta: {
          ...(commandId ? { commandId } : {}),
          causationId: commandId ?? `evt-${c.id}-${c.position}`,
          correlationId: `cmd-${c.id}-1`,
          actor: commandId ? "alice" : "provisioner",
          traceparent: `00-${hex(nextCluster, 16)}${hex(c.position, 16)}-${trace}-01`,
        },
      };
    });
    yield {
      subject: `evt.cluster.${c.id}`,
      body: JSON.stringify({
        commitId: `${c.id}-${c.next}`,
        aggregate: { type: "cluster", id: c.id },
        events: envelopes,
      }),
      events: envelopes.length,
    };
  }
}

/** Publishes the bench log of `totalEvents` events, 2,000 publishes in flight; resolves with the commits. */
export async function publishBenchLog(js: JetStreamClient, totalEvents: number): Promise<number> {
  let commits = 0;
  let inflight: Promise<unknown>[] = [];
  for (const c of benchLog(totalEvents)) {
    inflight.push(js.publish(c.subject, c.body));
    commits++;
    if (inflight.length >= 2_000) {
      await Promise.all(inflight);
      inflight = [];
    }
  }
  await Promise.all(inflight);
  return commits;
}

/**
 * The raw write limit: the bench log's event-index rows COPYed into `raw.event_index` (a
 * table like the projector's, migrated into schema `raw` by the caller), 50,000 rows per
 * COPY, only the COPY timed. Resolves with the rows and the milliseconds.
 */
export async function rawCopy(
  databaseUrl: string,
  totalEvents: number,
): Promise<{ rows: number; ms: number }> {
  const raw = new pg.Client({ connectionString: databaseUrl });
  await raw.connect();
  let ms = 0;
  let copied = 0;
  try {
    let rows: ReturnType<typeof toEventIndexRow>[] = [];
    let seq = 0;
    const flush = async () => {
      const text = eventIndexCopyText(rows);
      copied += rows.length;
      rows = [];
      const t0 = performance.now();
      const stream = raw.query(
        copyFrom(
          "copy raw.event_index (aggregate_type, aggregate_id, position, sequence, event_id, type, command_id, causation_id, correlation_id, actor, trace_id, time, data) from stdin",
        ),
      );
      await new Promise<void>((resolve, reject) => {
        stream.on("finish", resolve).on("error", reject);
        stream.end(text);
      });
      ms += performance.now() - t0;
    };
    for (const c of benchLog(totalEvents)) {
      seq++;
      for (const e of JSON.parse(c.body).events as CairnEvent[]) rows.push(toEventIndexRow(e, seq));
      if (rows.length >= 50_000) await flush();
    }
    if (rows.length > 0) await flush();
  } finally {
    await raw.end();
  }
  return { rows: copied, ms };
}

/** A delivered message as the projection reads it: commit `body` at stream sequence `seq`. */
export const deliveredMessage = (seq: number, subject: string, body: string) => ({
  seq,
  subject,
  string: () => body,
  json: () => JSON.parse(body),
  headers: undefined,
  info: { pending: 0 },
});
