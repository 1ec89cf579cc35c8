import { createHash, getRandomValues } from "node:crypto";
import { v7 as uuidv7 } from "uuid";
import { z } from "zod";

/** What {@link tokenSafeId} asks of an id's characters (and so that it is not empty). */
export const TOKEN_SAFE = /^[A-Za-z0-9][A-Za-z0-9_=-]*$/;

/**
 * A token-safe id: it becomes one token of a NATS subject (`evt.cluster.<id>`), so it
 * may not hold `.`, `*`, `>` or white space. Letters, digits, `_`, `-` and `=`; it
 * starts with a letter or digit; at most 128 characters.
 *
 * @example tokenSafeId.parse("demo-1") // "demo-1"
 */
export const tokenSafeId = z
  .string()
  .min(1, "must not be empty")
  .max(128, "must be at most 128 characters")
  .regex(
    TOKEN_SAFE,
    "must be token-safe: letters, digits, '_', '-' or '=', starting with a letter or digit (no '.', '*', '>' or spaces)",
  );

export function isTokenSafe(id: string): boolean {
  return tokenSafeId.safeParse(id).success;
}

/**
 * Random bytes for ids, drawn from the system's generator 4 KiB at a time: `uuid` asks
 * `crypto.getRandomValues` for 16 bytes per id, which was a tenth of the command path's
 * time (bench/event-store) — an id per command and one per event.
 */
const pool = new Uint8Array(16 * 256);
let drawn = pool.length;
function random16(): Uint8Array {
  if (drawn >= pool.length) {
    getRandomValues(pool);
    drawn = 0;
  }
  drawn += 16;
  return pool.subarray(drawn - 16, drawn);
}

/** uuid's own v7 state, kept here since ids are made from our random bytes: monotonic within a millisecond. */
const v7State = { msecs: Number.NEGATIVE_INFINITY, seq: 0 };

/** A new UUIDv7: time-ordered, so ids sort by creation. Never called inside a decider. */
export function newId(): string {
  const random = random16();
  const now = Date.now();
  // As uuid's v7 does without options (RFC 9562 method 1): a new millisecond starts the
  // counter from random bits; within one it counts up, and rolling over borrows the next millisecond.
  if (now > v7State.msecs) {
    v7State.seq = ((random[6]! & 0x7f) << 24) | (random[7]! << 16) | (random[8]! << 8) | random[9]!;
    v7State.msecs = now;
  } else {
    v7State.seq = (v7State.seq + 1) | 0;
    if (v7State.seq === 0) v7State.msecs++;
  }
  return uuidv7({ random, msecs: v7State.msecs, seq: v7State.seq });
}

/** Any RFC 9562 UUID (commands may come from outside with v4 ids). */
export const uuid = z.uuid();

/**
 * The `nodeop` aggregate id of one node: operations on one node are serialised
 * by being decisions of one aggregate. Kubernetes node names are DNS subdomains
 * (`[a-z0-9.-]`) and `.` cannot stand in a subject token, so the id joins cluster
 * and node with `=` and maps the node's dots to `_`. Node names never hold `_` or
 * `=`, so the mapping is reversible.
 *
 * @example nodeAggregateId("demo-1", "ip-10-0-1-5.ec2.internal") // "demo-1=ip-10-0-1-5_ec2_internal"
 */
export function nodeAggregateId(clusterId: string, node: string): string {
  return `${clusterId}=${node.replaceAll(".", "_")}`;
}

export function parseNodeAggregateId(id: string): { clusterId: string; node: string } {
  const at = id.indexOf("=");
  if (at < 0) throw new Error(`not a node aggregate id: ${id}`);
  return { clusterId: id.slice(0, at), node: id.slice(at + 1).replaceAll("_", ".") };
}

/**
 * A UUID (version 8: custom) derived from its parts: the same parts, the same id. A
 * reactor names the command it sends after the event that caused it, so a redelivered
 * event sends the same command and the handler sees a duplicate.
 *
 * @example derivedId(event.id, "record-running") === derivedId(event.id, "record-running")
 */
export function derivedId(...parts: string[]): string {
  const h = createHash("sha256").update(parts.join("\u0000")).digest("hex");
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
