import { deepStrictEqual, fail } from "node:assert/strict";
import type { RejectionCode } from "../catalogue/common.ts";
import { type Decider, type DecisionContext, isRejection } from "../decider.ts";
import type { AggregateRef, CommandEnvelope, EventEnvelope } from "../envelope.ts";

type Msg = { type: string; data: unknown };

const FIXED_TIME = new Date("2026-01-01T00:00:00.000Z");

/** Wraps `{type, data}` into an envelope with fixed, readable meta. */
export function anEvent<E extends Msg>(
  e: E,
  position: number,
  aggregate: AggregateRef,
  time = FIXED_TIME,
): EventEnvelope<E> {
  return {
    ...e,
    id: `00000000-0000-7000-8000-${String(position).padStart(12, "0")}`,
    version: 1,
    aggregate,
    position,
    time: time.toISOString(),
    meta: { causationId: "cause", correlationId: "corr", actor: "test" },
  } as EventEnvelope<E>;
}

export function aCommand<C extends Msg>(
  c: C,
  id = "0193a0c2-0000-7000-8000-000000000001",
  actor = "alice",
): CommandEnvelope<C> {
  return { ...c, id, meta: { actor } } as CommandEnvelope<C>;
}

/**
 * Given-when-then for a decider (emmett's DeciderSpecification).
 *
 * @example
 * spec.given([requested]).when(deleteCmd).then([{ type: "cluster.deletion-requested", data: {} }]);
 */
export function deciderSpec<C extends Msg, E extends Msg, S, O = undefined>(
  decider: Decider<C, E, S, O>,
  aggregate: AggregateRef,
) {
  return {
    given(events: readonly E[]) {
      const history = events.map((e, i) => anEvent(e, i + 1, aggregate));
      const state = history.reduce((s, e) => decider.evolve(s, e), decider.initialState());
      return {
        state,
        /** `ctx.observed`: what the decision saw beyond its aggregate (the handler's `observe`). */
        when(command: C, ctx: Partial<DecisionContext<O>> = {}) {
          const decision = decider.decide(aCommand(command), state, {
            now: FIXED_TIME,
            version: history.length,
            ...ctx,
          });
          return {
            decision,
            // biome-ignore lint/suspicious/noThenProperty: given-when-then is the style guide's decider spec; never awaited.
            then(expected: readonly E[]) {
              if (isRejection(decision))
                fail(
                  `expected events, got a rejection: ${decision.rejected.code}: ${decision.rejected.reason}`,
                );
              deepStrictEqual(decision, expected);
            },
            thenRejected(code: RejectionCode, reasonIncludes?: string) {
              if (!isRejection(decision))
                fail(`expected a rejection, got events: ${JSON.stringify(decision)}`);
              deepStrictEqual(decision.rejected.code, code);
              if (reasonIncludes && !decision.rejected.reason.includes(reasonIncludes)) {
                fail(
                  `reason ${JSON.stringify(decision.rejected.reason)} does not mention ${JSON.stringify(reasonIncludes)}`,
                );
              }
            },
          };
        },
      };
    },
  };
}
