/**
 * The quota policy file (`CAIRN_QUOTAS_FILE`, YAML or JSON; docs/sessions.md): limits
 * on each user's and each group's live sessions, CPU and memory. Absent file: the
 * defaults below for every user, no groups. Read once at start; a change needs a
 * restart (limits are recorded with every place taken, so the log says which applied).
 *
 * ```yaml
 * defaults: { sessions: 5, cpu: "16", memory: 64Gi }   # any user without an entry
 * users:
 *   alice: { sessions: 10, groups: [team-a] }           # unset limits: the defaults'
 * groups:
 *   team-a: { sessions: 20, cpu: "32", memory: 128Gi }  # shared by its members
 * ```
 */
import { readFileSync } from "node:fs";
import { bytesOf, cpuMillis, type QuotaLimits, tokenSafeId } from "@cairn/events";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const quantity = z
  .union([z.string(), z.number()])
  .transform(String)
  .refine(
    (q) => /^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.test(q),
    "must be a Kubernetes quantity such as 2, 500m or 4Gi",
  );
const limits = z
  .object({
    sessions: z.number().int().nonnegative().optional(),
    cpu: quantity.optional(),
    memory: quantity.optional(),
  })
  .strict();
const policyFile = z
  .object({
    defaults: limits.optional(),
    users: z
      .record(tokenSafeId, limits.extend({ groups: z.array(tokenSafeId).optional() }).strict())
      .optional(),
    groups: z.record(tokenSafeId, limits).optional(),
  })
  .strict();
type FileLimits = z.infer<typeof limits>;

export const DEFAULT_USER_LIMITS: FileLimits = { sessions: 5, cpu: "16", memory: "64Gi" };

export interface QuotaPolicy {
  /** The limits on a user's own ledger. */
  userLimits(user: string): QuotaLimits;
  /** The groups the user's sessions also count against. */
  groupsOf(user: string): string[];
  groupLimits(group: string): QuotaLimits;
}

const toLimits = (l: FileLimits): QuotaLimits => ({
  ...(l.sessions !== undefined ? { sessions: l.sessions } : {}),
  ...(l.cpu !== undefined ? { cpuMillis: cpuMillis(l.cpu) } : {}),
  ...(l.memory !== undefined ? { memoryBytes: bytesOf(l.memory) } : {}),
});

/** The policy from a parsed file (an object); throws naming what is wrong. */
export function quotaPolicyFrom(raw: unknown): QuotaPolicy {
  const parsed = policyFile.safeParse(raw ?? {});
  if (!parsed.success)
    throw new Error(
      `the quota policy is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")}`,
    );
  const p = parsed.data;
  const defaults = p.defaults ?? DEFAULT_USER_LIMITS;
  for (const [user, u] of Object.entries(p.users ?? {}))
    for (const g of u.groups ?? [])
      if (!p.groups?.[g])
        throw new Error(
          `the quota policy is invalid: users.${user}.groups names ${g}, which is not in groups`,
        );
  return {
    userLimits: (user) => {
      const { groups: _g, ...own } = p.users?.[user] ?? {};
      return toLimits({ ...defaults, ...own });
    },
    groupsOf: (user) => [...(p.users?.[user]?.groups ?? [])],
    groupLimits: (group) => toLimits(p.groups?.[group] ?? {}),
  };
}

/** Reads the policy file (`.json`: JSON, anything else: YAML, which JSON also is); absent path: the defaults. */
export function loadQuotaPolicy(path: string | undefined): QuotaPolicy {
  if (!path) return quotaPolicyFrom({});
  const text = readFileSync(path, "utf8");
  let raw: unknown;
  try {
    raw = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new Error(
      `CAIRN_QUOTAS_FILE ${path} is not valid ${path.endsWith(".json") ? "JSON" : "YAML"}: ${(err as Error).message}`,
    );
  }
  try {
    return quotaPolicyFrom(raw);
  } catch (err) {
    throw new Error(`CAIRN_QUOTAS_FILE ${path}: ${(err as Error).message}`);
  }
}
