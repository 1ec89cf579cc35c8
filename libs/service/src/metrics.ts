/**
 * Prometheus metrics: one registry per process, with Node's default metrics, served on `/metrics`
 * by the health server. Metric helpers are idempotent by name, so a module can declare its
 * metrics at load time and a second declaration (another module, a re-run test) gets the same one.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Metric, Registry } from "prom-client";

export type { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The process registry: default metrics plus everything declared through the helpers below. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry });

/** A name is already registered with another metric type or other label names. */
export class MetricConflictError extends Error {
  override readonly name = "MetricConflictError";
}

function existing<M>(
  name: string,
  type: abstract new (...args: never[]) => M,
  labelNames: readonly string[],
): M | undefined {
  const found: Metric | undefined = registry.getSingleMetric(name);
  if (!found) return undefined;
  if (!(found instanceof type)) {
    throw new MetricConflictError(`metric ${name} is already registered as another type`);
  }
  const had = [...((found as unknown as { labelNames?: readonly string[] }).labelNames ?? [])].sort();
  const want = [...labelNames].sort();
  if (had.join(",") !== want.join(",")) {
    throw new MetricConflictError(
      `metric ${name} is already registered with labels [${had.join(", ")}], not [${want.join(", ")}]`,
    );
  }
  return found;
}

/**
 * A counter in the process registry; returns the registered one if `name` exists.
 * Throws {@link MetricConflictError} if `name` exists with another type or labels.
 * @example const commands = counter("cairn_commands_total", "Commands handled", ["command_type", "outcome"]);
 * commands.inc({ command_type: "cluster.create", outcome: "accepted" });
 */
export function counter<L extends string = string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  return (
    (existing(name, Counter, labelNames) as Counter<L> | undefined) ??
    new Counter({ name, help, labelNames, registers: [registry] })
  );
}

/**
 * A gauge in the process registry; idempotent by name like {@link counter}.
 * @example gauge("cairn_leader", "1 while this process holds the lease", ["lease"]).set({ lease: "sweeper" }, 1);
 */
export function gauge<L extends string = string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Gauge<L> {
  return (
    (existing(name, Gauge, labelNames) as Gauge<L> | undefined) ??
    new Gauge({ name, help, labelNames, registers: [registry] })
  );
}

/**
 * A histogram in the process registry; idempotent by name like {@link counter}. `buckets` only
 * applies on first registration (seconds by default, prom-client's defaults).
 * @example const t = histogram("cairn_handle_seconds", "Handler time", ["stream"]).startTimer({ stream: "CMD" }); … t();
 */
export function histogram<L extends string = string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets?: number[],
): Histogram<L> {
  return (
    (existing(name, Histogram, labelNames) as Histogram<L> | undefined) ??
    new Histogram({ name, help, labelNames, registers: [registry], ...(buckets ? { buckets } : {}) })
  );
}
