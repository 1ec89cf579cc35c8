/**
 * `cairn cluster create|list|get|describe|scale|rollback|retry|delete|history|watch`: the
 * cluster API as kubectl-like commands. Input is checked with the catalogue's schemas
 * before anything is sent, and what can be checked against the cluster (the pool exists,
 * the version was reached) is checked up front; `--wait` follows the cluster with a
 * progress bar (step, percent, ETA) until it rests.
 */
import { readFile } from "node:fs/promises";
import {
  CLUSTER_STATUSES,
  CreateCluster,
  DeleteCluster,
  RetryCluster,
  RollbackCluster,
  ScaleCluster,
  tokenSafeId,
} from "@cairn/events";
import type { Command } from "commander";
import { Command as Cmd } from "commander";
import { parse as parseYaml } from "yaml";
import { type ApiClient, ApiError, isApiError } from "../api-client.ts";
import { clusterRejectionHint, clusterVerdict } from "../cluster/outcome.ts";
import { CLUSTER_COLUMNS, type ClusterView, progressText } from "../cluster/view.ts";
import {
  type CommandAccepted,
  type CommandView,
  commandStatus,
  NO_OP_GRACE_MS,
  sendCommand,
} from "../command-status.ts";
import { contextOf } from "../context.ts";
import { age, parseDuration } from "../durations.ts";
import { InvalidInputError, NotFoundError, notFoundAs, OutcomeError } from "../errors.ts";
import { formatList, formatOne, formatValue, type OutputFormat, outputOption } from "../output.ts";
import { progress } from "../progress.ts";
import { renderTable } from "../table.ts";
import { parseInput } from "../validate.ts";
import { waitFor } from "../wait.ts";
import { examples } from "./help.ts";

const DEFAULT_WAIT = "15m";
const path = (id: string, rest = "") => `/clusters/${encodeURIComponent(id)}${rest}`;
const out = (text: string): void => void process.stdout.write(text);
const clusterId = (id: string) =>
  parseInput(tokenSafeId, id, "cluster id", { names: { "": `cluster id ${JSON.stringify(id)}` } });

/** The cluster, or NotFoundError at once. */
export const getCluster = (api: ApiClient, id: string) =>
  api
    .get<ClusterView>(path(id))
    .catch(notFoundAs("cluster", id, { hint: "`cairn cluster list` shows the clusters" }));

interface WaitFlags {
  readonly wait?: boolean;
  readonly timeout: string;
  readonly output?: OutputFormat;
}

const waitOptions = (cmd: Command, what: string) =>
  cmd
    .option(
      "-w, --wait",
      `wait until the cluster is ${what}, with its progress (exit 1 if refused or it fails)`,
    )
    .option("--timeout <duration>", "with --wait: give up after this long (90s, 15m, 1h)", DEFAULT_WAIT)
    .addOption(outputOption(null));

/**
 * Follows cluster `id` after its command `commandId` until it rests in `goal`.
 * @throws OutcomeError (refused, Failed), WaitTimeoutError
 */
export async function waitForCluster(
  api: ApiClient,
  id: string,
  goal: string,
  o: { commandId: string; timeoutMs: number; quiet?: boolean },
): Promise<ClusterView> {
  const sent = Date.now();
  let command: CommandView | undefined;
  return waitFor({
    api,
    subject: `cluster/${id}`,
    goal,
    changes: { resource: "clusters", id },
    timeoutMs: o.timeoutMs,
    progress: progress(`cluster/${id}`, { silent: o.quiet }),
    check: async () => {
      const [view, cmd] = await Promise.all([
        api.get<ClusterView>(path(id)).catch((err: unknown) => {
          if (isApiError(err, 404)) return undefined; // a create not projected yet
          throw err;
        }),
        command ?? commandStatus(api, o.commandId),
      ]);
      command = cmd;
      return clusterVerdict(goal, id, { view, command, unanswered: Date.now() - sent > NO_OP_GRACE_MS });
    },
  });
}

/** Sends, then prints the answer or (with --wait) follows the cluster to `goal`. */
async function sendAndFollow(
  api: ApiClient,
  id: string,
  verb: string,
  goal: string,
  o: WaitFlags,
  send: () => Promise<CommandAccepted>,
) {
  const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
  let answer: CommandAccepted;
  try {
    answer = await send();
  } catch (err) {
    if (err instanceof ApiError && err.status === 400)
      throw new OutcomeError(`cluster/${id}: refused: ${err.message}`, {
        hint: clusterRejectionHint("invalid", id),
      });
    throw err;
  }
  if (!o.wait) {
    if (o.output) return out(formatValue(answer, o.output === "json" ? "json" : "yaml"));
    return out(`cluster/${id} ${verb} requested (command ${answer.commandId})\n`);
  }
  const view = await waitForCluster(api, id, goal, {
    commandId: answer.commandId,
    timeoutMs,
    quiet: o.output === "json" || o.output === "yaml",
  });
  if (o.output) return out(formatOne(view, o.output, CLUSTER_COLUMNS));
  out(`cluster/${id} ${goal}\n`);
}

// ── create ───────────────────────────────────────────────────────────────────────────

interface CreateFlags extends WaitFlags {
  readonly name?: string;
  readonly region: string;
  readonly k3sVersion: string;
  readonly servers: string;
  readonly serverType: string;
  readonly pool: string[];
  readonly tag: string[];
  readonly file?: string;
}

const CREATE_NAMES: Record<string, string> = {
  clusterId: "cluster id",
  name: "--name",
  region: "--region",
  k3sVersion: "--k3s-version",
  "servers.count": "--servers",
  "servers.instanceType": "--server-type",
};

/**
 * A pool as `--pool` takes it: `name=count[:spot|on-demand[:type,type…]]`.
 * @example parsePool("workers=2:spot:t3.large,t3a.large") // { name: "workers", count: 2, capacityType: "spot", instanceTypes: ["t3.large", "t3a.large"] }
 */
export function parsePool(text: string) {
  const m = /^([^=]+)=(\d+)(?::([a-z-]+))?(?::([^:]+))?$/.exec(text);
  if (!m)
    throw new InvalidInputError(`invalid --pool ${JSON.stringify(text)} (nothing was sent)`, [
      "give name=count[:spot|on-demand[:type,type…]], e.g. workers=2:spot:t3.large,t3a.large",
    ]);
  return {
    name: m[1],
    count: Number(m[2]),
    capacityType: m[3] ?? "on-demand",
    instanceTypes: (m[4] ?? "t3.large").split(","),
  };
}

const keyValue = (flag: string) => (text: string) => {
  const i = text.indexOf("=");
  if (i <= 0) throw new InvalidInputError(`invalid ${flag} ${JSON.stringify(text)}: give key=value`);
  return [text.slice(0, i), text.slice(i + 1)] as const;
};

/** The cluster.create data from the file (if any) and the flags, checked against the catalogue. */
export async function clusterCreateData(id: string, o: CreateFlags, given: (flag: string) => boolean) {
  let file: Record<string, unknown> = {};
  if (o.file) {
    let text: string;
    try {
      text = await readFile(o.file, "utf8");
    } catch (err) {
      throw new InvalidInputError(
        `cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    const doc: unknown = parseYaml(text);
    if (typeof doc !== "object" || doc === null || Array.isArray(doc))
      throw new InvalidInputError(`${o.file} must hold an object: the cluster's spec as in cluster.create`);
    file = { ...doc };
  }
  // A flag overrides the file only when typed: its default must not hide the file's value.
  const pick = <T>(flag: string, value: T, fromFile: unknown) =>
    given(flag) || fromFile === undefined ? value : fromFile;
  const fileServers = (file.servers ?? {}) as { count?: unknown; instanceType?: unknown };
  const data = {
    ...file,
    clusterId: id,
    name: pick("name", o.name ?? id, file.name),
    region: pick("region", o.region, file.region),
    k3sVersion: pick("k3sVersion", o.k3sVersion, file.k3sVersion),
    servers: {
      count: pick("servers", Number(o.servers), fileServers.count),
      instanceType: pick("serverType", o.serverType, fileServers.instanceType),
    },
    pools: o.pool.length > 0 ? o.pool.map(parsePool) : Array.isArray(file.pools) ? file.pools : [],
    tags: {
      ...((file.tags as object | undefined) ?? {}),
      ...Object.fromEntries(o.tag.map(keyValue("--tag"))),
    },
  };
  const names = { ...CREATE_NAMES };
  data.pools.forEach((_, i) => {
    names[`pools.${i}.count`] = `--pool #${i + 1} count`;
    names[`pools.${i}.capacityType`] = `--pool #${i + 1} capacity type`;
    names[`pools.${i}.name`] = `--pool #${i + 1} name`;
  });
  return parseInput(CreateCluster.schema, data, "cluster", {
    names,
    hint: "`cairn cluster create --help` shows what each flag takes",
  });
}

// ── reading ──────────────────────────────────────────────────────────────────────────

function clusterState(text: string): string {
  const state = CLUSTER_STATUSES.find((s) => s.toLowerCase() === text.toLowerCase());
  if (!state)
    throw new InvalidInputError(`invalid --state ${JSON.stringify(text)} (nothing was sent)`, [
      `one of ${CLUSTER_STATUSES.join(", ")}`,
    ]);
  return state;
}

interface NodeRow {
  readonly node: string;
  readonly pool: string | null;
  readonly role: string | null;
  readonly capacityType: string | null;
  readonly instanceId: string | null;
  readonly instance: string | null;
  readonly k3s: string;
  readonly kube: { readonly ready: boolean | null; readonly unschedulable: boolean };
  readonly cordon: { readonly by: string; readonly reason: string } | null;
  readonly gone: { readonly reason: string } | null;
  readonly createdAt: string;
}

interface HistoryItem {
  readonly version: number;
  readonly time: string;
  readonly type: string;
  readonly actor: string;
  readonly traceId: string | null;
}

async function allPages<T>(api: ApiClient, base: string, query: Record<string, string> = {}): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const q = new URLSearchParams({ ...query, limit: "500", ...(cursor ? { cursor } : {}) });
    const page = await api.get<{ items: T[]; nextCursor?: string }>(`${base}?${q}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return items;
}

/** kubectl describe's layout: `Key:   value` lines, sections with indented tables. */
export function describeCluster(
  c: ClusterView,
  nodes: readonly NodeRow[],
  history: readonly HistoryItem[],
  now = new Date(),
): string {
  const kv = (pairs: [string, string][]) => {
    const w = Math.max(...pairs.map(([k]) => k.length)) + 2;
    return pairs.map(([k, v]) => `${`${k}:`.padEnd(w)}${v}`).join("\n");
  };
  const indent = (text: string) =>
    text
      .trimEnd()
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n");
  const sections = [
    kv([
      ["Name", c.id],
      ["State", c.state],
      ...(c.health ? [["Health", c.health] as [string, string]] : []),
      ["Region", c.region],
      ["K3s", c.spec.k3sVersion ?? "<none>"],
      ["Servers", c.spec.servers ? `${c.spec.servers.count} × ${c.spec.servers.instanceType}` : "<none>"],
      [
        "Progress",
        c.progress.operation === null ? c.progress.step : `${progressText(c)} (${c.progress.operation})`,
      ],
      ["Sessions", c.sessions ? `${c.sessions.live} live, ${c.sessions.total} in all` : "-"],
      ["Version", String(c.version)],
      ["Created", `${c.createdAt} (${age(c.createdAt, now)} ago)`],
      ["Trace", c.jaegerUrl ?? c.traceId ?? "<none>"],
    ]),
  ];
  if (c.failure)
    sections.push(
      `Failure:\n  ${c.failure.reason}${c.failure.remediation ? `\n  Remediation: ${c.failure.remediation}` : ""}`,
    );
  if (c.conditions?.length)
    sections.push(
      `Conditions:\n${indent(
        renderTable(
          ["TYPE", "STATUS", "REASON", "MESSAGE"],
          c.conditions.map((k) => [k.type, k.status, k.reason ?? "", k.message ?? ""]),
        ),
      )}`,
    );
  const pools = c.spec.pools ?? [];
  sections.push(
    `Pools:${
      pools.length === 0
        ? " <none>"
        : `\n${indent(
            renderTable(
              ["NAME", "COUNT", "CAPACITY", "INSTANCE TYPES"],
              pools.map((p) => [p.name, String(p.count), p.capacityType, p.instanceTypes.join(",")]),
            ),
          )}`
    }`,
  );
  const live = nodes.filter((n) => !n.gone);
  sections.push(
    `Nodes:${
      live.length === 0
        ? " <none>"
        : `\n${indent(
            renderTable(
              NODE_HEADERS,
              live.map((n) => nodeCells(n, now)),
            ),
          )}`
    }`,
  );
  const recent = history.slice(-10);
  sections.push(
    `Events (last ${recent.length} of ${history.length}):${
      recent.length === 0
        ? " <none>"
        : `\n${indent(
            renderTable(
              ["AGE", "EVENT", "ACTOR"],
              recent.map((e) => [age(e.time, now), e.type, e.actor]),
            ),
          )}`
    }`,
  );
  return `${sections.join("\n")}\n`;
}

export const NODE_HEADERS = [
  "NAME",
  "ROLE",
  "POOL",
  "CAPACITY",
  "INSTANCE",
  "K3S",
  "READY",
  "SCHEDULING",
  "AGE",
];
export function nodeCells(n: NodeRow, now: Date): string[] {
  return [
    n.node,
    n.role ?? "<none>",
    n.pool ?? "<none>",
    n.capacityType ?? "<none>",
    n.instanceId ? `${n.instanceId} (${n.instance ?? "?"})` : "<none>",
    n.k3s,
    n.kube.ready === null ? "Unknown" : n.kube.ready ? "True" : "False",
    n.kube.unschedulable || n.cordon
      ? `Disabled${n.cordon ? ` (${n.cordon.by}: ${n.cordon.reason})` : ""}`
      : "Enabled",
    age(n.createdAt, now),
  ];
}

// ── the command group ────────────────────────────────────────────────────────────────

export function clusterCommand(): Command {
  const cluster = new Cmd("cluster")
    .alias("clusters")
    .description("K3s clusters on EC2: create, list, describe, scale, roll back, retry, delete, watch")
    .addHelpText(
      "after",
      examples([
        "cairn cluster create demo-2 --pool workers=2:spot:t3.large,t3a.large --wait",
        "cairn cluster list -o wide",
        "cairn cluster describe demo-2",
        "cairn cluster scale demo-2 --pool workers --count 4 --wait",
      ]),
    );

  waitOptions(
    cluster
      .command("create")
      .description("create a cluster (cluster.create); defaults are the design's example")
      .argument("<id>", "the cluster's id")
      .option("--name <name>", "its name (default: the id)")
      .option("--region <region>", "AWS region", "eu-west-1")
      .option("--k3s-version <version>", "K3s release", "v1.31.4+k3s1")
      .option("--servers <n>", "K3s servers: 1, 3, 5 or 7", "1")
      .option("--server-type <type>", "the servers' EC2 instance type", "t3.medium")
      .option(
        "--pool <name=count[:capacity[:types]]>",
        "a node pool (repeat for more), e.g. workers=2:spot:t3.large,t3a.large",
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .option(
        "--tag <key=value>",
        "an EC2 tag (repeat for more)",
        (v: string, all: string[]) => [...all, v],
        [] as string[],
      )
      .option(
        "-f, --file <path>",
        "the spec as YAML or JSON, as in cluster.create (flags typed override it)",
      ),
    "Ready",
  )
    .addHelpText(
      "after",
      examples([
        "cairn cluster create demo-2 --wait",
        "cairn cluster create demo-3 --region us-east-1 --servers 3 --pool workers=4:spot:t3.large,t3a.large --wait",
        "cairn cluster create demo-4 -f cluster.yaml --wait --timeout 30m",
      ]),
    )
    .action(async (id: string, o: CreateFlags, cmd: Command) => {
      clusterId(id);
      const given = (flag: string) => cmd.getOptionValueSource(flag) === "cli";
      const data = await clusterCreateData(id, o, given);
      const { api, actor } = contextOf(cmd);
      await sendAndFollow(api, id, "create", "Ready", o, () =>
        sendCommand(api, CreateCluster.type, data, actor),
      );
    });

  cluster
    .command("list")
    .alias("ls")
    .description("list clusters: state, region, nodes, progress")
    .option("--state <state>", `only in this state (${CLUSTER_STATUSES.join(", ")})`)
    .option("--region <region>", "only in this region")
    .addOption(outputOption())
    .addHelpText(
      "after",
      examples([
        "cairn cluster list",
        "cairn cluster list --state ready -o wide",
        "cairn cluster list -o json",
      ]),
    )
    .action(async (o: { state?: string; region?: string; output: OutputFormat }, cmd: Command) => {
      const query: Record<string, string> = {};
      if (o.state) query.state = clusterState(o.state);
      if (o.region) query.region = o.region;
      const { api } = contextOf(cmd);
      const items = await allPages<ClusterView>(api, "/clusters", query);
      if (items.length === 0 && (o.output === "table" || o.output === "wide"))
        return void process.stderr.write("No clusters found.\n");
      out(formatList(items, o.output, CLUSTER_COLUMNS));
    });

  cluster
    .command("get")
    .description("show clusters (-o yaml: everything the API knows)")
    .argument("<id...>", "cluster ids")
    .option("--at <sequence|time>", "as it was then: an event sequence or an ISO time")
    .addOption(outputOption())
    .addHelpText("after", examples(["cairn cluster get demo-1", "cairn cluster get demo-1 -o yaml --at 120"]))
    .action(async (ids: string[], o: { at?: string; output: OutputFormat }, cmd: Command) => {
      for (const id of ids) clusterId(id);
      const { api } = contextOf(cmd);
      const at = o.at ? `?at=${encodeURIComponent(o.at)}` : "";
      const found: ClusterView[] = [];
      const missing: string[] = [];
      for (const id of ids) {
        try {
          found.push(await api.get<ClusterView>(path(id, at)).catch(notFoundAs("cluster", id)));
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          missing.push(id);
        }
      }
      const [only] = found;
      if (only && ids.length === 1) out(formatOne(only, o.output, CLUSTER_COLUMNS));
      else if (found.length > 0) out(formatList(found, o.output, CLUSTER_COLUMNS));
      if (missing.length > 0)
        throw new NotFoundError(missing.length === 1 ? "cluster" : "clusters", missing.join(", "));
    });

  cluster
    .command("describe")
    .description("everything about one cluster: state, failure, conditions, pools, nodes, recent events")
    .argument("<id>", "cluster id")
    .addHelpText("after", examples(["cairn cluster describe demo-1"]))
    .action(async (id: string, _o: unknown, cmd: Command) => {
      clusterId(id);
      const { api } = contextOf(cmd);
      const c = await getCluster(api, id);
      const [nodes, history] = await Promise.all([
        allPages<NodeRow>(api, path(id, "/nodes")),
        allPages<HistoryItem>(api, path(id, "/history")),
      ]);
      out(describeCluster(c, nodes, history));
    });

  cluster
    .command("history")
    .description("every event of a cluster, oldest first (-o wide: trace ids)")
    .argument("<id>", "cluster id")
    .addOption(outputOption())
    .addHelpText("after", examples(["cairn cluster history demo-1", "cairn cluster history demo-1 -o json"]))
    .action(async (id: string, o: { output: OutputFormat }, cmd: Command) => {
      clusterId(id);
      const { api } = contextOf(cmd);
      await getCluster(api, id);
      const items = await allPages<HistoryItem>(api, path(id, "/history"));
      if (o.output === "json" || o.output === "yaml") return out(formatValue(items, o.output));
      const wide = o.output === "wide";
      out(
        renderTable(
          ["VERSION", "TIME", "EVENT", "ACTOR", ...(wide ? ["TRACE"] : [])],
          items.map((e) => [
            String(e.version),
            e.time,
            e.type,
            e.actor,
            ...(wide ? [e.traceId ?? "<none>"] : []),
          ]),
        ),
      );
    });

  waitOptions(
    cluster
      .command("scale")
      .description("set a pool's node count (cluster.scale)")
      .argument("<id>", "cluster id")
      .requiredOption("--pool <name>", "the pool")
      .requiredOption("--count <n>", "its new node count"),
    "Ready",
  )
    .addHelpText("after", examples(["cairn cluster scale demo-1 --pool workers --count 4 --wait"]))
    .action(async (id: string, o: WaitFlags & { pool: string; count: string }, cmd: Command) => {
      const data = parseInput(
        ScaleCluster.schema,
        { clusterId: id, pool: o.pool, count: Number(o.count) },
        "scale",
        { names: { clusterId: "cluster id", pool: "--pool", count: "--count" } },
      );
      const { api, actor } = contextOf(cmd);
      // Up front: the pool exists, and the count changes something.
      const c = await getCluster(api, id);
      const pool = (c.spec.pools ?? []).find((p) => p.name === data.pool);
      if (!pool)
        throw new InvalidInputError(
          `cluster/${id} has no pool ${JSON.stringify(data.pool)} (nothing was sent)`,
          [`its pools: ${(c.spec.pools ?? []).map((p) => p.name).join(", ") || "none"}`],
        );
      if (pool.count === data.count)
        return out(`cluster/${id} pool ${data.pool} has ${data.count} nodes already\n`);
      await sendAndFollow(api, id, "scale", "Ready", o, () =>
        sendCommand(api, ScaleCluster.type, data, actor),
      );
    });

  waitOptions(
    cluster
      .command("rollback")
      .description("reconcile the cluster back to the spec it had at a version (cluster.rollback)")
      .argument("<id>", "cluster id")
      .requiredOption("--to-version <n>", "the version to go back to (`cairn cluster history` lists them)"),
    "Ready",
  )
    .addHelpText(
      "after",
      examples(["cairn cluster history demo-1", "cairn cluster rollback demo-1 --to-version 12 --wait"]),
    )
    .action(async (id: string, o: WaitFlags & { toVersion: string }, cmd: Command) => {
      const data = parseInput(
        RollbackCluster.schema,
        { clusterId: id, toVersion: Number(o.toVersion) },
        "rollback",
        {
          names: { clusterId: "cluster id", toVersion: "--to-version" },
        },
      );
      const { api, actor } = contextOf(cmd);
      const c = await getCluster(api, id);
      if (data.toVersion > c.version)
        throw new InvalidInputError(
          `cluster/${id} is at version ${c.version}: it cannot go back to ${data.toVersion}`,
          [],
          {
            hint: `\`cairn cluster history ${id}\` lists its versions`,
          },
        );
      await sendAndFollow(api, id, "rollback", "Ready", o, () =>
        sendCommand(api, RollbackCluster.type, data, actor),
      );
    });

  waitOptions(
    cluster
      .command("retry")
      .description("try a Failed cluster again (cluster.retry)")
      .argument("<id>", "cluster id"),
    "Ready",
  )
    .addHelpText("after", examples(["cairn cluster retry demo-1 --wait"]))
    .action(async (id: string, o: WaitFlags, cmd: Command) => {
      parseInput(RetryCluster.schema, { clusterId: id }, "cluster id", {
        names: { clusterId: "cluster id" },
      });
      const { api } = contextOf(cmd);
      const c = await getCluster(api, id);
      if (c.state !== "Failed")
        throw new OutcomeError(
          `cluster/${id} is ${c.state}: only a Failed cluster can be retried (nothing was sent)`,
        );
      await sendAndFollow(api, id, "retry", "Ready", o, () =>
        api.post<CommandAccepted>(path(id, "/retry"), {}),
      );
    });

  waitOptions(
    cluster
      .command("delete")
      .description("delete a cluster: every instance terminated, its secrets removed (cluster.delete)")
      .argument("<id>", "cluster id"),
    "Deleted",
  )
    .addHelpText("after", examples(["cairn cluster delete demo-1", "cairn cluster delete demo-1 --wait"]))
    .action(async (id: string, o: WaitFlags, cmd: Command) => {
      parseInput(DeleteCluster.schema, { clusterId: id }, "cluster id", {
        names: { clusterId: "cluster id" },
      });
      const { api } = contextOf(cmd);
      await getCluster(api, id);
      await sendAndFollow(api, id, "delete", "Deleted", o, () => api.delete<CommandAccepted>(path(id)));
    });

  cluster
    .command("watch")
    .description("follow a cluster's state and progress until it rests (Ready, Failed, Deleted)")
    .argument("<id>", "cluster id")
    .option("--timeout <duration>", "give up after this long", DEFAULT_WAIT)
    .addOption(outputOption(null))
    .addHelpText(
      "after",
      examples(["cairn cluster watch demo-1", "cairn cluster watch demo-1 --timeout 5m -o yaml"]),
    )
    .action(watchCluster);

  return cluster;
}

/** `cairn cluster watch` (and `cairn watch`): follows a cluster until it rests. */
export async function watchCluster(id: string, o: { timeout: string; output?: OutputFormat }, cmd: Command) {
  clusterId(id);
  const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
  const { api } = contextOf(cmd);
  await getCluster(api, id);
  const view = await waitFor<ClusterView>({
    api,
    subject: `cluster/${id}`,
    goal: "at rest",
    changes: { resource: "clusters", id },
    timeoutMs,
    progress: progress(`cluster/${id}`, { silent: o.output === "json" || o.output === "yaml" }),
    check: async () => {
      const c = await getCluster(api, id);
      if (c.state === "Failed")
        return {
          kind: "failed",
          message: `cluster/${id} Failed${c.failure ? `: ${c.failure.reason}` : ""}`,
          hint:
            c.failure?.remediation ?? `\`cairn cluster describe ${id}\`, then \`cairn cluster retry ${id}\``,
        };
      if (c.state === "Ready" || c.state === "Deleted") return { kind: "done", view: c, state: c.state };
      return { kind: "waiting", state: c.state, detail: progressText(c) };
    },
  });
  out(o.output ? formatOne(view, o.output, CLUSTER_COLUMNS) : `cluster/${id} ${view.state}\n`);
}
