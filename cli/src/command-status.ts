/** What became of a command (`GET /commands/:id`), once its events are projected. */
import { type ApiClient, isApiError } from "./api-client.ts";

/** The API's answer about a command. */
export interface CommandView {
  readonly commandId: string;
  readonly type?: string | null;
  readonly status: "accepted" | "rejected";
  readonly code?: string;
  readonly reason?: string;
}

/** What the API answers when it took a command (202). */
export interface CommandAccepted {
  readonly commandId: string;
  readonly traceId?: string;
}

/** The command's outcome; undefined while no event answered it yet (or none ever will: a no-op). */
export async function commandStatus(api: ApiClient, commandId: string): Promise<CommandView | undefined> {
  try {
    return await api.get<CommandView>(`/commands/${encodeURIComponent(commandId)}`);
  } catch (err) {
    if (isApiError(err, 404)) return undefined;
    throw err;
  }
}

/**
 * A command with no events answers nothing (a scale to the count it has, a cordon of a
 * cordoned node): after this long unanswered, a target already in its goal state counts
 * as done.
 */
export const NO_OP_GRACE_MS = 3_000;

/**
 * Sends a command through `POST /commands` (validated by the API against the same
 * catalogue), as `actor`: without tokens the log records who asked; with a token the
 * API records the token's holder whatever is said here.
 */
export const sendCommand = (api: ApiClient, type: string, data: unknown, actor: string) =>
  api.post<CommandAccepted>("/commands", { type, data, meta: { actor } });
