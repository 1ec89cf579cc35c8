/**
 * EC2's tag rules, checked before a cluster is accepted rather than met as
 * `TagLimitExceeded` or `InvalidParameterValue` when its first instance is launched.
 *
 * The rules (Amazon EC2 User Guide, "Tag restrictions"; the same in the tagging
 * reference of every AWS service):
 * - at most 50 tags per resource (tags whose key starts with `aws:` are AWS's own and do
 *   not count; a user cannot set them);
 * - a key is 1 to 128 Unicode characters, a value at most 256 (characters, not UTF-16
 *   code units: `[...s].length`);
 * - a key must not start with `aws:` in any case (`AWS:`, `Aws:` …): reserved for AWS;
 * - keys are case sensitive, so `Team` and `team` are two tags.
 * EC2 allows any character in a tag (other services are stricter; only instance tags in
 * the instance metadata are restricted, and Cairn does not turn those on).
 *
 * Cairn puts its own tags (`CAIRN_TAGS`, six of them) on every instance and volume it
 * launches, after the user's; a user tag with one of their keys, or any `cairn:` key, is
 * dropped (Cairn's wins, so an instance cannot pass for another cluster's). So a spec may
 * carry at most 50 − 6 = 44 tags that Cairn keeps.
 */

/** EC2's own limits on the tags of one resource (an instance, a volume). */
export const EC2_TAG_RULES = {
  maxTagsPerResource: 50,
  maxKeyCharacters: 128,
  maxValueCharacters: 256,
  /** Reserved for AWS, in any case. */
  reservedPrefix: "aws:",
} as const;

/**
 * The tags Cairn puts on every instance it launches (and on its volumes). Together they
 * say which cluster, pool, slot and launch attempt an instance belongs to, so the world
 * can be reconciled against the log after any crash.
 */
export const CAIRN_TAGS = {
  cluster: "cairn:cluster",
  pool: "cairn:pool",
  /** The slot, stable across replacements. */
  slot: "cairn:slot",
  role: "cairn:role",
  /** Which launch of the slot this is. */
  attempt: "cairn:attempt",
  /** What the EC2 console shows: `<cluster>-<pool>-<slot>`. */
  name: "Name",
} as const;

/** The prefix of Cairn's own tag keys: a user tag with it is dropped at launch. */
export const CAIRN_TAG_PREFIX = "cairn:";

const CAIRN_KEYS: ReadonlySet<string> = new Set(Object.values(CAIRN_TAGS));

/** Whether Cairn drops a user tag with this key (its own tags win). */
export function isCairnTagKey(key: string): boolean {
  return CAIRN_KEYS.has(key) || key.startsWith(CAIRN_TAG_PREFIX);
}

/** The user tags a spec may carry that Cairn keeps: 50 − Cairn's 6 = 44. */
export const MAX_USER_TAGS = EC2_TAG_RULES.maxTagsPerResource - CAIRN_KEYS.size;

const chars = (s: string) => [...s].length;
/** How many offenders a reason names before it counts the rest. */
const NAMED = 3;
const named = (keys: readonly string[]) => {
  const shown = keys.slice(0, NAMED).map((k) => JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}…` : k));
  return keys.length > NAMED ? `${shown.join(", ")} and ${keys.length - NAMED} more` : shown.join(", ");
};

/**
 * What breaks EC2's tag rules in a spec's `tags`, one sentence per rule broken (empty:
 * EC2 will take them). Pure.
 * @example ec2TagProblems({ "aws:team": "x" })
 *   // ['tag key "aws:team" starts with "aws:", which AWS reserves for itself: rename it']
 * @example ec2TagProblems(fiftyTags).length // 1 — "50 tags, but an instance takes at most 44 …"
 */
export function ec2TagProblems(tags: Readonly<Record<string, string>>): string[] {
  const problems: string[] = [];
  const keys = Object.keys(tags);
  const reserved = keys.filter((k) => k.toLowerCase().startsWith(EC2_TAG_RULES.reservedPrefix));
  if (reserved.length > 0)
    problems.push(
      `tag key${reserved.length === 1 ? "" : "s"} ${named(reserved)} start${reserved.length === 1 ? "s" : ""} with "aws:", which AWS reserves for itself: rename ${reserved.length === 1 ? "it" : "them"}`,
    );
  const empty = keys.filter((k) => chars(k) === 0);
  if (empty.length > 0) problems.push("a tag key is empty: EC2 wants 1 to 128 characters");
  const longKeys = keys.filter((k) => chars(k) > EC2_TAG_RULES.maxKeyCharacters);
  if (longKeys.length > 0)
    problems.push(
      `tag key${longKeys.length === 1 ? "" : "s"} ${named(longKeys)} ${longKeys.length === 1 ? "is" : "are"} longer than ${EC2_TAG_RULES.maxKeyCharacters} characters, EC2's limit`,
    );
  const longValues = keys.filter((k) => chars(tags[k] ?? "") > EC2_TAG_RULES.maxValueCharacters);
  if (longValues.length > 0)
    problems.push(
      `the value${longValues.length === 1 ? "" : "s"} of tag${longValues.length === 1 ? "" : "s"} ${named(longValues)} ${longValues.length === 1 ? "is" : "are"} longer than ${EC2_TAG_RULES.maxValueCharacters} characters, EC2's limit`,
    );
  // Cairn's own keys are dropped at launch and so do not count; AWS's are refused above.
  const kept = keys.filter((k) => !isCairnTagKey(k)).length;
  if (kept > MAX_USER_TAGS)
    problems.push(
      `${kept} tags, but an instance takes at most ${MAX_USER_TAGS} of yours: EC2 allows ${EC2_TAG_RULES.maxTagsPerResource} per resource and Cairn adds its own ${EC2_TAG_RULES.maxTagsPerResource - MAX_USER_TAGS} (${[...CAIRN_KEYS].join(", ")}); remove ${kept - MAX_USER_TAGS}`,
    );
  return problems;
}
