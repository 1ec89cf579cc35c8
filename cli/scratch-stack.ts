import { catalogue, EventStore } from "@cairn/events";
import { appendAsOwner, recordClusterRequested, startJetStream } from "@cairn/events/testing";
import { startIdleDetector } from "@cairn/idle-detector";
import { kubeconfigParameter, startNodeOps } from "@cairn/node-ops";
import { startProjector } from "@cairn/projector";
import { SIM_CREDENTIALS, startSim } from "@cairn/sim";
import { createTestDatabase } from "@cairn/testkit";

const js = await startJetStream();
const database = await createTestDatabase("cli_scratch");
const sim = await startSim({ seed: 7, timeScale: Number(process.env.SCALE ?? 5) });
const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
const { region } = await recordClusterRequested(store, "demo-1");
await appendAsOwner(store, { type: "cluster", id: "demo-1" }, "cluster.ready", {
  nodes: 2,
  k3sVersion: "v1.31.4+k3s1",
});
sim.world.kube.ensureCluster("demo-1");
for (const name of ["agent-a", "agent-b"])
  sim.world.kube.registerNode("demo-1", { name, role: "agent", labels: {}, taints: [] });
sim.world.ssm.putParameter(region, kubeconfigParameter("demo-1"), sim.world.kube.kubeconfig("demo-1"), true);
await startNodeOps({
  nats: js.nats,
  ssm: { endpoint: sim.url, credentials: SIM_CREDENTIALS },
  facts: false,
  restore: false,
});
await startIdleDetector({ nats: js.nats });
const p = await startProjector({ nats: js.nats, databaseUrl: database.url, api: { port: 18080 } });
console.log("API", p.api?.url, "NATS", js.server.url);
