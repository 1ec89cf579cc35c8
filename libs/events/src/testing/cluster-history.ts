import { clusterSpec } from "../catalogue/cluster.ts";
import { exampleClusterCreate } from "../catalogue/examples.ts";
import type { AggregateRef, RawEventEnvelope } from "../envelope.ts";
import type { EventStore } from "../event-store.ts";
import { newId } from "../ids.ts";

/**
 * Appends one event to an aggregate's history, as its owning service would: for tests
 * and benchmarks of a service that reads another's events (the installer's, the
 * provisioner's) without running that service.
 */
export async function appendAsOwner(
  store: EventStore,
  aggregate: AggregateRef,
  type: string,
  data: object,
): Promise<void> {
  const history = await store.load(aggregate);
  const event: RawEventEnvelope = {
    id: newId(),
    type,
    version: 1,
    aggregate,
    position: history.version + 1,
    time: new Date().toISOString(),
    data,
    meta: { causationId: `fixture-${type}`, correlationId: `fixture-${aggregate.id}`, actor: "fixture" },
  };
  await store.append({ aggregate, causationId: newId(), events: [event] }, history.lastSequence);
}

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
  await appendAsOwner(store, { type: "cluster", id: clusterId }, "cluster.requested", { spec });
  return { region: spec.region };
}
