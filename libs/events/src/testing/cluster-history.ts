import { clusterSpec } from "../catalogue/cluster.ts";
import { exampleClusterCreate } from "../catalogue/examples.ts";
import type { RawEventEnvelope } from "../envelope.ts";
import type { EventStore } from "../event-store.ts";
import { newId } from "../ids.ts";

/**
 * Records that a cluster was requested (the contract's example spec), as the
 * provisioner would: for services that read a cluster's history (its region) in tests
 * and benchmarks without running the provisioner. Returns the spec's region.
 */
export async function recordClusterRequested(
  store: EventStore,
  clusterId: string,
): Promise<{ region: string }> {
  const spec = clusterSpec.parse(exampleClusterCreate(clusterId).data);
  const aggregate = { type: "cluster" as const, id: clusterId };
  const requested: RawEventEnvelope = {
    id: newId(),
    type: "cluster.requested",
    version: 1,
    aggregate,
    position: 1,
    time: new Date().toISOString(),
    data: { spec },
    meta: { causationId: `fixture-${clusterId}`, correlationId: `fixture-${clusterId}`, actor: "fixture" },
  };
  await store.append({ aggregate, causationId: `fixture-${clusterId}`, events: [requested] }, 0);
  return { region: spec.region };
}
