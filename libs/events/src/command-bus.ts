import { JetStreamApiError, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { PublishNotAcked } from "./acked-publisher.ts";
import type { Catalogue } from "./catalogue/catalogue.ts";
import { SchemaError } from "./catalogue/define.ts";
import type { RawCommand } from "./envelope.ts";
import { connectionOf, publishStored } from "./event-store.ts";
import { newId } from "./ids.ts";
import { commandSubject, Headers } from "./subjects.ts";
import {
  commandWorkAttributes,
  inMessagingSpan,
  linkTo,
  SpanAttributes,
  SpanKind,
  traceIdOf,
  traceparentOf,
} from "./trace.ts";

export interface CommandInput {
  /** The command id; a retry with the same id changes nothing. Default: a new UUIDv7. */
  id?: string;
  type: string;
  data: unknown;
  meta?: { actor?: string; correlationId?: string; causationId?: string; links?: string[] };
}

export interface SentCommand {
  readonly commandId: string;
  readonly subject: string;
  readonly traceId: string | undefined;
  readonly traceparent: string | undefined;
  readonly sequence: number;
  /** The same command id was sent before: JetStream kept the first. */
  readonly duplicate: boolean;
}

/**
 * Publishes commands on `cmd.<aggregate>.<verb>` with `Nats-Msg-Id` = the command
 * id. Validates against the catalogue first, so a caller hears of a bad command at
 * once (a `SchemaError`) rather than from a rejection later.
 */
export class CommandBus {
  readonly #js: JetStreamClient;
  readonly #catalogue: Catalogue;
  /** Where sends go: the connection's pipelined publisher, or `js.publish` when the client hides its connection. */
  readonly #nc: NatsConnection | undefined;
  readonly #timeoutMs: number;

  constructor(deps: { js: JetStreamClient; catalogue: Catalogue; nc?: NatsConnection }) {
    this.#js = deps.js;
    this.#catalogue = deps.catalogue;
    this.#nc = deps.nc ?? connectionOf(deps.js);
    this.#timeoutMs = deps.js.getOptions().timeout ?? 10_000;
  }

  /**
   * @example await bus.send({ type: "cluster.delete", data: { clusterId: "demo-1" }, meta: { actor: "alice" } })
   * @throws SchemaError when the command is not valid.
   */
  async send(input: CommandInput, opts: { linkTraceparent?: string } = {}): Promise<SentCommand> {
    const raw: RawCommand = {
      id: input.id ?? newId(),
      type: input.type,
      data: input.data,
      meta: { actor: input.meta?.actor ?? "anonymous", ...withoutUndefined(input.meta) },
    };
    const parsed = this.#catalogue.parseCommand(raw);
    if (!parsed.ok) throw parsed.error;
    if (parsed.value.definition.internal) {
      throw new SchemaError(`${raw.type} is internal to its owning service and cannot be sent`);
    }
    const subject = commandSubject(raw.type);
    return await inMessagingSpan(
      {
        operation: "send",
        template: subject,
        destination: subject,
        kind: SpanKind.PRODUCER,
        links: linkTo(opts.linkTraceparent),
        attributes: {
          [SpanAttributes.messageId]: raw.id,
          ...commandWorkAttributes({
            target: parsed.value.target,
            commandId: raw.id,
            commandType: raw.type,
            correlationId: raw.meta.correlationId,
          }),
        },
      },
      async () => {
        const tp = traceparentOf();
        const body: RawCommand = { ...raw, meta: { ...raw.meta, ...(tp ? { traceparent: tp } : {}) } };
        const data = JSON.stringify(body);
        // The connection's pipelined publisher (the event store's): no nats.js request per
        // command (its timer and `Error`), and the sends of a turn leave in one socket write
        // with that turn's other writes (turn-writes.ts) — the API's POST /commands path.
        const publish = () =>
          publishStored({ js: this.#js, nc: this.#nc, timeoutMs: this.#timeoutMs }, subject, data, {
            msgID: raw.id,
            headers: { [Headers.commandType]: raw.type, [Headers.traceparent]: tp },
          });
        const ack = await whileUnavailable(publish, this.#timeoutMs);

        return {
          commandId: raw.id,
          subject,
          traceId: traceIdOf(tp),
          traceparent: tp,
          sequence: ack.seq,
          duplicate: ack.duplicate,
        };
      },
    );
  }
}

/**
 * Whether a send failed only because the command stream could not take it just then: no
 * server answered for the stream (503 "no responders" — its leader is being elected after
 * a NATS server went away) or JetStream said it is unavailable (an API error with HTTP
 * status 503). Another try with the same command id is safe: the stream keeps the first copy.
 */
export function isBusUnavailable(err: unknown): boolean {
  if (err instanceof PublishNotAcked) return err.reason === "no-stream" || err.reason === "timeout";
  return err instanceof JetStreamApiError && err.status === 503;
}

/**
 * `publish`, tried again while the stream is unavailable (an R3 stream's leader election
 * takes a few seconds), with growing pauses, until `budgetMs` from the first try is spent;
 * then its last error. A timeout is not tried again: it spent the budget by itself.
 */
async function whileUnavailable<T>(publish: () => Promise<T>, budgetMs: number): Promise<T> {
  const end = performance.now() + budgetMs;
  for (let pause = 50; ; pause = Math.min(pause * 2, 1_000)) {
    try {
      return await publish();
    } catch (err) {
      const timedOut = err instanceof PublishNotAcked && err.reason === "timeout";
      if (timedOut || !isBusUnavailable(err) || performance.now() + pause >= end) throw err;
      await new Promise((r) => setTimeout(r, pause));
    }
  }
}

function withoutUndefined<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
