/**
 * The sim outlives a restart, as a real cloud outlives its control plane. Every call that
 * may change the simulated cloud (EC2/SSM/SQS actions other than Describe/Get/List,
 * Kubernetes writes, admin POSTs and DELETEs) is appended to `<dataDir>/journal.ndjson`
 * before the module handles it, with the sim time and the PRNG's state at that moment.
 * At start the sim replays the journal against itself, each call at its sim time with
 * the PRNG put back where it was, so every id a call handed out (instance ids, command
 * ids, Kubernetes uids, receipt handles) comes out the same, then carries on: sim time
 * resumes where it was plus the wall time the sim was down (scaled), and the PRNG goes on
 * from its state, so no id repeats. A new journal takes a random seed (unless one is
 * configured), so a wiped data directory does not reissue the old ids either.
 *
 * What is derived between calls (a Deployment's pod names, a registered node's uid) is
 * recomputed by the replay and may differ from before the restart: nothing outside the
 * sim records those.
 *
 * Compaction. The journal does not grow for ever: after `compactAfter` calls the sim
 * writes a snapshot of its whole state (every module's, the faults added at run time,
 * sim time and the PRNG) as the header of a new journal, and calls go on after it; a
 * restart restores the snapshot, then replays what follows. The new journal is written
 * beside the old one (`journal.ndjson.tmp`), flushed to disk (fsync), then renamed over
 * it (atomic) and the directory flushed: a crash at any moment leaves either the old
 * journal whole or the new one whole; a leftover `.tmp` is a compaction that did not
 * finish, and is removed at start.
 */
import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import type { IncomingMessage } from "node:http";
import { join } from "node:path";
import { awsProtocolOf } from "./aws.ts";
import type { FaultsSnapshot } from "./faults.ts";

export interface JournalEntry {
  /** Sim time (epoch ms) of the call. */
  t: number;
  /** Wall time (epoch ms) of the call. */
  wall: number;
  /** The PRNG's state right before the module handled the call. */
  rng: number;
  /** The sim time the call is dated at (`SimCall.at`) when earlier than `t` (it waited behind others). */
  at?: number;
  method: string;
  path: string;
  headers: Record<string, string>;
  /** base64 */
  body: string;
}

/** The whole simulated cloud at one moment: what a compacted journal starts from. */
export interface SimSnapshot {
  /** Sim time (epoch ms) it was taken. */
  t: number;
  /** Wall time (epoch ms) it was taken. */
  wall: number;
  /** The PRNG's state. */
  rng: number;
  faults: FaultsSnapshot;
  /** Each module's `snapshot()`, encoded by snapshot.ts's `toJson`. */
  modules: Record<string, unknown>;
}

export interface JournalHeader {
  /** 1: calls from the start of the cloud; 2: calls after `snapshot`. */
  v: 1 | 2;
  seed: number;
  snapshot?: SimSnapshot;
}

/** Headers a replayed call needs (protocol, region from the signature, content type). */
const KEPT_HEADERS = ["authorization", "content-type", "x-amz-target", "accept", "content-encoding"];

/** Does this call change nothing (a read)? Reads are not journaled. */
export function isRead(req: IncomingMessage, url: URL, body: Buffer): boolean {
  if (req.method === "GET" || req.method === "HEAD") return true;
  if (url.pathname.startsWith("/k8s/") || url.pathname.startsWith("/_sim")) return false;
  const protocol = awsProtocolOf(req);
  let action = "";
  if (protocol === "ec2") action = new URLSearchParams(body.toString("utf8")).get("Action") ?? "";
  else if (protocol === "ssm" || protocol === "sqs")
    action = String(req.headers["x-amz-target"] ?? "").split(".")[1] ?? "";
  return /^(Describe|Get|List)/.test(action);
}

export class Journal {
  readonly dir: string;
  readonly file: string;
  header: JournalHeader;
  /** The calls to replay at start (after the header's snapshot, if any); emptied once replayed. */
  entries: JournalEntry[];
  /** Calls journaled since the last snapshot (or the start of the cloud): what compaction is weighed by. */
  sinceSnapshot: number;

  /** Opens (or starts) the journal in `dir`; `seed` is used only for a new one. */
  constructor(dir: string, seed: number) {
    mkdirSync(dir, { recursive: true });
    this.dir = dir;
    this.file = join(dir, "journal.ndjson");
    // A compaction that did not finish: the journal beside it is whole.
    rmSync(`${this.file}.tmp`, { force: true });
    if (existsSync(this.file)) {
      const lines = readFileSync(this.file, "utf8").split("\n").filter(Boolean);
      const entries: JournalEntry[] = [];
      let header: JournalHeader | undefined;
      for (const line of lines) {
        let o: unknown;
        try {
          o = JSON.parse(line);
        } catch {
          continue; // a line cut short by a kill mid-write: that call never happened
        }
        if (!header) header = o as JournalHeader;
        else entries.push(o as JournalEntry);
      }
      if (header?.v === 1 || (header?.v === 2 && header.snapshot)) {
        this.header = header;
        this.entries = entries;
        this.sinceSnapshot = entries.length;
        return;
      }
    }
    this.header = { v: 1, seed };
    this.entries = [];
    this.sinceSnapshot = 0;
    this.#replaceWith(`${JSON.stringify(this.header)}\n`);
  }

  /** Appends a call, synchronously: a call the sim acted on is in the journal even if it is killed right after. */
  append(req: IncomingMessage, url: URL, body: Buffer, t: number, rng: number, at?: number): void {
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = req.headers[h];
      if (typeof v === "string") headers[h] = v;
    }
    const e: JournalEntry = {
      t,
      wall: Date.now(),
      rng,
      ...(at !== undefined && at < t ? { at } : {}),
      method: req.method ?? "POST",
      path: `${url.pathname}${url.search}`,
      headers,
      body: body.toString("base64"),
    };
    appendFileSync(this.file, `${JSON.stringify(e)}\n`);
    this.sinceSnapshot++;
  }

  /**
   * Starts a new journal from `snapshot` in place of this one, crash-safely (see the top
   * of this file). Synchronous: no call can slip in between the snapshot and the switch.
   * Returns the new journal's size in bytes.
   */
  compact(snapshot: SimSnapshot): number {
    const header: JournalHeader = { v: 2, seed: this.header.seed, snapshot };
    const text = `${JSON.stringify(header)}\n`;
    this.#replaceWith(text);
    this.header = header;
    this.sinceSnapshot = 0;
    return Buffer.byteLength(text);
  }

  /** Write beside, fsync, rename over, fsync the directory. */
  #replaceWith(text: string): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    const dir = openSync(this.dir, "r");
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  }
}

/** The body a replay sends: a long poll does not wait (what it got arrived before it, in the journal). */
export function replayBody(e: JournalEntry): Buffer {
  const body = Buffer.from(e.body, "base64");
  if (e.headers["x-amz-target"] === "AmazonSQS.ReceiveMessage") {
    try {
      const o = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      o.WaitTimeSeconds = 0;
      return Buffer.from(JSON.stringify(o));
    } catch {
      return body;
    }
  }
  return body;
}
