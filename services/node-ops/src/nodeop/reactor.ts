/**
 * The nodeop process manager: on each requested operation it calls the Kubernetes API
 * through the `Kube` port, then records what happened as an internal command decided by
 * the same aggregate. Every step is idempotent:
 *  - the aggregate is read first: an operation no longer in flight (already recorded,
 *    or superseded) is not carried out again;
 *  - cordon and uncordon are merge patches: doing one twice changes nothing;
 *  - the command it sends is named after the event that caused it (`derivedId`), so a
 *    redelivered event records nothing twice.
 * Transient failures (429, 5xx, connection) are thrown: the runner redelivers with
 * backoff. Permanent ones (no such node, refused) are recorded as `nodeop.failed`.
 */
import {
  type CommandHandler,
  catalogue,
  derivedId,
  eventFilter,
  type Nats,
  type NodeopCommand,
  type NodeopEvent,
  PermanentError,
  type RawEventEnvelope,
  type RunnerLogger,
  type RunningConsumer,
  Streams,
  startConsumer,
} from "@cairn/events";
import { CORDON_REASON, CORDONED_BY, isPermanentFailure, type Kube } from "../ports.ts";
import type { NodeOperation, NodeopState } from "./decider.ts";

export interface NodeopReactorOptions {
  nats: Nats;
  handler: CommandHandler<NodeopCommand, NodeopEvent, NodeopState>;
  kube: Kube;
  logger?: RunnerLogger;
}

type Event = RawEventEnvelope & { type: NodeopEvent["type"]; sequence: number };
type NodeData = { clusterId: string; node: string; reason: string; by: string };

export async function startNodeopReactor(o: NodeopReactorOptions): Promise<RunningConsumer> {
  /** Decides an internal command on the node, named after its cause. */
  const record = async (cause: Event, type: NodeopCommand["type"], data: object) => {
    const { clusterId, node } = cause.data as NodeData;
    const parsed = catalogue.parseCommand({
      id: derivedId(cause.id, type),
      type,
      data: { clusterId, node, ...data },
      meta: { actor: "node-ops", causationId: cause.id, correlationId: cause.meta.correlationId },
    });
    if (!parsed.ok) throw new PermanentError(`the reactor built an invalid ${type}: ${parsed.error.message}`);
    return await o.handler.handle(parsed.value, { atLeastSequence: cause.sequence });
  };

  /** Runs one operation; a permanent failure is recorded, anything else is thrown (retried). */
  const carryOut = async (
    e: Event,
    operation: NodeOperation,
    call: () => Promise<void>,
    done: () => Promise<unknown>,
  ) => {
    const { clusterId, node } = e.data as NodeData;
    try {
      await call();
    } catch (err) {
      if (!isPermanentFailure(err)) throw err;
      o.logger?.warn({ cluster: clusterId, node, operation, reason: err.message }, "node operation failed");
      return record(e, "node.record-failure", {
        operation,
        reason: err.message,
        ...(err.remediation ? { remediation: err.remediation } : {}),
      });
    }
    return done();
  };

  const react = async (e: Event) => {
    const { state } = await o.handler.read(e.aggregate, { atLeastSequence: e.sequence });
    const d = e.data as NodeData;
    switch (e.type) {
      case "nodeop.cordon-requested":
        if (state.inFlight?.operation !== "cordon") return;
        return carryOut(
          e,
          "cordon",
          () => o.kube.cordon(d.clusterId, d.node, { [CORDONED_BY]: d.by, [CORDON_REASON]: d.reason }),
          () => record(e, "node.record-cordoned", { reason: d.reason, by: d.by }),
        );
      case "nodeop.uncordon-requested":
        if (state.inFlight?.operation !== "uncordon") return;
        return carryOut(
          e,
          "uncordon",
          () => o.kube.uncordon(d.clusterId, d.node),
          () => record(e, "node.record-uncordoned", { by: d.by }),
        );
      default:
        return;
    }
  };

  return await startConsumer({
    js: o.nats.js,
    jsm: o.nats.jsm,
    stream: Streams.events,
    durable: "node-ops-reactor",
    filterSubject: eventFilter("nodeop"),
    maxDeliver: 1_000,
    // Nodes proceed side by side; each node's commits stay in order (key: subject).
    concurrency: 32,
    ...(o.logger ? { logger: o.logger } : {}),
    handle: async (msg) => {
      const commit = catalogue.parseCommit(msg.json());
      for (const e of commit.events) await react({ ...(e as RawEventEnvelope), sequence: msg.seq } as Event);
    },
  });
}
