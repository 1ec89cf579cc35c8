/**
 * Steps of a cluster's lifecycle the suites share: commands through the API, and waits that
 * read the log (a phase is over when a `cluster.ready` follows the command's first event).
 */
import { exampleClusterCreate } from "@cairn/events";
import { FatalWait, type LoggedEvent, REGION, type Stack, until } from "./stack.ts";

export interface Sent {
  readonly commandId: string;
  readonly type: string;
  readonly traceId: string | undefined;
}

/** A cluster with one server and a spot pool `workers` of `workers` nodes. */
export function createCommand(clusterId: string, workers = 2) {
  const c = exampleClusterCreate(clusterId, "e2e");
  return {
    ...c,
    data: {
      ...c.data,
      region: REGION,
      pools: [
        { name: "workers", capacityType: "spot" as const, instanceTypes: ["t3.large"], count: workers },
      ],
    },
  };
}

export async function send(
  stack: Stack,
  sent: Sent[],
  command: { type: string; data: unknown },
): Promise<Sent> {
  const r = await stack.post(command);
  const s = { commandId: r.commandId, type: command.type, traceId: r.traceId };
  sent.push(s);
  return s;
}

/** The cluster's events once the command is in the log (its first event). */
export async function eventsOfCommand(stack: Stack, clusterId: string, commandId: string, ms = 30_000) {
  return await until(
    stack,
    `an event of command ${commandId} on ${clusterId}`,
    async () => {
      const events = await stack.events({ type: "cluster", id: clusterId });
      return events.some((e) => e.meta.commandId === commandId) ? events : undefined;
    },
    ms,
  );
}

/**
 * Waits until a `cluster.ready` (or the given type) follows the command's first event in the
 * cluster's log; returns that event. Fails at once on a `cluster.failed` or rejection after it.
 */
export async function reached(
  stack: Stack,
  clusterId: string,
  commandId: string,
  type = "cluster.ready",
  ms = 60_000,
): Promise<LoggedEvent> {
  return await withTimeline(stack, clusterId, () =>
    until(
      stack,
      `${type} after command ${commandId} on ${clusterId}`,
      async () => {
        const events = await stack.events({ type: "cluster", id: clusterId });
        const i = events.findIndex((e) => e.meta.commandId === commandId);
        if (i < 0) return undefined;
        const after = events.slice(i);
        const bad = after.find(
          (e) =>
            e.type === "cluster.failed" || (e.type === "cluster.rejected" && e.meta.commandId === commandId),
        );
        if (bad) throw new FatalWait(`${bad.type} after command ${commandId}: ${JSON.stringify(bad.data)}`);
        return after.find((e) => e.type === type);
      },
      ms,
    ),
  );
}

/** The cluster's and its install's events, one line each, relative to the first. */
export async function timeline(stack: Stack, clusterId: string, last = 60): Promise<string> {
  const events = [
    ...(await stack.events({ type: "cluster", id: clusterId })),
    ...(await stack.events({ type: "install", id: clusterId })),
    ...(await nodeopEvents(stack, clusterId)),
  ].sort((a, b) => a.seq - b.seq);
  const t0 = events[0]?.at ?? 0;
  return events
    .slice(-last)
    .map(
      (e) =>
        `  +${((e.at - t0) / 1000).toFixed(2)}s #${e.seq} ${e.type} ${JSON.stringify(e.data).slice(0, 160)}`,
    )
    .join("\n");
}

/** The events of every node operation of the cluster (`evt.nodeop.<cluster>=<node>`). */
export async function nodeopEvents(stack: Stack, clusterId: string): Promise<LoggedEvent[]> {
  return (await stack.eventsOn("evt.nodeop.*")).filter((e) => e.aggregate.id.startsWith(`${clusterId}=`));
}

/** Runs `f`; a failure carries the cluster's timeline. */
export async function withTimeline<T>(stack: Stack, clusterId: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    const t = await timeline(stack, clusterId).catch(() => "(no timeline)");
    (err as Error).message = `${(err as Error).message}\n--- ${clusterId}: last events ---\n${t}`;
    throw err;
  }
}

/** The slot's instance ids that run now, per the log (launched and not terminated or replaced). */
export function runningInstances(events: readonly LoggedEvent[]): Map<number, string> {
  const slots = new Map<number, string>();
  for (const e of events) {
    const slot = Number(e.data.slot);
    if (e.type === "cluster.instance-running") slots.set(slot, String(e.data.instanceId));
    if (e.type === "cluster.instance-terminated" || e.type === "cluster.node-replacement-requested")
      slots.delete(slot);
    if (e.type === "cluster.deleted") slots.clear();
  }
  return slots;
}
