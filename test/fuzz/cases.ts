/**
 * The bad input the fuzz suite sends, as fast-check arbitraries: hostile variants of every
 * command in the catalogue (derived from its zod schema by `validOf`, then broken), raw
 * messages that are not commands at all, messages published straight onto event subjects,
 * and HTTP requests to the API's command intake, typed routes and queries.
 *
 * Every case is built to be refused: a schema-valid command is only ever sent where the
 * owner must refuse it (a target that does not exist, a stale version, a pool the victim
 * does not have, a second create of an existing id, an internal command from outside).
 * So the oracle can say: every case is answered by a refusal, and nothing else changes.
 */
import {
  allCommandDefinitions,
  type CommandDefinition,
  catalogue,
  commandSubject,
  isTokenSafe,
} from "@cairn/events";
import fc from "fast-check";
import { validOf } from "./zod-arbitrary.ts";

/** What exists before the fuzz starts. */
export interface Fixtures {
  /** Targets the fuzz may aim at (only with commands their owner refuses). */
  readonly victim: {
    readonly clusterId: string;
    readonly sessionId: string;
    readonly user: string;
    /** The cluster's version when the fuzz starts (its event count). */
    readonly version: number;
    readonly pool: string;
  };
  /** Never named by any case: their logs must stay as they are. */
  readonly untouched: { readonly clusterId: string; readonly sessionId: string; readonly user: string };
  /** Ids of commands sent before the fuzz (for the duplicated-id cases). */
  readonly earlierCommandIds: readonly string[];
}

export interface BusCase {
  readonly via: "bus";
  readonly label: string;
  readonly subject: string;
  readonly body: Uint8Array;
  readonly headers: readonly (readonly [string, string])[];
  /** JetStream's dedupe id (`Nats-Msg-Id`), when the case sets one. */
  readonly msgId?: string;
  /** The envelope's id, when it is a readable string (the rejection names it). */
  readonly commandId?: string;
  /** Reuse the command id (and msg id) of the n-th earlier case: a duplicated id. */
  readonly reuse?: number;
}

/** A request on core NATS (a heartbeat): it must be answered, with an error status. */
export interface RequestCase {
  readonly via: "request";
  readonly label: string;
  readonly subject: string;
  readonly body: Uint8Array;
}

export interface ApiCase {
  readonly via: "api";
  readonly label: string;
  readonly method: "GET" | "POST" | "PATCH" | "DELETE" | "PUT";
  /** Path and query, already encoded. */
  readonly path: string;
  readonly contentType?: string;
  readonly body?: Uint8Array;
}

export type Case = BusCase | RequestCase | ApiCase;

const enc = new TextEncoder();
const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);
const json = (v: unknown) => enc.encode(JSON.stringify(v));

// ---- pieces of hostility ------------------------------------------------------------------

/** Ids no subject token may be: `.`, `*`, `>`, spaces, unicode, empty, too long, control characters. */
export const hostileIdArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "a.b",
    "*",
    ">",
    "a.*.>",
    "a b",
    "",
    " ",
    "-lead",
    "_lead",
    "..",
    "x".repeat(129),
    "é",
    "日本語",
    "🙂",
    "a\u0000b",
    "\t",
    "a\nb",
    "\u202Eevil",
    "\uD800",
    "%2E",
    "../../etc/passwd",
  ),
  fc.string({ unit: "binary", minLength: 1, maxLength: 16 }).filter((s) => !isTokenSafe(s)),
);

/** Strings a field should never hold: huge, control characters, lone surrogates, injection text. */
export const hostileStringArb: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 1_000, max: 200_000 }).map((n) => "x".repeat(n)),
  fc.constantFrom(
    "\u0000",
    "nul\u0000inside",
    "\uD800",
    "\uDFFF\uD800",
    "\u202E",
    "'; drop table clusters; --",
    "\u0024{jndi:ldap://x/a}", // log4shell-style lookup text
    "<script>alert(1)</script>",
    "%s%n%x",
    "\r\n\r\nHTTP/1.1 200 OK",
    "🙂".repeat(300),
  ),
  fc.string({ unit: "binary", maxLength: 64 }),
);

const wrongTypeArb: fc.Arbitrary<unknown> = fc.constantFrom(
  null,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  true,
  false,
  [],
  {},
  "",
  "string",
  [1, 2, 3],
  { nested: { deep: true } },
);

const typeName = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);

/** Malformed W3C traceparents (a header or the envelope's meta). */
const badTraceparentArb = fc.oneof(
  fc.constantFrom(
    "garbage",
    "",
    "00-00000000000000000000000000000000-0000000000000000-01",
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
    "00-ZZf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    `00-${"a".repeat(4000)}-b7ad6b7169203331-01`,
  ),
  fc.string({ maxLength: 80 }),
);

/** Path of every value inside `v` (objects and arrays), the root excluded. */
function pathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => [[...at, i], ...pathsOf(x, [...at, i])]);
  if (v && typeof v === "object")
    return Object.entries(v).flatMap(([k, x]) => [[...at, k], ...pathsOf(x, [...at, k])]);
  return [];
}

function getAt(v: unknown, path: readonly (string | number)[]): unknown {
  let cur = v;
  for (const p of path) cur = (cur as Record<string | number, unknown>)?.[p];
  return cur;
}

/** A copy of `v` with the value at `path` replaced (or deleted, for `undefined` with `remove`). */
function setAt(v: unknown, path: readonly (string | number)[], value: unknown, remove = false): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (Array.isArray(v)) {
    const copy: unknown[] = [...v];
    if (rest.length === 0 && remove) copy.splice(Number(head), 1);
    else copy[Number(head)] = setAt(copy[Number(head)], rest, value, remove);
    return copy;
  }
  const copy: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  if (rest.length === 0 && remove) delete copy[String(head)];
  else copy[String(head)] = setAt(copy[String(head)], rest, value, remove);
  return copy;
}

/** The data keys the aggregate id is read from (`clusterId`; `clusterId` and `node` for a node). */
function idKeysOf(def: CommandDefinition, sample: Record<string, unknown>): string[] {
  const before = def.aggregateId(sample as never);
  return Object.keys(sample).filter((k) => {
    if (typeof sample[k] !== "string") return false;
    try {
      return def.aggregateId({ ...sample, [k]: `${sample[k]}zz` } as never) !== before;
    } catch {
      return false;
    }
  });
}

// ---- commands -----------------------------------------------------------------------------

const publicDefs = allCommandDefinitions.filter((d) => !d.internal);

/**
 * Public commands the owner refuses when their target does not exist (checked against
 * each decider: `not-found`, or `conflict` for an uncordon of a node Cairn never cordoned).
 * The others (`cluster.create`, `session.create`, `node.cordon`, `node.drain`, …) would
 * do something for a fresh target, so they are sent valid only at the victim, refused there.
 */
const REFUSED_WHEN_ABSENT: ReadonlySet<string> = new Set([
  "cluster.scale",
  "cluster.rollback",
  "cluster.delete",
  "cluster.update-pool",
  "cluster.retry",
  "session.hibernate",
  "session.wake",
  "session.connect",
  "session.terminate",
  "workload.stop",
  "install.upgrade",
]);

/** One valid data sample per command type, with a fresh target id (`fz-…`). */
const dataArb = (def: CommandDefinition, fresh: string): fc.Arbitrary<Record<string, unknown>> =>
  validOf(def.schema).map((d) => {
    const data = { ...(d as Record<string, unknown>) };
    for (const k of idKeysOf(def, data)) {
      if (k === "node") data[k] = `n-${fresh}`;
      else data[k] = fresh;
    }
    return data;
  });

/**
 * Whether the owner must refuse this envelope at a fresh target: the catalogue refuses it,
 * it is internal, or it is a command refused when its target does not exist.
 */
export function certainlyRefused(env: Envelope): boolean {
  const parsed = catalogue.parseCommand(env);
  if (!parsed.ok) return true;
  return parsed.value.definition.internal || REFUSED_WHEN_ABSENT.has(parsed.value.command.type);
}

export interface Envelope {
  id?: unknown;
  type?: unknown;
  data?: unknown;
  meta?: unknown;
  [extra: string]: unknown;
}

/** A command envelope that the catalogue refuses, or that the owner must refuse. */
function hostileCommandArb(fx: Fixtures): fc.Arbitrary<{ label: string; env: Envelope }> {
  const freshArb = fc.integer({ min: 0, max: 2 ** 40 }).map((n) => `fz-${n.toString(36)}`);
  const perType = allCommandDefinitions.map((def) =>
    fc
      .record({
        fresh: freshArb,
        id: fc.uuid({ version: [4, 7] }),
        actor: fc.constantFrom("fuzz", "mallory"),
      })
      .chain(({ fresh, id, actor }) =>
        dataArb(def, fresh).chain((data) => {
          const base: Envelope = { id, type: def.type, data, meta: { actor } };
          const ids = idKeysOf(def, data);
          const paths = pathsOf(data);
          const mutations: fc.Arbitrary<{ label: string; env: Envelope }>[] = [];
          // Wrong type somewhere in the data.
          if (paths.length > 0)
            mutations.push(
              fc
                .tuple(fc.constantFrom(...paths), wrongTypeArb)
                .filter(([p, w]) => typeName(getAt(data, p)) !== typeName(w))
                .map(([p, w]) => ({
                  label: `${def.type}: ${p.join(".")} as ${typeName(w)}`,
                  env: { ...base, data: setAt(data, p, w) },
                })),
            );
          // A required field left out.
          if (paths.length > 0)
            mutations.push(
              fc.constantFrom(...paths).map((p) => ({
                label: `${def.type}: without ${p.join(".")}`,
                env: { ...base, data: setAt(data, p, undefined, true) },
              })),
            );
          // An id no subject token may hold, where the aggregate id is read.
          if (ids.length > 0)
            mutations.push(
              fc.tuple(fc.constantFrom(...ids), hostileIdArb).map(([k, bad]) => ({
                label: `${def.type}: ${k} ${JSON.stringify(bad.slice(0, 12))}`,
                env: { ...base, data: { ...data, [k]: bad } },
              })),
            );
          // A hostile string in any string field.
          const strings = paths.filter((p) => typeof getAt(data, p) === "string");
          if (strings.length > 0)
            mutations.push(
              fc.tuple(fc.constantFrom(...strings), hostileStringArb).map(([p, s]) => ({
                label: `${def.type}: ${p.join(".")} hostile string (${s.length} chars)`,
                env: { ...base, data: setAt(data, p, s) },
              })),
            );
          // The data itself not an object.
          mutations.push(
            fc.constantFrom(null, [], "data", 42, undefined).map((d) => ({
              label: `${def.type}: data ${typeName(d)}`,
              env: { ...base, data: d },
            })),
          );
          // Unknown fields (prototype keys among them), on a command the owner must refuse anyway.
          if (!def.internal && REFUSED_WHEN_ABSENT.has(def.type))
            mutations.push(
              fc
                .dictionary(
                  fc.oneof(fc.constantFrom("__proto__", "constructor", "prototype", "toString"), fc.string()),
                  fc.jsonValue({ maxDepth: 2 }),
                  { minKeys: 1, maxKeys: 3 },
                )
                .map((extra) => ({
                  label: `${def.type}: unknown fields ${Object.keys(extra).join(",").slice(0, 40)}`,
                  env: {
                    ...base,
                    data: { ...extra, ...data },
                    ...(Object.keys(extra).length % 2 ? { extra } : {}),
                  },
                })),
            );
          // Valid, at a target that does not exist: the owner refuses it.
          if (!def.internal && REFUSED_WHEN_ABSENT.has(def.type))
            mutations.push(fc.constant({ label: `${def.type}: valid, no such target`, env: base }));
          // Internal commands from outside: refused however valid.
          if (def.internal)
            mutations.push(fc.constant({ label: `${def.type}: internal, from outside`, env: base }));
          return fc.oneof(...mutations).filter(({ env }) => certainlyRefused(env));
        }),
      ),
  );

  // Envelope faults, on any command.
  const envelopeFaults = fc
    .tuple(fc.constantFrom(...publicDefs), freshArb, fc.uuid({ version: 7 }))
    .chain(([def, fresh, id]) =>
      dataArb(def, fresh).chain((data) => {
        const base: Envelope = { id, type: def.type, data, meta: { actor: "fuzz" } };
        return fc.oneof(
          fc
            .constantFrom(
              undefined,
              "",
              "not-a-uuid",
              42,
              "x".repeat(5000),
              id.toUpperCase().replace("-", ""),
            )
            .map((bad) => ({
              label: `envelope id ${typeName(bad)} ${String(bad).slice(0, 12)}`,
              env: { ...base, id: bad },
            })),
          fc
            .constantFrom(
              undefined,
              "",
              42,
              "cluster.explode",
              "cluster",
              "cluster.create.twice",
              "..",
              "cmd.cluster.create",
              "x".repeat(3000),
              "__proto__.polluted",
            )
            .map((bad) => ({
              label: `envelope type ${JSON.stringify(bad)?.slice(0, 24)}`,
              env: { ...base, type: bad },
            })),
          fc
            .oneof(
              fc.constantFrom("str", 42, null, [], { actor: "" }, { actor: 7 }, { actor: "x".repeat(300) }),
              hostileStringArb.map((actor) => ({ actor })),
              badTraceparentArb.map((traceparent) => ({ actor: "fuzz", traceparent })),
              fc.constant({ actor: "fuzz", correlationId: "c".repeat(300) }),
            )
            .map((meta) => ({
              label: `envelope meta ${JSON.stringify(meta).slice(0, 30)}`,
              env: { ...base, meta },
            })),
        );
      }),
    )
    // A readable envelope whose command would be carried out is no fault: keep only refusals.
    .filter(({ env }) => certainlyRefused(env));

  // Valid commands at the victim, each refused by its owner.
  const v = fx.victim;
  const victimCases = fc.uuid({ version: 7 }).chain((id) =>
    fc.oneof(
      // Far beyond: every rejection the fuzz lands on the victim counts in its version too.
      fc.integer({ min: v.version + 1_000_000, max: 2 ** 31 }).map((toVersion) => ({
        label: "cluster.rollback: a version the victim has not reached (stale)",
        env: {
          id,
          type: "cluster.rollback",
          data: { clusterId: v.clusterId, toVersion },
          meta: { actor: "fuzz" },
        },
      })),
      fc.constantFrom("nope", "servers", "workers2").map((pool) => ({
        label: "cluster.scale: a pool the victim does not have",
        env: {
          id,
          type: "cluster.scale",
          data: { clusterId: v.clusterId, pool, count: 1 },
          meta: { actor: "fuzz" },
        },
      })),
      fc.constant({
        label: "cluster.retry: the victim is not Failed",
        env: { id, type: "cluster.retry", data: { clusterId: v.clusterId }, meta: { actor: "fuzz" } },
      }),
      fc.constant({
        label: "cluster.delete: a session lives on the victim",
        env: { id, type: "cluster.delete", data: { clusterId: v.clusterId }, meta: { actor: "fuzz" } },
      }),
      validOf(catalogue.commandSchema("cluster.create")!).map((spec) => ({
        label: "cluster.create: the victim's id again",
        env: {
          id,
          type: "cluster.create",
          data: { ...(spec as object), clusterId: v.clusterId },
          meta: { actor: "fuzz" },
        },
      })),
      validOf(catalogue.commandSchema("session.create")!).map((s) => ({
        label: "session.create: the victim session's id again",
        env: {
          id,
          type: "session.create",
          data: { ...(s as object), sessionId: v.sessionId, clusterId: v.clusterId },
          meta: { actor: "fuzz" },
        },
      })),
    ),
  );

  return fc.oneof(
    { weight: 6, arbitrary: fc.oneof(...perType) },
    { weight: 2, arbitrary: envelopeFaults },
    { weight: 1, arbitrary: victimCases },
  );
}

// ---- the bus ------------------------------------------------------------------------------

/** Which subject a command goes to: its own, mostly; sometimes another family's or one nobody serves. */
const subjectArb = (type: unknown): fc.Arbitrary<{ subject: string; note: string }> => {
  let own: string | undefined;
  try {
    own = typeof type === "string" ? commandSubject(type) : undefined;
  } catch {
    own = undefined;
  }
  const others = fc.constantFrom(
    "cmd.cluster.create",
    "cmd.session.create",
    "cmd.node.cordon",
    "cmd.workload.start",
    "cmd.install.upgrade",
  );
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant({ subject: own ?? "cmd.cluster.create", note: "" }) },
    {
      weight: 1,
      arbitrary: others.filter((s) => s !== own).map((subject) => ({ subject, note: ` on ${subject}` })),
    },
    {
      weight: 1,
      arbitrary: fc
        .constantFrom("cmd.kube.observe-node", "cmd.bogus.verb", "cmd.cluster", "cmd.cluster.create.extra")
        .map((subject) => ({ subject, note: ` on ${subject}` })),
    },
  );
};

const headersArb: fc.Arbitrary<{ headers: [string, string][]; note: string }> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ headers: [] as [string, string][], note: "" }) },
  {
    weight: 2,
    arbitrary: badTraceparentArb.map((tp) => ({
      headers: [["traceparent", tp]] as [string, string][],
      note: ", bad traceparent header",
    })),
  },
  {
    // JetStream's own directives, stale or wrong: the server refuses the publish itself.
    weight: 1,
    arbitrary: fc
      .constantFrom<[string, string]>(
        ["Nats-Expected-Last-Subject-Sequence", "1"],
        ["Nats-Expected-Last-Sequence", "1"],
        ["Nats-Expected-Stream", "EVT"],
      )
      .map((h) => ({ headers: [h], note: `, stale ${h[0]}` })),
  },
  {
    weight: 1,
    arbitrary: fc.constant({
      headers: [
        ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
        ["tracestate", "garbage=,,=="],
        ["Cairn-Command-Type", "cluster.delete"],
      ] as [string, string][],
      note: ", lying headers",
    }),
  },
);

/** Bodies that are not a command envelope at all. */
const garbageBodyArb: fc.Arbitrary<{ label: string; body: Uint8Array }> = fc.oneof(
  fc.uint8Array({ maxLength: 256 }).map((body) => ({ label: "random bytes", body })),
  fc
    .constantFrom(
      "",
      "null",
      "[]",
      '"a string"',
      "42",
      "1e999",
      "{",
      '{"id":',
      "\uFEFF{}",
      '{"__proto__":{"polluted":true}}',
      "[".repeat(100_000),
      `${"[".repeat(5_000)}${"]".repeat(5_000)}`,
      `{"a":${'{"a":'.repeat(5_000)}1${"}".repeat(5_001)}`,
    )
    .map((s) => ({ label: `not a command: ${JSON.stringify(s.slice(0, 16))}`, body: enc.encode(s) })),
  fc.jsonValue({ maxDepth: 3 }).map((v) => ({ label: "JSON, not an envelope", body: json(v) })),
  fc.integer({ min: 300_000, max: 900_000 }).map((n) => ({
    label: `${n} bytes of JSON string`,
    body: json("x".repeat(n)),
  })),
);

/** A hostile message on a command subject. */
function busCommandArb(fx: Fixtures): fc.Arbitrary<BusCase> {
  const fromCommand = hostileCommandArb(fx).chain(({ label, env }) =>
    fc
      .tuple(
        subjectArb(env.type),
        headersArb,
        fc.boolean(),
        fc.oneof({ weight: 15, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
      )
      .map(([{ subject, note }, h, withMsgId, reuse]) => {
        const id = typeof env.id === "string" ? env.id : undefined;
        return {
          via: "bus" as const,
          label: `${label}${note}${h.note}${reuse !== null ? ", a duplicated id" : ""}`,
          subject,
          body: json(env),
          headers: h.headers,
          ...(withMsgId && id ? { msgId: id } : {}),
          ...(id ? { commandId: id } : {}),
          ...(reuse !== null ? { reuse } : {}),
        };
      }),
  );
  const garbage = fc
    .tuple(
      garbageBodyArb,
      fc.constantFrom(
        "cmd.cluster.create",
        "cmd.session.terminate",
        "cmd.node.drain",
        "cmd.workload.start",
        "cmd.install.upgrade",
      ),
      headersArb,
    )
    .map(([g, subject, h]) => ({
      via: "bus" as const,
      label: `${g.label} on ${subject}${h.note}`,
      subject,
      body: g.body,
      headers: h.headers,
    }));
  // An earlier command's id again (Nats-Msg-Id or only the envelope's), aimed elsewhere.
  const earlier = fx.earlierCommandIds.length
    ? fc
        .tuple(fc.constantFrom(...fx.earlierCommandIds), fc.boolean(), hostileCommandArb(fx))
        // Still refused with the earlier id in place (an id fault alone would be repaired by it).
        .filter(
          ([id, , c]) =>
            typeof c.env.type === "string" &&
            c.env.type.split(".").length === 2 &&
            certainlyRefused({ ...c.env, id }),
        )
        .map(([id, withMsgId, c]) => ({
          via: "bus" as const,
          label: `${c.label}, with an earlier command's id${withMsgId ? " (and Nats-Msg-Id)" : ""}`,
          subject: commandSubjectOr(c.env.type),
          body: json({ ...c.env, id }),
          headers: [],
          ...(withMsgId ? { msgId: id } : {}),
          commandId: id,
        }))
    : fromCommand;
  return fc.oneof(
    { weight: 12, arbitrary: fromCommand },
    { weight: 3, arbitrary: garbage },
    { weight: 1, arbitrary: earlier },
  );
}

function commandSubjectOr(type: unknown): string {
  try {
    return typeof type === "string" ? commandSubject(type) : "cmd.cluster.create";
  } catch {
    return "cmd.cluster.create";
  }
}

/** Messages published straight onto event subjects: none may be taken for a commit. */
function busEventArb(fx: Fixtures): fc.Arbitrary<BusCase> {
  const subjects = fc.oneof(
    fc.integer({ min: 0, max: 2 ** 40 }).map((n) => `evt.cluster.fz-${n.toString(36)}`),
    fc.integer({ min: 0, max: 2 ** 40 }).map((n) => `evt.session.fz-${n.toString(36)}`),
    fc.constantFrom(
      `evt.cluster.${fx.victim.clusterId}`,
      `evt.session.${fx.victim.sessionId}`,
      `evt.install.${fx.victim.clusterId}`,
      "evt.bogus.thing",
      "evt.cluster",
      "evt.cluster.a.b",
      "evt.kube.fz-kube",
    ),
  );
  const event = (over: Record<string, unknown>, agg: { type: string; id: string }) => ({
    id: "0193a0c2-0000-7000-8000-000000000000",
    type: "cluster.requested",
    version: 1,
    aggregate: agg,
    position: 1,
    time: "2026-01-01T00:00:00.000Z",
    data: {},
    meta: { causationId: "fuzz", correlationId: "fuzz", actor: "fuzz" },
    ...over,
  });
  const bodies = (subject: string) => {
    const [, type = "cluster", id = "fz"] = subject.split(".");
    const agg = { type, id };
    const other = { type: "cluster", id: `${id}-other` };
    return fc.oneof(
      garbageBodyArb,
      fc.constantFrom(
        { label: "a commit without events", body: json({ commitId: "c", aggregate: agg, events: [] }) },
        {
          label: "a commit of another aggregate",
          body: json({ commitId: "c", aggregate: other, events: [event({}, other)] }),
        },
        {
          label: "a commit of an unknown event type",
          body: json({ commitId: "c", aggregate: agg, events: [event({ type: "cluster.exploded" }, agg)] }),
        },
        {
          label: "a commit of a version from the future",
          body: json({ commitId: "c", aggregate: agg, events: [event({ version: 99 }, agg)] }),
        },
        {
          label: "a commit whose data fails its schema",
          body: json({ commitId: "c", aggregate: agg, events: [event({ data: { spec: "nope" } }, agg)] }),
        },
        {
          label: "a commit whose event is not an envelope",
          body: json({ commitId: "c", aggregate: agg, events: [{ hello: "world" }] }),
        },
      ),
    );
  };
  return subjects.chain((subject) =>
    fc.tuple(bodies(subject), fc.boolean(), badTraceparentArb).map(([b, lie, tp]) => ({
      via: "bus" as const,
      label: `${b.label} on ${subject.split(".").slice(0, 2).join(".")}.…${lie ? " (with event-type headers)" : ""}`,
      subject,
      body: b.body,
      // Headers that make every reactor read it: the types they act on.
      headers: lie
        ? ([
            [
              "Cairn-Event-Types",
              "cluster.requested,session.requested,cluster.instance-launched,install.step-sent",
            ],
            ["traceparent", tp],
          ] as [string, string][])
        : [],
    })),
  );
}

/** Heartbeat requests on core NATS that are not heartbeats (`hb.session.<id>`). */
function heartbeatArb(fx: Fixtures): fc.Arbitrary<RequestCase> {
  return fc
    .tuple(
      fc.oneof(
        fc.constantFrom(fx.victim.sessionId, "fz-no-such-session"),
        fc.integer({ min: 0, max: 1e6 }).map((n) => `fz-${n}`),
      ),
      fc.oneof(
        garbageBodyArb.filter((g) => g.body.length < 100_000),
        fc
          .constantFrom(
            { connections: -1 },
            { connections: "3" },
            { connections: 1e308 },
            {},
            { connections: null },
          )
          .map((b) => ({ label: `heartbeat ${JSON.stringify(b)}`, body: json(b) })),
        fc.constant({ label: "heartbeat with 1e400 connections", body: enc.encode('{"connections":1e400}') }),
      ),
    )
    .map(([id, b]) => ({
      via: "request" as const,
      label: `hb.session: ${b.label}`,
      subject: `hb.session.${id}`,
      body: b.body,
    }));
}

// ---- the API ------------------------------------------------------------------------------

/** Percent-encoded; a lone surrogate (which has no UTF-8) goes as the invalid bytes %ED%A0%80. */
const pathId = (s: string) =>
  Array.from(s)
    .map((ch) => {
      try {
        return encodeURIComponent(ch);
      } catch {
        return "%ED%A0%80";
      }
    })
    .join("");

/** Query strings with garbage in them: known parameter names and unknown ones, bad values. */
const queryArb: fc.Arbitrary<string> = fc
  .array(
    fc.tuple(
      fc.oneof(
        fc.constantFrom(
          "limit",
          "cursor",
          "state",
          "at",
          "user",
          "clusterId",
          "type",
          "force",
          "since",
          "aggregate",
        ),
        fc.string({ maxLength: 8 }),
      ),
      fc.oneof(
        fc.constantFrom(
          "-1",
          "0",
          "1e309",
          "NaN",
          "abc",
          "",
          "%FF",
          "true",
          "2026-13-45",
          "[]",
          "🙂",
          "x".repeat(5000),
        ),
        fc.string({ unit: "binary", maxLength: 20 }),
      ),
    ),
    { maxLength: 4 },
  )
  .map((ps) => ps.map(([k, v]) => `${pathId(k)}=${v === "%FF" ? v : pathId(v)}`).join("&"));

function apiArb(fx: Fixtures): fc.Arbitrary<ApiCase> {
  const idOrHostile = fc.oneof(
    fc.integer({ min: 0, max: 2 ** 40 }).map((n) => `fz-${n.toString(36)}`),
    hostileIdArb.filter((s) => s.length > 0),
  );
  // POST /commands with the hostile envelopes, as far as the intake reads them: it takes the
  // id (a UUID, or none: it makes one), type, data and `meta.actor`, nothing else.
  const commands = hostileCommandArb(fx)
    .filter(({ env }) => {
      const meta = env.meta as { actor?: unknown } | undefined;
      const intakeRefuses =
        (env.id !== undefined && (typeof env.id !== "string" || !isUuid(env.id))) ||
        typeof env.type !== "string" ||
        env.type.length === 0 ||
        (meta !== undefined && (typeof meta !== "object" || meta === null || Array.isArray(meta))) ||
        (meta?.actor !== undefined &&
          (typeof meta.actor !== "string" || meta.actor.length === 0 || meta.actor.length > 256));
      if (intakeRefuses) return true;
      return certainlyRefused({
        id: env.id ?? "0193a0c2-0000-7000-8000-000000000001",
        type: env.type,
        data: env.data,
        meta: { actor: meta?.actor ?? "anonymous" },
      });
    })
    .map(({ label, env }) => ({
      via: "api" as const,
      label: `POST /commands ${label}`,
      method: "POST" as const,
      path: "/commands",
      contentType: "application/json",
      body: json(env),
    }));
  // Bodies the intake must refuse before reading a command out of them.
  const badBodies = fc
    .tuple(
      garbageBodyArb,
      fc.constantFrom("/commands", "/clusters", "/sessions", "/clusters/fz-x/scale"),
      fc.constantFrom(
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin1",
      ),
    )
    .map(([g, path, contentType]) => ({
      via: "api" as const,
      label: `POST ${path} ${g.label} as ${contentType || "no content type"}`,
      method: "POST" as const,
      path,
      ...(contentType ? { contentType } : {}),
      body: g.body,
    }));
  // Typed routes: the target in the path, the rest of the data in the body.
  const typed = fc
    .tuple(
      idOrHostile,
      fc.constantFrom("scale", "rollback", "retry", "upgrade"),
      fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.record({ pool: fc.string(), count: wrongTypeArb })),
      queryArb,
    )
    .map(([id, verb, body, q]) => ({
      via: "api" as const,
      label: `POST /clusters/:id/${verb} (id ${JSON.stringify(id.slice(0, 12))})`,
      method: "POST" as const,
      path: `/clusters/${pathId(id)}/${verb}${q ? `?${q}` : ""}`,
      contentType: "application/json",
      body: json(body),
    }));
  const nodeRoutes = fc
    .tuple(
      idOrHostile,
      fc.oneof(hostileIdArb, fc.constant("ip-10-0-0-1.ec2.internal")),
      fc.constantFrom("cordon", "uncordon", "drain", "label", "unlabel", "taint", "untaint"),
      fc.oneof(
        fc.record({ reason: wrongTypeArb }),
        fc.record({ reason: hostileStringArb.filter((s) => s.length < 250_000) }),
        fc.jsonValue({ maxDepth: 2 }),
      ),
    )
    // A well-formed node operation at a fresh cluster would be carried out (and fail later): not bad input.
    .filter(([id, node, verb, body]) => {
      const def = allCommandDefinitions.find((d) => d.type === `node.${verb}`)!;
      const data = {
        ...(body && typeof body === "object" && !Array.isArray(body) ? body : {}),
        clusterId: id,
        node,
      };
      return !def.schema.safeParse(data).success || verb === "uncordon";
    })
    .map(([id, node, verb, body]) => ({
      via: "api" as const,
      label: `POST /clusters/:id/nodes/:node/${verb}`,
      method: "POST" as const,
      path: `/clusters/${pathId(id)}/nodes/${pathId(node)}/${verb}`,
      contentType: "application/json",
      body: json(body),
    }));
  const deletes = fc
    .tuple(
      fc.oneof(idOrHostile, fc.constant(fx.victim.clusterId)),
      fc.constantFrom("", "?force=false", "?force=maybe", "?force=", "?force=true&force=false", "?force=%00"),
    )
    // A forced delete of the victim would delete it: only the unforced one, refused while its session lives.
    .map(([id, q]) => ({
      via: "api" as const,
      label: `DELETE /clusters/:id${q} (id ${JSON.stringify(id.slice(0, 12))})`,
      method: "DELETE" as const,
      path: `/clusters/${pathId(id)}${id === fx.victim.clusterId && q !== "?force=maybe" && q !== "?force=%00" ? "" : q}`,
    }));
  const sessions = fc.oneof(
    fc
      .record({
        sessionId: fc.oneof(fc.constant(fx.victim.sessionId), hostileIdArb, fc.constant(42)),
        user: fc.oneof(fc.constant(fx.victim.user), hostileStringArb, fc.constant(7)),
        clusterId: fc.oneof(fc.constant(fx.victim.clusterId), hostileIdArb),
        template: fc.oneof(
          fc.constant({ image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" }),
          fc.record({
            image: hostileStringArb,
            cpu: fc.constantFrom("-1", "1e9", "lots", ""),
            memory: wrongTypeArb,
          }),
        ),
        idleTimeoutSeconds: fc.oneof(fc.constant(undefined), wrongTypeArb, fc.constant(-5)),
      })
      // Only refusals: a well-formed create of a new session at the victim would be admitted.
      .filter(
        (b) =>
          b.sessionId === fx.victim.sessionId ||
          !catalogue.parseCommand({
            id: "0193a0c2-0000-7000-8000-000000000001",
            type: "session.create",
            data: b,
          }).ok,
      )
      .map((b) => ({
        via: "api" as const,
        label: `POST /sessions (sessionId ${JSON.stringify(String(b.sessionId).slice(0, 12))})`,
        method: "POST" as const,
        path: "/sessions",
        contentType: "application/json",
        body: json(b),
      })),
    fc
      .tuple(
        fc.oneof(idOrHostile, fc.constant("fz-no-such-session")),
        fc.constantFrom(
          ["DELETE", ""],
          ["POST", "/connect"],
          ["POST", "/heartbeat"],
          ["POST", "/wake"],
          ["POST", "/hibernate"],
        ),
        fc.oneof(
          fc.jsonValue({ maxDepth: 2 }),
          fc.constant({ connections: -1 }),
          fc.constant({ connections: "x" }),
        ),
      )
      .map(([id, [method, verb], body]) => ({
        via: "api" as const,
        label: `${method} /sessions/:id${verb} (id ${JSON.stringify(id.slice(0, 12))})`,
        method: method as "DELETE" | "POST",
        path: `/sessions/${pathId(id)}${verb}`,
        ...(method === "POST" ? { contentType: "application/json", body: json(body) } : {}),
      })),
    // The victim session: a heartbeat that is not one, never a real one.
    fc.constantFrom({ connections: -1 }, { connections: "x" }, {}, { connections: 1.5 }, []).map((body) => ({
      via: "api" as const,
      label: `POST /sessions/:victim/heartbeat ${JSON.stringify(body)}`,
      method: "POST" as const,
      path: `/sessions/${pathId(fx.victim.sessionId)}/heartbeat`,
      contentType: "application/json",
      body: json(body),
    })),
  );
  const pools = fc
    .tuple(
      fc.oneof(idOrHostile, fc.constant(fx.victim.clusterId)),
      fc.oneof(hostileIdArb, fc.constant("nope")),
      fc.jsonValue({ maxDepth: 2 }),
    )
    .filter(([id, pool]) => id !== fx.victim.clusterId || pool === "nope" || !isTokenSafe(pool))
    .map(([id, pool, body]) => ({
      via: "api" as const,
      label: "PATCH /clusters/:id/pools/:pool",
      method: "PATCH" as const,
      path: `/clusters/${pathId(id)}/pools/${pathId(pool)}`,
      contentType: "application/json",
      body: json(
        body && typeof body === "object" && !Array.isArray(body)
          ? { ...body, labels: { "bad key!": 1 } }
          : body,
      ),
    }));
  const reads = fc
    .tuple(
      fc.constantFrom(
        "/clusters",
        "/clusters/:id",
        "/clusters/:id/history",
        "/clusters/:id/nodes",
        "/clusters/:id/dependencies",
        "/sessions",
        "/sessions/:id",
        "/sessions/:id/history",
        "/commands/:id",
        "/installs",
        "/installs/:id",
        "/nodes",
        "/nodeops",
        "/nodeops/:id",
        "/step-durations",
        "/traces/:id",
        "/no/such/route",
      ),
      fc.oneof(idOrHostile, fc.constant(fx.victim.clusterId)),
      queryArb,
      fc.constantFrom<ApiCase["method"]>("GET", "GET", "GET", "PUT"),
    )
    .map(([route, id, q, method]) => ({
      via: "api" as const,
      label: `${method} ${route}?garbage`,
      method,
      path: `${route.replace(":id", pathId(id))}${q ? `?${q}` : ""}`,
    }));
  return fc.oneof(
    { weight: 6, arbitrary: commands },
    { weight: 2, arbitrary: badBodies },
    { weight: 2, arbitrary: typed },
    { weight: 2, arbitrary: nodeRoutes },
    { weight: 1, arbitrary: deletes },
    { weight: 2, arbitrary: sessions },
    { weight: 1, arbitrary: pools },
    { weight: 3, arbitrary: reads },
  );
}

/** One case: half through the bus (commands, garbage, event subjects, heartbeats), half through the API. */
export function caseArb(fx: Fixtures): fc.Arbitrary<Case> {
  return fc.oneof(
    { weight: 8, arbitrary: busCommandArb(fx) },
    { weight: 2, arbitrary: busEventArb(fx) },
    { weight: 1, arbitrary: heartbeatArb(fx) },
    { weight: 9, arbitrary: apiArb(fx) },
  );
}

/** `n` cases from `seed`: the same seed, the same cases. */
export function generateCases(fx: Fixtures, n: number, seed: number): Case[] {
  return fc.sample(caseArb(fx), { numRuns: n, seed });
}
