/**
 * bench/event-store: appends/s of commits with optimistic concurrency, and
 * consumes/s through the consumer runner, each beside the raw limit measured in the
 * same run on the same server with the same bytes:
 *  - raw append: async `js.publish` with bounded in-flight, no expectations (and, beside it
 *    without a goal, the same bytes through the pipelined publisher appends use);
 *  - raw consume: a plain nats.js pull `consume()` that acks each message.
 * Goals (issue 16, raised from issue 2's 50 %): append ≥ 80% of raw, the command path ≥ 65%
 * of raw; (issue 2) consume ≥ 70% of raw.
 *
 * Run: npm run bench:event-store -w @cairn/bench   (BENCH_N=20000 BENCH_INFLIGHT=256 to change
 * the size; BENCH_QUICK=1: N=2,000, a smoke run)
 */
import {
  ackedPublisher,
  CommandHandler,
  connectNats,
  EventStore,
  ensureStreams,
  newId,
  type RawEventEnvelope,
  startConsumer,
} from "@cairn/events";
import { counterCatalogue, counterDecider } from "@cairn/events/testing";
import { startNatsServer } from "@cairn/testkit";
import { AckPolicy } from "@nats-io/jetstream";
import { bounded, type Figure, printFigures, printResult, QUICK, rate, timed } from "../lib/report.ts";

const N = Number(process.env.BENCH_N ?? (QUICK ? 2_000 : 20_000));
const INFLIGHT = Number(process.env.BENCH_INFLIGHT ?? 256);
/** Aggregates written at once: each is a sequence of dependent appends. */
const AGGREGATES = INFLIGHT;

const server = await startNatsServer();
const nats = await connectNats(server.url);
await ensureStreams(nats.jsm);
const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue: counterCatalogue });

function commitBody(aggregateId: string, position: number): { body: string; event: RawEventEnvelope } {
  const event: RawEventEnvelope = {
    id: newId(),
    type: "workload.incremented",
    version: 2,
    aggregate: { type: "workload", id: aggregateId },
    position,
    time: new Date().toISOString(),
    data: { by: 1 },
    meta: { causationId: newId(), correlationId: "bench", actor: "bench" },
  };
  return {
    body: JSON.stringify({ commitId: "x".repeat(32), aggregate: event.aggregate, events: [event] }),
    event,
  };
}

const perAggregate = Math.ceil(N / AGGREGATES);
const appended = perAggregate * AGGREGATES;
/**
 * Phases 1–3 run in ROUNDS interleaved rounds (raw, append, command path, raw, …), each
 * rate the total over its rounds: background load on a shared machine changes over a few
 * seconds, and measured one after the other the three saw different machines.
 */
const ROUNDS = 3;
const perRound = (r: number) =>
  Math.floor((perAggregate * (r + 1)) / ROUNDS) - Math.floor((perAggregate * r) / ROUNDS);
const firstOfRound = (r: number) => Math.floor((perAggregate * r) / ROUNDS);

// 1. Raw append: the same bytes, plain async publish, bounded in flight.
const rawBodies = Array.from({ length: appended }, (_, i) => commitBody(`raw-${i % AGGREGATES}`, 1).body);
async function rawRound(r: number): Promise<number> {
  const first = firstOfRound(r) * AGGREGATES;
  const n = perRound(r) * AGGREGATES;
  const t = await timed(() =>
    bounded(n, INFLIGHT, (i) =>
      nats.js.publish(`evt.workload.raw-${(first + i) % AGGREGATES}`, rawBodies[first + i]!),
    ),
  );
  return t.ms;
}

// 1b. Not a goal's reference, shown beside it: the same bytes through the pipelined publisher
// appends now use (one inbox, no nats.js request each), no headers, no expectations — what
// the transport alone costs, so the append figure can be read against it too.
const pipelined = ackedPublisher(nats.nc, { lingerMs: 0 });
async function pipelinedRound(r: number): Promise<number> {
  const first = firstOfRound(r) * AGGREGATES;
  const n = perRound(r) * AGGREGATES;
  const t = await timed(() =>
    bounded(n, INFLIGHT, (i) =>
      pipelined.publish(`evt.workload.pipe-${(first + i) % AGGREGATES}`, rawBodies[first + i]!),
    ),
  );
  return t.ms;
}

// 2. Cairn append: EventStore.append with the expected last sequence, per-aggregate order.
const occEvents = Array.from({ length: AGGREGATES }, (_, a) =>
  Array.from({ length: perAggregate }, (_, k) => commitBody(`occ-${a}`, k + 1).event),
);
const expectedOf = new Array<number>(AGGREGATES).fill(0);
async function appendRound(r: number): Promise<number> {
  const t = await timed(() =>
    bounded(AGGREGATES, INFLIGHT, async (a) => {
      for (const event of occEvents[a]!.slice(firstOfRound(r), firstOfRound(r) + perRound(r))) {
        expectedOf[a] = (
          await store.append(
            { aggregate: event.aggregate, causationId: event.meta.causationId, events: [event] },
            expectedOf[a]!,
          )
        ).sequence;
      }
    }),
  );
  return t.ms;
}

// 3. The whole command path minus the bus: load (cached), decide, append.
const handler = new CommandHandler({ decider: counterDecider, store, catalogue: counterCatalogue });
async function commandRound(r: number): Promise<number> {
  const t = await timed(() =>
    bounded(AGGREGATES, INFLIGHT, async (a) => {
      for (let k = 0; k < perRound(r); k++) {
        const parsed = counterCatalogue.parseCommand({
          id: newId(),
          type: "workload.increment",
          data: { counterId: `cmd-${a}`, by: 1 },
        });
        if (!parsed.ok) throw parsed.error;
        await handler.handle(parsed.value);
      }
    }),
  );
  return t.ms;
}

const rawAppend = { ms: 0 };
const pipelinedAppend = { ms: 0 };
const storeAppend = { ms: 0 };
const handled = { ms: 0 };
for (let r = 0; r < ROUNDS; r++) {
  rawAppend.ms += await rawRound(r);
  pipelinedAppend.ms += await pipelinedRound(r);
  storeAppend.ms += await appendRound(r);
  handled.ms += await commandRound(r);
}
pipelined.stop();

// 4. Raw consume of the raw messages: a plain durable pull consumer acking each.
await nats.jsm.consumers.add("EVT", {
  durable_name: "raw",
  filter_subject: "evt.workload.*",
  ack_policy: AckPolicy.Explicit,
  max_ack_pending: 20_000,
});
const rawConsumer = await nats.js.consumers.get("EVT", "raw");
const total = (await nats.jsm.streams.info("EVT")).state.messages;
const rawConsume = await timed(async () => {
  const it = await rawConsumer.consume({ max_messages: 512 });
  let n = 0;
  for await (const m of it) {
    m.ack();
    if (++n >= total) break;
  }
});

// 5. The runner, one message at a time (the command path's mode) and in batches (projections').
async function throughRunner(mode: "handle" | "batch"): Promise<number> {
  let n = 0;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  const count = (k: number) => {
    n += k;
    if (n >= total) resolve();
  };
  const common = {
    js: nats.js,
    jsm: nats.jsm,
    stream: "EVT",
    durable: `runner-${mode}`,
    filterSubject: "evt.workload.*",
    batchSize: 256,
  };
  const t = await timed(async () => {
    const c =
      mode === "handle"
        ? await startConsumer({ ...common, handle: async () => count(1) })
        : await startConsumer({ ...common, handleBatch: async (msgs) => count(msgs.length) });
    await done;
    await c.stop();
  });
  return t.ms;
}
const runnerOne = await throughRunner("handle");
const runnerBatch = await throughRunner("batch");

const figures: Figure[] = [
  {
    name: "append: EventStore.append with expected sequence",
    value: rate(appended, storeAppend.ms),
    unit: "commits/s",
    raw: rate(appended, rawAppend.ms),
    goal: 0.8,
  },
  {
    name: "(beside it) raw pipelined publish, no headers",
    value: rate(appended, pipelinedAppend.ms),
    unit: "commits/s",
    raw: rate(appended, rawAppend.ms),
  },
  {
    name: "command path: load(cached) + decide + append",
    value: rate(appended, handled.ms),
    unit: "commands/s",
    raw: rate(appended, rawAppend.ms),
    goal: 0.65,
  },
  {
    name: "consume: runner, one message at a time",
    value: rate(total, runnerOne),
    unit: "msgs/s",
    raw: rate(total, rawConsume.ms),
    goal: 0.7,
  },
  {
    name: "consume: runner, batches",
    value: rate(total, runnerBatch),
    unit: "msgs/s",
    raw: rate(total, rawConsume.ms),
    goal: 0.7,
  },
];
printFigures(
  `bench/event-store  (N=${N}, in flight=${INFLIGHT}, nats-server on loopback, ${total} messages consumed)`,
  figures,
);

await nats.close();
await server.dispose();

const rawPublish = rate(appended, rawAppend.ms);
const rawPipelined = rate(appended, pipelinedAppend.ms);
const rawConsumeRate = rate(total, rawConsume.ms);
const appendRate = rate(appended, storeAppend.ms);
const commandRate = rate(appended, handled.ms);
const consumeOne = rate(total, runnerOne);
const consumeBatch = rate(total, runnerBatch);
printResult({
  bench: "event-store",
  params: { quick: QUICK, n: N, in_flight: INFLIGHT },
  figures: {
    append_commits_per_s: appendRate,
    command_path_per_s: commandRate,
    consume_one_per_s: consumeOne,
    consume_batch_per_s: consumeBatch,
    raw_publish_per_s: rawPublish,
    raw_pipelined_publish_per_s: rawPipelined,
    raw_consume_per_s: rawConsumeRate,
  },
  ratios: {
    append_over_raw: appendRate / rawPublish,
    command_path_over_raw: commandRate / rawPublish,
    append_over_raw_pipelined: appendRate / rawPipelined,
    consume_one_over_raw: consumeOne / rawConsumeRate,
    consume_batch_over_raw: consumeBatch / rawConsumeRate,
  },
  goals: {
    append_ge_80pct_raw: appendRate / rawPublish >= 0.8,
    command_path_ge_65pct_raw: commandRate / rawPublish >= 0.65,
    consume_one_ge_70pct_raw: consumeOne / rawConsumeRate >= 0.7,
    consume_batch_ge_70pct_raw: consumeBatch / rawConsumeRate >= 0.7,
  },
});
