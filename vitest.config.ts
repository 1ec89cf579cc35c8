import { defineConfig } from "vitest/config";

// Three tiers by file suffix. Unit tests are pure and fast; int tests talk to a
// real nats-server and a real Postgres (disposable ones the suite starts or
// creates itself); e2e tests run whole services as processes.
const exclude = ["**/node_modules/**", "**/.tools/**", "**/.cairn/**"];

// Two workers for the unit and int tiers (e2e and chaos files run one at a time anyway):
// the whole suite fits CI's budget with the chaos run in it. CAIRN_TEST_WORKERS=1 for a
// machine that is busy with something else. (The replay suite's swap under read load once
// hung with two: a timed-out test's readers kept the API's close waiting; they end in its
// afterEach now.)
const maxWorkers = Number(process.env.CAIRN_TEST_WORKERS ?? 2);

export default defineConfig({
  test: {
    maxWorkers,
    projects: [
      { test: { name: "unit", include: ["**/*.unit.spec.ts"], exclude, sequence: { groupOrder: 0 } } },
      {
        test: {
          name: "int",
          include: ["**/*.int.spec.ts"],
          exclude,
          sequence: { groupOrder: 0 },
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["**/*.e2e.spec.ts"],
          exclude,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Each file boots a whole stack (up to a dozen processes) and some time their
          // phases: they run after the other tiers, one at a time, on this 2-core machine.
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      // The short, seed-fixed chaos run (docs/chaos.md; alone: `npm run test:chaos`): last,
      // on its own, so the SIGKILLs and the stopped NATS server meet no other suite's load.
      {
        test: {
          name: "chaos",
          include: ["**/*.chaos.spec.ts"],
          exclude,
          testTimeout: 420_000,
          hookTimeout: 120_000,
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
