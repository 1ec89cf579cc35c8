import { clusterSpec, exampleClusterCreate, proportionalPollDelay } from "@cairn/events";
import { describe, expect, it } from "vitest";
import type { ClusterState, Slot } from "./decider.ts";
import { FIRST_BOOT_POLL_MS, launchedSlots } from "./reactor.ts";

// The reactor's polls of a booting instance on AWS: `proportionalPollDelay` with the first
// look at FIRST_BOOT_POLL_MS, then within [pollMs, maxPollMs] (defaults 1 s and 15 s).
const boot = { firstMs: FIRST_BOOT_POLL_MS, minMs: 1_000, maxMs: 15_000 };

describe("when a launched instance is looked at again", () => {
  it("not before the first look: no instance runs sooner", () => {
    expect(proportionalPollDelay(0, boot)).toBe(10_000);
    expect(proportionalPollDelay(4_000, boot)).toBe(6_000);
  });
  it("then every 5% of the time waited, within [pollMs, maxPollMs]", () => {
    expect(proportionalPollDelay(10_000, boot)).toBe(1_000);
    expect(proportionalPollDelay(40_000, boot)).toBe(2_000);
    expect(proportionalPollDelay(3_600_000, { ...boot, firstMs: 0 })).toBe(15_000);
  });
});

describe("the slots a boot poll asks about (launchedSlots)", () => {
  const slot = (n: number, status: Slot["status"], instanceId?: string): Slot => ({
    slot: n,
    pool: n === 0 ? "servers" : "workers",
    ordinal: n % 1000,
    role: n === 0 ? "server" : "agent",
    attempt: 1,
    placement: { instanceType: "t3.large", availabilityZone: undefined, capacityType: "on-demand" },
    failed: [],
    status,
    ...(instanceId ? { instanceId } : {}),
  });
  const spec = clusterSpec.parse(exampleClusterCreate("demo-1").data);
  const state = (slots: Slot[]): Exclude<ClusterState, { status: "Absent" }> => ({
    status: "Provisioning",
    spec,
    specHistory: [],
    provisioned: true,
    slots: Object.fromEntries(slots.map((s) => [s.slot, s])),
    attempts: {},
  });

  it("are those launched with an instance and not running yet, each found by its instance", () => {
    const s = state([
      slot(0, "running", "i-0"),
      slot(1000, "launched", "i-1000"),
      slot(1001, "launching"),
      slot(1002, "launched", "i-1002"),
      slot(1003, "terminating", "i-1003"),
    ]);
    const l = launchedSlots(s);
    expect(l.ids).toEqual(["i-1000", "i-1002"]);
    expect(l.byInstance.get("i-1002")?.slot).toBe(1002);
    expect(l.byInstance.has("i-0")).toBe(false);
  });
  it("are listed once per state: a commit's events, which share the state, share the list", () => {
    const s = state([slot(1000, "launched", "i-1000")]);
    expect(launchedSlots(s)).toBe(launchedSlots(s));
    // A newer state (another commit) is listed anew.
    const t = state([slot(1000, "running", "i-1000")]);
    expect(launchedSlots(t).ids).toEqual([]);
  });
});
