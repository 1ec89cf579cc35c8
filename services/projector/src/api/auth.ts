/**
 * Bearer-token authentication and role checks for the projector API.
 *
 * Tokens are random secrets the API never stores: the tokens file lists each one's
 * SHA-256 (hex) with its user and role. A presented token is hashed and compared with
 * every entry in constant time, so neither the secret nor how much of it matched leaks
 * through timing.
 */
import { createHash, hash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { z } from "zod";

/** Roles, weakest first: each one may do what the ones before it may. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** What a route needs: `public` (no token at all), or at least this role. */
export type Access = "public" | Role;

export interface Principal {
  readonly user: string;
  readonly role: Role;
}

export const tokenEntry = z.object({
  user: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.@=-]*$/, "must be a user name: letters, digits, _ . @ = -"),
  role: z.enum(ROLES),
  tokenSha256: z.string().regex(/^[0-9a-f]{64}$/, "must be the token's SHA-256 as 64 lower-case hex digits"),
});
export type TokenEntry = z.infer<typeof tokenEntry>;

/** The tokens file: `{ "tokens": [ { user, role, tokenSha256 }, … ] }`. */
export const tokensFile = z
  .object({ tokens: z.array(tokenEntry) })
  .refine((f) => new Set(f.tokens.map((t) => t.tokenSha256)).size === f.tokens.length, {
    message: "the same tokenSha256 is listed twice",
  });

/** The API's authentication: the known tokens. Its presence also allows a listen beyond loopback. */
export interface ApiAuth {
  readonly tokens: readonly TokenEntry[];
}

export function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

/**
 * Reads and checks a tokens file.
 * @throws Error naming the file and the bad entry when it is unreadable or invalid.
 */
export async function loadTokensFile(path: string): Promise<ApiAuth> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (err) {
    throw new Error(`cannot read the tokens file ${path}: ${err instanceof Error ? err.message : err}`, {
      cause: err,
    });
  }
  const parsed = tokensFile.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`);
    throw new Error(`invalid tokens file ${path}: ${issues.join("; ")}`);
  }
  return { tokens: parsed.data.tokens };
}

/**
 * A new token for a user: the secret (shown once, never stored) and the entry for the file.
 * @example createToken("alice", "operator")
 *   // { token: "cairn_…43 chars…", entry: { user: "alice", role: "operator", tokenSha256: "9f…" } }
 */
export function createToken(user: string, role: Role): { token: string; entry: TokenEntry } {
  const token = `cairn_${randomBytes(32).toString("base64url")}`;
  const entry = tokenEntry.parse({ user, role, tokenSha256: sha256Hex(token) });
  return { token, entry };
}

/** Each tokens list's digests as bytes and its principals, made once (not per request). */
const digestsOf = new WeakMap<ApiAuth, readonly { digest: Buffer; principal: Principal }[]>();

/** Who holds this token, or undefined. Compares against every entry, in constant time each. */
export function authenticate(auth: ApiAuth, token: string): Principal | undefined {
  let known = digestsOf.get(auth);
  if (!known) {
    known = auth.tokens.map((t) => ({
      digest: Buffer.from(t.tokenSha256, "hex"),
      principal: { user: t.user, role: t.role },
    }));
    digestsOf.set(auth, known);
  }
  // One-shot: no Hash object per request (every request with a token passes here).
  const presented = hash("sha256", token, "buffer");
  let found: Principal | undefined;
  for (const t of known) {
    // No early exit: the time taken does not depend on which entry matched.
    if (timingSafeEqual(presented, t.digest) && !found) found = t.principal;
  }
  return found;
}

/** Whether `role` may use a route that needs `access`. */
export function allows(role: Role | undefined, access: Access): boolean {
  if (access === "public") return true;
  return role !== undefined && ROLES.indexOf(role) >= ROLES.indexOf(access);
}

/** The bearer token of an Authorization header, or undefined when there is none or it is not Bearer. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  return m?.[1];
}

export interface RateLimit {
  readonly max: number;
  readonly timeWindowMs: number;
}

const UNITS: Record<string, number> = {
  s: 1_000,
  sec: 1_000,
  second: 1_000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
};

/**
 * `CAIRN_API_RATE_LIMIT`: requests per window, per token (or per address without one).
 * @example parseRateLimit("600/min") // { max: 600, timeWindowMs: 60000 }
 * @throws Error on anything but `<count>/<s|min|hour>`.
 */
export function parseRateLimit(s: string): RateLimit {
  const m = /^\s*(\d+)\s*\/\s*([a-z]+)\s*$/i.exec(s);
  const unit = m?.[2]?.toLowerCase();
  const ms = unit !== undefined ? UNITS[unit] : undefined;
  if (!m || ms === undefined || Number(m[1]) < 1) {
    throw new Error(`rate limit ${JSON.stringify(s)} must read <count>/<s|min|hour>, e.g. 600/min`);
  }
  return { max: Number(m[1]), timeWindowMs: ms };
}

export const DEFAULT_RATE_LIMIT: RateLimit = { max: 600, timeWindowMs: 60_000 };
