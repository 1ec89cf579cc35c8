/**
 * A batch's poll runs on a chain of its own (installer-reactor's `ownChain`): the batches in
 * flight are polled side by side, so one batch's slow look at SSM holds no other batch's
 * results. Before, each batch's poll was a reaction to its own commit of the install taken in
 * the install's order, so batch k+1's results waited for batch k's poll and its records (and a
 * poll that swept the others' commands waited for the slowest of them). On the sim through the
 * real parts.
 */
import { catalogue, EventStore, exampleClusterCreate } from "@cairn/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RemoteExec } from "../ports.ts";
import { type ControlPlane, startControlPlane } from "../testing/control-plane.ts";
import type { InstallState } from "./decider.ts";

let plane: ControlPlane;
/** Batch commands whose ListCommandInvocations is held (not answered) until released. */
const held = new Set<string>();
let release: () => void = () => {};
const released = new Promise<void>((resolve) => (release = resolve));
/** A batch command's cluster and batch, from its comment (`batch=<batch> cluster=<id>`). */
const commands = new Map<string, { cluster: string; batch: string }>();
/** Every ListCommandInvocations the installer made: the command asked about. */
const listed: string[] = [];

/** The real SSM adapter; the first batch (`<version>.0`) of cluster `slow` gets no answer to its listing until released. */
const holding = (real: RemoteExec): RemoteExec => ({
  onlineInstances: (r, ids) => real.onlineInstances(r, ids),
  findSent: (r, i, c, since) => real.findSent(r, i, c, since),
  invocation: (r, c, i) => real.invocation(r, c, i),
  invocations: async (r, c) => {
    listed.push(c);
    const which = commands.get(c);
    if (which?.cluster === "slow" && which.batch.endsWith(".0")) {
      held.add(c);
      await released;
    }
    return await real.invocations(r, c);
  },
  commandTargets: (r, c) => real.commandTargets(r, c),
  cancel: (r, c, i) => real.cancel(r, c, i),
  putSecretIfAbsent: (r, n, v) => real.putSecretIfAbsent(r, n, v),
  parameterVersion: (r, n) => real.parameterVersion(r, n),
  deleteParameters: (r, n) => real.deleteParameters(r, n),
  send: (r, step) => real.send(r, step),
  sendBatch: async (region, batch) => {
    const id = await real.sendBatch(region, batch);
    commands.set(id, {
      cluster: /cluster=(\S+)/.exec(batch.comment)?.[1] ?? "",
      batch: /batch=(\S+)/.exec(batch.comment)?.[1] ?? "",
    });
    return id;
  },
});

beforeAll(async () => {
  plane = await startControlPlane({ seed: 12, installer: { remote: holding } });
}, 60_000);
afterAll(async () => {
  release();
  await plane?.stop();
});

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 45_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const historyOf = async (id: string) =>
  (
    await new EventStore({ js: plane.js.nats.js, jsm: plane.js.nats.jsm, catalogue }).load({
      type: "install",
      id,
    })
  ).events;
const installOf = async (id: string): Promise<InstallState> =>
  (await plane.installer.handler.read({ type: "install", id }, { atLeastSequence: Number.MAX_SAFE_INTEGER }))
    .state;
const pool = (name: string, count: number) => ({
  name,
  capacityType: "on-demand" as const,
  instanceTypes: ["t3.large"],
  count,
});
const joinsOf = (history: Awaited<ReturnType<typeof historyOf>>) =>
  history.filter(
    (e) => e.type === "install.step-succeeded" && (e.data as { step: string }).step === "k3s-agent-join",
  );

describe("a batch's poll", () => {
  it("with two batches in flight, records the other's joins while its own look at SSM is held", async () => {
    const c = exampleClusterCreate("slow");
    await plane.bus.send({ ...c, data: { ...c.data, pools: [pool("web", 2), pool("jobs", 2)] } });
    const sent = await until("both batches sent", async () => {
      const s = (await historyOf("slow")).filter((e) => e.type === "install.batch-sent");
      return s.length === 2 ? s : undefined;
    });
    const first = sent.find((e) => (e.data as { batch: string }).batch.endsWith(".0"))!;
    const other = sent.find((e) => e !== first)!;
    const firstId = (first.data as { commandId: string }).commandId;
    const otherId = (other.data as { commandId: string }).commandId;
    // The first batch's poll is under way and gets no answer; the other's members join anyway.
    await until("the first batch's poll held", async () => (held.has(firstId) ? true : undefined));
    const otherSlots = new Set((other.data as { slots: number[] }).slots);
    const early = await until("the other batch's joins recorded", async () => {
      const joins = joinsOf(await historyOf("slow"));
      return joins.length === 2 ? joins : undefined;
    });
    expect(early.map((e) => (e.data as { slot: number }).slot).every((s) => otherSlots.has(s))).toBe(true);
    expect(held.has(firstId)).toBe(true);

    release();
    await until("slow installed", async () => {
      const s = await installOf("slow");
      return s.status !== "Absent" && Object.values(s.nodes).filter((n) => n.joined).length === 5
        ? s
        : undefined;
    });
    const history = await historyOf("slow");
    expect(joinsOf(history)).toHaveLength(4);
    // Never sent twice: one command per batch, and each asked about.
    const ids = new Set(
      history
        .filter((e) => e.type === "install.batch-sent")
        .map((e) => (e.data as { commandId: string }).commandId),
    );
    expect(ids).toEqual(new Set([firstId, otherId]));
    expect(listed).toContain(otherId);
  });
});
