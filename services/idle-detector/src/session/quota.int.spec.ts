/**
 * Quota admission under concurrency, on real NATS: several replicas (each its own
 * connection, event store and handler cache) admit sessions of two users of one group at
 * once. Whatever the limits, the number of creates and of replicas, no ledger ever holds
 * more than its limit, every admitted session holds its place on its user's and its
 * group's ledger, and a refused one holds none (its places given back).
 */
import {
  CommandHandler,
  catalogue,
  connectNats,
  EventStore,
  groupQuotaId,
  isCairnError,
  type Nats,
  newId,
  userQuotaId,
} from "@cairn/events";
import {
  appendAsOwner,
  recordClusterRequested,
  startJetStream,
  type TestJetStream,
} from "@cairn/events/testing";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { quotaPolicyFrom } from "../quota-policy.ts";
import { type AdmissionOutcome, createAdmission } from "./admission.ts";
import { createSessionDecider } from "./decider.ts";

const template = { image: "ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" };
let js: TestJetStream;
const replicas: Nats[] = [];

beforeAll(async () => {
  js = await startJetStream();
  const store = new EventStore({ js: js.nats.js, jsm: js.nats.jsm, catalogue });
  await recordClusterRequested(store, "demo-1");
  await appendAsOwner(store, { type: "cluster", id: "demo-1" }, "cluster.ready", {
    nodes: 3,
    k3sVersion: "v1.31.4+k3s1",
  });
  for (let i = 0; i < 3; i++) replicas.push(await connectNats(js.server.url));
});
afterAll(async () => {
  for (const n of replicas) await n.close();
  await js.dispose();
});

let run = 0;

it("concurrent creates never exceed a user's or a group's quota (property, several replicas)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 2, max: 7 }),
      fc.integer({ min: 2, max: 3 }),
      async (userLimit, groupLimit, creates, replicaCount) => {
        run++;
        const group = `g${run}`;
        const users = [`a${run}`, `b${run}`];
        const quotas = quotaPolicyFrom({
          defaults: { sessions: userLimit },
          users: Object.fromEntries(users.map((u) => [u, { groups: [group] }])),
          groups: { [group]: { sessions: groupLimit } },
        });
        const admissions = replicas.slice(0, replicaCount).map((nats) => {
          const store = new EventStore({ js: nats.js, jsm: nats.jsm, catalogue });
          const handler = new CommandHandler({ decider: createSessionDecider(), store, catalogue });
          return { handler, admission: createAdmission({ handler, store, policy: quotas }) };
        });
        const sessions = Array.from({ length: creates }, (_, i) => ({
          sessionId: `r${run}-s${i}`,
          user: users[i % 2]!,
          clusterId: "demo-1",
          template,
        }));
        const outcomes = await Promise.all(
          sessions.map(async (s, i) => {
            const cause = { id: newId(), meta: { correlationId: s.sessionId } };
            const { admission } = admissions[i % admissions.length]!;
            // A reactor retries what conflicted too long; the retry is the same decision.
            for (;;) {
              try {
                return await admission.admit(cause, s);
              } catch (err) {
                if (!isCairnError(err) || err.failure !== "transient") throw err;
              }
            }
          }),
        );
        const read = admissions[0]!.handler;
        const holders = async (id: string) =>
          Object.keys((await read.read({ type: "session", id })).state.ledger.holders);
        const groupHolders = await holders(groupQuotaId(group));
        expect(groupHolders.length).toBeLessThanOrEqual(groupLimit);
        const admitted = sessions.filter((_, i) => (outcomes[i] as AdmissionOutcome).admitted);
        expect(groupHolders.sort()).toEqual(admitted.map((s) => s.sessionId).sort());
        for (const u of users) {
          const own = await holders(userQuotaId(u));
          expect(own.length).toBeLessThanOrEqual(userLimit);
          expect(own.sort()).toEqual(
            admitted
              .filter((s) => s.user === u)
              .map((s) => s.sessionId)
              .sort(),
          );
        }
        // As many as fit were admitted: a refusal always names a full ledger.
        const fit = Math.min(
          groupLimit,
          Math.min(userLimit, Math.ceil(creates / 2)) + Math.min(userLimit, Math.floor(creates / 2)),
        );
        expect(admitted.length).toBe(fit);
        for (const o of outcomes) if (!o.admitted) expect(o.code).toBe("over-quota");
      },
    ),
    { numRuns: 12 },
  );
}, 120_000);
