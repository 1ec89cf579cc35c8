/**
 * `role` (CAIRN_PROJECTOR_ROLE): a replica in role `api` serves the API from the read models
 * and the projecting replica's change announcements, and never projects — not even when no
 * other replica holds the lease.
 */
import { Headers, projectorChangesSubject } from "@cairn/events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "./db/database.ts";
import { type Projector, startProjector } from "./projector.ts";
import { readCheckpoint } from "./repository/checkpoint.ts";
import { cluster, deletionRequested, requested } from "./testing/fixtures.ts";
import { eventually, type Infra, startInfra } from "./testing/infra.ts";

let infra: Infra;
let apiOnly: Projector | undefined;
let projecting: Projector | undefined;

beforeAll(async () => {
  infra = await startInfra();
}, 30_000);
afterAll(async () => {
  await apiOnly?.stop();
  await projecting?.stop();
  await infra?.dispose();
});

describe("projector roles", () => {
  it("refuses a role that contradicts its API option", async () => {
    const base = { nats: infra.nats, databaseUrl: infra.database.url };
    await expect(startProjector({ ...base, role: "api", api: false })).rejects.toThrow(
      /api must not be false/,
    );
    await expect(startProjector({ ...base, role: "projection", api: { port: 0 } })).rejects.toThrow(
      /api must be false/,
    );
    await expect(
      startProjector({ ...base, role: "reader" as unknown as "api", api: { port: 0 } }),
    ).rejects.toThrow(/role must be one of/);
  });

  it("an api replica serves what another replica projects, follows its live stream, and never projects itself", async () => {
    const leaseTtlMs = 1_000;
    // The API replica starts first: in role `all` it would take the lease and project.
    apiOnly = await startProjector({
      nats: infra.nats,
      databaseUrl: infra.database.url,
      role: "api",
      leaseTtlMs,
      api: { port: 0, heartbeatMs: 50 },
    });
    const base = apiOnly.api!.url;
    projecting = await startProjector({
      nats: infra.nats,
      databaseUrl: infra.database.url,
      role: "projection",
      leaseTtlMs,
      api: false,
    });
    expect(projecting.api).toBeUndefined();

    // Follow the API replica's live stream before the commit.
    const ctl = new AbortController();
    const res = await fetch(`${base}/events/stream?resource=clusters&id=role-1`, { signal: ctl.signal });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const changeSeen = (async () => {
      while (!text.includes("event: change")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += value;
      }
      return text;
    })();

    const created = await infra.writer.append(cluster("role-1"), [requested("role-1")]);
    const body = await eventually(async () => {
      const r = await fetch(`${base}/clusters/role-1`);
      return r.status === 200 ? ((await r.json()) as { sequence: number; state: string }) : undefined;
    });
    expect(body.sequence).toBe(created.sequence);
    expect(await changeSeen).toContain(`"id":"role-1"`);
    ctl.abort();

    // Ready as a standby: Postgres answers, another replica projects.
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as { checks: { consumer: string } }).checks.consumer).toMatch(/standby/);

    // The projecting replica goes; the API replica does not take over, however long the lease is free.
    await projecting.stop();
    projecting = undefined;
    await infra.writer.append(cluster("role-1"), [deletionRequested()]);
    await new Promise((r) => setTimeout(r, leaseTtlMs * 3));
    const db = openDatabase(infra.database.url, { max: 1 });
    try {
      expect(await readCheckpoint(db, "cairn", "projector")).toBe(created.sequence);
    } finally {
      await db.destroy();
    }
    const after = (await (await fetch(`${base}/clusters/role-1`)).json()) as {
      sequence: number;
      state: string;
    };
    expect(after.sequence).toBe(created.sequence);
  }, 30_000);

  it("a replica in role all hands its own batches' rows to its live stream in process, once each, and announces them for the others", async () => {
    const all = await startProjector({
      nats: infra.nats,
      databaseUrl: infra.database.url,
      role: "all",
      leaseTtlMs: 1_000,
      api: { port: 0, heartbeatMs: 50 },
    });
    const heard: { origin: string | undefined; rows: { id: string }[] }[] = [];
    const sub = infra.nats.nc.subscribe(projectorChangesSubject("projector"), {
      callback: (_err, m) => {
        heard.push({ origin: m.headers?.get(Headers.changesOrigin), rows: m.json() });
      },
    });
    const ctl = new AbortController();
    try {
      // It projects (the replica before it stopped projecting; the api one never does).
      await eventually(async () => {
        const ready = (await (await fetch(`${all.api!.url}/readyz`)).json()) as {
          checks: { consumer: string };
        };
        return ready.checks.consumer.includes("standby") ? undefined : true;
      });
      const res = await fetch(`${all.api!.url}/events/stream?resource=clusters`, { signal: ctl.signal });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      const ids = ["inproc-1", "inproc-2", "inproc-3"];
      for (const id of ids) await infra.writer.append(cluster(id), [requested(id)]);
      let text = "";
      while (!ids.every((id) => text.includes(`"id":"${id}"`))) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += value;
      }
      // A little longer: an echo of its own announcement through NATS would come now.
      const more = (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          text += value;
        }
      })();
      await new Promise((r) => setTimeout(r, 300));
      ctl.abort();
      await more.catch(() => {});
      for (const id of ids) expect(text.split(`"resource":"clusters","id":"${id}"`).length - 1).toBe(1);
      // The other replicas still hear every row from NATS, with who announced it.
      const announced = heard.filter((h) => h.rows.some((r) => ids.includes(r.id)));
      expect(
        announced
          .flatMap((h) => h.rows.map((r) => r.id))
          .filter((id) => ids.includes(id))
          .sort(),
      ).toEqual(ids);
      expect(new Set(announced.map((h) => h.origin)).size).toBe(1);
      expect(announced[0]!.origin).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      ctl.abort();
      sub.unsubscribe();
      await all.stop();
    }
  }, 30_000);
});
