/**
 * The quota ledgers' rules, pure. A ledger (`userQuotaId(user)`, `groupQuotaId(group)`)
 * is an instance of the session aggregate type whose state is the live sessions it
 * counts; a session takes a place only if it fits under every limit, as one decision of
 * the ledger. Two creates racing for the last place are two decisions on one aggregate:
 * the event store's optimistic concurrency makes the second decide again on the state
 * that holds the first, so it is refused (never both admitted). The limits are inputs
 * (the reactor reads the policy file), never read here. A cluster's session ledger
 * (`clusterSessionsId(cluster)`) follows the same rules with no limits: it only counts.
 */
import {
  type Decision,
  type LedgerScope,
  type QuotaBreach,
  type QuotaLimits,
  type QuotaUsage,
  reject,
  type SessionCommand,
  type SessionEvent,
} from "@cairn/events";

export interface LedgerState {
  /** The sessions counted now, with what each holds. */
  readonly holders: Readonly<Record<string, { readonly cpuMillis: number; readonly memoryBytes: number }>>;
}

export const emptyLedger: LedgerState = { holders: {} };

/** What the ledger's live sessions hold together. */
export function usageOf(ledger: LedgerState): QuotaUsage {
  let cpuMillis = 0;
  let memoryBytes = 0;
  const holders = Object.values(ledger.holders);
  for (const h of holders) {
    cpuMillis += h.cpuMillis;
    memoryBytes += h.memoryBytes;
  }
  return { sessions: holders.length, cpuMillis, memoryBytes };
}

const cores = (millis: number) => `${+(millis / 1000).toFixed(3)} CPU`;
const gib = (bytes: number) => `${+(bytes / 2 ** 30).toFixed(2)} GiB`;

/**
 * The first limit a request would pass on a ledger, or undefined when it fits.
 * @example quotaBreachOf("user", "alice", { sessions: 2, cpuMillis: 2000, memoryBytes: 0 },
 *   { sessions: 1, cpuMillis: 500, memoryBytes: 0 }, { sessions: 2 })?.dimension // "sessions"
 */
export function quotaBreachOf(
  scope: LedgerScope,
  owner: string,
  usage: QuotaUsage,
  requested: QuotaUsage,
  limits: QuotaLimits,
): QuotaBreach | undefined {
  for (const dimension of ["sessions", "cpuMillis", "memoryBytes"] as const) {
    const limit = limits[dimension];
    if (limit !== undefined && usage[dimension] + requested[dimension] > limit)
      return { scope, owner, dimension, limit, usage, requested };
  }
  return undefined;
}

/** A breach in words a person reads: the limit, the usage, the request. */
export function describeBreach(b: QuotaBreach): string {
  const who = `${b.scope} ${b.owner}`;
  switch (b.dimension) {
    case "sessions":
      return `over quota: ${who} has ${b.usage.sessions} live session(s) and the limit is ${b.limit}`;
    case "cpuMillis":
      return `over quota: ${who} uses ${cores(b.usage.cpuMillis)} of ${cores(b.limit)} and this session asks for ${cores(b.requested.cpuMillis)}`;
    case "memoryBytes":
      return `over quota: ${who} uses ${gib(b.usage.memoryBytes)} of memory of ${gib(b.limit)} and this session asks for ${gib(b.requested.memoryBytes)}`;
  }
}

type LedgerCommand = Extract<SessionCommand, { type: "session.take-quota" | "session.release-quota" }>;
type LedgerEvent = Extract<SessionEvent, { type: "session.quota-taken" | "session.quota-released" }>;

export function decideLedger(command: LedgerCommand, ledger: LedgerState): Decision<SessionEvent> {
  switch (command.type) {
    case "session.take-quota": {
      const { scope, owner, sessionId, cpuMillis, memoryBytes, limits } = command.data;
      // A session holding its place already (a redelivery, another replica): nothing new.
      if (ledger.holders[sessionId]) return [];
      const usage = usageOf(ledger);
      const requested = { sessions: 1, cpuMillis, memoryBytes };
      const breach = quotaBreachOf(scope, owner, usage, requested, limits);
      if (breach) return reject("over-quota", describeBreach(breach));
      return [
        {
          type: "session.quota-taken",
          data: {
            scope,
            owner,
            sessionId,
            cpuMillis,
            memoryBytes,
            limits,
            usage: {
              sessions: usage.sessions + 1,
              cpuMillis: usage.cpuMillis + cpuMillis,
              memoryBytes: usage.memoryBytes + memoryBytes,
            },
          },
        },
      ];
    }
    case "session.release-quota": {
      const { scope, owner, sessionId, reason } = command.data;
      // Given back already (or never taken): nothing, so any number of releases is one.
      const held = ledger.holders[sessionId];
      if (!held) return [];
      const usage = usageOf(ledger);
      return [
        {
          type: "session.quota-released",
          data: {
            scope,
            owner,
            sessionId,
            reason,
            usage: {
              sessions: usage.sessions - 1,
              cpuMillis: usage.cpuMillis - held.cpuMillis,
              memoryBytes: usage.memoryBytes - held.memoryBytes,
            },
          },
        },
      ];
    }
  }
}

export function evolveLedger(ledger: LedgerState, event: LedgerEvent): LedgerState {
  switch (event.type) {
    case "session.quota-taken": {
      const { sessionId, cpuMillis, memoryBytes } = event.data;
      return { holders: { ...ledger.holders, [sessionId]: { cpuMillis, memoryBytes } } };
    }
    case "session.quota-released": {
      const { [event.data.sessionId]: _gone, ...rest } = ledger.holders;
      return { holders: rest };
    }
  }
}
