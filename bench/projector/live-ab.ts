/**
 * bench/projector/live-ab: the live apply alone, in this process, batch by batch — two
 * builds of the projector (`--a`, `--b`: their `src` folders; by default both this one)
 * over the same bench log, each into its own database, their batches alternated so both
 * see the same machine. No NATS: the bench log's commits are handed to
 * `projectInTransaction` as delivered messages, so the figure is the projector's own
 * work (parse, reads, fold, write) and Postgres's. Never asserted: it prints.
 *
 * Run: node bench/projector/live-ab.ts --events 100000 [--a <src> --b <src>] [--batch 2000]
 *      (BENCH_QUICK=1: 10,000 events)
 */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createDatabase, findPostgres } from "@cairn/testkit";
import { sql } from "kysely";
import { printResult, QUICK } from "../lib/report.ts";
import { benchLog, deliveredMessage as message } from "./log.ts";

const here = new URL("../../services/projector/src/", import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    events: { type: "string", default: process.env.BENCH_EVENTS ?? (QUICK ? "10000" : "100000") },
    batch: { type: "string", default: "2000" },
    a: { type: "string", default: here },
    b: { type: "string", default: here },
  },
});
const EVENTS = Number(args.events);
const BATCH = Number(args.batch);

interface Variant {
  name: string;
  ms: number;
  events: number;
  /** CPU of this process while it applied (µs), and of its database's Postgres backends (clock ticks). */
  nodeCpuUs: number;
  pgTicks: number;
  backendTicks(): Promise<number>;
  apply(msgs: unknown[]): Promise<{ events: number }>;
  close(): Promise<void>;
}

const postgres = await findPostgres();
async function variant(name: string, src: string): Promise<Variant> {
  const url = (p: string) => pathToFileURL(resolve(src, p)).href;
  const { openDatabase } = await import(url("db/database.ts"));
  const { migrateToLatest } = await import(url("db/migrate.ts"));
  const { projectInTransaction } = await import(url("projection.ts"));
  const database = await createDatabase(postgres, `bench_live_ab_${name}`);
  const db = openDatabase(database.url, { max: 2 });
  await migrateToLatest(db, "cairn");
  const target = { db, schema: "cairn", name: "projector" };
  const noReader = { firstSequence: async () => 1, get: async () => undefined };
  return {
    name,
    ms: 0,
    events: 0,
    nodeCpuUs: 0,
    pgTicks: 0,
    // Postgres runs on this machine (the testkit's): its backends' utime + stime from /proc.
    backendTicks: async () => {
      const r = await sql<{
        pid: number;
      }>`select pid from pg_stat_activity where datname = current_database()`.execute(db);
      let ticks = 0;
      for (const { pid } of r.rows) {
        try {
          const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
          ticks += Number(f[11]) + Number(f[12]);
        } catch {
          // not ours to read, or gone
        }
      }
      return ticks;
    },
    apply: (msgs) => projectInTransaction(target, msgs, async () => {}, noReader),
    close: async () => {
      await db.destroy();
      await database.dispose();
    },
  };
}

const variants = [await variant("a", args.a), await variant("b", args.b)];
const batches: ReturnType<typeof message>[][] = [];
let seq = 0;
let current: ReturnType<typeof message>[] = [];
for (const c of benchLog(EVENTS)) {
  current.push(message(++seq, c.subject, c.body));
  if (current.length >= BATCH) {
    batches.push(current);
    current = [];
  }
}
if (current.length > 0) batches.push(current);

// Each variant gets messages of its own (the same ones as its batch and, before, as the
// batch behind the previous one): a build may remember what it parsed per message.
const own = new Map(
  variants.map((v) => [v, batches.map((b) => b.map((m) => message(m.seq, m.subject, m.string())))] as const),
);
try {
  for (let i = 0; i < batches.length; i++) {
    // Alternate which goes first, so neither always follows the other's write-back.
    const order = i % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const pg0 = await v.backendTicks();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      // As the consumer runner hands them: the next batch is buffered behind this one.
      const mine = own.get(v)!;
      const out = await v.apply(mine[i]!);
      v.ms += performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      v.nodeCpuUs += cpu.user + cpu.system;
      v.pgTicks += (await v.backendTicks()) - pg0;
      v.events += out.events;
    }
  }
} finally {
  for (const v of variants) await v.close();
  await postgres.stop();
}

const rates = Object.fromEntries(
  variants.flatMap((v) => [
    [`${v.name}_per_s`, Math.round((v.events * 1000) / v.ms)],
    // CPU per event, which the machine's load disturbs much less than rates (ticks of 10 ms).
    [`${v.name}_node_cpu_us_per_event`, Math.round((v.nodeCpuUs / v.events) * 10) / 10],
    [`${v.name}_postgres_cpu_us_per_event`, Math.round(((v.pgTicks * 10_000) / v.events) * 10) / 10],
  ]),
);
for (const v of variants)
  process.stdout.write(
    `${v.name}: ${v.events} events in ${Math.round(v.ms)} ms, ${rates[`${v.name}_per_s`]} events/s; CPU per event: node ${rates[`${v.name}_node_cpu_us_per_event`]} µs, postgres ${rates[`${v.name}_postgres_cpu_us_per_event`]} µs\n`,
  );
printResult({
  bench: "live-ab",
  params: { quick: QUICK, events: EVENTS, batch: BATCH, a: args.a, b: args.b },
  figures: rates,
  ratios: {
    b_over_a: (rates.b_per_s ?? 0) / (rates.a_per_s ?? 1),
    b_over_a_cpu_per_event:
      ((rates.b_node_cpu_us_per_event ?? 0) + (rates.b_postgres_cpu_us_per_event ?? 0)) /
      ((rates.a_node_cpu_us_per_event ?? 0) + (rates.a_postgres_cpu_us_per_event ?? 0) || 1),
  },
  goals: {},
});
