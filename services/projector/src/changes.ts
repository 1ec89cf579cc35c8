/**
 * Read-model changes, announced in process after the transaction that wrote them
 * committed: the live stream of the API (`GET /events/stream`) listens here.
 */
import type { ClusterRow } from "./projections/clusters.ts";
import type { CommandRow } from "./projections/commands.ts";
import type { InstallRow } from "./projections/installs.ts";
import type { NodeOpRow } from "./projections/nodeops.ts";
import type { NodeRow } from "./projections/nodes.ts";
import type { SessionRow } from "./projections/sessions.ts";

/** One row that a committed batch wrote. */
export type Change =
  | {
      readonly resource: "clusters";
      readonly id: string;
      readonly sequence: number;
      readonly row: ClusterRow;
    }
  | {
      readonly resource: "commands";
      readonly id: string;
      readonly sequence: number;
      readonly row: CommandRow;
    }
  | {
      readonly resource: "installs";
      readonly id: string;
      readonly sequence: number;
      readonly row: InstallRow;
    }
  | {
      readonly resource: "nodes";
      readonly id: string;
      readonly sequence: number;
      readonly row: NodeRow;
    }
  | {
      readonly resource: "nodeops";
      readonly id: string;
      readonly sequence: number;
      readonly row: NodeOpRow;
    }
  | {
      readonly resource: "sessions";
      readonly id: string;
      readonly sequence: number;
      readonly row: SessionRow;
    };

export type ChangeListener = (change: Change) => void;

/**
 * A tiny synchronous fan-out. `publish` never throws: a listener that throws is
 * dropped and logged by the caller's `onListenerError`, so a broken subscriber cannot
 * stall the projection that feeds it.
 */
export class ChangeFeed {
  readonly #listeners = new Set<ChangeListener>();
  readonly #onListenerError: (err: unknown) => void;

  constructor(onListenerError: (err: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  /** @returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }

  /** Announces the rows of one committed batch, in the order they were written. */
  publish(changes: readonly Change[]): void {
    if (this.#listeners.size === 0) return;
    for (const change of changes) {
      for (const l of this.#listeners) {
        try {
          l(change);
        } catch (err) {
          this.#listeners.delete(l);
          this.#onListenerError(err);
        }
      }
    }
  }
}
