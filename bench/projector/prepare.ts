/**
 * bench/projector/prepare: the replay's CPU work per event, stage by stage, without
 * NATS or Postgres — to see where the Node thread's time goes (the replay is bound by
 * it). Each stage runs over the same bench log's message bodies as bytes.
 *
 * A diagnostic: no goals; its last line carries each stage's µs per event.
 *
 * Run: node bench/projector/prepare.ts --events 200000   (BENCH_QUICK=1: 20,000 events)
 */
import { parseArgs } from "node:util";
import { type CairnEvent, catalogue } from "@cairn/events";
import { eventIndexCopyText, toEventIndexRow } from "@cairn/projector";
import { foldInto } from "../../services/projector/src/apply-events.ts";
import { printResult, QUICK } from "../lib/report.ts";
import { benchLog } from "./log.ts";

const { values: args } = parseArgs({
  options: { events: { type: "string", default: QUICK ? "20000" : "200000" } },
});
const EVENTS = Number(args.events);
const te = new TextEncoder();
const td = new TextDecoder();
const bodies = [...benchLog(EVENTS)].map((c) => te.encode(c.body));

const figures: Record<string, number> = {};
const stage = (name: string, f: () => unknown) => {
  f(); // warm-up
  const t0 = performance.now();
  f();
  const us = ((performance.now() - t0) * 1000) / EVENTS;
  process.stdout.write(`${name.padEnd(48)} ${us.toFixed(2)} µs/event\n`);
  const key = name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_|_$/g, "");
  figures[`${key}_us_per_event`] = us;
};

stage("decode + JSON.parse", () => bodies.map((b) => JSON.parse(td.decode(b))));
const parsed = bodies.map((b) => JSON.parse(td.decode(b)));
stage("parseCommit (zod, validating)", () => parsed.map((p) => catalogue.parseCommit(p)));
stage("parseCommitTrusted", () => parsed.map((p) => catalogue.parseCommitTrusted(p)));
const events: { event: CairnEvent; sequence: number }[] = [];
parsed.forEach((p, i) => {
  for (const event of catalogue.parseCommitTrusted(p).events) events.push({ event, sequence: i + 1 });
});
stage("event index rows", () => events.map((e) => toEventIndexRow(e.event, e.sequence)));
const rows = events.map((e) => toEventIndexRow(e.event, e.sequence));
stage("COPY text", () => eventIndexCopyText(rows));
stage("  of which JSON.stringify(data)", () => rows.map((r) => JSON.stringify(r.data)));
stage("fold (clusters, commands)", () => foldInto(events, new Map(), new Map()));
printResult({
  bench: "projector-prepare",
  params: { quick: QUICK, events: EVENTS },
  figures,
  ratios: {},
  goals: {},
});
