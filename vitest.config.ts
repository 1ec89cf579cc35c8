import { defineConfig } from "vitest/config";

// Three tiers by file suffix. Unit tests are pure and fast; int tests talk to a
// real nats-server and a real Postgres (disposable ones the suite starts or
// creates itself); e2e tests run whole services as processes.
const exclude = ["**/node_modules/**", "**/.tools/**", "**/.cairn/**"];

export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["**/*.unit.spec.ts"], exclude } },
      {
        test: {
          name: "int",
          include: ["**/*.int.spec.ts"],
          exclude,
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
        },
      },
    ],
  },
});
