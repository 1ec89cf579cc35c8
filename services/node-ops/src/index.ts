/**
 * The node-ops owns the nodeop and workload aggregates: every Kubernetes API call.
 * Its capabilities arrive with its own issue; until then the process runs the
 * shared harness (NATS, streams, health, metrics, shutdown) and serves nothing.
 */
export const capabilities: readonly string[] = [];
