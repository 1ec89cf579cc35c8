/**
 * Every call to a cluster's Kubernetes API under the process's resilience: a breaker and
 * a bulkhead per cluster (its API server is its own; SERVICE_SETTINGS.kubernetes), retry
 * with full jitter on transient failures only (Retry-After honoured), a timeout per try;
 * failures classified by classifyKubeError (kube-errors.ts).
 */
import type { Resilience } from "@cairn/service";
import { classifyKubeError } from "./kube-errors.ts";
import { withKubeCallSignal } from "./kube-trace.ts";

/** The service label of the Kubernetes breakers and bulkheads (one per cluster: the "region" is the cluster id). */
export const KUBE_SERVICE = "kubernetes";

/** What a client-node call names in its first argument. */
const targetOf = (args: unknown[]): string | undefined => {
  const p = args[0] as { name?: unknown; namespace?: unknown } | undefined;
  const name = typeof p?.name === "string" ? p.name : undefined;
  const ns = typeof p?.namespace === "string" ? p.namespace : undefined;
  return name && ns ? `${ns}/${name}` : name;
};

/**
 * The API client with every method run under `resilience` for `clusterId` (the method's
 * name is the operation): a Proxy, so that every call — today's and tomorrow's — goes
 * through it and none can bypass it. Rejects with classified errors only.
 */
export function guardedApi<A extends object>(resilience: Resilience, clusterId: string, api: A): A {
  return new Proxy(api, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== "function" || typeof prop !== "string") return v;
      return (...args: unknown[]) => {
        const ctx = { clusterId, operation: prop, target: targetOf(args) };
        return resilience.run(
          { service: KUBE_SERVICE, region: clusterId, operation: prop },
          "default",
          // The try's signal aborts the request itself (its timeout, the breaker's, the caller's).
          (signal) =>
            withKubeCallSignal(signal, () =>
              (v as (...a: unknown[]) => Promise<unknown>).apply(target, args),
            ),
          (e) => classifyKubeError(e, ctx),
        );
      };
    },
  });
}
