import type { JetStreamClient } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { Catalogue } from "./catalogue/catalogue.ts";
import { SchemaError } from "./catalogue/define.ts";
import type { RawCommand } from "./envelope.ts";
import { newId } from "./ids.ts";
import { commandSubject, Headers } from "./subjects.ts";
import {
  commandWorkAttributes,
  injectTrace,
  inMessagingSpan,
  linkTo,
  SpanAttributes,
  SpanKind,
  traceIdOf,
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

  constructor(deps: { js: JetStreamClient; catalogue: Catalogue }) {
    this.#js = deps.js;
    this.#catalogue = deps.catalogue;
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
        const h = natsHeaders();
        const tp = injectTrace(h);
        h.set(Headers.commandType, raw.type);
        const body: RawCommand = { ...raw, meta: { ...raw.meta, ...(tp ? { traceparent: tp } : {}) } };
        const ack = await this.#js.publish(subject, JSON.stringify(body), { msgID: raw.id, headers: h });
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

function withoutUndefined<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {};
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
