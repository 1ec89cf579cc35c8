/** What became of a command (`GET /commands/:id`), once its events are projected. */
import { type ApiClient, isApiError } from "./api-client.ts";

/** The API's answer about a command. */
export interface CommandView {
  readonly commandId: string;
  readonly type?: string | null;
  readonly status: "accepted" | "rejected";
  readonly code?: string;
  readonly reason?: string;
  /**
   * The stream sequence of the first commit that answered the command: a view whose own
   * `sequence` is below it was read before the command took effect (absent from an API older
   * than this contract).
   */
  readonly sequence?: number;
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

/** A read-model view that carries the last stream sequence folded into it. */
export interface Sequenced {
  readonly sequence?: number;
}

/**
 * Whether `view` already shows what command `command` did: it has folded the command's
 * commit (`view.sequence >= command.sequence`). A wait reads the view and the command in
 * parallel, and the two answers may come from different moments of the projection (or, with
 * two projectors, different projectors): a view read before the commit still shows the old
 * state, which can look like the goal (a scale of a Ready cluster is "Ready" until it is
 * "Scaling"). Such a view must not count.
 * False while the command is unanswered (`undefined`): the caller decides with its no-op
 * grace. An API that does not give sequences (older than this contract) cannot be told
 * apart: the view counts, as before.
 * @example viewShows({ sequence: 41 }, { commandId: "c", status: "accepted", sequence: 42 }) // false
 */
export function viewShows(view: Sequenced | undefined, command: CommandView | undefined): boolean {
  if (!view || !command) return false;
  if (command.sequence === undefined || view.sequence === undefined) return true;
  return view.sequence >= command.sequence;
}

/**
 * Whether a look at `view` counts for the command: the command answered and the view at or
 * past its commit, or the command unanswered for so long (`unanswered`) that it changed
 * nothing (a no-op answers nothing, so the view as it is counts).
 */
export function lookCounts(
  view: Sequenced | undefined,
  command: CommandView | undefined,
  unanswered: boolean,
): boolean {
  return command !== undefined ? viewShows(view, command) : unanswered;
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
