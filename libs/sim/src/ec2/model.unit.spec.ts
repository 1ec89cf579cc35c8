import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { REALISTIC_LATENCIES } from "../clock.ts";
import { SimRandom } from "../random.ts";
import type { Ec2Error } from "./errors.ts";
import { compileFilters, decodeToken, encodeToken, INSTANCE_FILTERS, selectPage } from "./filters.ts";
import { Ec2World, type LaunchRequest, TERMINATED_VISIBLE_MS } from "./model.ts";

const R = "eu-west-1";

function world(seed = 1) {
  let now = Date.UTC(2026, 0, 1);
  const w = new Ec2World({ now: () => now, random: new SimRandom(seed), latencies: REALISTIC_LATENCIES });
  const advance = (seconds: number) => {
    now += seconds * 1000;
  };
  return { w, advance, now: () => now };
}

function launch(overrides: Partial<LaunchRequest> = {}): LaunchRequest {
  return {
    imageId: "ami-12345678",
    instanceType: "t3.large",
    count: 1,
    availabilityZone: `${R}a`,
    subnetId: undefined,
    spot: false,
    tags: [],
    securityGroupIds: [],
    keyName: undefined,
    iamInstanceProfile: undefined,
    clientToken: "",
    fingerprint: "",
    ...overrides,
  };
}

const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Ec2Error).code;
  }
  return "no error";
};

describe("instance lifecycle (lazy)", () => {
  it("pending → running exactly when instanceBoot has passed, with runningSince", () => {
    const { w, advance, now } = world();
    const [i] = w.run(R, launch()).instances;
    const launched = now();
    expect(w.settle(i!)).toBe("pending");
    advance(REALISTIC_LATENCIES.instanceBoot - 1);
    expect(w.view(i!).state).toBe("pending");
    expect(w.view(i!).runningSince).toBeUndefined();
    advance(1);
    expect(w.view(i!)).toMatchObject({ state: "running", runningSince: launched + 30_000 });
  });

  it("reading late gives the same history as reading often", () => {
    const a = world();
    const b = world();
    const [ia] = a.w.run(R, launch()).instances;
    const [ib] = b.w.run(R, launch()).instances;
    for (let s = 0; s < 40; s++) {
      a.advance(1);
      a.w.settle(ia!);
    }
    b.advance(40);
    expect(b.w.view(ib!)).toEqual(a.w.view(ia!));
  });

  it("stop → stopped after instanceStop; start → pending → running with a new launch time", () => {
    const { w, advance, now } = world();
    const [i] = w.run(R, launch()).instances;
    advance(30);
    expect(w.stop(R, [i!.id])).toEqual([{ instanceId: i!.id, previous: "running", current: "stopping" }]);
    expect(w.stop(R, [i!.id])).toEqual([{ instanceId: i!.id, previous: "stopping", current: "stopping" }]);
    advance(15);
    expect(w.settle(i!)).toBe("stopped");
    expect(w.start(R, [i!.id])).toEqual([{ instanceId: i!.id, previous: "stopped", current: "pending" }]);
    expect(i!.launchTime).toBe(now());
    advance(30);
    expect(w.view(i!)).toMatchObject({ state: "running", runningSince: now() });
  });

  it("a reboot keeps the instance running and restarts its clock (runningSince)", () => {
    const { w, advance, now } = world();
    const [i] = w.run(R, launch()).instances;
    advance(100);
    const booted = w.view(i!).runningSince;
    w.reboot(R, [i!.id]);
    expect(w.view(i!)).toMatchObject({ state: "running", runningSince: now() });
    expect(now()).toBeGreaterThan(booted!);
  });

  it("refuses impossible transitions for the whole call, changing nothing", () => {
    const { w, advance } = world();
    const [a, b] = w.run(R, launch({ count: 2 })).instances;
    advance(30);
    w.terminate(R, [b!.id]);
    expect(codeOf(() => w.start(R, [a!.id, b!.id]))).toBe("IncorrectInstanceState");
    expect(codeOf(() => w.stop(R, [a!.id, b!.id]))).toBe("IncorrectInstanceState");
    expect(w.settle(a!)).toBe("running");
    expect(codeOf(() => w.terminate(R, [a!.id, "i-0123456789abcdef0"]))).toBe("InvalidInstanceID.NotFound");
    expect(w.settle(a!)).toBe("running");
  });

  it("terminate is idempotent and a terminated instance disappears from lookups after an hour", () => {
    const { w, advance } = world();
    const [i] = w.run(R, launch()).instances;
    expect(w.terminate(R, [i!.id])[0]).toMatchObject({ previous: "pending", current: "shutting-down" });
    advance(10);
    expect(w.terminate(R, [i!.id])[0]).toMatchObject({ previous: "terminated", current: "terminated" });
    advance(TERMINATED_VISIBLE_MS / 1000 - 1);
    expect(w.lookup(R, [i!.id])).toHaveLength(1);
    advance(1);
    expect(codeOf(() => w.lookup(R, [i!.id]))).toBe("InvalidInstanceID.NotFound");
    expect(w.view(i!).state).toBe("terminated");
  });

  it("a spot interruption reclaims the instance at terminationTime, even one still pending", () => {
    const { w, advance } = world();
    const [i] = w.run(R, launch({ spot: true })).instances;
    w.region(R).byId.get(i!.id)!.interruptAt = Date.UTC(2026, 0, 1) + 10_000; // before boot ends
    advance(10);
    expect(w.settle(i!)).toBe("shutting-down");
    expect(i!.phase.reason?.code).toBe("Server.SpotInstanceTermination");
    advance(10);
    expect(w.settle(i!)).toBe("terminated");
  });

  it("notices a running spot instance and reclaims it after spotInterruptionNotice", () => {
    const { w, advance } = world();
    const [i] = w.run(R, launch({ spot: true })).instances;
    advance(30);
    const notice = w.interruptSpot(R, i!.id);
    expect(Date.parse(notice.terminationTime) - Date.parse(notice.noticeTime)).toBe(120_000);
    expect(() => w.interruptSpot(R, i!.id)).toThrow(/already/);
    advance(119);
    expect(w.settle(i!)).toBe("running");
    advance(1);
    expect(w.settle(i!)).toBe("shutting-down");
    expect(w.interruptions()).toEqual([notice]);
    expect(w.interruptions("us-east-1")).toEqual([]);
  });

  it("on-demand instances are not interrupted and spot ones are not stopped", () => {
    const { w } = world();
    const [od] = w.run(R, launch()).instances;
    const [spot] = w.run(R, launch({ spot: true })).instances;
    expect(() => w.interruptSpot(R, od!.id)).toThrow(/on-demand/);
    expect(codeOf(() => w.stop(R, [spot!.id]))).toBe("UnsupportedOperation");
  });
});

describe("ids, lookups and idempotency", () => {
  it("the same seed gives the same ids and addresses; ids look like EC2's", () => {
    const a = world(9).w.run(R, launch({ count: 3 }));
    const b = world(9).w.run(R, launch({ count: 3 }));
    expect(a.instances.map((i) => [i.id, i.privateIpAddress])).toEqual(
      b.instances.map((i) => [i.id, i.privateIpAddress]),
    );
    expect(a.id).toMatch(/^r-[0-9a-f]{17}$/);
    for (const i of a.instances) {
      expect(i.id).toMatch(/^i-[0-9a-f]{17}$/);
      expect(i.privateDnsName).toBe(`ip-${i.privateIpAddress.replaceAll(".", "-")}.${R}.compute.internal`);
    }
    expect(new Set(a.instances.map((i) => i.privateIpAddress)).size).toBe(3);
  });

  it("names every missing id and refuses malformed ones", () => {
    const { w } = world();
    expect(() => w.lookup(R, ["i-0123456789abcdef0", "i-0123456789abcdef1"])).toThrow(
      "The instance IDs 'i-0123456789abcdef0, i-0123456789abcdef1' do not exist",
    );
    expect(codeOf(() => w.lookup(R, ["web-1"]))).toBe("InvalidInstanceID.Malformed");
  });

  it("replays a ClientToken with the same parameters and refuses other parameters", () => {
    const { w, advance } = world();
    const first = w.run(R, launch({ count: 2, clientToken: "t", fingerprint: "f1" }));
    expect(w.replay(R, "t", "f1")).toBe(first);
    expect(w.replay("us-east-1", "t", "f1")).toBeUndefined();
    expect(codeOf(() => w.replay(R, "t", "f2"))).toBe("IdempotentParameterMismatch");
    w.terminate(
      R,
      first.instances.map((i) => i.id),
    );
    advance(10);
    expect(codeOf(() => w.replay(R, "t", "f1"))).toBe("IdempotentInstanceTerminated");
  });

  it("maps a subnet to one zone of its region, stably, unless pinned", () => {
    const { w } = world();
    const z = w.subnetZone(R, "subnet-0abc");
    expect(w.zones(R)).toContain(z);
    expect(w.subnetZone(R, "subnet-0abc")).toBe(z);
    w.pinSubnet("subnet-0abc", `${R}b`);
    expect(w.subnetZone(R, "subnet-0abc")).toBe(`${R}b`);
  });

  it("keeps tags and their index in step when tags are overwritten", () => {
    const { w } = world();
    const [i] = w.run(R, launch({ tags: [["role", "server"]] })).instances;
    w.createTags(R, [i!.id], [["role", "agent"]]);
    const r = w.region(R);
    expect(r.tagIndex.get("role")?.get("server")?.has(i!)).toBe(false);
    expect(r.tagIndex.get("role")?.get("agent")?.has(i!)).toBe(true);
    expect(codeOf(() => w.createTags(R, [i!.id], [["aws:x", "1"]]))).toBe("InvalidParameterValue");
    const many = Array.from({ length: 50 }, (_, n) => [`k${n}`, "v"] as const);
    expect(codeOf(() => w.createTags(R, [i!.id], many))).toBe("TagLimitExceeded");
  });
});

describe("filters and pages", () => {
  it("matches wildcards and refuses unknown filters", () => {
    const { w } = world();
    w.run(R, launch({ count: 2, tags: [["cluster", "c-17"]] }));
    w.run(R, launch({ count: 1, tags: [["cluster", "d-1"]], instanceType: "t3a.large" }));
    const page = (specs: { name: string; values: string[] }[]) =>
      selectPage(
        w,
        w.region(R),
        { filters: compileFilters(specs, INSTANCE_FILTERS), afterSeq: 0, limit: 100 },
        w.now(),
      ).instances.length;
    expect(page([{ name: "tag:cluster", values: ["c-*"] }])).toBe(2);
    expect(page([{ name: "tag:cluster", values: ["?-1*"] }])).toBe(3);
    expect(page([{ name: "instance-type", values: ["t3a.*"] }])).toBe(1);
    expect(page([{ name: "tag-key", values: ["clu*"] }])).toBe(3);
    expect(codeOf(() => compileFilters([{ name: "colour", values: ["red"] }], INSTANCE_FILTERS))).toBe(
      "InvalidParameterValue",
    );
  });

  it("binds a NextToken to the request that made it", () => {
    expect(decodeToken(encodeToken(42, "a"), "a")).toBe(42);
    expect(codeOf(() => decodeToken(encodeToken(42, "a"), "b"))).toBe("InvalidPaginationToken");
    expect(codeOf(() => decodeToken("garbage", "a"))).toBe("InvalidPaginationToken");
  });

  it("an index-narrowed page equals a plain scan of the region (property)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            cluster: fc.constantFrom("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"),
            type: fc.constantFrom("t3.large", "t3a.large", "m6g.large"),
            spot: fc.boolean(),
            terminate: fc.boolean(),
          }),
          { minLength: 1, maxLength: 120 },
        ),
        fc.subarray(["a", "b", "z", "*"], { minLength: 1 }),
        fc.option(fc.constantFrom("t3.large", "t3*"), { nil: undefined }),
        fc.option(fc.constantFrom("running", "terminated"), { nil: undefined }),
        fc.integer({ min: 1, max: 6 }),
        (specs, clusters, type, state, limit) => {
          const { w, advance } = world();
          for (const s of specs) {
            const [i] = w.run(
              R,
              launch({ instanceType: s.type, spot: s.spot, tags: [["cluster", s.cluster]] }),
            ).instances;
            if (s.terminate) w.terminate(R, [i!.id]);
          }
          advance(60);
          const filters = compileFilters(
            [
              { name: "tag:cluster", values: clusters },
              ...(type ? [{ name: "instance-type", values: [type] }] : []),
              ...(state ? [{ name: "instance-state-name", values: [state] }] : []),
            ],
            INSTANCE_FILTERS,
          );
          const r = w.region(R);
          const expected = r.ordered
            .filter((i) => filters.every((f) => f.test(i, w.settle(i))))
            .map((i) => i.id);
          const got: string[] = [];
          let afterSeq = 0;
          for (let pages = 0; pages <= specs.length; pages++) {
            const page = selectPage(w, r, { filters, afterSeq, limit }, w.now());
            got.push(...page.instances.map((i) => i.id));
            if (!page.more) break;
            afterSeq = page.instances.at(-1)!.seq;
          }
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });
});
