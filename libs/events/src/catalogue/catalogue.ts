import { z } from "zod";
import {
  type AggregateRef,
  commandEnvelope,
  commitBody,
  type EventEnvelope,
  eventEnvelope,
  type RawCommand,
  type RawEventEnvelope,
  TRACEPARENT,
} from "../envelope.ts";
import { TOKEN_SAFE, tokenSafeId } from "../ids.ts";
import { AGGREGATE_TYPES, parseEventSubject } from "../subjects.ts";
import { type CommandDefinition, describeIssues, type EventDefinition, SchemaError } from "./define.ts";

/** A command read off the bus: valid envelope, known type, valid data. */
export interface ParsedCommand {
  readonly command: RawCommand;
  readonly definition: CommandDefinition;
  readonly target: AggregateRef;
}

/**
 * A command that could not be accepted as it is. When its target aggregate is
 * still known (the id field is valid), the refusal becomes a `<aggregate>.rejected`
 * event there; when it is not, the message is a dead letter.
 */
export interface UnreadableCommand {
  readonly error: SchemaError;
  readonly commandId?: string;
  readonly commandType?: string;
  readonly target?: AggregateRef;
  /** The envelope's meta, when the envelope itself was readable. */
  readonly meta?: RawCommand["meta"];
}

export type CommandParse = { ok: true; value: ParsedCommand } | ({ ok: false } & UnreadableCommand);

/** A commit's outer shape; its events are read one by one with `parseEvent`. */
const commitShape = commitBody.extend({ events: z.array(z.unknown()).min(1) });

/** `{ type, data }` of one event or command type. */
type Msg = { type: string; data: unknown };

/**
 * A commit read from the log, its events typed by the catalogue's union: a reader
 * narrows an event by its `type` and gets its data's type, with no cast.
 */
export interface TypedCommit<E extends Msg = Msg> {
  readonly commitId: string;
  readonly aggregate: AggregateRef;
  readonly events: EventEnvelope<E>[];
}

/**
 * Every event and command type, with their schemas. `E` is the union of the events it
 * defines, so what it parses comes out typed (Cairn's own catalogue is a
 * `Catalogue<AnyEvent>`).
 */
export class Catalogue<E extends Msg = Msg> {
  readonly events: ReadonlyMap<string, EventDefinition>;
  readonly commands: ReadonlyMap<string, CommandDefinition>;

  constructor(events: readonly EventDefinition[], commands: readonly CommandDefinition[]) {
    this.events = indexByType(events);
    this.commands = indexByType(commands);
  }

  /**
   * Reads one event envelope as today's shape: unknown types and versions newer
   * than this code are refused with a reason; older versions are upcast.
   * @throws SchemaError
   */
  parseEvent(raw: unknown): EventEnvelope<E> {
    const env = eventEnvelope.safeParse(raw);
    if (!env.success) throw new SchemaError("not an event envelope", describeIssues(env.error));
    const e = env.data;
    const def = this.events.get(e.type);
    if (!def) throw new SchemaError(`unknown event type ${JSON.stringify(e.type)}`);
    if (e.version > def.version) {
      throw new SchemaError(
        `${e.type} v${e.version} is newer than this code knows (v${def.version}); upgrade the reader`,
      );
    }
    let data = e.data;
    for (let v = e.version; v < def.version; v++) {
      const up = def.upcasters[v];
      if (!up) throw new SchemaError(`${e.type} has no upcaster from v${v}`);
      data = up(data);
    }
    const parsed = def.schema.safeParse(data);
    if (!parsed.success)
      throw new SchemaError(`${e.type} v${e.version} data is invalid`, describeIssues(parsed.error));
    // The one place data becomes typed: it was just checked against its type's schema.
    return { ...e, version: def.version, data: parsed.data } as EventEnvelope<E>;
  }

  /**
   * Reads a commit body; every event in it is parsed and upcast. @throws SchemaError
   *
   * The envelopes (commit, events, meta) are checked first by plain code that accepts only
   * what their zod schemas accept (`checkedEnvelope`), and the events' data by their types'
   * zod schemas; anything that check is not sure of (a bad field, an unknown type, an older
   * or newer version, a key left undefined) goes the whole way through zod below, which
   * answers as it always did (the same result, the same reason).
   */
  parseCommit(raw: unknown, at?: CommitPlace): TypedCommit<E> {
    const fast = this.#parseCommitChecked(raw, at);
    return fast ?? this.#parseCommitZod(raw, at);
  }

  /**
   * `parseCommit` without zod for the envelopes: undefined when anything is not as the
   * schemas surely accept (then the zod path decides, and says why).
   */
  #parseCommitChecked(raw: unknown, at?: CommitPlace): TypedCommit<E> | undefined {
    if (!envelopeChecks || !isObject(raw)) return undefined;
    const { commitId, aggregate, events } = raw;
    if (typeof commitId !== "string" || commitId.length === 0) return undefined;
    const agg = checkedAggregate(aggregate);
    if (!agg || !Array.isArray(events) || events.length === 0) return undefined;
    if (at) {
      const on = parseEventSubject(at.subject);
      if (on?.type !== agg.type || on.id !== agg.id) return undefined;
    }
    const out: EventEnvelope<E>[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const e = checkedEnvelope(events[i], envelopeChecks);
      if (!e || e.aggregate.type !== agg.type || e.aggregate.id !== agg.id) return undefined;
      const def = this.events.get(e.type);
      if (!def || e.version !== def.version) return undefined;
      const parsed = def.schema.safeParse(e.data);
      if (!parsed.success) return undefined;
      e.data = parsed.data;
      out[i] = e as unknown as EventEnvelope<E>;
    }
    return { commitId, aggregate: agg, events: out };
  }

  /** `parseCommit` all through zod: the reference, and the reasons. */
  #parseCommitZod(raw: unknown, at?: CommitPlace): TypedCommit<E> {
    const c = commitShape.safeParse(raw);
    if (!c.success) throw new SchemaError("not a commit", describeIssues(c.error));
    // Each envelope is checked once, by parseEvent (checking it in the commit's schema too
    // halved the projector's replay rate).
    const events = c.data.events.map((e, i) => {
      try {
        return this.parseEvent(e);
      } catch (err) {
        if (!(err instanceof SchemaError)) throw err;
        throw new SchemaError(`not a commit: events.${i}: ${err.message}`, err.issues, { cause: err });
      }
    });
    for (const e of events) {
      if (e.aggregate.type !== c.data.aggregate.type || e.aggregate.id !== c.data.aggregate.id) {
        throw new SchemaError(`commit ${c.data.commitId} holds an event of another aggregate`);
      }
    }
    if (at) checkPlace(c.data.commitId, c.data.aggregate, at);
    return { ...c.data, events };
  }

  /**
   * Reads a commit that this system already accepted — for a replay of the log, not
   * for anything that arrives from outside. Checks the envelope's shape with plain
   * `typeof` checks (the fields the read path relies on), refuses an unknown event type
   * or a version newer than this code exactly as `parseCommit` does, and upcasts older
   * versions (upcast data IS checked against today's schema: an upcaster is code that
   * may be wrong). What it skips is the per-event zod schema of current-version data:
   * the owning service validated that data against this same catalogue before it
   * appended it (`checkEventData`), and the live projection parsed every commit with
   * `parseCommit` (dead-lettering what failed). Skipping it is most of the parse cost.
   *
   * Differences from `parseCommit`, on a commit that `parseCommit` accepts: none (a
   * unit test holds the two equal on every event of the catalogue's fixtures), except
   * that unknown keys are kept rather than stripped. On a commit `parseCommit` refuses
   * for its data alone, this one may accept: never use it on untrusted input.
   *
   * @example catalogue.parseCommitTrusted(JSON.parse(body)).events[0].type // "cluster.requested"
   * @throws SchemaError
   */
  parseCommitTrusted(raw: unknown, at?: CommitPlace): TypedCommit<E> {
    if (!isObject(raw)) throw new SchemaError("not a commit: not an object");
    const { commitId, aggregate, events } = raw;
    if (typeof commitId !== "string" || commitId.length === 0)
      throw new SchemaError("not a commit: commitId: must be a non-empty string");
    if (!isAggregateRef(aggregate)) throw new SchemaError("not a commit: aggregate: must be { type, id }");
    if (!Array.isArray(events) || events.length === 0)
      throw new SchemaError("not a commit: events: must be a non-empty array");
    const out: EventEnvelope<E>[] = new Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const e: unknown = events[i];
      const problem = envelopeProblem(e);
      if (problem) throw new SchemaError(`not a commit: events.${i}: not an event envelope: ${problem}`);
      const env = e as RawEventEnvelope;
      if (env.aggregate.type !== aggregate.type || env.aggregate.id !== aggregate.id)
        throw new SchemaError(`commit ${commitId} holds an event of another aggregate`);
      const def = this.events.get(env.type);
      if (!def)
        throw new SchemaError(`not a commit: events.${i}: unknown event type ${JSON.stringify(env.type)}`);
      // The common case: today's version, taken as written (no copy).
      if (env.version === def.version) out[i] = env as EventEnvelope<E>;
      else out[i] = this.parseEvent(env); // newer: refused with parseEvent's reason; older: upcast and checked
    }
    if (at) checkPlace(commitId, aggregate, at);
    return { commitId, aggregate, events: out };
  }

  /** Validates an outgoing event's data against its definition. @throws SchemaError */
  checkEventData(type: string, data: unknown): unknown {
    const def = this.events.get(type);
    if (!def) throw new SchemaError(`unknown event type ${JSON.stringify(type)}`);
    const parsed = def.schema.safeParse(data);
    if (!parsed.success) throw new SchemaError(`${type} data is invalid`, describeIssues(parsed.error));
    return parsed.data;
  }

  eventVersion(type: string): number {
    const def = this.events.get(type);
    if (!def) throw new SchemaError(`unknown event type ${JSON.stringify(type)}`);
    return def.version;
  }

  /** Reads a command envelope. Never throws: the failure says what it still knows. */
  parseCommand(raw: unknown): CommandParse {
    const env = commandEnvelope.safeParse(raw);
    if (!env.success) {
      const r = raw as { id?: unknown; type?: unknown } | null;
      return {
        ok: false,
        error: new SchemaError("not a command envelope", describeIssues(env.error)),
        ...(typeof r?.id === "string" ? { commandId: r.id } : {}),
        ...(typeof r?.type === "string" ? { commandType: r.type } : {}),
      };
    }
    const cmd = env.data;
    const def = this.commands.get(cmd.type);
    if (!def) {
      return {
        ok: false,
        error: new SchemaError(`unknown command type ${JSON.stringify(cmd.type)}`),
        commandId: cmd.id,
        commandType: cmd.type,
        meta: cmd.meta,
      };
    }
    const data = def.schema.safeParse(cmd.data);
    if (!data.success) {
      return {
        ok: false,
        error: new SchemaError(`${cmd.type} is invalid`, describeIssues(data.error)),
        commandId: cmd.id,
        commandType: cmd.type,
        meta: cmd.meta,
        ...targetOf(def, cmd.data),
      };
    }
    const target = { type: def.aggregate, id: def.aggregateId(data.data) };
    return { ok: true, value: { command: { ...cmd, data: data.data }, definition: def, target } };
  }

  /** A command's data schema, for HTTP validation and OpenAPI. */
  commandSchema(type: string): z.ZodType | undefined {
    return this.commands.get(type)?.schema;
  }
}

/** Where a commit was read: its message's subject. */
export interface CommitPlace {
  readonly subject: string;
}

/**
 * A commit belongs on its aggregate's subject: one found on another's (published there by
 * hand) would fold a stranger's history into this aggregate. @throws SchemaError
 */
function checkPlace(commitId: string, aggregate: AggregateRef, at: CommitPlace): void {
  const on = parseEventSubject(at.subject);
  if (on?.type !== aggregate.type || on.id !== aggregate.id)
    throw new SchemaError(
      `commit ${commitId} of ${aggregate.type} ${aggregate.id} is on ${at.subject}, not on its aggregate's subject`,
    );
}

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

const aggregateTypes: ReadonlySet<string> = new Set(AGGREGATE_TYPES);

function isAggregateRef(x: unknown): x is AggregateRef {
  return isObject(x) && typeof x.type === "string" && aggregateTypes.has(x.type) && typeof x.id === "string";
}

const isPositiveInt = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x > 0;

/**
 * The patterns zod checks the envelope's formatted strings with: the uuid's and the time's
 * read off their format schemas (so that the plain check cannot drift from zod's), the
 * traceparent's the schema's own constant; undefined if this zod keeps a format's pattern
 * elsewhere (then every commit takes the zod path).
 */
const envelopeChecks = ((): { id: RegExp; time: RegExp; traceparent: RegExp } | undefined => {
  const pattern = (s: unknown): RegExp | undefined => {
    const p = (s as { _zod?: { pattern?: unknown } })._zod?.pattern;
    return p instanceof RegExp && !p.global && !p.sticky ? p : undefined;
  };
  const id = pattern(eventEnvelope.shape.id);
  const time = pattern(eventEnvelope.shape.time);
  return id && time ? { id, time, traceparent: TRACEPARENT } : undefined;
})();

/** `tokenSafeId` (its length and its characters), as plain code. */
const isTokenSafeId = (x: unknown): x is string =>
  typeof x === "string" && x.length >= 1 && x.length <= 128 && TOKEN_SAFE.test(x);

const isPositiveSafeInt = (x: unknown): x is number => Number.isSafeInteger(x) && (x as number) > 0;

/** `aggregateRef`'s output (unknown keys left out), or undefined when not surely valid. */
function checkedAggregate(x: unknown): AggregateRef | undefined {
  if (!isObject(x)) return undefined;
  const { type, id } = x;
  if (typeof type !== "string" || !aggregateTypes.has(type) || !isTokenSafeId(id)) return undefined;
  return { type, id } as AggregateRef;
}

/**
 * `eventEnvelope`'s output (a new object of its keys only, in the schema's order), or
 * undefined when the envelope is not surely valid. An optional key present but undefined,
 * and `data` undefined, count as not sure (zod's output would differ in its keys).
 */
function checkedEnvelope(
  e: unknown,
  p: { id: RegExp; time: RegExp; traceparent: RegExp },
): RawEventEnvelope | undefined {
  if (!isObject(e)) return undefined;
  const { id, type, version, position, time, meta } = e;
  if (typeof id !== "string" || !p.id.test(id)) return undefined;
  if (typeof type !== "string" || type.length === 0) return undefined;
  if (!isPositiveSafeInt(version) || !isPositiveSafeInt(position)) return undefined;
  const aggregate = checkedAggregate(e.aggregate);
  if (!aggregate) return undefined;
  if (typeof time !== "string" || !p.time.test(time)) return undefined;
  if (!isObject(meta)) return undefined;
  const { commandId, causationId, correlationId, actor, traceparent: tp, links } = meta;
  if (typeof causationId !== "string" || typeof correlationId !== "string" || typeof actor !== "string")
    return undefined;
  if (commandId === undefined ? "commandId" in meta : typeof commandId !== "string") return undefined;
  if (tp === undefined ? "traceparent" in meta : typeof tp !== "string" || !p.traceparent.test(tp))
    return undefined;
  const cmd = typeof commandId === "string" ? commandId : undefined;
  const trace = typeof tp === "string" ? tp : undefined;
  let linksOut: string[] | undefined;
  if (links === undefined) {
    if ("links" in meta) return undefined;
  } else {
    if (!Array.isArray(links)) return undefined;
    linksOut = new Array(links.length);
    for (let i = 0; i < links.length; i++) {
      const l: unknown = links[i];
      if (typeof l !== "string" || !p.traceparent.test(l)) return undefined;
      linksOut[i] = l;
    }
  }
  // Absent or undefined: zod's output would place the key elsewhere or not at all.
  const data = e.data;
  if (data === undefined) return undefined;
  return {
    id,
    type,
    version,
    aggregate,
    position,
    time,
    data,
    meta: {
      ...(cmd !== undefined ? { commandId: cmd } : {}),
      causationId,
      correlationId,
      actor,
      ...(trace !== undefined ? { traceparent: trace } : {}),
      ...(linksOut !== undefined ? { links: linksOut } : {}),
    },
  };
}

/** What is wrong with an event envelope's shape, for `parseCommitTrusted`; undefined when nothing. */
function envelopeProblem(e: unknown): string | undefined {
  if (!isObject(e)) return "not an object";
  if (typeof e.id !== "string") return "id: must be a string";
  if (typeof e.type !== "string" || e.type.length === 0) return "type: must be a non-empty string";
  if (!isPositiveInt(e.version)) return "version: must be a positive integer";
  if (!isAggregateRef(e.aggregate)) return "aggregate: must be { type, id }";
  if (!isPositiveInt(e.position)) return "position: must be a positive integer";
  if (typeof e.time !== "string") return "time: must be a string";
  const m = e.meta;
  if (!isObject(m)) return "meta: must be an object";
  if (typeof m.causationId !== "string" || typeof m.correlationId !== "string" || typeof m.actor !== "string")
    return "meta: causationId, correlationId and actor must be strings";
  if (m.commandId !== undefined && typeof m.commandId !== "string") return "meta.commandId: must be a string";
  return undefined;
}

/** The target of an invalid command, when its id field alone is still readable. */
function targetOf(def: CommandDefinition, data: unknown): { target?: AggregateRef } {
  try {
    const id = tokenSafeId.safeParse(def.aggregateId(data as never));
    return id.success ? { target: { type: def.aggregate, id: id.data } } : {};
  } catch {
    return {};
  }
}

function indexByType<D extends { type: string }>(defs: readonly D[]): ReadonlyMap<string, D> {
  const map = new Map<string, D>();
  for (const d of defs) {
    if (map.has(d.type)) throw new Error(`${d.type} is defined twice`);
    map.set(d.type, d);
  }
  return map;
}
