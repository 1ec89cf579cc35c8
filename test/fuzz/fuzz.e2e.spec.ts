/**
 * Bad input, through the bus and through the API (issue 15, "Bad input"): fast-check cases
 * from every command schema of the catalogue and their hostile variants (wrong types, huge
 * strings, unknown fields, ids with `.`, `*`, `>` and unicode, malformed trace headers,
 * duplicated ids, stale versions, non-JSON bodies, messages on event subjects, the wrong
 * command subject) against the whole stack as processes (all five services, the sim, real
 * NATS and Postgres). Then:
 *
 * - no service process exited;
 * - every case was answered: a `*.rejected` event with a reason, a dead letter with its
 *   reason, a duplicate dropped by JetStream, or an HTTP 4xx with a message — never a 5xx,
 *   never silence, never accepted;
 * - nothing else changed: the read models and the logs of a Ready cluster and a Running
 *   session that no case names are equal before and after (oracle.ts says what a named
 *   victim may move).
 *
 * `FUZZ_CASES` (default 300) and `FUZZ_SEED` (default 1515) choose the run; `npm run fuzz`
 * sends 10,000.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommand, reached, type Sent as SentCommand, send } from "../harness/lifecycle.ts";
import { type Stack, startStack, until } from "../harness/stack.ts";
import { type Fixtures, generateCases } from "./cases.ts";
import { changes, judge, lastEventSequence, projectedUpTo, type Sent, settled, snapshot } from "./oracle.ts";
import { resolveReuse, sendCases } from "./run.ts";

const CASES = Number(process.env.FUZZ_CASES ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 1515);
/** Room for the answers of the slowest cases (a huge body, a DELETE that waits for its answer). */
const TIMEOUT_MS = 150_000 + CASES * 40;

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    replicas: 1,
    timeScale: 100,
    logLevel: "warn",
    // Nothing may change by itself while the fuzz runs: no session goes idle.
    env: { CAIRN_SESSION_IDLE_TIMEOUT_SECONDS: "86400", CAIRN_SESSION_IDLE_GRACE_SECONDS: "3600" },
  });
});
afterAll(async () => {
  await stack?.stop();
});

const template = { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" };

async function runningSession(sessionId: string, user: string, clusterId: string) {
  const res = await fetch(`${stack.api()}/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sessionId, user, clusterId, template }),
  });
  if (res.status !== 202) throw new Error(`POST /sessions ${sessionId}: ${res.status} ${await res.text()}`);
  await until(stack, `session ${sessionId} Running`, async () =>
    (await stack.events({ type: "session", id: sessionId })).some((e) => e.type === "session.running"),
  );
}

describe(`bad input: ${CASES} cases, seed ${SEED}`, () => {
  it(
    "every case refused with a reason, no process down, nothing else changed",
    async () => {
      // 1. What exists before: a victim the cases may name, and an untouched pair no case names.
      const sent: SentCommand[] = [];
      const [victim, untouched] = await Promise.all(
        ["fz-victim", "fz-untouched"].map(async (id) => {
          const c = await send(stack, sent, createCommand(id, 1));
          await reached(stack, id, c.commandId);
          return c;
        }),
      );
      await Promise.all([
        runningSession("fz-victim-s", "victim", "fz-victim"),
        runningSession("fz-untouched-s", "bystander", "fz-untouched"),
      ]);
      const fx: Fixtures = {
        victim: {
          clusterId: "fz-victim",
          sessionId: "fz-victim-s",
          user: "victim",
          version: (await stack.events({ type: "cluster", id: "fz-victim" })).length,
          pool: "workers",
        },
        untouched: { clusterId: "fz-untouched", sessionId: "fz-untouched-s", user: "bystander" },
        earlierCommandIds: [victim!.commandId, untouched!.commandId],
      };
      // Let what the clusters and sessions set going settle (node facts, labels), then look.
      const since = (await settled(stack.nats)) + 1;
      await projectedUpTo(stack, since - 1);
      const before = await snapshot(stack, fx, since);

      // 2. The cases.
      const cases = resolveReuse(generateCases(fx, CASES, SEED));
      const t0 = Date.now();
      const results: Sent[] = await sendCases(stack, cases, 16);
      const sendMs = Date.now() - t0;

      // 3. Every case answered (answers arrive as the services get to them).
      let verdict = await judge(stack, results, since, fx.earlierCommandIds);
      const deadline = Date.now() + 30_000 + CASES * 5;
      while (verdict.problems.some((p) => / no answer \(stored/.test(p) || /but no rejection/.test(p))) {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 1_000));
        verdict = await judge(stack, results, since, fx.earlierCommandIds);
      }
      const answerMs = Date.now() - t0;
      console.log(
        `fuzz: ${CASES} cases (seed ${SEED}) sent in ${sendMs} ms, answered within ${answerMs} ms:`,
        JSON.stringify(verdict.answers),
      );

      // 4. Nothing else changed.
      await projectedUpTo(stack, await lastEventSequence(stack.nats));
      const after = await snapshot(stack, fx, since);

      expect(stack.crashes(), stack.tails()).toEqual([]);
      expect(verdict.problems.slice(0, 40), `${verdict.problems.length} problems`).toEqual([]);
      expect(changes(before, after)).toEqual([]);
      for (const p of stack.processes)
        expect({ process: p.name, starts: p.starts }).toEqual({ process: p.name, starts: 1 });
    },
    TIMEOUT_MS,
  );
});
