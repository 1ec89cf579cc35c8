import { z } from "zod";
import { tokenSafeId } from "../ids.ts";
import { defineRejected } from "./common.ts";
import { type CommandOf, defineCommand, type EventOf } from "./define.ts";

/** Kubernetes quantities: `500m`, `2`, `4Gi`, `10G`. */
const quantity = z
  .string()
  .regex(/^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/, "must be a Kubernetes quantity such as 2, 500m or 4Gi");

export const sessionTemplate = z.object({
  image: z.string().min(1).max(512),
  cpu: quantity,
  memory: quantity,
  storage: quantity,
});

const sessionRef = z.object({ sessionId: tokenSafeId });
const bySession = (d: { sessionId: string }) => d.sessionId;

export const CreateSession = defineCommand({
  type: "session.create",
  aggregate: "session",
  schema: z.object({
    sessionId: tokenSafeId,
    user: tokenSafeId,
    clusterId: tokenSafeId,
    template: sessionTemplate,
  }),
  aggregateId: bySession,
  description: "Start an interactive user session on a cluster (subject to the user's quota).",
});
export const HibernateSession = defineCommand({
  type: "session.hibernate",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "Hibernate a session: stop its workload, keep its storage.",
});
export const WakeSession = defineCommand({
  type: "session.wake",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "Wake a hibernated session.",
});
export const ConnectSession = defineCommand({
  type: "session.connect",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "A user connected to the session (wakes it when hibernated).",
});
export const TerminateSession = defineCommand({
  type: "session.terminate",
  aggregate: "session",
  schema: sessionRef,
  aggregateId: bySession,
  description: "End a session for good: remove its workload and storage.",
});
export const sessionCommands = [
  CreateSession,
  HibernateSession,
  WakeSession,
  ConnectSession,
  TerminateSession,
] as const;
export type SessionCommand = CommandOf<(typeof sessionCommands)[number]>;

export const SessionRejected = defineRejected("session");
export const sessionEvents = [SessionRejected] as const;
export type SessionEvent = EventOf<(typeof sessionEvents)[number]>;
