import type { JetStreamClient, JetStreamManager, JsMsg } from "@nats-io/jetstream";
import { context, trace } from "@opentelemetry/api";
import type { Catalogue, ParsedCommand } from "./catalogue/catalogue.ts";
import { SchemaError } from "./catalogue/define.ts";
import {
  CommandHandler,
  type CommandHandlerOptions,
  type HandleOutcome,
  SNAPSHOT_COALESCE_MS,
} from "./command-handler.ts";
import type { Nats } from "./connection.ts";
import { type RunnerLogger, type RunningConsumer, startConsumer } from "./consumer-runner.ts";
import type { Decider } from "./decider.ts";
import type { AggregateRef, RawCommand } from "./envelope.ts";
import { describeError } from "./errors.ts";
import { EventStore, type UnreadableCommit } from "./event-store.ts";
import { SnapshotStore } from "./snapshots.ts";
import { Buckets, commandFilter, commandSubject, Headers, Streams } from "./subjects.ts";
import { asNewWork, commandWorkAttributes, contextFromTraceparent } from "./trace.ts";

/** What serving commands needs of a handler (any `CommandHandler` fits). */
export interface CommandTarget {
  handle(parsed: ParsedCommand): Promise<HandleOutcome>;
  rejectUnreadable(input: {
    target: AggregateRef;
    commandId: string;
    commandType: string;
    reason: string;
    meta?: RawCommand["meta"];
  }): Promise<HandleOutcome>;
}

export interface CommandServerOptions {
  js: JetStreamClient;
  jsm: JetStreamManager;
  catalogue: Catalogue;
  /** The first token of the command types served (`cluster` serves `cmd.cluster.>`; `node` serves `cmd.node.>`). */
  commandPrefix: string;
  /** The handler of the aggregate these commands target. */
  handler: CommandTarget;
  durable?: string;
  logger?: RunnerLogger;
  /** Called after each command is settled (tests, metrics). */
  onOutcome?: (
    commandId: string | undefined,
    outcome: HandleOutcome | { status: "dead-letter"; reason: string },
  ) => void;
  /** Real failures before a command becomes a dead letter (default: the runner's budget). */
  failureBudget?: number;
  /** Commands in hand at once (default {@link COMMAND_CONCURRENCY}); one aggregate's are still decided in order. */
  concurrency?: number;
}

/**
 * Commands in hand at once in one process. One at a time, a command's round trips (the
 * aggregate's last sequence, the append and its ack) were the whole server's: at 500
 * commands/s on a loaded 2-core machine they queued for seconds behind each other while the
 * process idled (bench/command-read). Commands on one aggregate are still decided one after
 * another, in the order they were delivered: the handler queues them per aggregate
 * (`CommandHandler`'s serial queue), and each reaches that queue synchronously, in delivery
 * order, before its first await (command-server.int.spec.ts checks the order).
 */
export const COMMAND_CONCURRENCY = 32;

/**
 * The command families a service serves on the bus (`cmd.<family>.<verb>`): the
 * provisioner `cluster`, the installer `install`, the idle-detector `session`, node-ops
 * `node` and `workload`. `kube` commands are node-ops' own (internal), never served.
 */
export const SERVED_COMMAND_FAMILIES = ["cluster", "install", "session", "node", "workload"] as const;

/** Whether a service answers what is published on `subject`: `cmd.<served family>.<verb>`. */
export function isServedCommandSubject(subject: string): boolean {
  const [cmd, family, verb, ...rest] = subject.split(".");
  return (
    cmd === "cmd" &&
    rest.length === 0 &&
    !!verb &&
    (SERVED_COMMAND_FAMILIES as readonly (string | undefined)[]).includes(family)
  );
}

/**
 * Why a command of `type` may not be taken from `subject`, or undefined when that is its
 * subject. A command is decided by the service that serves its own subject: one published
 * on another family's subject would be folded and decided by a stranger's decider (and its
 * rejection appended to an aggregate that service does not own).
 */
export function misplacedCommand(subject: string, type: string): string | undefined {
  let own: string;
  try {
    own = commandSubject(type);
  } catch {
    return undefined; // not <aggregate>.<verb>: the catalogue refuses the type itself
  }
  return own === subject ? undefined : `a ${type} command is sent on ${own}, not on ${subject}`;
}

/**
 * Serves one family of commands: each message is parsed against the catalogue and
 * decided by the owning aggregate's handler. A command that is invalid but names
 * its target becomes a `<aggregate>.rejected` event; one that names nothing usable
 * (bad JSON, unknown type, no id), or that was published on another command's subject,
 * is a dead letter with the reason.
 */
export async function serveCommands(o: CommandServerOptions): Promise<RunningConsumer> {
  return await startConsumer({
    js: o.js,
    jsm: o.jsm,
    stream: Streams.commands,
    durable: o.durable ?? `cmd-${o.commandPrefix}`,
    filterSubject: commandFilter(o.commandPrefix),
    batchSize: 64,
    ...(o.failureBudget !== undefined ? { failureBudget: o.failureBudget } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    concurrency: o.concurrency ?? COMMAND_CONCURRENCY,
    // No order kept by the runner (its default key, the subject, would put every
    // `cmd.cluster.scale` in one line): the handler keeps each aggregate's (see above).
    keyOf: (msg: JsMsg) => String(msg.seq),
    handle: async (msg: JsMsg) => {
      let raw: unknown;
      try {
        raw = msg.json();
      } catch (err) {
        o.onOutcome?.(undefined, { status: "dead-letter", reason: "not JSON" });
        throw new SchemaError("the command is not JSON", [], { cause: err });
      }
      const parsed = o.catalogue.parseCommand(raw);
      const type = parsed.ok ? parsed.value.command.type : parsed.commandType;
      const misplaced = type === undefined ? undefined : misplacedCommand(msg.subject, type);
      if (misplaced) {
        o.onOutcome?.(parsed.ok ? parsed.value.command.id : parsed.commandId, {
          status: "dead-letter",
          reason: misplaced,
        });
        throw new SchemaError(misplaced);
      }
      // A publisher that put the trace only in the envelope is followed too.
      const headerTrace = msg.headers?.get(Headers.traceparent);
      const envelopeTrace = parsed.ok ? parsed.value.command.meta.traceparent : parsed.meta?.traceparent;
      const traced = headerTrace ? context.active() : contextFromTraceparent(envelopeTrace);
      // The command's span says which aggregate and command it is, and so does every span under it.
      const known = parsed.ok
        ? {
            target: parsed.value.target,
            commandId: parsed.value.command.id,
            commandType: parsed.value.command.type,
            correlationId: parsed.value.command.meta.correlationId,
          }
        : parsed.target && parsed.commandId && parsed.commandType
          ? {
              target: parsed.target,
              commandId: parsed.commandId,
              commandType: parsed.commandType,
              correlationId: parsed.meta?.correlationId,
            }
          : undefined;
      const work = known ? commandWorkAttributes(known) : {};
      const ctx = asNewWork(work, traced);
      trace.getActiveSpan()?.setAttributes(work);
      if (!parsed.ok) {
        if (parsed.target && parsed.commandId && parsed.commandType) {
          const { target, commandId, commandType } = parsed;
          const outcome = await context.with(ctx, () =>
            o.handler.rejectUnreadable({
              target,
              commandId,
              commandType,
              reason: parsed.error.message,
              ...(parsed.meta ? { meta: parsed.meta } : {}),
            }),
          );
          o.onOutcome?.(parsed.commandId, outcome);
          return;
        }
        o.onOutcome?.(parsed.commandId, { status: "dead-letter", reason: parsed.error.message });
        throw parsed.error;
      }
      if (parsed.value.definition.internal) {
        // Internal commands are decided in-process by their owner; from outside they are refused.
        const outcome = await context.with(ctx, () =>
          o.handler.rejectUnreadable({
            target: parsed.value.target,
            commandId: parsed.value.command.id,
            commandType: parsed.value.command.type,
            reason: `${parsed.value.command.type} is internal to its owning service and cannot be sent`,
            meta: parsed.value.command.meta,
          }),
        );
        o.onOutcome?.(parsed.value.command.id, outcome);
        return;
      }
      const outcome = await context.with(ctx, () => o.handler.handle(parsed.value));
      o.onOutcome?.(parsed.value.command.id, outcome);
    },
  });
}

/**
 * The command subjects nobody serves (`cmd.kube.…`, `cmd.<unknown>.…`, `cmd.cluster` with a
 * token missing or one too many): each message there is a dead letter saying so, instead of
 * lying in CMD unanswered. One durable consumer on `cmd.>` (nats-server 2.9 has no
 * multi-filter consumers, so it sees every command and acknowledges the served ones unread).
 * The projector runs it (it owns no command family of its own); replicas compete on it.
 */
export async function serveStrayCommands(o: {
  js: JetStreamClient;
  jsm: JetStreamManager;
  durable?: string;
  logger?: RunnerLogger;
}): Promise<RunningConsumer> {
  return await startConsumer({
    js: o.js,
    jsm: o.jsm,
    stream: Streams.commands,
    durable: o.durable ?? STRAY_COMMANDS_DURABLE,
    filterSubject: commandFilter(),
    batchSize: 64,
    // Nothing here waits on anything: the served ones are acknowledged unread, without a
    // span (one per command would sit in every command's trace, doing nothing).
    concurrency: 16,
    ...(o.logger ? { logger: o.logger } : {}),
    skip: (msg: JsMsg) => isServedCommandSubject(msg.subject),
    handle: async (msg: JsMsg) => {
      throw new SchemaError(
        `no service serves ${msg.subject}: a command is sent on cmd.<family>.<verb>, the family one of ${SERVED_COMMAND_FAMILIES.join(", ")}`,
      );
    },
  });
}

/** The durable consumer of {@link serveStrayCommands} (deploy/nats: the projector's). */
export const STRAY_COMMANDS_DURABLE = "projector-stray-commands";

/**
 * The owning service's side of one aggregate type: its event store, its command handler
 * (to share with the service's reactor, so one process sees its own writes at once) and
 * the server of its commands.
 *
 * @example const { handler, stop } = await serveAggregate({ nats, catalogue, decider: clusterDecider,
 *   commandPrefix: "cluster", durable: "provisioner-commands" });
 */
export async function serveAggregate<
  C extends { type: string; data: unknown },
  E extends { type: string; data: unknown },
  S,
  O = undefined,
>(o: {
  nats: Nats;
  catalogue: Catalogue;
  decider: Decider<C, E, S, O>;
  commandPrefix: string;
  durable: string;
  logger?: RunnerLogger;
  /** What a decision must see beyond its aggregate, read fresh before deciding (the handler's `observe`). */
  observe?: CommandHandlerOptions<C, E, S, O>["observe"];
  /** A snapshot is written behind every this many commits (decider opted in); default SNAPSHOT_EVERY. */
  snapshotEvery?: number;
  /** The snapshots due within this long are one write, of the latest state; default SNAPSHOT_COALESCE_MS. */
  snapshotCoalesceMs?: number;
}): Promise<{ store: EventStore; handler: CommandHandler<C, E, S, O>; stop(): Promise<void> }> {
  const log = o.logger;
  // A decider that opted in reads and writes snapshots in the bucket ensureStreams made;
  // without the bucket (an older deployment) it folds from the log as before.
  let snapshots: SnapshotStore | undefined;
  if (o.decider.snapshot) {
    snapshots = await SnapshotStore.open(o.nats.js).catch((err: unknown) => {
      log?.warn(
        { err: describeError(err), bucket: Buckets.snapshots },
        "snapshot bucket not readable: aggregates are folded from the log",
      );
      return undefined;
    });
  }
  const store = new EventStore({
    js: o.nats.js,
    jsm: o.nats.jsm,
    catalogue: o.catalogue,
    ...(log
      ? {
          onUnreadable: (r: UnreadableCommit) =>
            log.warn(
              { subject: r.subject, sequence: r.sequence, reason: r.reason },
              "a message on an aggregate's subject is not a readable commit: skipped",
            ),
        }
      : {}),
  });
  const handler = new CommandHandler({
    decider: o.decider,
    store,
    catalogue: o.catalogue,
    ...(o.observe ? { observe: o.observe } : {}),
    ...(snapshots ? { snapshots } : {}),
    ...(o.snapshotEvery !== undefined ? { snapshotEvery: o.snapshotEvery } : {}),
    snapshotCoalesceMs: o.snapshotCoalesceMs ?? SNAPSHOT_COALESCE_MS,
    ...(log
      ? {
          onSnapshotError: (err: unknown, target: AggregateRef) =>
            log.warn(
              { err: describeError(err), aggregateType: target.type, aggregateId: target.id },
              "snapshot not read or written (the log is folded instead)",
            ),
        }
      : {}),
  });
  const commands = await serveCommands({
    js: o.nats.js,
    jsm: o.nats.jsm,
    catalogue: o.catalogue,
    commandPrefix: o.commandPrefix,
    durable: o.durable,
    handler,
    ...(o.logger ? { logger: o.logger } : {}),
  });
  return {
    store,
    handler,
    stop: async () => {
      await commands.stop();
      handler.cancelSnapshots();
    },
  };
}
