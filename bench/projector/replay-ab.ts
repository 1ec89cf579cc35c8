/**
 * bench/projector/replay-ab: replay alone, in this process, over one log — the trusted
 * read (`parseCommitTrusted`, the default) against the validating one (`parseCommit`),
 * alternated so that both see the same machine. No live projection, no comparison
 * with live (`checkOnly` with an empty live schema): the load phase is the figure.
 * Never asserted: it prints.
 *
 * Run: node bench/projector/replay-ab.ts --events 200000 --rounds 2
 */
import { parseArgs } from "node:util";
import { connectNats, ensureStreams } from "@cairn/events";
import { migrateToLatest, openDatabase, replay } from "@cairn/projector";
import { createDatabase, findPostgres, startNatsServer } from "@cairn/testkit";
import { benchLog } from "./log.ts";

const { values: args } = parseArgs({
  options: { events: { type: "string", default: "200000" }, rounds: { type: "string", default: "2" } },
});
const EVENTS = Number(args.events);
const server = await startNatsServer();
const nats = await connectNats(server.url, { name: "bench-replay-ab" });
await ensureStreams(nats.jsm);
const postgres = await findPostgres();
const database = await createDatabase(postgres, "bench_replay_ab");
const db = openDatabase(database.url, { max: 2 });
try {
  let inflight: Promise<unknown>[] = [];
  for (const c of benchLog(EVENTS)) {
    inflight.push(nats.js.publish(c.subject, c.body));
    if (inflight.length >= 2_000) {
      await Promise.all(inflight);
      inflight = [];
    }
  }
  await Promise.all(inflight);
  await migrateToLatest(db, "cairn");
  for (let round = 0; round < Number(args.rounds); round++) {
    for (const trustLog of [false, true]) {
      const r = await replay({ databaseUrl: database.url, nats, trustLog, checkOnly: true });
      const load = Math.round((r.events * 1000) / r.timings.load);
      process.stdout.write(
        `${trustLog ? "trusted   " : "validating"} load ${load} events/s, all in ${r.eventsPerSecond} events/s ${JSON.stringify(r.timings.loadSplit)}\n`,
      );
    }
  }
} finally {
  await db.destroy();
  await nats.close();
  await server.dispose();
  await database.dispose();
  await postgres.stop();
}
