/**
 * The boot polls look at a launch from its RunInstances answer on, before its record
 * lands (reactor.ts, `unrecorded`), and still record nothing until it has: on the sim,
 * with the real EC2 adapter, a command handler that holds the pool's launch record back
 * for longer than a boot, and a log of every DescribeInstanceStatus the reactor sends.
 */
import {
  type ClusterCommand,
  CommandBus,
  catalogue,
  exampleClusterCreate,
  Headers,
  serveAggregate,
} from "@cairn/events";
import { startJetStream, type TestJetStream } from "@cairn/events/testing";
import { SIM_CREDENTIALS, type Sim, startSim } from "@cairn/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClusterSessions } from "../adapters/cluster-sessions.ts";
import { createEc2Compute } from "../adapters/ec2.ts";
import type { ClusterHandler } from "../provisioner.ts";
import { computeOver } from "../testing/compute.ts";
import { clusterDecider } from "./decider.ts";
import { startClusterReactor } from "./reactor.ts";

/** Sim boot 30 s at ×100: 300 ms. The pool's launch record is held back longer than that. */
const HOLD_MS = 700;

let js: TestJetStream;
let sim: Sim;
let stop: () => Promise<void>;
let bus: CommandBus;
const looks: { at: number; ids: readonly string[] }[] = [];
/** DescribeInstances calls (a look asks the whole instance only when it lacks its address). */
const details: (readonly string[])[] = [];
/** Looks on their way: the pool's record is let go while one is (see the handler). */
let looking = 0;
/** When this process held each pool record back, and let it go. */
const held: { from: number; to: number }[] = [];

beforeAll(async () => {
  js = await startJetStream();
  sim = await startSim({ seed: 11, timeScale: 100 });
  const ec2 = createEc2Compute({ endpoint: sim.url, credentials: SIM_CREDENTIALS });
  const compute = computeOver(ec2, {
    describe: (r, ids, opts) => {
      details.push([...ids]);
      return ec2.describe(r, ids, opts);
    },
    states: async (r, ids, opts) => {
      looks.push({ at: Date.now(), ids: [...ids] });
      looking++;
      try {
        const answer = await ec2.states(r, ids, opts);
        // Slow answers: the record lands while a look is on its way.
        await new Promise((res) => setTimeout(res, 200));
        return answer;
      } finally {
        looking--;
      }
    },
  });
  const served = await serveAggregate({
    nats: js.nats,
    catalogue,
    decider: clusterDecider,
    commandPrefix: "cluster",
    durable: "provisioner-commands",
  });
  // The handler the reactor records with: the pool's launches (a batch of two) reach the
  // log only HOLD_MS after the answer, as a slow append or a busy process would have it.
  const handler = new Proxy(served.handler, {
    get(target, p, recv) {
      const v = Reflect.get(target, p, recv);
      if (p !== "handle") return typeof v === "function" ? v.bind(target) : v;
      return async (parsed: { command: ClusterCommand }, opts?: unknown) => {
        const command = parsed.command;
        if (command.type === "cluster.record-launches" && command.data.launches.length > 1) {
          const from = Date.now();
          await new Promise((r) => setTimeout(r, HOLD_MS));
          // Let it go while a look is on its way (one asked before the record, answered after),
          // if one comes: once every instance has been seen running and the server recorded,
          // nothing looks again, so waiting for a look without end would hold it for ever.
          while (looking === 0 && Date.now() - from < HOLD_MS + 1_000)
            await new Promise((r) => setTimeout(r, 2));
          held.push({ from, to: Date.now() });
        }
        return await target.handle(parsed as never, opts as never);
      };
    },
  }) as ClusterHandler;
  const reactor = await startClusterReactor({
    nats: js.nats,
    handler,
    compute,
    sessions: createClusterSessions({ nats: js.nats }),
    pollMs: 20,
    maxPollMs: 100,
  });
  stop = async () => {
    await served.stop();
    await reactor.stop();
  };
  bus = new CommandBus({ js: js.nats.js, catalogue });
});
afterAll(async () => {
  await stop?.();
  await sim?.stop();
  await js?.dispose();
});

describe("boot polls before the launch record", () => {
  it("a launch is looked at from its answer, and recorded running as soon as its record lands, never before", async () => {
    const commits: { at: number; types: string[] }[] = [];
    let ready!: () => void;
    const done = new Promise<void>((r) => (ready = r));
    const sub = js.nats.nc.subscribe("evt.cluster.early-1", {
      callback: (_e, msg) => {
        const types = msg.headers?.get(Headers.eventTypes)?.split(",") ?? [];
        commits.push({ at: Date.now(), types });
        if (types.includes("cluster.instances-ready")) ready();
      },
    });
    await bus.send(exampleClusterCreate("early-1"));
    await Promise.race([
      done,
      new Promise((_, reject) => setTimeout(() => reject(new Error("no instances-ready in 20 s")), 20_000)),
    ]);
    sub.unsubscribe();

    const pool = sim.world.ec2
      .instances("eu-west-1")
      .filter((i) => i.tags["cairn:cluster"] === "early-1" && i.tags["cairn:pool"] === "workers")
      .map((i) => i.instanceId);
    expect(pool).toHaveLength(2);
    expect(held).toHaveLength(1);
    // The pool's launch commit (two instance-launched) and the running commit after it.
    const launched = commits.find(
      (c) => c.types.filter((t) => t === "cluster.instance-launched").length === 2,
    );
    expect(launched).toBeDefined();
    const runningAfter = commits.filter(
      (c) => c.at >= launched!.at && c.types.includes("cluster.instance-running"),
    );
    expect(runningAfter.length).toBeGreaterThan(0);
    // Nothing of the pool recorded running before its launch.
    const runningBefore = commits.filter(
      (c) => c.at < launched!.at && c.types.filter((t) => t === "cluster.instance-running").length > 1,
    );
    expect(runningBefore).toEqual([]);
    // 1. Looked at while its record was held back (from the answer on)…
    const early = looks.filter((l) => l.at < held[0]!.to && pool.some((id) => l.ids.includes(id)));
    expect(early.length).toBeGreaterThan(0);
    // 2. …so after the record landed no look had to ask about them again: they were known
    //    running (the boot, 300 ms, is shorter than the hold).
    const after = looks.filter((l) => l.at >= launched!.at && pool.some((id) => l.ids.includes(id)));
    expect(after).toEqual([]);
    // 3. Each running record's address is the one the answer gave, even from a look that
    //    was on its way when the record landed: no instance asked for whole.
    expect(details).toEqual([]);
  });
});
