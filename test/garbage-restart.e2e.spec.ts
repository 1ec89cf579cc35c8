/**
 * Nothing can poison (issue 11, finding 1): garbage published straight onto a cluster's
 * event subject and onto the create command's subject must neither block the cluster nor
 * crash a service, now or on the next start. Each bad message is a dead letter exactly once,
 * with its reason; a command that names its target and id is a `cluster.rejected` instead.
 */
import { newId } from "@cairn/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCommand, reached, type Sent, send, withTimeline } from "./harness/lifecycle.ts";
import { type Stack, startStack, until } from "./harness/stack.ts";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ replicas: 1, timeScale: 50 });
});
afterAll(async () => {
  await stack?.stop();
});

describe("garbage on the bus, then a restart", () => {
  it("dead-letters each bad message once with its reason, and the cluster and the stack carry on", async () => {
    const id = "garbage-1";
    const sent: Sent[] = [];
    const create = await send(stack, sent, createCommand(id, 2));
    await reached(stack, id, create.commandId);

    // Garbage on the cluster's own subject, as anyone with publish rights could put there.
    const subject = `evt.cluster.${id}`;
    const [first] = await stack.raw(subject);
    if (!first) throw new Error("the cluster has no commit");
    const commit = JSON.parse(new TextDecoder().decode(first.data)) as {
      commitId: string;
      aggregate: { type: string; id: string };
      events: { id: string; aggregate: { type: string; id: string } }[];
    };
    const elsewhere = { type: "cluster", id: "somewhere-else" };
    const foreign = {
      ...commit,
      commitId: `${commit.commitId}-copy`,
      aggregate: elsewhere,
      events: commit.events.map((e) => ({ ...e, id: newId(), aggregate: elsewhere })),
    };
    const evtGarbage: Record<string, Uint8Array | string> = {
      "plain text": "this is not a commit",
      binary: new Uint8Array([0xff, 0xfe, 0x00, 0x01, 0x80, 0x9f, 0xc3]),
      "JSON that is not a commit": JSON.stringify({ hello: "world", events: "none" }),
      "a commit of another aggregate": JSON.stringify(foreign),
    };
    const evtSeqs: Record<string, number> = {};
    for (const [what, data] of Object.entries(evtGarbage))
      evtSeqs[what] = (await stack.nats.js.publish(subject, data)).seq;

    // Garbage on a command subject: unreadable, an unknown type, and bad data with a target.
    const badDataId = newId();
    const cmdGarbage: Record<string, string> = {
      "not JSON": "create me a cluster please",
      "an unknown type": JSON.stringify({
        id: newId(),
        type: "cluster.explode",
        data: { clusterId: id },
        meta: { actor: "e2e" },
      }),
    };
    const cmdSeqs: Record<string, number> = {};
    for (const [what, data] of Object.entries(cmdGarbage))
      cmdSeqs[what] = (await stack.nats.js.publish("cmd.cluster.create", data)).seq;
    const badData = createCommand("garbage-2");
    await stack.nats.js.publish(
      "cmd.cluster.create",
      JSON.stringify({
        id: badDataId,
        ...badData,
        data: { ...badData.data, servers: { count: 2, instanceType: "t3.medium" } },
      }),
    );

    // The cluster still takes commands with the garbage in its history.
    const before = await send(stack, sent, {
      type: "cluster.scale",
      data: { clusterId: id, pool: "workers", count: 3 },
    });
    await reached(stack, id, before.commandId);

    // Every service restarted (SIGKILL, as a crash would): each comes up, and stays up.
    await stack.restartAll("SIGKILL");
    const after = await send(stack, sent, {
      type: "cluster.scale",
      data: { clusterId: id, pool: "workers", count: 4 },
    });
    await reached(stack, id, after.commandId);
    // A crash loop shows within seconds of the start: give it a few.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(stack.crashes()).toEqual([]);
    for (const p of stack.processes)
      expect({ process: p.name, starts: p.starts }).toEqual({ process: p.name, starts: 2 });

    // The bad data with a readable target and id: a rejection of garbage-2, not a dead letter.
    const rejected = await withTimeline(stack, "garbage-2", () =>
      until(stack, "the bad create rejected", async () => {
        const events = await stack.events({ type: "cluster", id: "garbage-2" });
        return events.find((e) => e.type === "cluster.rejected" && e.meta.commandId === badDataId);
      }),
    );
    expect(JSON.stringify(rejected.data)).toContain("servers.count");
    const command = await stack.get(`/commands/${badDataId}`);
    expect(command.body).toMatchObject({ status: "rejected" });

    // Each bad message a dead letter exactly once, with its reason; nothing else dead.
    const expected = [
      ...Object.entries(evtSeqs).map(([what, seq]) => ({ what, stream: "EVT", seq })),
      ...Object.entries(cmdSeqs).map(([what, seq]) => ({ what, stream: "CMD", seq })),
    ];
    const letters = await until(
      stack,
      "every bad message dead-lettered",
      async () => {
        const all = await stack.deadLetters();
        return expected.every((x) => all.some((d) => d.fromStream === x.stream && d.fromSequence === x.seq))
          ? all
          : undefined;
      },
      20_000,
    ).catch(async (err: Error) => {
      err.message += `\ndead letters: ${JSON.stringify(await stack.deadLetters(), null, 1)}`;
      throw err;
    });
    const report = expected.map((x) => {
      const copies = letters.filter((d) => d.fromStream === x.stream && d.fromSequence === x.seq);
      return {
        what: x.what,
        copies: copies.length,
        subject: copies[0]?.subject,
        hasReason: (copies[0]?.reason ?? "").length > 0,
      };
    });
    expect(report).toEqual(
      expected.map((x) => ({ what: x.what, copies: 1, subject: `dlq.${x.stream}`, hasReason: true })),
    );
    expect(letters.map((d) => `${d.fromStream} #${d.fromSequence}: ${d.reason}`)).toHaveLength(
      expected.length,
    );
  });
});
