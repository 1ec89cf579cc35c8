import type { z } from "zod";
import type { EventEnvelope } from "../envelope.ts";
import type { AggregateType } from "../subjects.ts";
import { Catalogue } from "./catalogue.ts";
import { type ClusterEvent, clusterCommands, clusterEvents } from "./cluster.ts";
import type { CommandDefinition } from "./define.ts";
import { type InstallEvent, installCommands, installEvents } from "./install.ts";
import { type KubeEvent, kubeCommands, kubeEvents } from "./kube.ts";
import { type NodeopEvent, nodeopCommands, nodeopEvents } from "./nodeop.ts";
import { type SessionEvent, sessionCommands, sessionEvents } from "./session.ts";
import { type WorkloadEvent, workloadCommands, workloadEvents } from "./workload.ts";

export * from "./catalogue.ts";
export * from "./cluster.ts";
export * from "./cluster-failures.ts";
export * from "./cluster-lifecycle.ts";
export * from "./common.ts";
export * from "./define.ts";
export * from "./ec2-tags.ts";
export * from "./install.ts";
export * from "./kube.ts";
export * from "./nodeop.ts";
export * from "./nodeop-classification.ts";
export * from "./nodeop-limit.ts";
export * from "./session.ts";
export * from "./session-lifecycle.ts";
export * from "./workload.ts";

export const allEventDefinitions = [
  ...clusterEvents,
  ...installEvents,
  ...sessionEvents,
  ...nodeopEvents,
  ...workloadEvents,
  ...kubeEvents,
] as const;
export const allCommandDefinitions = [
  ...clusterCommands,
  ...sessionCommands,
  ...nodeopCommands,
  ...kubeCommands,
  ...installCommands,
  ...workloadCommands,
] as const;

/** The events of each aggregate type, as `{ type, data }` unions. */
export interface EventsByAggregate {
  cluster: ClusterEvent;
  install: InstallEvent;
  session: SessionEvent;
  nodeop: NodeopEvent;
  workload: WorkloadEvent;
  kube: KubeEvent;
}
/** Every event Cairn knows, as a `{ type, data }` union. */
export type AnyEvent = EventsByAggregate[AggregateType];
export type EventType = AnyEvent["type"];
/** One event type's envelope, its data typed. @example CairnEvent<"cluster.requested">["data"]["spec"] */
export type CairnEvent<T extends EventType = EventType> = EventEnvelope<Extract<AnyEvent, { type: T }>>;
/** The envelopes of one aggregate type's events: narrow by `type` to read `data`. */
export type EventOfAggregate<A extends AggregateType> = EventEnvelope<EventsByAggregate[A]>;

type CommandDefinitions = (typeof allCommandDefinitions)[number];
/** Every command type Cairn knows. */
export type CommandType = CommandDefinitions["type"];
/** What a command of this type takes as data, before defaults are applied. */
export type CommandDataInput<T extends CommandType> =
  Extract<CommandDefinitions, { type: T }> extends CommandDefinition<T, infer S> ? z.input<S> : never;

/** Every event and command Cairn knows. */
export const catalogue = new Catalogue<AnyEvent>(allEventDefinitions, allCommandDefinitions);
export * from "./examples.ts";
