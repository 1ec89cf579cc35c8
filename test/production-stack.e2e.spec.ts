/**
 * The production shape (`npm run stack`, deploy/), started as the harness starts it with
 * `production: true`: three nats-server processes in a cluster, each loading
 * deploy/nats/nats.conf; JetStream made by the bootstrap as admin at three replicas; two
 * processes of every service, each logged in as its own NATS user with the environment
 * cli/src/stack/shape.ts gives it (the one deploy/ uses). Then:
 *  - the shape is what it says: 3 servers, every stream and bucket at R3 with its peers current,
 *    each service's two processes connected as that service's user, no drift warnings;
 *  - a cluster create goes Ready through it;
 *  - the server holding the EVT stream's leadership is stopped: the stream elects another
 *    leader, the services ride it out, and a second cluster goes Ready on two servers; the
 *    server comes back and catches up;
 *  - throughout, no server logged a permission violation, and no process crashed.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { duplicateInstances, unansweredCommands, watchInstances } from "./harness/checks.ts";
import { createCommand, reached, type Sent, send } from "./harness/lifecycle.ts";
import { SERVICES, type Stack, startStack, until } from "./harness/stack.ts";

const STREAMS = ["CMD", "EVT", "DLQ", "KV_cairn_leases", "KV_cairn_heartbeats"];

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ replicas: 2, timeScale: 50, production: true });
});
afterAll(async () => {
  await stack?.stop();
});

/** Every line the service processes logged so far (their log files). */
async function serviceLogs(): Promise<string[]> {
  const files = (await readdir(stack.logDir)).filter((f) => SERVICES.some((s) => f.startsWith(`${s}-`)));
  const lines: string[] = [];
  for (const f of files) lines.push(...(await readFile(join(stack.logDir, f), "utf8")).split("\n"));
  return lines;
}

/** Who is connected to the cluster: authorized user → connection names, from every server. */
async function connectedUsers(): Promise<Map<string, string[]>> {
  const users = new Map<string, string[]>();
  for (const node of stack.natsCluster?.nodes ?? []) {
    if (!node.running()) continue;
    const res = await fetch(`http://127.0.0.1:${node.monitorPort}/connz?auth=true&limit=1024`);
    const body = (await res.json()) as { connections?: { authorized_user?: string; name?: string }[] };
    for (const c of body.connections ?? []) {
      const user = c.authorized_user ?? "(anonymous)";
      users.set(user, [...(users.get(user) ?? []), c.name ?? ""]);
    }
  }
  return users;
}

describe("the production shape on one machine", () => {
  const sent: Sent[] = [];

  it("runs three NATS servers, R3 streams and buckets, and two processes of every service, each as its own user", async () => {
    const cluster = stack.natsCluster;
    expect(cluster?.nodes).toHaveLength(3);
    expect(cluster?.nodes.every((n) => n.running())).toBe(true);
    expect(stack.streamReplicas).toBe(3);
    for (const name of STREAMS) {
      const info = await stack.nats.jsm.streams.info(name);
      expect(info.config.num_replicas, name).toBe(3);
      expect(info.cluster?.leader, name).toBeTruthy();
      expect(info.cluster?.replicas?.length, name).toBe(2);
    }

    for (const service of SERVICES) {
      const procs = stack.of(service);
      expect(procs, service).toHaveLength(2);
      for (const p of procs) {
        expect(p.env.NATS_USER).toBe(service);
        expect(p.env.NATS_URL).toBe(stack.natsUrl);
        expect(p.env.NATS_URL).not.toContain("@");
        expect(p.env.CAIRN_NATS_REPLICAS).toBe("3");
        expect(p.health, p.name).toBeTruthy();
      }
    }
    // The servers say who is logged in: each service's two processes as its own user.
    const users = await until(stack, "every process connected", async () => {
      const u = await connectedUsers();
      return SERVICES.every((s) => (u.get(s) ?? []).filter((n) => n === s).length === 2) ? u : undefined;
    });
    expect(users.get("(anonymous)")).toBeUndefined();

    const lines = await serviceLogs();
    // The streams are as expected at R3: no drift warning at any start.
    expect(lines.filter((l) => /stream(s)? differ/.test(l))).toEqual([]);
    // The leases follow releases without a KV watch (which nats.conf refuses).
    expect(lines.filter((l) => /lease: (watch failed|cannot follow)/.test(l))).toEqual([]);
    // No password in any log line (the ready line shows the servers and the user only).
    for (const service of SERVICES) {
      const password = stack.proc(service).env.NATS_PASSWORD ?? "";
      expect(password.length).toBeGreaterThan(10);
      expect(lines.filter((l) => l.includes(password))).toEqual([]);
    }
    const ready = lines.find((l) => l.includes('"msg":"provisioner ready"'));
    expect(JSON.parse(ready ?? "{}")).toMatchObject({ nats: stack.natsUrl, natsUser: "provisioner" });
  });

  it("takes a cluster to Ready", async () => {
    const id = "prod-shape-1";
    const instances = watchInstances(stack, id);
    const create = await send(stack, sent, createCommand(id, 1));
    await reached(stack, id, create.commandId);
    const seen = await instances.stop();
    expect(duplicateInstances(seen)).toEqual([]);
    expect(
      await unansweredCommands(stack, sent.slice(0, 1), await stack.events({ type: "cluster", id })),
    ).toEqual([]);
  });

  it("keeps going with the EVT leader's server stopped, and that server catches up when it is back", async () => {
    const cluster = stack.natsCluster!;
    const before = await stack.nats.jsm.streams.info("EVT");
    const victim = cluster.nodes.find((n) => n.name === before.cluster?.leader);
    if (!victim) throw new Error(`no node named ${before.cluster?.leader}`);
    await victim.stop();

    // The stream elects another leader among the two left (its quorum).
    const newLeader = await until(stack, "a new EVT leader", async () => {
      const info = await stack.nats.jsm.streams.info("EVT");
      return info.cluster?.leader && info.cluster.leader !== victim.name ? info.cluster.leader : undefined;
    });
    expect(newLeader).not.toBe(victim.name);

    const id = "prod-shape-2";
    const instances = watchInstances(stack, id);
    const create = await send(stack, sent, createCommand(id, 1));
    await reached(stack, id, create.commandId);
    expect(duplicateInstances(await instances.stop())).toEqual([]);

    // Back: it rejoins and catches up with what was written without it.
    await victim.start();
    const last = (await stack.nats.jsm.streams.info("EVT")).state.last_seq;
    await until(stack, `${victim.name} current on every stream`, async () => {
      for (const name of STREAMS) {
        const info = await stack.nats.jsm.streams.info(name);
        const peers = [
          info.cluster?.leader,
          ...(info.cluster?.replicas ?? []).map((r) => (r.current ? r.name : "")),
        ];
        if (!peers.includes(victim.name)) return undefined;
      }
      return true;
    });
    // "current" is the leader's view with some lag allowed; the victim's own
    // monitor is the proof that what was written without it reached it.
    const evtOnVictim = async () => {
      const onVictim = await fetch(`http://127.0.0.1:${victim.monitorPort}/jsz?streams=true`).then(
        (r) =>
          r.json() as Promise<{
            account_details?: { stream_detail?: { name: string; state: { last_seq: number } }[] }[];
          }>,
      );
      return onVictim.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === "EVT");
    };
    const evt = await until(stack, `${victim.name} holding EVT up to ${last}`, async () => {
      const found = await evtOnVictim();
      return found && found.state.last_seq >= last ? found : undefined;
    });
    expect(evt?.state.last_seq ?? 0).toBeGreaterThanOrEqual(last);
  });

  it("had no permission violation, no crash", async () => {
    expect(stack.natsViolations()).toEqual([]);
    expect(stack.crashes()).toEqual([]);
  });
});
