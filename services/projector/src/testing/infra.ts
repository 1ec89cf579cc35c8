/** Real NATS + real Postgres for the projector's int tests, and an event writer. */
import {
  type AggregateRef,
  type AnyEvent,
  type CairnEvent,
  catalogue,
  connectNats,
  EventStore,
  ensureStreams,
  type Nats,
  newId,
} from "@cairn/events";
import {
  createTestDatabase,
  type DisposableDatabase,
  type DisposableNats,
  startNatsServer,
} from "@cairn/testkit";
import { anEnvelope } from "./fixtures.ts";

export interface Infra {
  readonly natsServer: DisposableNats;
  readonly nats: Nats;
  readonly database: DisposableDatabase;
  readonly writer: EventWriter;
  dispose(): Promise<void>;
}

export async function startInfra(): Promise<Infra> {
  const [natsServer, database] = await Promise.all([startNatsServer(), createTestDatabase("projector_test")]);
  const nats = await connectNats(natsServer.url, { name: "projector-test" });
  await ensureStreams(nats.jsm);
  return {
    natsServer,
    nats,
    database,
    writer: new EventWriter(new EventStore({ js: nats.js, jsm: nats.jsm, catalogue })),
    dispose: async () => {
      await nats.close();
      await Promise.all([natsServer.dispose(), database.dispose()]);
    },
  };
}

/** Appends hand-built commits, keeping each aggregate's position and last sequence. */
export class EventWriter {
  readonly store: EventStore<AnyEvent>;
  readonly #last = new Map<string, { sequence: number; position: number }>();
  /** Every event appended, with the sequence of its commit. */
  readonly appended: { event: CairnEvent; sequence: number }[] = [];

  constructor(store: EventStore<AnyEvent>) {
    this.store = store;
  }

  async append(
    aggregate: AggregateRef,
    events: { type: string; data: unknown }[],
    meta: Partial<CairnEvent["meta"]> = {},
  ): Promise<{ sequence: number; events: CairnEvent[] }> {
    const key = `${aggregate.type}.${aggregate.id}`;
    const last = this.#last.get(key) ?? { sequence: 0, position: 0 };
    const causationId = meta.causationId ?? newId();
    const envelopes = events.map((e, i) =>
      anEnvelope(aggregate, last.position + i + 1, e, {
        causationId,
        time: new Date().toISOString(),
        ...meta,
      }),
    );
    const res = await this.store.append({ aggregate, causationId, events: envelopes }, last.sequence);
    if (res.duplicate) throw new Error(`commit ${res.commitId} was a duplicate`);
    this.#last.set(key, { sequence: res.sequence, position: last.position + events.length });
    for (const event of envelopes) this.appended.push({ event, sequence: res.sequence });
    return { sequence: res.sequence, events: envelopes };
  }

  /** The sequence of the last commit appended (0: none). */
  get lastSequence(): number {
    return this.appended.at(-1)?.sequence ?? 0;
  }
}

/** Polls `check` until it returns something other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`condition not met within ${timeoutMs} ms`, { cause: last });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
