import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Sim, startSim } from "./sim.ts";

let sim: Sim;
beforeAll(async () => {
  sim = await startSim({ seed: 3, timeScale: 1 });
});
afterAll(async () => sim?.stop());

const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(`${sim.adminUrl}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }
      : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe("sim admin API", () => {
  it("reports health with the seed and scale", async () => {
    const r = await call("GET", "/health");
    expect(r.body).toMatchObject({ ok: true, seed: 3, timeScale: 1 });
  });
  it("adds, lists and removes faults, and refuses an unknown kind", async () => {
    const added = await call("POST", "/faults", { kind: "throttle", service: "ec2", count: 3 });
    expect(added.status).toBe(201);
    expect((await call("GET", "/faults")).body.rules).toEqual([
      expect.objectContaining({ id: added.body.id, count: 3 }),
    ]);
    expect((await call("POST", "/faults", { kind: "meteor", count: 1 })).status).toBe(400);
    expect((await call("DELETE", `/faults/${added.body.id}`)).status).toBe(200);
    expect((await call("GET", "/faults")).body.rules).toEqual([]);
  });
  it("advances sim time", async () => {
    const before = sim.clock.now();
    const r = await call("POST", "/time/advance", { seconds: 3600 });
    expect(r.status).toBe(200);
    expect(sim.clock.now() - before).toBeGreaterThanOrEqual(3_600_000);
    expect((await call("POST", "/time/advance", { seconds: -1 })).status).toBe(400);
  });
  it("answers an unknown route with 404 and says so", async () => {
    const r = await call("GET", "/nothing");
    expect(r.status).toBe(404);
    expect(r.body.error).toContain("/_sim/nothing");
  });
  it("listens on loopback only", () => {
    expect(new URL(sim.url).hostname).toBe("127.0.0.1");
  });
});
