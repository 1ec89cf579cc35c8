import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  allows,
  authenticate,
  bearerToken,
  createToken,
  loadTokensFile,
  parseRateLimit,
  sha256Hex,
} from "./auth.ts";

describe("tokens", () => {
  it("createToken gives a secret once and the entry that holds only its hash", () => {
    const { token, entry } = createToken("alice", "operator");
    expect(token).toMatch(/^cairn_[A-Za-z0-9_-]{43}$/);
    expect(entry).toEqual({ user: "alice", role: "operator", tokenSha256: sha256Hex(token) });
    expect(JSON.stringify(entry)).not.toContain(token);
  });

  it("authenticate finds the holder by hash, and nobody for an unknown token", () => {
    const a = createToken("alice", "viewer");
    const b = createToken("bob", "admin");
    const auth = { tokens: [a.entry, b.entry] };
    expect(authenticate(auth, b.token)).toEqual({ user: "bob", role: "admin" });
    expect(authenticate(auth, a.token)).toEqual({ user: "alice", role: "viewer" });
    expect(authenticate(auth, `${a.token}x`)).toBeUndefined();
    expect(authenticate({ tokens: [] }, a.token)).toBeUndefined();
  });

  it("roles: viewer < operator < admin; public needs none", () => {
    expect(allows(undefined, "public")).toBe(true);
    expect(allows(undefined, "viewer")).toBe(false);
    expect(allows("viewer", "viewer")).toBe(true);
    expect(allows("viewer", "operator")).toBe(false);
    expect(allows("operator", "operator")).toBe(true);
    expect(allows("operator", "admin")).toBe(false);
    expect(allows("admin", "operator")).toBe(true);
  });

  it("bearerToken reads `Bearer <token>` only", () => {
    expect(bearerToken("Bearer abc")).toBe("abc");
    expect(bearerToken("bearer  abc ")).toBe("abc");
    expect(bearerToken("Basic abc")).toBeUndefined();
    expect(bearerToken("Bearer a b")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it("loadTokensFile checks every entry and names the bad one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cairn-tokens-"));
    const good = join(dir, "good.json");
    const { entry } = createToken("alice", "admin");
    await writeFile(good, JSON.stringify({ tokens: [entry] }));
    expect(await loadTokensFile(good)).toEqual({ tokens: [entry] });

    const bad = join(dir, "bad.json");
    await writeFile(bad, JSON.stringify({ tokens: [{ ...entry, role: "root" }] }));
    await expect(loadTokensFile(bad)).rejects.toThrow(/invalid tokens file .*tokens\.0\.role/);
    const twice = join(dir, "twice.json");
    await writeFile(twice, JSON.stringify({ tokens: [entry, { ...entry, user: "bob" }] }));
    await expect(loadTokensFile(twice)).rejects.toThrow(/listed twice/);
    await expect(loadTokensFile(join(dir, "absent.json"))).rejects.toThrow(/cannot read the tokens file/);
  });
});

describe("parseRateLimit", () => {
  it("reads <count>/<unit>", () => {
    expect(parseRateLimit("600/min")).toEqual({ max: 600, timeWindowMs: 60_000 });
    expect(parseRateLimit("10/s")).toEqual({ max: 10, timeWindowMs: 1_000 });
    expect(parseRateLimit(" 5000 / hour ")).toEqual({ max: 5000, timeWindowMs: 3_600_000 });
  });
  it("refuses anything else with the expected form", () => {
    for (const s of ["600", "0/min", "ten/min", "600/fortnight", ""]) {
      expect(() => parseRateLimit(s)).toThrow(/must read <count>\/<s\|min\|hour>/);
    }
  });
});
