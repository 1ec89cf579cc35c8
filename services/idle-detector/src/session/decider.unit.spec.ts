import { clusterSessionsId, type SessionCommand, type SessionEvent, userQuotaId } from "@cairn/events";
import { aCommand, anEvent, deciderSpec } from "@cairn/events/testing";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSessionDecider, isLive, type SessionState } from "./decider.ts";
import { DEFAULT_SESSION_POLICY } from "./policy.ts";

const decider = createSessionDecider({ ...DEFAULT_SESSION_POLICY, maxLifetimeSeconds: 36_000 });
const sessionId = "s-1";
const spec = deciderSpec(decider, { type: "session", id: sessionId });
const T0 = "2026-01-01T00:00:00.000Z";
const at = (iso: string) => ({ now: new Date(iso) });

const template = { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "10Gi" };
const create = (extra: object = {}): SessionCommand => ({
  type: "session.create",
  data: { sessionId, user: "alice", clusterId: "demo-1", template, ...extra },
});
const cmd = (type: "session.hibernate" | "session.wake" | "session.connect" | "session.terminate") =>
  ({ type, data: { sessionId } }) as SessionCommand;

const requested: SessionEvent = {
  type: "session.requested",
  data: {
    sessionId,
    user: "alice",
    clusterId: "demo-1",
    template,
    idleTimeoutSeconds: 1800,
    maxLifetimeSeconds: 36_000,
    cause: "user",
  },
};
const admitted: SessionEvent = { type: "session.admitted", data: { sessionId, groups: [], cause: "user" } };
const running: SessionEvent = { type: "session.running", data: { sessionId, node: "n1", cause: "user" } };
const hibernating = (cause: "user" | "idle" = "user"): SessionEvent => ({
  type: "session.hibernating",
  data: { sessionId, cause },
});
const hibernated = (cause: "user" | "idle" = "user"): SessionEvent => ({
  type: "session.hibernated",
  data: { sessionId, cause },
});
const waking = (cause: "user" | "connection" = "connection", requestedAt = T0): SessionEvent => ({
  type: "session.waking",
  data: { sessionId, cause, requestedAt },
});
const terminating = (cause: "user" | "lifetime" | "dormancy" = "user"): SessionEvent => ({
  type: "session.terminating",
  data: { sessionId, cause },
});
const terminated: SessionEvent = {
  type: "session.terminated",
  data: { sessionId, cause: "user", volumeReleased: true },
};
const failed: SessionEvent = {
  type: "session.failed",
  data: { sessionId, cause: "failure", reason: "no node has room", from: "Starting" },
};

const RUNNING = [requested, admitted, running];
const HIBERNATED = [...RUNNING, hibernating(), hibernated()];

describe("session.create", () => {
  it("Pending: takes the operator's default idle timeout and the maximum lifetime when none is asked for", () => {
    spec.given([]).when(create()).then([requested]);
    spec
      .given([])
      .when(create({ idleTimeoutSeconds: 600, maxLifetimeSeconds: 3600 }))
      .then([
        {
          ...requested,
          data: { ...requested.data, idleTimeoutSeconds: 600, maxLifetimeSeconds: 3600 },
        } as SessionEvent,
      ]);
  });
  it("refuses a request beyond the operator's maximum, not clamped, naming the maximum", () => {
    spec
      .given([])
      .when(create({ idleTimeoutSeconds: 90_000 }))
      .thenRejected("invalid", "idleTimeoutSeconds 90000 is above the operator's maximum of 86400");
    spec
      .given([])
      .when(create({ maxLifetimeSeconds: 40_000 }))
      .thenRejected("invalid", "maxLifetimeSeconds 40000 is above the operator's maximum of 36000");
  });
  it("refuses a bad template, saying what is wrong", () => {
    spec
      .given([])
      .when(create({ template: { ...template, cpu: "0" } }))
      .thenRejected("invalid", "bad template: template.cpu 0 must be more than zero");
    spec
      .given([])
      .when(create({ template: { ...template, storage: "0Gi" } }))
      .thenRejected("invalid", "template.storage 0Gi must be more than zero");
  });
  it("refuses a second create of the same id, and an id a quota ledger would take", () => {
    spec
      .given([requested])
      .when(create())
      .thenRejected("already-exists", "session s-1 already exists (Pending)");
    spec
      .given([...RUNNING, terminating(), terminated])
      .when(create())
      .thenRejected("already-exists", "(Terminated)");
    deciderSpec(decider, { type: "session", id: "a=_quota" })
      .given([])
      .when({ ...create(), data: { ...(create().data as object), sessionId: "a=_quota" } } as SessionCommand)
      .thenRejected("invalid", "may not hold '='");
  });
});

describe("admission (the reactor's records)", () => {
  it("Pending → Starting when the cluster is Ready and the quota taken", () => {
    spec
      .given([requested])
      .when({ type: "session.admit", data: { sessionId, groups: ["team-a"] } })
      .then([{ type: "session.admitted", data: { sessionId, groups: ["team-a"], cause: "user" } }]);
  });
  it("a refusal rejects the create by its command id and fails the session, with the quota breach", () => {
    const quota = {
      scope: "user" as const,
      owner: "alice",
      dimension: "sessions" as const,
      limit: 2,
      usage: { sessions: 2, cpuMillis: 1000, memoryBytes: 0 },
      requested: { sessions: 1, cpuMillis: 500, memoryBytes: 0 },
    };
    const reason = "over quota: user alice has 2 live session(s) and the limit is 2";
    const history = [anEvent(requested, 1, { type: "session", id: sessionId })];
    history[0] = { ...history[0]!, meta: { ...history[0]!.meta, commandId: "create-1" } };
    const state = history.reduce((s, e) => decider.evolve(s, e), decider.initialState());
    const d = decider.decide(
      aCommand({
        type: "session.refuse",
        data: { sessionId, cause: "quota", code: "over-quota", reason, quota },
      } as SessionCommand),
      state,
      { now: new Date(T0), version: 1 },
    );
    expect(d).toEqual([
      {
        type: "session.rejected",
        data: { commandId: "create-1", commandType: "session.create", code: "over-quota", reason, quota },
      },
      { type: "session.failed", data: { sessionId, cause: "quota", reason, from: "Pending" } },
    ]);
  });
  it("no such cluster, cluster not Ready: refused with the reason; a late refusal after admission changes nothing", () => {
    spec
      .given([requested])
      .when({
        type: "session.refuse",
        data: {
          sessionId,
          cause: "failure",
          code: "conflict",
          reason: "cluster demo-1 is Provisioning, not Ready",
        },
      })
      .then([
        {
          type: "session.rejected",
          data: {
            commandId: "0193a0c2-0000-7000-8000-000000000001",
            commandType: "session.create",
            code: "conflict",
            reason: "cluster demo-1 is Provisioning, not Ready",
          },
        },
        {
          type: "session.failed",
          data: {
            sessionId,
            cause: "failure",
            reason: "cluster demo-1 is Provisioning, not Ready",
            from: "Pending",
          },
        },
      ]);
    spec
      .given([requested, admitted])
      .when({ type: "session.refuse", data: { sessionId, cause: "failure", code: "not-found", reason: "x" } })
      .then([]);
  });
});

describe("running, hibernating, waking", () => {
  it("Starting → Running when the pod is ready", () => {
    spec
      .given([requested, admitted])
      .when({ type: "session.record-running", data: { sessionId, node: "n1" } })
      .then([running]);
  });
  it("hibernate: Running → Hibernating → Hibernated; twice is once; refused before it runs", () => {
    spec.given(RUNNING).when(cmd("session.hibernate")).then([hibernating()]);
    spec
      .given([...RUNNING, hibernating()])
      .when(cmd("session.hibernate"))
      .then([]);
    spec
      .given([...RUNNING, hibernating()])
      .when({ type: "session.record-hibernated", data: { sessionId } })
      .then([hibernated()]);
    spec
      .given([requested, admitted])
      .when(cmd("session.hibernate"))
      .thenRejected("conflict", "session s-1 is Starting: only a Running session can hibernate");
    spec.given([]).when(cmd("session.hibernate")).thenRejected("not-found", "no session s-1");
  });
  it("connect wakes a Hibernated session; Running again with the wake latency, from the connect", () => {
    spec
      .given(HIBERNATED)
      .when(cmd("session.connect"), at(T0))
      .then([waking("connection", T0)]);
    spec
      .given([...HIBERNATED, waking("connection", T0)])
      .when(
        { type: "session.record-running", data: { sessionId, node: "n2" } },
        at("2026-01-01T00:00:02.500Z"),
      )
      .then([
        {
          type: "session.running",
          data: { sessionId, node: "n2", wakeLatencyMs: 2500, cause: "connection" },
        },
      ]);
    spec
      .given(HIBERNATED)
      .when(cmd("session.wake"), at(T0))
      .then([waking("user", T0)]);
  });
  it("connect on a running (or starting, waking) session changes nothing", () => {
    spec.given(RUNNING).when(cmd("session.connect")).then([]);
    spec.given([requested]).when(cmd("session.connect")).then([]);
    spec
      .given([...HIBERNATED, waking()])
      .when(cmd("session.wake"))
      .then([]);
  });
  it("a wake while still Hibernating is kept, once, and starts as soon as it is Hibernated", () => {
    spec
      .given([...RUNNING, hibernating()])
      .when(cmd("session.connect"))
      .then([{ type: "session.wake-requested", data: { sessionId, cause: "connection" } }]);
    const asked: SessionEvent = { type: "session.wake-requested", data: { sessionId, cause: "connection" } };
    spec
      .given([...RUNNING, hibernating(), asked])
      .when(cmd("session.connect"))
      .then([]);
    spec
      .given([...RUNNING, hibernating(), asked])
      .when({ type: "session.record-hibernated", data: { sessionId } })
      .then([hibernated(), waking("connection", T0)]);
  });
  it("a pod moved to another node is in the history; a late running record changes nothing", () => {
    spec
      .given(RUNNING)
      .when({
        type: "session.record-moved",
        data: { sessionId, fromNode: "n1", toNode: "n3", reason: "drained" },
      })
      .then([
        { type: "session.moved", data: { sessionId, fromNode: "n1", toNode: "n3", reason: "drained" } },
      ]);
    spec
      .given(RUNNING)
      .when({ type: "session.record-running", data: { sessionId, node: "n1" } })
      .then([]);
  });
});

describe("the idle sweep's decision", () => {
  const runningAt = "2026-01-01T00:00:00.000Z";
  const idle = (lastActivityAt: string): SessionCommand => ({
    type: "session.idle",
    data: { sessionId, lastActivityAt },
  });
  it("idle longer than the timeout plus the grace: idled, then hibernating (cause idle)", () => {
    spec
      .given(RUNNING)
      .when(idle(runningAt), at("2026-01-01T00:31:00.000Z"))
      .then([
        {
          type: "session.idled",
          data: { sessionId, lastActivityAt: runningAt, idleTimeoutSeconds: 1800, graceSeconds: 60 },
        },
        hibernating("idle"),
      ]);
  });
  it("within the grace, or seen in an earlier Running period, or not Running: nothing", () => {
    spec.given(RUNNING).when(idle(runningAt), at("2026-01-01T00:30:30.000Z")).then([]);
    spec.given(RUNNING).when(idle("2025-12-31T23:00:00.000Z"), at("2026-01-01T05:00:00.000Z")).then([]);
    spec
      .given([...RUNNING, hibernating("idle")])
      .when(idle(runningAt), at("2026-01-01T05:00:00.000Z"))
      .then([]);
  });
});

describe("ends", () => {
  it("terminate from any live state; twice is once; on Terminated or Failed, refused saying so", () => {
    for (const h of [[requested], RUNNING, HIBERNATED, [...HIBERNATED, waking()]])
      spec.given(h).when(cmd("session.terminate")).then([terminating()]);
    spec
      .given([...RUNNING, terminating()])
      .when(cmd("session.terminate"))
      .then([]);
    spec
      .given([...RUNNING, terminating(), terminated])
      .when(cmd("session.terminate"))
      .thenRejected("conflict", "session s-1 is already terminated");
    spec
      .given([requested, admitted, failed])
      .when(cmd("session.connect"))
      .thenRejected("conflict", "session s-1 has failed");
    spec.given([]).when(cmd("session.terminate")).thenRejected("not-found", "no session s-1");
  });
  it("Terminating → Terminated when the workload is deleted", () => {
    spec
      .given([...RUNNING, terminating()])
      .when({ type: "session.record-terminated", data: { sessionId, volumeReleased: true } })
      .then([terminated]);
  });
  it("max lifetime ends it whatever its activity, not before", () => {
    const end: SessionCommand = {
      type: "session.end",
      data: { sessionId, cause: "lifetime", reason: "its maximum lifetime of 36000 s is over" },
    };
    spec
      .given(RUNNING)
      .when(end, at("2026-01-01T10:00:00.000Z"))
      .then([
        {
          type: "session.terminating",
          data: { sessionId, cause: "lifetime", reason: "its maximum lifetime of 36000 s is over" },
        },
      ]);
    spec.given(RUNNING).when(end, at("2026-01-01T09:59:59.000Z")).then([]);
  });
  it("dormancy ends a session Hibernated longer than the period, only then", () => {
    const end: SessionCommand = {
      type: "session.end",
      data: { sessionId, cause: "dormancy", reason: "dormant" },
    };
    spec
      .given(HIBERNATED)
      .when(end, at("2026-01-15T00:00:00.000Z"))
      .then([{ type: "session.terminating", data: { sessionId, cause: "dormancy", reason: "dormant" } }]);
    spec.given(HIBERNATED).when(end, at("2026-01-14T23:00:00.000Z")).then([]);
    spec.given(RUNNING).when(end, at("2026-03-01T00:00:00.000Z")).then([]);
  });
  it("a workload failure fails a starting session; nothing when Hibernated or Terminating", () => {
    const failure: SessionCommand = {
      type: "session.record-failure",
      data: { sessionId, reason: "no node has room", remediation: "add nodes" },
    };
    spec
      .given([requested, admitted])
      .when(failure)
      .then([
        {
          type: "session.failed",
          data: {
            sessionId,
            cause: "failure",
            reason: "no node has room",
            remediation: "add nodes",
            from: "Starting",
          },
        },
      ]);
    spec.given(HIBERNATED).when(failure).then([]);
    spec
      .given([...RUNNING, terminating()])
      .when(failure)
      .then([]);
  });
});

describe("the quota ledger", () => {
  const ledger = deciderSpec(decider, { type: "session", id: userQuotaId("alice") });
  const take = (s: string, limits = { sessions: 2, cpuMillis: 1000 }): SessionCommand => ({
    type: "session.take-quota",
    data: { scope: "user", owner: "alice", sessionId: s, cpuMillis: 500, memoryBytes: 2 ** 30, limits },
  });
  const taken = (s: string, n: number): SessionEvent => ({
    type: "session.quota-taken",
    data: {
      scope: "user",
      owner: "alice",
      sessionId: s,
      cpuMillis: 500,
      memoryBytes: 2 ** 30,
      limits: { sessions: 2, cpuMillis: 1000 },
      usage: { sessions: n, cpuMillis: 500 * n, memoryBytes: 2 ** 30 * n },
    },
  });
  it("takes a place while it fits; a holder taking again is nothing", () => {
    ledger
      .given([])
      .when(take("a"))
      .then([taken("a", 1)]);
    ledger
      .given([taken("a", 1)])
      .when(take("a"))
      .then([]);
  });
  it("over a limit: refused over-quota with the limit and the usage", () => {
    ledger
      .given([taken("a", 1), taken("b", 2)])
      .when(take("c"))
      .thenRejected("over-quota", "over quota: user alice has 2 live session(s) and the limit is 2");
    ledger
      .given([taken("a", 1)])
      .when(take("c", { sessions: 5, cpuMillis: 800 }))
      .thenRejected("over-quota", "user alice uses 0.5 CPU of 0.8 CPU and this session asks for 0.5 CPU");
  });
  it("a release gives the place back, once", () => {
    const release: SessionCommand = {
      type: "session.release-quota",
      data: { scope: "user", owner: "alice", sessionId: "a", reason: "terminated" },
    };
    ledger
      .given([taken("a", 1), taken("b", 2)])
      .when(release)
      .then([
        {
          type: "session.quota-released",
          data: {
            scope: "user",
            owner: "alice",
            sessionId: "a",
            reason: "terminated",
            usage: { sessions: 1, cpuMillis: 500, memoryBytes: 2 ** 30 },
          },
        },
      ]);
    ledger
      .given([
        taken("a", 1),
        {
          type: "session.quota-released",
          data: {
            scope: "user",
            owner: "alice",
            sessionId: "a",
            reason: "x",
            usage: { sessions: 0, cpuMillis: 0, memoryBytes: 0 },
          },
        },
      ])
      .when(release)
      .then([]);
  });
});

describe("a cluster's session ledger", () => {
  const ledger = deciderSpec(decider, { type: "session", id: clusterSessionsId("demo-1") });
  const take = (s: string): SessionCommand => ({
    type: "session.take-quota",
    data: {
      scope: "cluster",
      owner: "demo-1",
      sessionId: s,
      cpuMillis: 500,
      memoryBytes: 2 ** 30,
      limits: {},
    },
  });
  const taken = (s: string, n: number): SessionEvent => ({
    type: "session.quota-taken",
    data: {
      scope: "cluster",
      owner: "demo-1",
      sessionId: s,
      cpuMillis: 500,
      memoryBytes: 2 ** 30,
      limits: {},
      usage: { sessions: n, cpuMillis: 500 * n, memoryBytes: 2 ** 30 * n },
    },
  });
  it("counts every session on the cluster, without limits, each once", () => {
    const many = Array.from({ length: 50 }, (_, i) => taken(`s-${i}`, i + 1));
    ledger
      .given(many)
      .when(take("s-50"))
      .then([taken("s-50", 51)]);
    ledger.given(many).when(take("s-7")).then([]);
  });
});

describe("a Terminated session never runs again (property)", () => {
  const anyCommand: fc.Arbitrary<SessionCommand> = fc.oneof(
    fc.constant(create()),
    fc.constantFrom(
      ...(["session.hibernate", "session.wake", "session.connect", "session.terminate"] as const).map(cmd),
    ),
    fc.constant<SessionCommand>({ type: "session.admit", data: { sessionId, groups: [] } }),
    fc.constant<SessionCommand>({ type: "session.record-running", data: { sessionId, node: "n9" } }),
    fc.constant<SessionCommand>({ type: "session.record-hibernated", data: { sessionId } }),
    fc.constant<SessionCommand>({
      type: "session.record-terminated",
      data: { sessionId, volumeReleased: false },
    }),
    fc.constant<SessionCommand>({ type: "session.record-failure", data: { sessionId, reason: "x" } }),
    fc.constant<SessionCommand>({
      type: "session.record-moved",
      data: { sessionId, fromNode: "a", toNode: "b" },
    }),
    fc.constant<SessionCommand>({ type: "session.idle", data: { sessionId, lastActivityAt: T0 } }),
    fc.constantFrom<SessionCommand>(
      ...(["lifetime", "dormancy", "cluster-deleted"] as const).map(
        (cause): SessionCommand => ({ type: "session.end", data: { sessionId, cause, reason: "x" } }),
      ),
    ),
    fc.constant<SessionCommand>({
      type: "session.refuse",
      data: { sessionId, cause: "failure", code: "conflict", reason: "x" },
    }),
  );
  it("no command sequence, at any time, gets it out of Terminated", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(anyCommand, fc.integer({ min: 0, max: 60 * 86_400 })), { maxLength: 30 }),
        (steps) => {
          let state: SessionState = [...RUNNING, terminating(), terminated]
            .map((e, i) => anEvent(e, i + 1, { type: "session", id: sessionId }))
            .reduce((s, e) => decider.evolve(s, e), decider.initialState());
          let version = 5;
          for (const [command, offset] of steps) {
            const now = new Date(Date.parse(T0) + offset * 1000);
            const d = decider.decide(aCommand(command), state, { now, version });
            if (!Array.isArray(d)) continue;
            for (const e of d) {
              expect(e.type).not.toBe("session.running");
              state = decider.evolve(state, anEvent(e, ++version, { type: "session", id: sessionId }, now));
            }
            expect(state.status).toBe("Terminated");
            expect(isLive(state.status)).toBe(false);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
