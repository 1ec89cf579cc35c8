import { defineConfig } from "vitest/config";

// Three tiers by file suffix. Unit tests are pure and fast; int tests talk to a
// real nats-server and a real Postgres (disposable ones the suite starts or
// creates itself); e2e tests run whole services as processes.
const exclude = ["**/node_modules/**", "**/.tools/**", "**/.cairn/**"];

// One worker by default (vitest's own default on two cores): with two, the int files' stacks
// contend and the replay suite's swap under read load timed out in two CI runs of four
// (its afterEach stopping the projector, 2026-12-03). CAIRN_TEST_WORKERS=2
// runs the unit and int tiers about twice as fast where the machine allows.
const maxWorkers = Number(process.env.CAIRN_TEST_WORKERS ?? 1);

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
      // The short, seed-fixed chaos run (`npm run test:chaos`, docs/chaos.md): out of
      // `npm test` while the stuck install its CI run found is open (docs/chaos.md, "Open").
      ...(process.env.CAIRN_CHAOS === "1"
        ? [
            {
              test: {
                name: "chaos",
                include: ["**/*.chaos.spec.ts"],
                exclude,
                testTimeout: 420_000,
                hookTimeout: 120_000,
                fileParallelism: false,
              },
            },
          ]
        : []),
    ],
  },
});
