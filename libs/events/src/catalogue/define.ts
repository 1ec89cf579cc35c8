/**
 * How the catalogue is declared: one definition per event type and per command
 * type, each with its zod schema. Event definitions carry their schema version and
 * the upcasters that lift older versions to it, so old events in the log are read
 * as today's shape.
 */
import type { z } from "zod";
import type { AggregateType } from "../subjects.ts";

export interface EventDefinition<T extends string = string, S extends z.ZodType = z.ZodType> {
  readonly kind: "event";
  readonly type: T;
  readonly aggregate: AggregateType;
  /** The current schema version: what `data` is after upcasting. */
  readonly version: number;
  readonly schema: S;
  readonly description: string;
  /** `upcasters[k]` lifts data of version k to version k + 1. */
  readonly upcasters: Readonly<Record<number, (data: unknown) => unknown>>;
}

export interface CommandDefinition<T extends string = string, S extends z.ZodType = z.ZodType> {
  readonly kind: "command";
  readonly type: T;
  /** The aggregate that decides it (and on whose subject a rejection lands). */
  readonly aggregate: AggregateType;
  readonly schema: S;
  readonly description: string;
  /** The id of the target aggregate, read from the command's data. */
  readonly aggregateId: (data: z.infer<S>) => string;
  /**
   * Decided by the owning service for itself (a reactor recording what the outside
   * world did). Never accepted from outside: the bus and the API refuse it.
   */
  readonly internal: boolean;
}

export function defineEvent<T extends string, S extends z.ZodType>(def: {
  type: T;
  aggregate: AggregateType;
  version?: number;
  schema: S;
  description: string;
  upcasters?: Record<number, (data: unknown) => unknown>;
}): EventDefinition<T, S> {
  const version = def.version ?? 1;
  for (let k = 1; k < version; k++) {
    if (!def.upcasters?.[k]) throw new Error(`${def.type} v${version} has no upcaster from v${k}`);
  }
  return { kind: "event", upcasters: {}, ...def, version };
}

export function defineCommand<T extends string, S extends z.ZodType>(def: {
  type: T;
  aggregate: AggregateType;
  schema: S;
  description: string;
  aggregateId: (data: z.infer<S>) => string;
  internal?: boolean;
}): CommandDefinition<T, S> {
  return { kind: "command", ...def, internal: def.internal ?? false };
}

/** `{ type, data }` for one event definition. */
export type EventOf<D> = D extends EventDefinition<infer T, infer S> ? { type: T; data: z.infer<S> } : never;
/** `{ type, data }` for one command definition. */
export type CommandOf<D> =
  D extends CommandDefinition<infer T, infer S> ? { type: T; data: z.infer<S> } : never;

/** Why a message could not be read as a known event or command: for rejections and dead letters. */
export class SchemaError extends Error {
  override readonly name = "SchemaError";
  readonly issues: readonly string[];
  constructor(message: string, issues: readonly string[] = [], options?: ErrorOptions) {
    super(issues.length > 0 ? `${message}: ${issues.join("; ")}` : message, options);
    this.issues = issues;
  }
}

export function isSchemaError(err: unknown): err is SchemaError {
  return err instanceof SchemaError;
}

/** zod issues as `path: message` lines, for reasons a human reads. */
export function describeIssues(error: z.ZodError): string[] {
  return error.issues.map((i) => `${i.path.length > 0 ? i.path.join(".") : "(root)"}: ${i.message}`);
}
