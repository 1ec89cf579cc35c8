/**
 * Admission of a Pending session, for the reactor: its cluster must exist and be Ready,
 * and its user's ledger (then each of its groups') must give it a place.
 *
 *  - The cluster is looked at fresh (another service writes it): the subject's last
 *    sequence is one cheap request; only when it moved is the history read again and
 *    folded with the shared lifecycle (`clusterTransition`), as the provisioner does.
 *  - The session takes its place on the cluster's session ledger (`clusterSessionsId`)
 *    *before* the cluster's last look: the provisioner reads that ledger to refuse a
 *    delete while sessions live, so either the delete's look sees the session, or the
 *    session's last look sees the cluster Deleting (refused), or the session took its
 *    place before the delete was appended and the cluster follower, reading the ledger
 *    after it, ends it (docs/sessions.md, "Deleting a cluster with sessions").
 *  - Each place is a decision of the ledger (./quota.ts), named after the session's
 *    `session.requested` event and the ledger, so a redelivery takes nothing twice.
 *    Its outcome is read back from the ledger itself (is the session a holder?), so a
 *    redelivery that meets its own earlier decision as a duplicate still knows it.
 *  - A group refusing gives the places already taken back at once (a compensation); a
 *    crash in between is made good when the session fails (every release is idempotent).
 */
import {
  type AggregateRef,
  type ClusterStatus,
  type CommandHandler,
  catalogue,
  clusterTransition,
  createLook,
  derivedId,
  type EventStore,
  type LedgerScope,
  ledgerId,
  PermanentError,
  type QuotaBreach,
  type QuotaLimits,
  type SessionCommand,
  type SessionEvent,
} from "@cairn/events";
import type { QuotaPolicy } from "../quota-policy.ts";
import { requestOf, type SessionState } from "./decider.ts";
import { describeBreach, quotaBreachOf, usageOf } from "./quota.ts";

type Handler = CommandHandler<SessionCommand, SessionEvent, SessionState>;
type Cause = { id: string; meta: { correlationId: string } };

export type AdmissionOutcome =
  | { readonly admitted: true; readonly groups: string[] }
  | {
      readonly admitted: false;
      readonly cause: "quota" | "failure";
      readonly code: "not-found" | "conflict" | "over-quota";
      readonly reason: string;
      readonly remediation?: string;
      readonly quota?: QuotaBreach;
    };

export interface Admission {
  admit(
    cause: Cause,
    session: {
      sessionId: string;
      user: string;
      clusterId: string;
      template: SessionState["template"] & object;
    },
  ): Promise<AdmissionOutcome>;
  /**
   * Gives the session's places back on its cluster's ledger, its user's and its groups'
   * (recorded and by policy).
   */
  release(
    cause: Cause,
    session: { sessionId: string; user: string; clusterId?: string; groups: readonly string[] },
    reason: string,
  ): Promise<void>;
  clusterStatus(clusterId: string): Promise<ClusterStatus | undefined>;
}

export function createAdmission(o: { handler: Handler; store: EventStore; policy: QuotaPolicy }): Admission {
  // The cluster's status as its owner's log has it, folded incrementally (never the whole
  // history again: a long-lived cluster has many thousands of commits).
  const clusters = createLook<ClusterStatus | undefined>({
    store: o.store,
    empty: () => undefined,
    evolve: (status, e) => clusterTransition(status, e) ?? status,
  });
  const clusterStatus = async (clusterId: string) =>
    (await clusters.of({ type: "cluster", id: clusterId })).view;

  /** Why a session cannot be admitted to a cluster in this status; undefined when it can. */
  const clusterRefusal = (
    clusterId: string,
    status: ClusterStatus | undefined,
  ): (AdmissionOutcome & { admitted: false }) | undefined => {
    if (status === undefined || status === "Deleted")
      return {
        admitted: false,
        cause: "failure",
        code: "not-found",
        reason: `no such cluster: ${clusterId}${status === "Deleted" ? " (it was deleted)" : ""}`,
        remediation: "create the session on a cluster that exists (GET /clusters)",
      };
    if (status === "Deleting")
      return {
        admitted: false,
        cause: "failure",
        code: "conflict",
        reason: `cluster ${clusterId} is Deleting: it takes no new sessions`,
        remediation: "create the session on another cluster (GET /clusters)",
      };
    if (status !== "Ready")
      return {
        admitted: false,
        cause: "failure",
        code: "conflict",
        reason: `cluster ${clusterId} is ${status}, not Ready`,
        remediation: "wait until the cluster is Ready, then create the session again",
      };
    return undefined;
  };

  const decide = async (cause: Cause, type: SessionCommand["type"], data: object, key: string) => {
    const parsed = catalogue.parseCommand({
      id: derivedId(cause.id, type, key),
      type,
      data,
      meta: { actor: "idle-detector", causationId: cause.id, correlationId: cause.meta.correlationId },
    });
    if (!parsed.ok)
      throw new PermanentError(`the idle-detector built an invalid ${type}: ${parsed.error.message}`);
    return await o.handler.handle(parsed.value);
  };

  const ledgerRef = (scope: LedgerScope, owner: string): AggregateRef => ({
    type: "session",
    id: ledgerId(scope, owner),
  });

  /** Takes a place; undefined when held (now or before), else the breach that refused it. */
  const take = async (
    cause: Cause,
    scope: LedgerScope,
    owner: string,
    sessionId: string,
    request: { cpuMillis: number; memoryBytes: number },
    limits: QuotaLimits,
  ): Promise<QuotaBreach | undefined> => {
    const ref = ledgerRef(scope, owner);
    await decide(cause, "session.take-quota", { scope, owner, sessionId, ...request, limits }, ref.id);
    // The ledger says what happened (a duplicate says nothing): read it as the log has it.
    const { state } = await o.handler.read(ref);
    if (state.ledger.holders[sessionId]) return undefined;
    const usage = usageOf(state.ledger);
    return (
      quotaBreachOf(scope, owner, usage, { sessions: 1, ...request }, limits) ?? {
        // Refused, then a place freed before this look: refused all the same (the decision stands).
        scope,
        owner,
        dimension: "sessions",
        limit: limits.sessions ?? usage.sessions,
        usage,
        requested: { sessions: 1, ...request },
      }
    );
  };

  const release: Admission["release"] = async (cause, session, reason) => {
    // The groups it was admitted with, and the policy's: a session ended while its
    // admission was in flight may hold places it never recorded (every release of a place
    // not held is nothing).
    const groups = new Set([...session.groups, ...o.policy.groupsOf(session.user)]);
    const ledgers: [LedgerScope, string][] = [
      ...(session.clusterId ? [["cluster", session.clusterId] as [LedgerScope, string]] : []),
      ["user", session.user],
      ...[...groups].map((g): [LedgerScope, string] => ["group", g]),
    ];
    for (const [scope, owner] of ledgers) {
      const ref = ledgerRef(scope, owner);
      await decide(
        cause,
        "session.release-quota",
        { scope, owner, sessionId: session.sessionId, reason },
        ref.id,
      );
    }
  };

  return {
    clusterStatus,
    release,
    async admit(cause, s) {
      // 1. The cluster as it is (a session on a cluster that is not there or not Ready
      //    takes no place anywhere).
      const before = clusterRefusal(s.clusterId, await clusterStatus(s.clusterId));
      if (before) return before;
      const request = requestOf(s.template);
      // 2. A place on the cluster's session ledger (no limits: it cannot refuse): from now
      //    on a delete sees the session.
      const ledger = ledgerRef("cluster", s.clusterId);
      await decide(
        cause,
        "session.take-quota",
        { scope: "cluster", owner: s.clusterId, sessionId: s.sessionId, ...request, limits: {} },
        ledger.id,
      );
      // 3. The cluster again, after the place is in the log: a delete appended before it
      //    is seen here; one appended after it saw the place (docs/sessions.md).
      const after = clusterRefusal(s.clusterId, await clusterStatus(s.clusterId));
      if (after) {
        await release(
          cause,
          { sessionId: s.sessionId, user: s.user, clusterId: s.clusterId, groups: [] },
          `refused: ${after.reason}`,
        );
        return after;
      }
      // 4. The user's quota, then each group's.
      const groups = o.policy.groupsOf(s.user);
      const taken: string[] = [];
      const refuse = async (breach: QuotaBreach): Promise<AdmissionOutcome> => {
        await release(
          cause,
          { sessionId: s.sessionId, user: s.user, clusterId: s.clusterId, groups: taken },
          "refused: over quota",
        );
        return {
          admitted: false,
          cause: "quota",
          code: "over-quota",
          reason: describeBreach(breach),
          remediation: `terminate one of ${breach.scope} ${breach.owner}'s sessions, ask for less, or ask an operator to raise the limit`,
          quota: breach,
        };
      };
      const own = await take(cause, "user", s.user, s.sessionId, request, o.policy.userLimits(s.user));
      if (own) return await refuse(own);
      for (const g of groups) {
        const breach = await take(cause, "group", g, s.sessionId, request, o.policy.groupLimits(g));
        if (breach) return await refuse(breach);
        taken.push(g);
      }
      return { admitted: true, groups };
    },
  };
}
