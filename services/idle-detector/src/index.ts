/**
 * The idle-detector owns the session aggregate: quota admission, heartbeats, idle detection, hibernation and wake-up.
 * Its capabilities arrive with its own issue; until then the process runs the
 * shared harness (NATS, streams, health, metrics, shutdown) and serves nothing.
 */
export const capabilities: readonly string[] = [];
