import { describe, expect, it } from "vitest";
import { sessionEvents } from "./session.ts";
import {
  isLiveSession,
  SESSION_TRANSITIONS,
  sessionStatusAfter,
  sessionTransition,
} from "./session-lifecycle.ts";

const walk = (...types: string[]) =>
  types.reduce<ReturnType<typeof sessionStatusAfter>>(
    (s, type) => sessionStatusAfter(s, { type }),
    undefined,
  );

describe("session lifecycle (shared by the idle-detector and the projector)", () => {
  it("names every session event of the catalogue", () => {
    expect(Object.keys(SESSION_TRANSITIONS).sort()).toEqual(sessionEvents.map((d) => d.type).sort());
  });

  it("a session comes into being only by session.requested", () => {
    expect(sessionTransition(undefined, { type: "session.running" })).toBeUndefined();
    expect(sessionTransition(undefined, { type: "session.quota-taken" })).toBeUndefined();
    expect(sessionTransition(undefined, { type: "session.requested" })).toBe("Pending");
  });

  it("create → Running → hibernate → wake → Running → terminate", () => {
    expect(walk("session.requested", "session.admitted", "session.running")).toBe("Running");
    expect(walk("session.requested", "session.admitted", "session.running", "session.idled")).toBe("Running");
    expect(
      walk(
        "session.requested",
        "session.admitted",
        "session.running",
        "session.hibernating",
        "session.hibernated",
      ),
    ).toBe("Hibernated");
    expect(
      walk(
        "session.requested",
        "session.admitted",
        "session.running",
        "session.hibernating",
        "session.wake-requested",
      ),
    ).toBe("Hibernating");
    expect(walk("session.requested", "session.admitted", "session.running", "session.moved")).toBe("Running");
    expect(
      walk(
        "session.requested",
        "session.admitted",
        "session.running",
        "session.terminating",
        "session.terminated",
      ),
    ).toBe("Terminated");
  });

  it("a refused create ends Failed; rejections and unknown events move nothing", () => {
    expect(walk("session.requested", "session.rejected", "session.failed")).toBe("Failed");
    expect(sessionStatusAfter("Running", { type: "session.rejected" })).toBe("Running");
    expect(sessionStatusAfter("Running", { type: "session.from-the-future" })).toBe("Running");
  });

  it("live means neither Terminated nor Failed", () => {
    expect(isLiveSession("Hibernated")).toBe(true);
    expect(isLiveSession("Terminating")).toBe(true);
    expect(isLiveSession("Terminated")).toBe(false);
    expect(isLiveSession("Failed")).toBe(false);
    expect(isLiveSession(undefined)).toBe(false);
  });
});
