/**
 * `cairn node list|cordon|uncordon|drain|label|taint`: node operations sent through
 * `POST /commands` (as the person running the CLI, when the API has no tokens). The node named must be one of
 * the cluster's (checked up front: "not found" at once, nothing sent); `--wait` follows
 * the node's operation until it is done (a drain with its counts and what blocks it).
 */
import {
  CordonNode,
  DrainNode,
  LabelNode,
  nodeAggregateId,
  TaintNode,
  tokenSafeId,
  UncordonNode,
  UnlabelNode,
  UntaintNode,
} from "@cairn/events";
import { Command } from "commander";
import type { z } from "zod";
import type { ApiClient } from "../api-client.ts";
import { type CommandView, commandStatus, NO_OP_GRACE_MS, sendCommand } from "../command-status.ts";
import { contextOf } from "../context.ts";
import { parseDuration } from "../durations.ts";
import { InvalidInputError, NotFoundError, notFoundAs } from "../errors.ts";
import { type NodeOpView, nodeOpVerdict } from "../node/outcome.ts";
import { NODE_HEADERS, type NodeRow, nodeCells } from "../node/table.ts";
import { formatValue, type OutputFormat, outputOption } from "../output.ts";
import { progress } from "../progress.ts";
import { renderTable } from "../table.ts";
import { parseInput } from "../validate.ts";
import { waitFor } from "../wait.ts";
import { getCluster } from "./cluster.ts";
import { examples } from "./help.ts";

const out = (text: string): void => void process.stdout.write(text);

interface NodeFlags {
  readonly cluster: string;
  readonly reason: string;
  readonly wait?: boolean;
  readonly timeout: string;
  readonly output?: OutputFormat;
}

/** The node must be in the cluster: checked before anything is sent. @throws NotFoundError */
async function ensureNode(api: ApiClient, clusterId: string, node: string): Promise<void> {
  await getCluster(api, clusterId);
  const nodes = await api
    .get<{ items: { node: string; gone: unknown }[] }>(
      `/clusters/${encodeURIComponent(clusterId)}/nodes?limit=500`,
    )
    .catch(notFoundAs("cluster", clusterId));
  if (!nodes.items.some((n) => n.node === node && !n.gone))
    throw new NotFoundError(`node`, node, {
      hint: `it is not a node of cluster ${clusterId}: \`cairn node list --cluster ${clusterId}\` lists them`,
    });
}

/** Follows the node's operation `kind` after command `commandId` until it is done. */
async function waitForNodeOp(
  api: ApiClient,
  clusterId: string,
  node: string,
  kind: string,
  o: { commandId: string; timeoutMs: number; quiet: boolean },
): Promise<NodeOpView> {
  const id = nodeAggregateId(clusterId, node);
  const sent = Date.now();
  let command: CommandView | undefined;
  return waitFor({
    api,
    subject: `node/${node}`,
    goal: `${kind} done`,
    changes: { resource: "nodeops", id },
    timeoutMs: o.timeoutMs,
    progress: progress(`node/${node}`, { silent: o.quiet }),
    check: async () => {
      const [op, cmd] = await Promise.all([
        api.get<NodeOpView>(`/nodeops/${encodeURIComponent(id)}`).catch(() => undefined),
        command ?? commandStatus(api, o.commandId),
      ]);
      command = cmd;
      return nodeOpVerdict(kind, op, command, Date.now() - sent > NO_OP_GRACE_MS);
    },
  });
}

/**
 * One node command: checked against the catalogue, the node checked to be the cluster's,
 * sent through the typed route, followed with --wait.
 */
async function nodeAction(
  cmd: Command,
  kind: string,
  schema: z.ZodType,
  node: string,
  o: NodeFlags,
  extra: Record<string, unknown>,
  names: Record<string, string> = {},
) {
  const data = parseInput(
    schema,
    { clusterId: o.cluster, node, reason: o.reason, ...extra },
    `node.${kind}`,
    { names: { clusterId: "--cluster", node: "node name", reason: "--reason", ...names } },
  ) as Record<string, unknown>;
  const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
  const { api, actor } = contextOf(cmd);
  await ensureNode(api, o.cluster, node);
  const answer = await sendCommand(api, `node.${kind}`, data, actor);
  if (!o.wait) {
    if (o.output) return out(formatValue(answer, o.output === "json" ? "json" : "yaml"));
    return out(`node/${node} ${kind} requested (command ${answer.commandId})\n`);
  }
  const op = await waitForNodeOp(api, o.cluster, node, kind, {
    commandId: answer.commandId,
    timeoutMs,
    quiet: o.output === "json" || o.output === "yaml",
  });
  if (o.output) return out(formatValue(op, o.output === "json" ? "json" : "yaml"));
  out(`node/${node} ${kind === "cordon" || kind === "uncordon" ? `${kind}ed` : `${kind} done`}\n`);
}

/**
 * `key=value` sets, `key-` removes (kubectl's words).
 * @example labelChanges(["env=prod", "team-"]) // { set: { env: "prod" }, remove: ["team"] }
 */
export function labelChanges(args: readonly string[]) {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  for (const a of args) {
    if (a.endsWith("-") && !a.includes("=")) remove.push(a.slice(0, -1));
    else {
      const i = a.indexOf("=");
      if (i <= 0)
        throw new InvalidInputError(`invalid label ${JSON.stringify(a)} (nothing was sent)`, [
          "give key=value, or key- to remove",
        ]);
      set[a.slice(0, i)] = a.slice(i + 1);
    }
  }
  return { set, remove };
}

/**
 * `key[=value]:Effect` adds, `key[:Effect]-` removes (kubectl's words; the effect is needed to remove).
 * @example taintChanges(["dedicated=gpu:NoSchedule", "spot:NoExecute-"]) // { add: [{ key: "dedicated", value: "gpu", effect: "NoSchedule" }], remove: [{ key: "spot", effect: "NoExecute" }] }
 */
export function taintChanges(args: readonly string[]) {
  const add: { key: string; value?: string; effect: string }[] = [];
  const remove: { key: string; effect: string }[] = [];
  for (const a of args) {
    const removing = a.endsWith("-");
    const m = /^([^=:]+)(?:=([^:]*))?:([A-Za-z]+)$/.exec(removing ? a.slice(0, -1) : a);
    if (!m)
      throw new InvalidInputError(`invalid taint ${JSON.stringify(a)} (nothing was sent)`, [
        "give key[=value]:Effect to add, key:Effect- to remove (Effect: NoSchedule, PreferNoSchedule, NoExecute)",
      ]);
    const [, key, value, effect] = m as unknown as [string, string, string | undefined, string];
    if (removing) remove.push({ key, effect });
    else add.push({ key, ...(value !== undefined ? { value } : {}), effect });
  }
  return { add, remove };
}

export function nodeCommand(): Command {
  const node = new Command("node")
    .alias("nodes")
    .description("a cluster's nodes: list, cordon, uncordon, drain, label, taint")
    .addHelpText(
      "after",
      examples([
        "cairn node list --cluster demo-1",
        'cairn node drain ip-10-0-1-5.ec2.internal --cluster demo-1 --reason "kernel update" --wait',
      ]),
    );

  node
    .command("list")
    .alias("ls")
    .description("nodes: role, pool, capacity type, instance, K3s state, Ready, cordoned by whom")
    .option("--cluster <id>", "only this cluster's")
    .option("--pool <name>", "only this pool's")
    .option("--all", "also the nodes that left (scaled down, replaced)")
    .addOption(outputOption())
    .addHelpText(
      "after",
      examples(["cairn node list --cluster demo-1", "cairn node list -o wide", "cairn node list -o json"]),
    )
    .action(
      async (o: { cluster?: string; pool?: string; all?: boolean; output: OutputFormat }, cmd: Command) => {
        const query: Record<string, string> = {};
        if (o.cluster) query.clusterId = parseInput(tokenSafeId, o.cluster, "--cluster");
        if (o.pool) query.pool = o.pool;
        const { api } = contextOf(cmd);
        if (o.cluster) await getCluster(api, o.cluster);
        const items: NodeRow[] = [];
        let cursor: string | undefined;
        do {
          const q = new URLSearchParams({ ...query, limit: "500", ...(cursor ? { cursor } : {}) });
          const page = await api.get<{ items: NodeRow[]; nextCursor?: string }>(`/nodes?${q}`);
          items.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor);
        const shown = o.all ? items : items.filter((n) => !n.gone);
        if (o.output === "json" || o.output === "yaml") return out(formatValue(shown, o.output));
        if (shown.length === 0) return void process.stderr.write("No nodes found.\n");
        const now = new Date();
        const wide = o.output === "wide";
        out(
          renderTable(
            ["CLUSTER", ...NODE_HEADERS, ...(wide ? ["GONE"] : [])],
            shown.map((n) => [n.clusterId, ...nodeCells(n, now), ...(wide ? [n.gone?.reason ?? "-"] : [])]),
          ),
        );
      },
    );

  const common = (c: Command, what: string) =>
    c
      .argument("<node>", "the node's Kubernetes name")
      .requiredOption("--cluster <id>", "the cluster it is in")
      .requiredOption("--reason <text>", "why: the log records who and why")
      .option("-w, --wait", `wait until the ${what} is done (exit 1 if refused or it fails)`)
      .option("--timeout <duration>", "with --wait: give up after this long", "10m")
      .addOption(outputOption(null));

  common(node.command("cordon").description("mark a node unschedulable (node.cordon)"), "cordon")
    .option("--force", "past the cluster's disruption limit: not queued")
    .addHelpText(
      "after",
      examples(['cairn node cordon agent-1 --cluster demo-1 --reason "disk errors" --wait']),
    )
    .action((n: string, o: NodeFlags & { force?: boolean }, cmd: Command) =>
      nodeAction(cmd, "cordon", CordonNode.schema, n, o, o.force ? { force: true } : {}),
    );

  common(node.command("uncordon").description("make a node schedulable again (node.uncordon)"), "uncordon")
    .option("--force", "also a node Cairn did not cordon")
    .addHelpText(
      "after",
      examples(['cairn node uncordon agent-1 --cluster demo-1 --reason "disk replaced" --wait']),
    )
    .action((n: string, o: NodeFlags & { force?: boolean }, cmd: Command) =>
      nodeAction(cmd, "uncordon", UncordonNode.schema, n, o, o.force ? { force: true } : {}),
    );

  common(
    node
      .command("drain")
      .description("cordon a node and evict its pods, honouring PodDisruptionBudgets (node.drain)"),
    "drain",
  )
    .option("--drain-timeout <duration>", "fail the drain after this long (default 10m)")
    .option("--grace-period <seconds>", "the pods' termination grace period")
    .option("--force-unmanaged", "also evict pods no controller recreates (kubectl's --force)")
    .option("--delete-emptydir-data", "also evict pods with emptyDir data")
    .option("--force", "past the cluster's disruption limit: not queued")
    .addHelpText(
      "after",
      examples([
        'cairn node drain agent-1 --cluster demo-1 --reason "kernel update" --wait',
        'cairn node drain agent-1 --cluster demo-1 --reason "retire" --drain-timeout 20m --force-unmanaged',
      ]),
    )
    .action(
      (
        n: string,
        o: NodeFlags & {
          drainTimeout?: string;
          gracePeriod?: string;
          forceUnmanaged?: boolean;
          deleteEmptydirData?: boolean;
          force?: boolean;
        },
        cmd: Command,
      ) =>
        nodeAction(
          cmd,
          "drain",
          DrainNode.schema,
          n,
          o,
          {
            ...(o.drainTimeout
              ? { timeoutSeconds: Math.round(parseDuration(o.drainTimeout, "--drain-timeout")) }
              : {}),
            ...(o.gracePeriod !== undefined ? { gracePeriodSeconds: Number(o.gracePeriod) } : {}),
            ...(o.forceUnmanaged ? { forceUnmanaged: true } : {}),
            ...(o.deleteEmptydirData ? { deleteEmptyDirData: true } : {}),
            ...(o.force ? { force: true } : {}),
          },
          { timeoutSeconds: "--drain-timeout", gracePeriodSeconds: "--grace-period" },
        ),
    );

  common(
    node
      .command("label")
      .description("set (key=value) or remove (key-) labels on a node (node.label, node.unlabel)"),
    "label",
  )
    .argument("<changes...>", "key=value to set, key- to remove")
    .addHelpText(
      "after",
      examples(['cairn node label agent-1 env=prod team- --cluster demo-1 --reason "move to prod" --wait']),
    )
    .action(async (n: string, changes: string[], o: NodeFlags, cmd: Command) => {
      const { set, remove } = labelChanges(changes);
      if (Object.keys(set).length > 0)
        await nodeAction(cmd, "label", LabelNode.schema, n, o, { labels: set });
      if (remove.length > 0) await nodeAction(cmd, "unlabel", UnlabelNode.schema, n, o, { keys: remove });
    });

  common(
    node
      .command("taint")
      .description(
        "add (key[=value]:Effect) or remove (key:Effect-) taints on a node (node.taint, node.untaint)",
      ),
    "taint",
  )
    .argument("<changes...>", "key[=value]:Effect to add, key:Effect- to remove")
    .addHelpText(
      "after",
      examples([
        'cairn node taint agent-1 dedicated=gpu:NoSchedule --cluster demo-1 --reason "GPU work only" --wait',
      ]),
    )
    .action(async (n: string, changes: string[], o: NodeFlags, cmd: Command) => {
      const { add, remove } = taintChanges(changes);
      if (add.length > 0) await nodeAction(cmd, "taint", TaintNode.schema, n, o, { taints: add });
      if (remove.length > 0) await nodeAction(cmd, "untaint", UntaintNode.schema, n, o, { taints: remove });
    });

  return node;
}
