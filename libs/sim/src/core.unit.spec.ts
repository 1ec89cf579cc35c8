import { describe, expect, it } from "vitest";
import { signedRegion } from "./aws.ts";
import { SimClock } from "./clock.ts";
import { FaultRegistry } from "./faults.ts";
import { SimRandom } from "./random.ts";
import { RequestLog } from "./request-log.ts";

describe("SimClock", () => {
  it("runs timeScale times faster than wall time and jumps forward on advance", async () => {
    const fast = new SimClock({ timeScale: 1000, start: 0 });
    const t0 = fast.now();
    await new Promise((r) => setTimeout(r, 20));
    expect(fast.now() - t0).toBeGreaterThanOrEqual(15_000);
    const slow = new SimClock({ timeScale: 1, start: 0 });
    const before = slow.now();
    slow.advance(60_000);
    expect(slow.now() - before).toBeGreaterThanOrEqual(60_000);
    expect(() => slow.advance(-1)).toThrow(/never goes back/);
    expect(slow.realMs(1000)).toBe(1000);
    expect(fast.realMs(1000)).toBe(1);
  });
  it("holds time at a call's date while it acts, keeps a jump it makes, and lets a replay's freeze stand", () => {
    const clock = new SimClock({ timeScale: 1_000_000, start: 0 });
    const t = clock.now();
    const seen = clock.heldAt(t, () => {
      const spin = performance.now() + 2; // 2 ms of wall time: 2,000 sim s at this scale
      while (performance.now() < spin);
      const held = clock.now();
      clock.advance(5_000);
      return [held, clock.now()];
    });
    expect(seen).toEqual([t, t + 5_000]);
    expect(clock.now()).toBeGreaterThan(t + 5_000 + 1_000_000); // moving again, the jump kept

    clock.freezeAt(clock.now() + 1); // a replay: time stands at its entry
    const entry = clock.now();
    clock.heldAt(entry, () => clock.advance(7_000));
    expect(clock.now()).toBe(entry + 7_000);
  });
  it("refuses a non-positive scale", () => {
    expect(() => new SimClock({ timeScale: 0 })).toThrow(/timeScale/);
  });
});

describe("SimRandom", () => {
  it("is deterministic for a seed and differs across seeds", () => {
    const a = new SimRandom(42);
    const b = new SimRandom(42);
    const c = new SimRandom(43);
    const draw = (r: SimRandom) => [r.hex(17), r.uuid(), r.int(1, 6)];
    const first = draw(a);
    expect(draw(b)).toEqual(first);
    expect(draw(c)).not.toEqual(first);
    expect(first[0]).toMatch(/^[0-9a-f]{17}$/);
    expect(first[1]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe("FaultRegistry", () => {
  const registry = () => new FaultRegistry(new SimRandom(1), () => 1_000);
  const q = {
    service: "ec2" as const,
    action: "RunInstances",
    region: "eu-west-1",
    facts: { instanceType: "t3.large" },
  };

  it("a counted rule hits the next N matching calls, then is used up", () => {
    const f = registry();
    f.add({ kind: "throttle", service: "ec2", count: 2 });
    expect(f.take(q, ["throttle"])?.kind).toBe("throttle");
    expect(f.take(q, ["throttle"])?.kind).toBe("throttle");
    expect(f.take(q, ["throttle"])).toBeUndefined();
    expect(f.list()).toHaveLength(0);
  });
  it("matches service, action, region, kind and facts", () => {
    const f = registry();
    f.add({
      kind: "insufficient-capacity",
      action: "RunInstances",
      match: { instanceType: "t3.large" },
      count: 5,
    });
    expect(f.take({ ...q, facts: { instanceType: "t3a.large" } }, ["insufficient-capacity"])).toBeUndefined();
    expect(f.take({ ...q, service: "ssm" }, ["throttle"])).toBeUndefined();
    expect(f.take(q, ["insufficient-capacity"])?.kind).toBe("insufficient-capacity");
    f.add({ kind: "throttle", region: "us-east-1", count: 1 });
    expect(f.take(q, ["throttle"])).toBeUndefined();
  });
  it("a rate rule draws from the seeded PRNG: about that share of calls, the same calls for the same seed", () => {
    const run = () => {
      const f = registry();
      f.add({ kind: "throttle", rate: 0.3 });
      return Array.from({ length: 1000 }, () => (f.take(q, ["throttle"]) ? 1 : 0));
    };
    const hits = run();
    const share = hits.reduce<number>((a, b) => a + b, 0) / hits.length;
    expect(share).toBeGreaterThan(0.25);
    expect(share).toBeLessThan(0.35);
    expect(run()).toEqual(hits);
  });
  it("a rule past its `until` no longer applies", () => {
    const f = registry();
    f.add({ kind: "kube-down", rate: 1, until: 500 });
    expect(f.take({ service: "kube", action: "list" }, ["kube-down"])).toBeUndefined();
  });
  it("refuses a rule with neither count nor rate, or a bad rate", () => {
    expect(() => registry().add({ kind: "throttle" })).toThrow(/count.*rate/);
    expect(() => registry().add({ kind: "throttle", rate: 2 })).toThrow(/probability/);
  });
});

describe("RequestLog", () => {
  it("filters by service, region and action", () => {
    const log = new RequestLog();
    log.record({
      time: "t",
      service: "ec2",
      region: "eu-west-1",
      action: "RunInstances",
      ids: ["i-1"],
      status: 200,
    });
    log.record({
      time: "t",
      service: "ssm",
      region: "eu-west-1",
      action: "SendCommand",
      ids: [],
      status: 400,
      error: "InvalidInstanceId",
    });
    log.record({
      time: "t",
      service: "ec2",
      region: "us-east-1",
      action: "DescribeInstances",
      ids: [],
      status: 200,
    });
    expect(log.list({ region: "eu-west-1" }).map((e) => e.action)).toEqual(["RunInstances", "SendCommand"]);
    expect(log.list({ service: "ec2" }).map((e) => e.seq)).toEqual([1, 3]);
  });
});

describe("signedRegion", () => {
  it("reads the region from a SigV4 Authorization header", () => {
    const req = {
      headers: {
        authorization:
          "AWS4-HMAC-SHA256 Credential=SIMACCESSKEY/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc",
      },
    };
    expect(signedRegion(req as never)).toBe("eu-west-1");
    expect(signedRegion({ headers: {} } as never)).toBeUndefined();
  });
});
