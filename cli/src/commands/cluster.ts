/**
 * `cairn cluster create|list|get|describe|scale|rollback|retry|delete|history|watch`: the
 * cluster API as kubectl-like commands. Input is checked with the catalogue's schemas
 * before anything is sent, and what can be checked against the cluster (the pool exists,
 * the version was reached) is checked up front; `--wait` follows the cluster with a
 * progress bar (step, percent, ETA) until it rests.
 */
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
import { type ApiClient, ApiError, isApiError } from "../api-client.ts";
import { type CreateFlags as CreateSpecFlags, clusterCreateData } from "../cluster/create-data.ts";
import { describeCluster, type HistoryItem } from "../cluster/describe.ts";
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
import { parseDuration } from "../durations.ts";
import { InvalidInputError, notFoundAs, OutcomeError } from "../errors.ts";
import type { NodeRow } from "../node/table.ts";
import { formatList, formatOne, formatValue, type OutputFormat, outputOption, showEach } from "../output.ts";
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

interface CreateFlags extends WaitFlags, CreateSpecFlags {}

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

function clusterState(text: string): string {
  const state = CLUSTER_STATUSES.find((s) => s.toLowerCase() === text.toLowerCase());
  if (!state)
    throw new InvalidInputError(`invalid --state ${JSON.stringify(text)} (nothing was sent)`, [
      `one of ${CLUSTER_STATUSES.join(", ")}`,
    ]);
  return state;
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
      await showEach(ids, (id) => api.get<ClusterView>(path(id, at)).catch(notFoundAs("cluster", id)), {
        kind: "cluster",
        kinds: "clusters",
        format: o.output,
        columns: CLUSTER_COLUMNS,
      });
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
