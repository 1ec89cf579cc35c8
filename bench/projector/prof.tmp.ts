import { connectNats, ensureStreams } from "@cairn/events";
import { replay, migrateToLatest, openDatabase } from "@cairn/projector";
import { createDatabase, findPostgres, startNatsServer } from "@cairn/testkit";
import { benchLog } from "./log.ts";
const N = Number(process.argv[2] ?? 50000);
const server = await startNatsServer();
const nats = await connectNats(server.url);
await ensureStreams(nats.jsm);
const pgs = await findPostgres();
const database = await createDatabase(pgs, "prof");
const db = openDatabase(database.url);
await migrateToLatest(db, "cairn");
let inflight: Promise<unknown>[] = [];
let t = performance.now();
for (const c of benchLog(N)) { inflight.push(nats.js.publish(c.subject, c.body)); if (inflight.length >= 2000) { await Promise.all(inflight); inflight = []; } }
await Promise.all(inflight);
console.log("publish ms", performance.now() - t);
t = performance.now();
let last = t;
const r = await replay({ databaseUrl: database.url, nats, batchSize: Number(process.argv[3] ?? 5000), checkOnly: true,
  onProgress: (p) => { const now = performance.now(); if (p.events % 20000 < 5000) console.log("batch", p.checkpoint, Math.round(now - last)); last = now; } });
console.log("replay", r.eventsPerSecond, r.ms, performance.now() - t);
await db.destroy(); await nats.close(); await server.dispose(); await database.dispose(); await pgs.stop();
