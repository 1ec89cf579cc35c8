/**
 * The installer owns the install aggregate: K3s over SSM Run Command, health checks and self-healing.
 * Its capabilities arrive with its own issue; until then the process runs the
 * shared harness (NATS, streams, health, metrics, shutdown) and serves nothing.
 */
export const capabilities: readonly string[] = [];
