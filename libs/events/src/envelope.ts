/**
 * The envelopes: what every event, commit and command looks like on the wire
 * (DESIGN §2 and the public contract of §7).
 */
import { z } from "zod";
import { tokenSafeId, uuid } from "./ids.ts";
import { AGGREGATE_TYPES } from "./subjects.ts";

export const aggregateRef = z.object({ type: z.enum(AGGREGATE_TYPES), id: tokenSafeId });
export type AggregateRef = z.infer<typeof aggregateRef>;

/** What {@link traceparent} asks of its string. */
export const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** W3C trace context `traceparent`: version-traceid-spanid-flags. */
export const traceparent = z
  .string()
  .regex(TRACEPARENT, "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)");

export const eventMeta = z.object({
  /** The command this event answers, when a command caused it. */
  commandId: z.string().optional(),
  /** The id of the command or event that caused this one. */
  causationId: z.string(),
  /** The first command of the chain (a lifecycle). */
  correlationId: z.string(),
  actor: z.string(),
  /** The trace this event belongs to. */
  traceparent: traceparent.optional(),
  /** Span links: the lifecycle trace a later command or timer points back to. */
  links: z.array(traceparent).optional(),
});
export type EventMeta = z.infer<typeof eventMeta>;

/** The shape every event has, whatever its type; `data` is checked per type by the catalogue. */
export const eventEnvelope = z.object({
  id: uuid,
  type: z.string().min(1),
  /** Schema version of `data`; old versions are upcast on read. */
  version: z.number().int().positive(),
  aggregate: aggregateRef,
  /** The event's position in its aggregate, 1-based: the aggregate's version after it. */
  position: z.number().int().positive(),
  time: z.iso.datetime({ offset: true }),
  data: z.unknown(),
  meta: eventMeta,
});
export type RawEventEnvelope = z.infer<typeof eventEnvelope>;

/** One JetStream message: the events one decision produced for one aggregate. */
export const commitBody = z.object({
  commitId: z.string().min(1),
  aggregate: aggregateRef,
  events: z.array(eventEnvelope).min(1),
});
export type RawCommit = z.infer<typeof commitBody>;

export const commandMeta = z.object({
  actor: z.string().min(1).max(256).default("anonymous"),
  correlationId: z.string().max(256).optional(),
  causationId: z.string().max(256).optional(),
  traceparent: traceparent.optional(),
  /**
   * Lifecycle traces this command belongs to besides its own trace: a command another
   * lifecycle caused (a node operation a scale-down started, a session a cluster delete
   * ends) names that lifecycle here; the handler's span links to each and its events carry
   * them in `meta.links`, so the lifecycle's trace finds them (docs/observability.md).
   */
  links: z.array(traceparent).max(8).optional(),
});

/** The public command envelope (DESIGN §7). */
export const commandEnvelope = z.object({
  id: uuid,
  type: z.string().min(1),
  data: z.unknown(),
  meta: commandMeta.default({ actor: "anonymous" }),
});
export type RawCommand = z.infer<typeof commandEnvelope>;

/** A typed event as a decider and a projection see it. */
export type EventEnvelope<E extends { type: string; data: unknown }> = Omit<
  RawEventEnvelope,
  "type" | "data"
> &
  E;

/** A typed command as a decider sees it. */
export type CommandEnvelope<C extends { type: string; data: unknown }> = Omit<RawCommand, "type" | "data"> &
  C;
