/**
 * How a service tells the process that started it (`cairn up`) that it serves: one message
 * over the Node IPC channel, sent by runService once every step of its boot is done. A
 * supervisor learns readiness from the process it started, not from whoever answers on a
 * port (DESIGN §8).
 */

export const READY_MESSAGE_TYPE = "cairn.ready";

export interface ReadyMessage {
  readonly type: typeof READY_MESSAGE_TYPE;
  readonly service: string;
  /** The service's /healthz /readyz /metrics address. */
  readonly health?: string;
}

export function isReadyMessage(m: unknown): m is ReadyMessage {
  return typeof m === "object" && m !== null && (m as { type?: unknown }).type === READY_MESSAGE_TYPE;
}

/**
 * Sends the ready message when the process has a supervisor on an IPC channel; otherwise does
 * nothing. Never throws: a supervisor that went away is not the service's failure.
 */
export function tellSupervisorReady(message: Omit<ReadyMessage, "type">): void {
  if (!process.send || !process.connected) return;
  try {
    process.send({ type: READY_MESSAGE_TYPE, ...message }, () => {
      // An error here means the channel closed meanwhile; nothing to do.
    });
  } catch {
    // The channel closed between the check and the send.
  }
}
