/**
 * DESIGN §4 for sessions, on real NATS with a real tracer: every event of a session's
 * life carries the trace its create started (through the reactor, node-ops — here the
 * workload stand-in, which carries the trace as node-ops' runtime does — and back), and
 * an idle sweep's decision starts its own trace, linked to the session's.
 */
import { CommandBus, catalogue, EventStore, traceIdOf, tracer } from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  until,
  useTestTracing,
} from "@cairn/events/testing";
import { context, trace } from "@opentelemetry/api";
import { expect, it } from "vitest";
import { startIdleDetector } from "../idle-detector.ts";
import { startWorkloadStandIn } from "../testing/workload-stand-in.ts";

useTestTracing();

it("a session's events carry its create's trace; the sweep's decision has its own, linked", async () => {
  const js = await startJetStream();
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  const standIn = await startWorkloadStandIn(js.nats, { podReadyMs: 50 });
  const d = await startIdleDetector({
    nats: js.nats,
    sweepIntervalMs: 200,
    policy: { defaultIdleTimeoutSeconds: 1, idleGraceSeconds: 1 },
  });
  try {
    await recordClusterRequested(store, "demo-1");
    await appendAsOwner(store, { type: "cluster", id: "demo-1" }, "cluster.ready", {
      nodes: 1,
      k3sVersion: "v1.31.4+k3s1",
    });
    const span = tracer().startSpan("test: create a session");
    const sent = await context.with(trace.setSpan(context.active(), span), () =>
      new CommandBus({ js: js.nats.js, catalogue }).send({
        type: "session.create",
        data: {
          sessionId: "s-t",
          user: "alice",
          clusterId: "demo-1",
          template: { image: "ide:1", cpu: "1", memory: "1Gi", storage: "1Gi" },
        },
      }),
    );
    span.end();
    expect(sent.traceId).toBeDefined();
    await until(
      "Hibernated",
      async () => (await d.handler.read({ type: "session", id: "s-t" })).state.status === "Hibernated",
      20_000,
    );
    const events = (await store.load({ type: "session", id: "s-t" })).events;
    const traceOf = (type: string) => traceIdOf(events.find((e) => e.type === type)?.meta.traceparent);
    for (const type of ["session.requested", "session.admitted", "session.running"])
      expect(traceOf(type), type).toBe(sent.traceId);
    const idled = events.find((e) => e.type === "session.idled")!;
    expect(traceIdOf(idled.meta.traceparent)).toBeDefined();
    expect(traceIdOf(idled.meta.traceparent)).not.toBe(sent.traceId);
    expect((idled.meta.links ?? []).map(traceIdOf)).toContain(sent.traceId);
    // What follows the sweep's decision is in the sweep's trace.
    expect(traceOf("session.hibernated")).toBe(traceIdOf(idled.meta.traceparent));
  } finally {
    await d.stop();
    await standIn.stop();
    await js.dispose();
  }
}, 30_000);
