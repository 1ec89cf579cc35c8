/**
 * bench/growth: the time to load and decide on a cluster of 1,000, 10,000 and 100,000
 * commits (a long-lived cluster: health verdicts, scales, upgrades), cold (no cached
 * state: a restarted or another replica), beside the raw limit measured in the same run:
 *  - raw: one direct read of the subject's last message (`last_by_subj`), the least any
 *    load must do to know the aggregate is up to date; and one plain `js.publish` of a
 *    commit of the same size, the least a decision that appends must do;
 *  - fold: the decision with the whole history folded (no snapshot);
 *  - snapshot: the decision from the snapshot (bucket cairn_snapshots) and the commits
 *    after it; "worst" with the snapshot `SNAPSHOT_EVERY - 1` commits behind (the most a
 *    replica writing behind every SNAPSHOT_EVERY commits leaves to fold).
 * Goal (issue 16, Growth): a decision on a 100,000-commit aggregate ≤ 50 ms (worst case).
 *
 * Run: npm run bench:growth -w @cairn/bench   (BENCH_QUICK=1: 1,000 and 10,000, a smoke run)
 */
import {
  type AggregateRef,
  CommandHandler,
  catalogue,
  clusterSpec,
  commitIdFor,
  connectNats,
  EventStore,
  ensureStreams,
  eventSubject,
  exampleClusterCreate,
  newId,
  type ParsedCommand,
  type RawEventEnvelope,
  SNAPSHOT_EVERY,
  type SnapshotRecord,
  SnapshotStore,
  Streams,
} from "@cairn/events";
import { clusterDecider } from "@cairn/provisioner";
import { startNatsServer } from "@cairn/testkit";
import { type Figure, printFigures, printResult, timed } from "../lib/report.ts";

const QUICK = process.env.BENCH_QUICK === "1";
const SIZES = QUICK ? [1_000, 10_000] : [1_000, 10_000, 100_000];
const TRIALS = QUICK ? 5 : 15;
const GOAL_MS = 50;

const server = await startNatsServer();
const nats = await connectNats(server.url);
await ensureStreams(nats.jsm);
const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue });
const snapshots = await SnapshotStore.open(nats.js);
/** The same bucket, read-only: a trial that must not move the snapshot on. */
const readOnly = Object.assign(Object.create(SnapshotStore.prototype) as SnapshotStore, {
  get: (a: AggregateRef) => snapshots.get(a),
  put: async (_r: SnapshotRecord) => {},
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A commit as the provisioner writes it: one event, the envelope in full. */
function commitBody(aggregate: AggregateRef, position: number, type: string, data: object): string {
  const event: RawEventEnvelope = {
    id: newId(),
    type,
    version: catalogue.eventVersion(type),
    aggregate,
    position,
    time: new Date().toISOString(),
    data,
    meta: {
      commandId: newId(),
      causationId: newId(),
      correlationId: newId(),
      actor: "installer",
      traceparent: `00-${newId().replaceAll("-", "")}-${"1".repeat(16)}-01`,
    },
  };
  const commitId = commitIdFor(newId(), aggregate);
  return JSON.stringify({ commitId, aggregate, events: [event] });
}

/**
 * Writes a cluster's history straight to the log, as the provisioner would have over its
 * life: requested and ready (when `from` is 1), then `cycles` health verdicts
 * (degraded → recovering → ready), ending Ready. Published in windows of 512 on one
 * connection: one subject, so the stream keeps publish order.
 */
async function writeHistory(clusterId: string, cycles: number, from = 1): Promise<number> {
  const aggregate: AggregateRef = { type: "cluster", id: clusterId };
  const spec = clusterSpec.parse(exampleClusterCreate(clusterId).data);
  const subject = eventSubject(aggregate);
  const ready = { nodes: 3, k3sVersion: spec.k3sVersion };
  const verdicts = [
    ["cluster.degraded", { reason: "kube-apiserver /readyz failed on 1 of 3 servers" }],
    ["cluster.recovering", { reason: "restarting k3s on the failed server" }],
    ["cluster.ready", ready],
  ] as const;
  const bodies: string[] = [];
  let p = from;
  if (from === 1) {
    bodies.push(commitBody(aggregate, p++, "cluster.requested", { spec }));
    bodies.push(commitBody(aggregate, p++, "cluster.ready", ready));
  }
  for (let c = 0; c < cycles; c++)
    for (const [type, data] of verdicts) bodies.push(commitBody(aggregate, p++, type, data));
  for (let i = 0; i < bodies.length; i += 512)
    await Promise.all(bodies.slice(i, i + 512).map((b) => nats.js.publish(subject, b)));
  return bodies.length;
}

/** A health verdict for the cluster: decided on the loaded state (`degraded` on a Ready cluster appends one event). */
function healthCommand(clusterId: string, health: "degraded" | "healthy" = "degraded"): ParsedCommand {
  const p = catalogue.parseCommand({
    id: newId(),
    type: "cluster.record-health",
    data: { clusterId, health, reason: "bench: a health check changed its verdict" },
    meta: { actor: "installer" },
  });
  if (!p.ok) throw p.error;
  return p.value;
}

const handler = (snapshotStore?: SnapshotStore, snapshotEvery = SNAPSHOT_EVERY) =>
  new CommandHandler({
    decider: clusterDecider,
    store,
    catalogue,
    snapshotEvery,
    ...(snapshotStore ? { snapshots: snapshotStore } : {}),
  });

/** Folds the cluster and writes its snapshot at the log's end; waits until it is written. */
async function snapshotNow(aggregate: AggregateRef): Promise<void> {
  const h = handler(snapshots, 1);
  await h.read(aggregate);
  for (let i = 0; h.stats.snapshotsWritten === 0 && i < 1000; i++)
    await new Promise((r) => setTimeout(r, 10));
  if (h.stats.snapshotsWritten === 0) throw new Error("no snapshot written");
}

/** One cold decision (a new handler: nothing cached), in ms; checks it decided on the whole state. */
async function coldDecision(clusterId: string, snapshotStore?: SnapshotStore): Promise<number> {
  const h = handler(snapshotStore);
  const { ms, result } = await timed(() => h.handle(healthCommand(clusterId)));
  if (result.status !== "accepted" && result.status !== "unchanged")
    throw new Error(`unexpected outcome ${JSON.stringify(result)}`);
  if (snapshotStore === readOnly && h.stats.snapshotsUsed !== 1) throw new Error("the snapshot was not used");
  // Bring the cluster back to Ready for the next trial (outside the timing).
  if (result.status === "accepted") {
    await h.handle(healthCommand(clusterId, "healthy"));
  }
  return ms;
}

const figures: Figure[] = [];
const json: Record<string, number> = {};
const ratios: Record<string, number> = {};
for (const size of SIZES) {
  const id = `growth-${size}`;
  const aggregate: AggregateRef = { type: "cluster", id };
  const write = await timed(() => writeHistory(id, Math.floor((size - 2) / 3)));
  console.log(`  ${id}: wrote ${write.result.toLocaleString("en-US")} commits in ${Math.round(write.ms)} ms`);

  // 1. Raw: the subject's last message, one direct read.
  const raw: number[] = [];
  for (let i = 0; i < TRIALS; i++)
    raw.push(
      (
        await timed(() =>
          nats.jsm.streams.getMessage(Streams.events, { last_by_subj: eventSubject(aggregate) }),
        )
      ).ms,
    );

  const rawAppend: number[] = [];
  const body = commitBody({ type: "cluster", id: `raw-${size}` }, 1, "cluster.degraded", { reason: "raw" });
  for (let i = 0; i < TRIALS; i++)
    rawAppend.push((await timed(() => nats.js.publish(`evt.cluster.raw-${size}`, body))).ms);

  // 2. The whole history folded (no snapshot): slow at size, so fewer trials.
  const foldTrials = size >= 100_000 ? 2 : size >= 10_000 ? 3 : TRIALS;
  const fold: number[] = [];
  for (let i = 0; i < foldTrials; i++) fold.push(await coldDecision(id));

  // 3. From a snapshot at the log's end (each trial then adds two commits to fold).
  await snapshotNow(aggregate);
  const fresh: number[] = [];
  for (let i = 0; i < TRIALS; i++) fresh.push(await coldDecision(id, readOnly));

  // 4. Worst case: the snapshot SNAPSHOT_EVERY - 1 commits (or a few more) behind the log.
  await snapshotNow(aggregate);
  const version = (await handler().read(aggregate)).version;
  await writeHistory(id, Math.ceil((SNAPSHOT_EVERY - 1) / 3), version + 1);
  const worst: number[] = [];
  for (let i = 0; i < TRIALS; i++) worst.push(await coldDecision(id, readOnly));

  const n = size.toLocaleString("en-US");
  figures.push(
    { name: `${n}: raw, the subject's last message`, value: median(raw), unit: "ms" },
    { name: `${n}: raw, append one commit`, value: median(rawAppend), unit: "ms" },
    { name: `${n}: decide, whole history folded`, value: median(fold), unit: "ms", raw: median(raw) },
    { name: `${n}: decide from snapshot (fresh)`, value: median(fresh), unit: "ms", raw: median(raw) },
    {
      name: `${n}: decide from snapshot (${SNAPSHOT_EVERY - 1} behind)`,
      value: median(worst),
      unit: "ms",
      raw: median(raw),
    },
  );
  json[`raw_last_message_${size}_ms`] = median(raw);
  json[`raw_append_${size}_ms`] = median(rawAppend);
  json[`decide_fold_${size}_ms`] = median(fold);
  json[`decide_snapshot_${size}_ms`] = median(fresh);
  json[`decide_snapshot_worst_${size}_ms`] = median(worst);
  ratios[`snapshot_worst_over_raw_${size}`] = median(worst) / median(raw);
  ratios[`snapshot_worst_over_raw_read_and_append_${size}`] =
    median(worst) / (median(raw) + median(rawAppend));
  ratios[`fold_over_snapshot_worst_${size}`] = median(fold) / median(worst);
}

printFigures(
  `bench/growth — cold decision on one cluster by history size (medians; snapshot every ${SNAPSHOT_EVERY} commits)`,
  figures,
);
const largest = SIZES[SIZES.length - 1]!;
const worstLargest = json[`decide_snapshot_worst_${largest}_ms`]!;
const met = worstLargest <= GOAL_MS;
const goals = { [`decide_snapshot_worst_${largest}_le_${GOAL_MS}ms`]: met };
console.log(
  `\n  goal: a decision on a ${largest.toLocaleString("en-US")}-commit cluster ≤ ${GOAL_MS} ms: ${Math.round(worstLargest * 10) / 10} ms — ${met ? "met" : "NOT met"}${QUICK ? " (quick run)" : ""}`,
);
await nats.close();
await server.dispose();
printResult({
  bench: "growth",
  params: { quick: QUICK, snapshot_every: SNAPSHOT_EVERY },
  figures: json,
  ratios,
  goals,
});
