/**
 * bench/projector/replay-growth: is the replay's rate flat as the log grows (issue 16:
 * "replay at 100,000 and 1,000,000 events: events/s flat ± 10 %")? One process, one run,
 * two logs one after the other — each in its own nats-server and database, written the same
 * way (bench/projector/log.ts) — and for each:
 *  - replay all in (`checkOnly`: load, deferred indexes, comparison; no swap) and its load phase;
 *  - the raw limit of the same run: a COPY of the same rows into an event_index-shaped table.
 * The growth figure is the large log's rate over the small one's, and the same after each is
 * divided by its own raw COPY (the machine's drift between the two phases taken out).
 *
 * Run: node bench/projector/replay-growth.ts   (BENCH_SMALL=100000 BENCH_LARGE=1000000;
 * BENCH_QUICK=1: 20,000 and 60,000; a log smaller than one replay batch,
 * 5,000 messages, is all caught up in the swap, which `checkOnly` skips)
 */
import { connectNats, ensureStreams } from "@cairn/events";
import { migrateToLatest, openDatabase, replay } from "@cairn/projector";
import { createDatabase, findPostgres, startNatsServer } from "@cairn/testkit";
import { printResult, QUICK } from "../lib/report.ts";
import { publishBenchLog, rawCopy } from "./log.ts";

const SMALL = Number(process.env.BENCH_SMALL ?? (QUICK ? 20_000 : 100_000));
const LARGE = Number(process.env.BENCH_LARGE ?? (QUICK ? 60_000 : 1_000_000));

interface Phase {
  readonly events: number;
  readonly replayPerS: number;
  readonly loadPerS: number;
  readonly rawCopyPerS: number;
}

const postgres = await findPostgres();

async function phase(events: number): Promise<Phase> {
  const server = await startNatsServer();
  const nats = await connectNats(server.url, { name: "bench-replay-growth" });
  const database = await createDatabase(postgres, `bench_replay_growth_${events}`);
  const db = openDatabase(database.url, { max: 2 });
  try {
    await ensureStreams(nats.jsm);
    await publishBenchLog(nats.js, events);
    await migrateToLatest(db, "cairn");
    // The raw limit: the same rows COPYed into a table like event_index.
    await migrateToLatest(db, "raw");
    const copy = await rawCopy(database.url, events);

    const r = await replay({ databaseUrl: database.url, nats, checkOnly: true });
    const result = {
      events: r.events,
      replayPerS: r.eventsPerSecond,
      loadPerS: Math.round((r.events * 1000) / r.timings.load),
      rawCopyPerS: Math.round((copy.rows * 1000) / copy.ms),
    };
    process.stdout.write(
      `${String(r.events).padStart(9)} events: replay all in ${result.replayPerS} events/s (load ${result.loadPerS}/s), raw COPY ${result.rawCopyPerS}/s, ratio ${(result.replayPerS / result.rawCopyPerS).toFixed(3)}  ${JSON.stringify(r.timings)}\n`,
    );
    return result;
  } finally {
    await db.destroy();
    await nats.close();
    await server.dispose();
    await database.dispose();
  }
}

let small: Phase;
let large: Phase;
try {
  process.stdout.write(`bench/projector/replay-growth  (${SMALL} then ${LARGE} events)\n`);
  small = await phase(SMALL);
  large = await phase(LARGE);
} finally {
  await postgres.stop();
}

const growth = large.replayPerS / small.replayPerS;
const growthOfRatio = large.replayPerS / large.rawCopyPerS / (small.replayPerS / small.rawCopyPerS);
process.stdout.write(
  `large over small: ${growth.toFixed(3)} (each over its raw COPY: ${growthOfRatio.toFixed(3)}); goal flat ± 10 %\n`,
);
printResult({
  bench: "replay-growth",
  params: { quick: QUICK, small: SMALL, large: LARGE },
  figures: {
    small_replay_per_s: small.replayPerS,
    large_replay_per_s: large.replayPerS,
    small_load_per_s: small.loadPerS,
    large_load_per_s: large.loadPerS,
    small_raw_copy_per_s: small.rawCopyPerS,
    large_raw_copy_per_s: large.rawCopyPerS,
  },
  ratios: {
    small_over_raw: small.replayPerS / small.rawCopyPerS,
    large_over_raw: large.replayPerS / large.rawCopyPerS,
    large_over_small: growth,
    large_over_small_of_ratio: growthOfRatio,
  },
  goals: { flat_within_10pct: Math.abs(growthOfRatio - 1) <= 0.1 },
});
