import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { Buckets, dlqSubject, Streams } from "./subjects.ts";

const NS_PER_MS = 1_000_000;
const DAY_MS = 86_400_000;

export const DLQ_STREAM = "DLQ";

/**
 * The streams Cairn expects. EVT keeps every commit forever (limits retention, no
 * max age). CMD keeps commands for a week: they are inputs, the events are the
 * record. Both dedupe by `Nats-Msg-Id` over a window wide enough for client
 * retries; beyond it, idempotency comes from the causation check in the handler.
 */
export function expectedStreams(opts: { replicas?: number } = {}): Partial<StreamConfig>[] {
  const base = {
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    num_replicas: opts.replicas ?? 1,
    duplicate_window: 10 * 60_000 * NS_PER_MS,
  };
  return [
    { ...base, name: Streams.commands, subjects: ["cmd.>"], max_age: 7 * DAY_MS * NS_PER_MS },
    { ...base, name: Streams.events, subjects: ["evt.>"], max_age: 0 },
    // A bad message met by several consumers is one dead letter: its id is the original's
    // place, and the window covers the time a consumer may take to meet it (a replay).
    {
      ...base,
      name: DLQ_STREAM,
      subjects: [dlqSubject(">")],
      max_age: 30 * DAY_MS * NS_PER_MS,
      duplicate_window: 7 * DAY_MS * NS_PER_MS,
    },
    // The snapshot bucket (KV: last value per key), in the shape nats.js' Kvm creates, so
    // `Kvm.open` reads it. Made here with the streams so a service never needs the right to
    // create a stream: it only puts and gets its own aggregates' keys.
    {
      ...base,
      name: `KV_${Buckets.snapshots}`,
      subjects: [`$KV.${Buckets.snapshots}.>`],
      discard: DiscardPolicy.New,
      max_msgs_per_subject: 1,
      max_age: 0,
      duplicate_window: 2 * 60_000 * NS_PER_MS,
      allow_rollup_hdrs: true,
      deny_delete: true,
      deny_purge: false,
      allow_direct: true,
    },
  ];
}

export interface StreamDrift {
  stream: string;
  field: string;
  expected: unknown;
  actual: unknown;
}

export interface StreamSetupReport {
  created: string[];
  unchanged: string[];
  /** Settings that differ from what Cairn expects. Reported, never silently rewritten. */
  drift: StreamDrift[];
}

const COMPARED: (keyof StreamConfig)[] = [
  "subjects",
  "retention",
  "storage",
  "discard",
  "max_age",
  "duplicate_window",
  "num_replicas",
];

/**
 * Creates the streams that are missing and reports how existing ones differ from the
 * expected config. Idempotent: running it twice creates nothing the second time.
 */
export async function ensureStreams(
  jsm: JetStreamManager,
  expected = expectedStreams(),
): Promise<StreamSetupReport> {
  const report: StreamSetupReport = { created: [], unchanged: [], drift: [] };
  for (const want of expected) {
    const name = want.name!;
    let actual: StreamConfig;
    try {
      actual = (await jsm.streams.info(name)).config;
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      try {
        await jsm.streams.add({ ...want, name });
        report.created.push(name);
      } catch (addErr) {
        // Another process created it between our look and our add: fine.
        await jsm.streams.info(name).catch(() => {
          throw addErr;
        });
        report.unchanged.push(name);
      }
      continue;
    }
    const before = report.drift.length;
    for (const field of COMPARED) {
      if (!(field in want)) continue;
      const e = want[field];
      const a = actual[field];
      if (JSON.stringify(e) !== JSON.stringify(a))
        report.drift.push({ stream: name, field, expected: e, actual: a });
    }
    if (report.drift.length === before) report.unchanged.push(name);
  }
  return report;
}
