import { z } from "zod";
import {
  type AggregateRef,
  commandEnvelope,
  commitBody,
  eventEnvelope,
  type RawCommand,
  type RawCommit,
  type RawEventEnvelope,
} from "../envelope.ts";
import { tokenSafeId } from "../ids.ts";
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

export class Catalogue {
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
  parseEvent(raw: unknown): RawEventEnvelope {
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
    return { ...e, version: def.version, data: parsed.data };
  }

  /** Reads a commit body; every event in it is parsed and upcast. @throws SchemaError */
  parseCommit(raw: unknown): RawCommit {
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
    return { ...c.data, events };
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
