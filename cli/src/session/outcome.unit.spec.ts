import { describe, expect, it } from "vitest";
import { sessionVerdict } from "./outcome.ts";
import type { SessionView } from "./view.ts";

const view = (over: Partial<SessionView> = {}): SessionView => ({
  id: "s-1",
  user: "alice",
  clusterId: "demo-1",
  state: "Starting",
  template: { image: "i", cpu: "1", memory: "1Gi", storage: "1Gi" },
  idleTimeoutSeconds: 1800,
  node: null,
  cause: "user",
  lastActivity: null,
  idleInSeconds: null,
  wakeLatencyMs: null,
  failure: null,
  rejection: null,
  traceId: null,
  createdAt: "2025-01-31T12:00:00Z",
  updatedAt: "2025-01-31T12:00:00Z",
  ...over,
});

describe("what --wait makes of a session", () => {
  it("done once it is in the goal state", () => {
    const v = view({ state: "Running" });
    expect(sessionVerdict("Running", v)).toEqual({ kind: "done", view: v });
  });

  it("waiting on its way, with a hint that names the service to look at", () => {
    expect(sessionVerdict("Running", view({ state: "Pending" }))).toMatchObject({
      kind: "waiting",
      state: "Pending",
      hint: expect.stringContaining("idle-detector"),
    });
    expect(sessionVerdict("Hibernated", view({ state: "Hibernating" }))).toMatchObject({
      kind: "waiting",
      hint: expect.stringContaining("node-ops"),
    });
  });

  it("failed when its command was refused, by the command's outcome or the session's last rejection", () => {
    expect(
      sessionVerdict("Hibernated", view({ state: "Starting" }), {
        commandId: "c1",
        status: "rejected",
        code: "conflict",
        reason: "session s-1 is Starting: only a Running session can hibernate",
      }),
    ).toEqual({
      kind: "failed",
      message: "session/s-1: refused: session s-1 is Starting: only a Running session can hibernate",
      hint: "see where it stands: `cairn session get s-1`",
    });
    const rejected = view({
      state: "Failed",
      rejection: { commandId: "c1", commandType: "session.create", code: "over-quota", reason: "over quota" },
    });
    expect(sessionVerdict("Running", rejected, undefined, "c1")).toMatchObject({
      kind: "failed",
      message: "session/s-1: refused: over quota",
      hint: expect.stringContaining("raise the quota"),
    });
    // The hint follows the refused command's type, whichever of the two is read first.
    const notFound = { code: "not-found", reason: "no such cluster: nope" };
    expect(
      sessionVerdict("Running", view({ state: "Failed" }), {
        commandId: "c1",
        type: "session.create",
        status: "rejected",
        ...notFound,
      }),
    ).toMatchObject({ kind: "failed", hint: "check the cluster's id (`cairn cluster list`)" });
    expect(
      sessionVerdict(
        "Running",
        view({ state: "Failed", rejection: { commandId: "c1", commandType: "session.create", ...notFound } }),
        undefined,
        "c1",
      ),
    ).toMatchObject({ kind: "failed", hint: "check the cluster's id (`cairn cluster list`)" });
  });

  it("another command's rejection is not this one's", () => {
    const v = view({
      state: "Running",
      rejection: { commandId: "old", commandType: "session.wake", code: "conflict", reason: "no" },
    });
    expect(
      sessionVerdict(
        "Running",
        { ...v, sequence: 9 },
        { commandId: "c2", status: "accepted", sequence: 8 },
        "c2",
      ),
    ).toMatchObject({ kind: "done" });
  });

  it("failed with the failure's reason and remediation when the session Fails", () => {
    const v = view({
      state: "Failed",
      failure: { reason: "no node has 64 CPUs free", remediation: "ask for less CPU", cause: "failure" },
    });
    expect(sessionVerdict("Running", v)).toEqual({
      kind: "failed",
      message: "session/s-1 Failed: no node has 64 CPUs free",
      hint: "ask for less CPU",
    });
  });

  it("failed when it ends before reaching a live goal; a terminate waits through Terminating", () => {
    expect(sessionVerdict("Running", view({ state: "Terminated", cause: "lifetime" }))).toMatchObject({
      kind: "failed",
      message: "session/s-1 is Terminated (cause: lifetime): it will not be Running",
    });
    expect(sessionVerdict("Terminated", view({ state: "Terminating" }))).toMatchObject({ kind: "waiting" });
  });

  it("a followed command counts only once the view has folded its commit, or it went unanswered (a no-op)", () => {
    // Running, hibernate sent, then at once wake --wait: the view read before the hibernation
    // was projected still says Running, which is the wake's goal.
    const wake = { commandId: "w", status: "accepted" as const, sequence: 20 };
    const stale = view({ state: "Running", sequence: 12 });
    expect(sessionVerdict("Running", stale, wake, "w")).toMatchObject({
      kind: "waiting",
      state: "Running (command not shown by the read model yet)",
    });
    expect(sessionVerdict("Running", stale, undefined, "w")).toMatchObject({
      kind: "waiting",
      state: "Running (command not taken yet)",
    });
    expect(sessionVerdict("Running", view({ state: "Waking", sequence: 20 }), wake, "w")).toMatchObject({
      kind: "waiting",
      state: "Waking",
    });
    const woke = view({ state: "Running", sequence: 23 });
    expect(sessionVerdict("Running", woke, wake, "w")).toEqual({ kind: "done", view: woke });
    // A connect to a Running session changes nothing and is never answered.
    expect(sessionVerdict("Running", stale, undefined, "w", { unanswered: true })).toEqual({
      kind: "done",
      view: stale,
    });
  });
});
