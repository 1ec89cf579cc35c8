import { z } from "zod";
import { Catalogue } from "../catalogue/catalogue.ts";
import type { defineRejected } from "../catalogue/common.ts";
import { type CommandOf, defineCommand, defineEvent, type EventOf } from "../catalogue/define.ts";
import { allCommandDefinitions, allEventDefinitions } from "../catalogue/index.ts";
import { assertNever, type Decider, reject } from "../decider.ts";
import { newId, tokenSafeId } from "../ids.ts";

/**
 * A minimal aggregate for testing and benchmarking the machinery itself (store,
 * handler, runner) without any service's domain: a counter on the `workload`
 * aggregate type with its own test catalogue.
 */
export const Increment = defineCommand({
  type: "workload.increment",
  aggregate: "workload",
  schema: z.object({ counterId: tokenSafeId, by: z.number().int().positive().max(1_000) }),
  aggregateId: (d) => d.counterId,
  description: "test: add to a counter",
});
export const Incremented = defineEvent({
  type: "workload.incremented",
  aggregate: "workload",
  version: 2,
  // v1 had `amount`; v2 calls it `by`.
  upcasters: { 1: (d) => ({ by: (d as { amount: number }).amount }) },
  schema: z.object({ by: z.number().int().positive() }),
  description: "test: a counter went up",
});
/** Internal: only the owner decides it (tests that outsiders are refused). */
export const Reset = defineCommand({
  type: "workload.reset",
  aggregate: "workload",
  internal: true,
  schema: z.object({ counterId: tokenSafeId }),
  aggregateId: (d) => d.counterId,
  description: "test: internal reset",
});
export type CounterCommand = CommandOf<typeof Increment> | CommandOf<typeof Reset>;
export type CounterEvent =
  | EventOf<typeof Incremented>
  | EventOf<ReturnType<typeof defineRejected<"workload">>>;

const rejectedWorkload = allEventDefinitions.find((d) => d.type === "workload.rejected")!;
export const counterCatalogue = new Catalogue(
  [...allEventDefinitions.filter((d) => d.type !== "workload.rejected"), rejectedWorkload, Incremented],
  [...allCommandDefinitions, Increment, Reset],
);

/** Refuses to go past a limit, so tests can see rejections. */
export const COUNTER_LIMIT = 1_000_000;

export const counterDecider: Decider<CounterCommand, CounterEvent, { total: number }> = {
  aggregate: "workload",
  initialState: () => ({ total: 0 }),
  decide(command, state) {
    switch (command.type) {
      case "workload.increment":
        if (state.total + command.data.by > COUNTER_LIMIT)
          return reject("invalid", `would pass ${COUNTER_LIMIT}`);
        return [{ type: "workload.incremented", data: { by: command.data.by } }];
      case "workload.reset":
        return reject("unsupported", "the test counter never resets");
      default:
        return assertNever(command);
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case "workload.incremented":
        return { total: state.total + event.data.by };
      case "workload.rejected":
        return state;
      default:
        return assertNever(event);
    }
  },
};

/** A parsed `workload.increment` command of the counter (`id`: the command id, new by default). */
export function increment(counterId: string, by: number, id = newId()) {
  const parsed = counterCatalogue.parseCommand({
    id,
    type: "workload.increment",
    data: { counterId, by },
    meta: { actor: "t" },
  });
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}
