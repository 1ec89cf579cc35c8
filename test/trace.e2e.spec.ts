/**
 * One trace, end to end (issue 14): the services export their spans over OTLP/HTTP to a
 * receiver the test runs, exactly as they would to a collector or Jaeger. A cluster created
 * through the API and brought to Ready on the sim must show, under the one trace id the API
 * answered with: the publisher, the provisioner's decisions, the installer, node-ops, the
 * projector writing the read model, and a client span for each outside system (EC2, SSM,
 * Kubernetes), each saying which aggregate and which command it was for — one tree, with
 * every span's parent in it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommand, reached } from "./harness/lifecycle.ts";
import { type OtlpReceiver, type ReceivedSpan, SpanKindNumber, startOtlpReceiver } from "./harness/otlp.ts";
import { REGION, type Stack, startStack, until } from "./harness/stack.ts";

const JAEGER = "http://jaeger.test:16686";
const CLUSTER = "trace-1";

let receiver: OtlpReceiver;
let stack: Stack;
let traceId: string;
let commandId: string;
/** The trace's spans once the projector has written the cluster's Ready. */
let spans: ReceivedSpan[];

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  stack = await startStack({
    timeScale: 100,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // Spans leave each process within 200 ms, not the SDK's 5 s.
      OTEL_BSP_SCHEDULE_DELAY: "200",
      JAEGER_UI_URL: JAEGER,
    },
  });
  const sent = await stack.post(createCommand(CLUSTER, 1));
  commandId = sent.commandId;
  traceId = sent.traceId ?? "";
  await reached(stack, CLUSTER, commandId);
  // The read model has it once the projector's span of the `cluster.ready` commit is in.
  const inTrace = () => receiver.spans().filter((s) => s.traceId === traceId);
  await until(stack, "the projector's span of cluster.ready in the trace", () =>
    inTrace().some(
      (s) =>
        s.service === "projector" &&
        s.name === "project evt.cluster.{id}" &&
        String(s.attributes["cairn.event.types"]).includes("cluster.ready"),
    ),
  );
  // Everything that led to it had ended by then; each process exports what ended within
  // 200 ms (OTEL_BSP_SCHEDULE_DELAY), so after a few periods its spans are all in. The trace
  // is taken once every span's parent is in too (a span still open a moment ago, a reaction
  // around calls that ended first, is exported when it ends).
  await new Promise((r) => setTimeout(r, 1_000));
  spans = await until(stack, "every parent in the trace", () => {
    const now = inTrace();
    const ids = new Set(now.map((s) => s.spanId));
    return now.every((s) => !s.parentSpanId || ids.has(s.parentSpanId)) ? now : undefined;
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await receiver?.close();
});

const attr = (s: ReceivedSpan, key: string) => s.attributes[key];
const describeSpan = (s: ReceivedSpan) => `${s.service}: ${s.name} ${JSON.stringify(s.attributes)}`;

/** The span's ancestors within the trace, nearest first. */
function ancestors(s: ReceivedSpan, all: readonly ReceivedSpan[]): ReceivedSpan[] {
  const byId = new Map(all.map((x) => [x.spanId, x]));
  const out: ReceivedSpan[] = [];
  for (let p = s.parentSpanId && byId.get(s.parentSpanId); p; p = p.parentSpanId && byId.get(p.parentSpanId))
    out.push(p);
  return out;
}

describe("one trace from the publisher to the read model", () => {
  it("the API answered with the trace id, and every service's spans carry it", () => {
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(receiver.problems()).toEqual([]);
    const services = new Set(spans.map((s) => s.service));
    // (The idle-detector follows clusters too: it may have a span in it, or not.)
    expect([...services]).toEqual(
      expect.arrayContaining(["installer", "node-ops", "projector", "provisioner"]),
    );
  });

  it("is one tree: a single root (the publisher's send) and every other span's parent in the trace", () => {
    const ids = new Set(spans.map((s) => s.spanId));
    expect(spans.filter((s) => s.parentSpanId && !ids.has(s.parentSpanId)).map(describeSpan)).toEqual([]);
    const roots = spans.filter((s) => !s.parentSpanId);
    expect(roots.map(describeSpan)).toHaveLength(1);
    const root = roots[0]!;
    expect(root).toMatchObject({ service: "projector", name: "send cmd.cluster.create" });
    expect(root.kind).toBe(SpanKindNumber.producer);
    expect(attr(root, "cairn.command.id")).toBe(commandId);
  });

  it("every span names the cluster and the command that started it all; none is a reactor ignoring a commit", () => {
    // The cluster, its install and its kube facts share the cluster's id; each chain of
    // commands carries the creating command as its correlation.
    const unnamed = spans.filter(
      (s) => attr(s, "cairn.aggregate.id") !== CLUSTER || attr(s, "cairn.correlation.id") !== commandId,
    );
    expect(unnamed.map(describeSpan)).toEqual([]);
    // Decisions, reactions and projections say which command they were about.
    const work = spans.filter((s) => /^(process|publish|project|send) /.test(s.name));
    expect(work.filter((s) => typeof attr(s, "cairn.command.id") !== "string").map(describeSpan)).toEqual([]);
  });

  it("the provisioner's decision on the command names the cluster and the command", () => {
    const decided = spans.find((s) => s.service === "provisioner" && s.name === "process cmd.cluster.create");
    expect(decided, spans.map(describeSpan).join("\n")).toBeDefined();
    expect(decided!.attributes).toMatchObject({
      "cairn.aggregate.type": "cluster",
      "cairn.aggregate.id": CLUSTER,
      "cairn.command.id": commandId,
      "cairn.command.type": "cluster.create",
    });
    const published = spans.filter(
      (s) => s.service === "provisioner" && s.name === "publish evt.cluster.{id}",
    );
    expect(published.length).toBeGreaterThan(1);
    for (const p of published) expect(attr(p, "cairn.aggregate.id")).toBe(CLUSTER);
  });

  it("the installer and node-ops took part, in the cluster's trace", () => {
    const installer = spans.filter((s) => s.service === "installer" && s.name === "publish evt.install.{id}");
    expect(installer.length).toBeGreaterThan(0);
    expect(installer.every((s) => attr(s, "cairn.aggregate.id") === CLUSTER)).toBe(true);
    const nodeOps = spans.filter((s) => s.service === "node-ops");
    expect(nodeOps.map((s) => s.name)).toEqual(
      expect.arrayContaining(["list nodes", "record kube.observe-node-list"]),
    );
  });

  it("EC2, SSM and Kubernetes calls each have client spans, children of the reaction that made them", () => {
    const clients = spans.filter((s) => s.kind === SpanKindNumber.client);
    const ec2 = clients.filter((s) => attr(s, "rpc.service") === "EC2");
    const ssm = clients.filter((s) => attr(s, "rpc.service") === "SSM");
    const kube = clients.filter((s) => attr(s, "k8s.cluster.name") === CLUSTER);
    expect(ec2.map((s) => s.name)).toContain("EC2.RunInstances");
    expect(ssm.map((s) => s.name)).toContain("SSM.SendCommand");
    expect(kube.map((s) => s.name)).toContain("GET /api/v1/nodes");

    const launch = ec2.find((s) => s.name === "EC2.RunInstances")!;
    expect(launch.service).toBe("provisioner");
    expect(launch.attributes).toMatchObject({
      "rpc.system": "aws-api",
      "rpc.method": "RunInstances",
      "cloud.region": REGION,
      "http.response.status_code": 200,
      "cairn.aggregate.id": CLUSTER,
      "cairn.correlation.id": commandId,
    });
    expect(attr(launch, "aws.request_id")).toEqual(expect.any(String));
    expect(attr(launch, "cairn.command.id")).toEqual(expect.any(String));
    // Its parent is the provisioner's reaction to the cluster's event (the context followed every await).
    expect(ancestors(launch, spans)[0]).toMatchObject({
      service: "provisioner",
      name: "process evt.cluster.{id}",
    });

    const send = ssm.find((s) => s.name === "SSM.SendCommand")!;
    expect(send.service).toBe("installer");
    expect(send.attributes).toMatchObject({
      "rpc.system": "aws-api",
      "rpc.method": "SendCommand",
      "cloud.region": REGION,
      "cairn.aggregate.id": CLUSTER,
    });
    expect(attr(send, "cairn.command.id")).toEqual(expect.any(String));
    expect(
      ancestors(send, spans).some((a) => a.service === "installer" && a.name.startsWith("process evt.")),
    ).toBe(true);

    const list = kube.find((s) => s.name === "GET /api/v1/nodes")!;
    expect(list.service).toBe("node-ops");
    expect(list.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.response.status_code": 200,
      "server.address": "127.0.0.1",
      "cairn.aggregate.id": CLUSTER,
      "cairn.correlation.id": commandId,
    });
    expect(String(attr(list, "url.full"))).toMatch(new RegExp(`^${stack.simUrl}/.+/api/v1/nodes`));
    expect(ancestors(list, spans)[0]).toMatchObject({ service: "node-ops", name: "list nodes" });
    // node-ops read the cluster's kubeconfig from SSM in the same trace.
    expect(
      ssm.some(
        (s) =>
          s.service === "node-ops" &&
          s.name === "SSM.GetParameter" &&
          attr(s, "cairn.aggregate.id") === CLUSTER,
      ),
    ).toBe(true);
  });

  it("the projector's write of each commit continues the commit's publish span", () => {
    const projected = spans.filter((s) => s.service === "projector" && s.name.startsWith("project evt."));
    const types = projected.flatMap((s) => String(attr(s, "cairn.event.types")).split(","));
    expect(types).toEqual(
      expect.arrayContaining(["cluster.requested", "install.completed", "kube.node-ready", "cluster.ready"]),
    );
    for (const p of projected) {
      expect(p.kind).toBe(SpanKindNumber.consumer);
      const parent = ancestors(p, spans)[0];
      expect(parent?.name, describeSpan(p)).toMatch(/^publish evt\./);
      expect(attr(p, "cairn.stream.sequence")).toEqual(expect.any(Number));
      // Linked to the batch that applied it (a span of the projector's own, in another trace).
      expect(p.links.length).toBe(1);
      expect(p.links[0]!.traceId).not.toBe(traceId);
    }
    const ready = projected.find((s) => String(attr(s, "cairn.event.types")).includes("cluster.ready"))!;
    expect(ready.attributes).toMatchObject({
      "cairn.aggregate.id": CLUSTER,
      "cairn.correlation.id": commandId,
    });
  });

  it("GET /traces/:traceId names the Jaeger link and the trace's events", async () => {
    const r = await stack.get(`/traces/${traceId}`);
    expect(r.status).toBe(200);
    expect(r.body.jaegerUrl).toBe(`${JAEGER}/trace/${traceId}`);
    const items = r.body.items as { type: string; aggregate: { id: string } }[];
    expect(items.map((e) => e.type)).toEqual(expect.arrayContaining(["cluster.requested", "cluster.ready"]));
    const cluster = await stack.get(`/clusters/${CLUSTER}`);
    expect(cluster.body).toMatchObject({ traceId, jaegerUrl: `${JAEGER}/trace/${traceId}` });
  });

  it("nothing crashed", () => {
    expect(stack.crashes()).toEqual([]);
  });
});
