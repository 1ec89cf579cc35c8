import { describe, expect, it } from "vitest";
import { fullJitterBackoff } from "./delays.ts";
import { isTokenSafe, nodeAggregateId, parseNodeAggregateId } from "./ids.ts";
import {
  commandFilter,
  commandSubject,
  dlqSubject,
  eventFilter,
  eventSubject,
  heartbeatSessionId,
  heartbeatSubject,
  parseEventSubject,
} from "./subjects.ts";
import { subjectTemplate } from "./trace.ts";

describe("subjects", () => {
  it("builds the contract's subjects", () => {
    expect(commandSubject("cluster.create")).toBe("cmd.cluster.create");
    expect(commandFilter("cluster")).toBe("cmd.cluster.>");
    expect(eventSubject({ type: "cluster", id: "demo-1" })).toBe("evt.cluster.demo-1");
    expect(eventFilter("cluster")).toBe("evt.cluster.*");
    expect(eventFilter()).toBe("evt.>");
    expect(dlqSubject("CMD")).toBe("dlq.CMD");
    expect(subjectTemplate("evt.cluster.demo-1")).toBe("evt.cluster.{id}");
    expect(parseEventSubject("evt.cluster.demo-1")).toEqual({ type: "cluster", id: "demo-1" });
  });
  it("refuses ids that would break a subject", () => {
    for (const bad of ["a.b", "a*", "a>", "a b", "", "-a"]) {
      expect(isTokenSafe(bad)).toBe(false);
      expect(() => eventSubject({ type: "cluster", id: bad })).toThrow(/aggregate id/);
    }
    expect(() => commandSubject("cluster")).toThrow(/<aggregate>.<verb>/);
  });
  it("maps node names to token-safe aggregate ids and back", () => {
    const id = nodeAggregateId("demo-1", "ip-10-0-1-5.eu-west-1.compute.internal");
    expect(isTokenSafe(id)).toBe(true);
    expect(parseNodeAggregateId(id)).toEqual({
      clusterId: "demo-1",
      node: "ip-10-0-1-5.eu-west-1.compute.internal",
    });
  });
});

describe("backoff", () => {
  it("grows exponentially under a cap, with full jitter", () => {
    const top = fullJitterBackoff(500, 30_000, () => 0.999_999);
    expect(top(1)).toBe(499);
    expect(top(3)).toBe(1_999);
    expect(top(20)).toBe(29_999);
    expect(fullJitterBackoff(500, 30_000, () => 0)(5)).toBe(0);
  });
});

describe("heartbeat subjects", () => {
  it("hb.session.<id>, and back", () => {
    expect(heartbeatSubject("s-1")).toBe("hb.session.s-1");
    expect(heartbeatSessionId(heartbeatSubject("s-1"))).toBe("s-1");
  });
});

describe("natsServers", () => {
  it("takes credentials out of the URL and never shows them", async () => {
    const { natsServers } = await import("./connection.ts");
    expect(
      natsServers("nats://provisioner:s3cret@nats-1:4222,nats://provisioner:s3cret@nats-2:4222"),
    ).toEqual({
      servers: ["nats://nats-1:4222", "nats://nats-2:4222"],
      user: "provisioner",
      pass: "s3cret",
      display: "nats://nats-1:4222,nats://nats-2:4222",
    });
    expect(natsServers("127.0.0.1:4222")).toEqual({
      servers: ["nats://127.0.0.1:4222"],
      display: "nats://127.0.0.1:4222",
    });
  });
});
