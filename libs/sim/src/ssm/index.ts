/**
 * The simulated AWS Systems Manager: Run Command with AWS-RunShellScript and Parameter
 * Store, over the JSON 1.1 wire protocol the real SDK speaks. Scripts are not run: their
 * `# cairn-step:` header says what they would do (see step-header.ts, scripts.ts and
 * docs/sim-ssm.md). Time-driven state is lazy; `settle()` applies the effects of scripts
 * that have finished by now, exactly once.
 */

import { SimRandom } from "../random.ts";
import type { InstanceView, SimCall, SimContext, SimModule, SsmPort } from "../world.ts";
import {
  type CommandRecord,
  commandJson,
  concurrencyOf,
  failInvocation,
  type Invocation,
  type InvocationStatus,
  invocationJson,
  invocationResultJson,
  PLUGIN_NAME,
  RUN_SHELL_SCRIPT,
  staggeredStarts,
  viewCommand,
  viewInvocation,
} from "./commands.ts";
import { ParameterStore, parameterJson, SIM_ACCOUNT_ID } from "./parameters.ts";
import { planScript } from "./scripts.ts";
import { findStepHeader } from "./step-header.ts";
import {
  maxResults,
  optBool,
  optString,
  optStringList,
  page,
  reqString,
  SsmError,
  send,
  validation,
} from "./wire.ts";

export { findStepHeader, parseStepHeader, type StepHeader } from "./step-header.ts";

type Input = Record<string, unknown>;
type Handler = (input: Input, region: string, now: number, ids: string[]) => unknown;

const INSTANCE_ID = /^(i-([0-9a-f]{8}|[0-9a-f]{17})|mi-[0-9a-f]{17})$/;
const COMMAND_ID_LENGTH = 36;
const RUN_SHELL_SCRIPT_PARAMETERS = new Set(["commands", "workingDirectory", "executionTimeout"]);
const STATUS_VALUES: readonly InvocationStatus[] = [
  "Pending",
  "InProgress",
  "Success",
  "Cancelled",
  "Failed",
  "TimedOut",
];
/** The agent the sim's managed instances report. */
const AGENT_VERSION = "3.3.1957.0";

export function createSsm(ctx: SimContext): SimModule<SsmPort> {
  const parameters = new ParameterStore();
  /** region → command id → command, in the order they were sent. */
  const commands = new Map<string, Map<string, CommandRecord>>();
  /** Invocations whose end settle() has not handled yet. */
  let unsettled: Invocation[] = [];
  /** Instances SSM has seen online (region/id → last time), for ConnectionLost. */
  const seenOnline = new Map<string, number>();
  /** Request ids come from their own stream so polling never shifts the world's ids. */
  const requestIds = new SimRandom(0x53534d);
  let settling = false;

  // ── time ───────────────────────────────────────────────────────────────────────────

  /**
   * Applies what time has made happen: an invocation whose instance went away stops
   * where it was (it will time out), and a script that has ended successfully has its
   * effect on the world, once, in the order the scripts ended.
   */
  function settle(now = ctx.clock.now()): void {
    if (settling || unsettled.length === 0) return;
    settling = true;
    try {
      for (const inv of unsettled) {
        if (inv.cancelledAt === undefined && inv.lostAt === undefined && now < inv.endAt)
          noticeLoss(inv, now);
      }
      const due = unsettled
        .filter((inv) => inv.cancelledAt !== undefined || now >= inv.endAt)
        .sort((a, b) => a.endAt - b.endAt);
      if (due.length === 0) return;
      const done = new Set(due);
      unsettled = unsettled.filter((inv) => !done.has(inv));
      for (const inv of due) {
        if (inv.cancelledAt === undefined && inv.outcome === "success") applyEffect(inv);
      }
    } finally {
      settling = false;
    }
  }

  /** An instance stopped, terminated or restarted under a running script: it never reports back. */
  function noticeLoss(inv: Invocation, now: number): void {
    const view = ec2Instance(inv.region, inv.instanceId);
    const gone = view?.state !== "running" || (view.runningSince ?? 0) > inv.startAt;
    if (!gone) return;
    const cmd = commands.get(inv.region)?.get(inv.commandId);
    inv.lostAt = now;
    inv.outcome = "timed-out";
    inv.endAt = Math.max(now, inv.startAt + (cmd?.executionTimeout ?? 3600) * 1000);
  }

  function applyEffect(inv: Invocation): void {
    const effect = inv.plan.effect;
    if (effect.kind === "none") return;
    if (effect.kind === "restart") {
      // Restarting K3s brings a stuck kubelet back: the node reports Ready again. A node
      // the cluster does not know (or a cluster without an API server) is left alone.
      try {
        ctx.world.kube.setNodeReady(effect.cluster, effect.node, true);
      } catch {}
      return;
    }
    try {
      const kube = ctx.world.kube;
      if (typeof kube?.registerNode !== "function") throw new Error("the Kubernetes API is not reachable");
      const registration = {
        name: effect.node,
        instanceId: inv.instanceId,
        availabilityZone: inv.facts.availabilityZone,
        role: effect.kind === "server-init" ? ("server" as const) : effect.role,
        labels: effect.labels,
        taints: effect.taints,
        internalIp: inv.facts.privateIpAddress,
      };
      if (effect.kind === "server-init") {
        kube.ensureCluster(effect.cluster);
        kube.registerNode(effect.cluster, registration);
        // What the install script does last: store the admin kubeconfig for Cairn.
        parameters.put(
          inv.region,
          {
            name: effect.kubeconfigParam,
            value: kube.kubeconfig(effect.cluster),
            type: "SecureString",
            overwrite: true,
            tier: "Intelligent-Tiering",
          },
          inv.endAt,
        );
      } else {
        if (!kube.clusters().includes(effect.cluster)) {
          throw new Error(
            `[ERROR]  Unable to join cluster ${effect.cluster}: no K3s server answers for it (run k3s-server-init first)`,
          );
        }
        kube.registerNode(effect.cluster, registration);
      }
    } catch (err) {
      failInvocation(inv, (err as Error).message);
    }
  }

  // ── the world as SSM sees it ───────────────────────────────────────────────────────

  function ec2Instance(region: string, id: string): InstanceView | undefined {
    const ec2 = ctx.world.ec2;
    return typeof ec2?.instance === "function" ? ec2.instance(region, id) : undefined;
  }

  /** Whether the instance's SSM Agent has registered: running for ssmRegistration seconds. */
  function online(view: InstanceView | undefined, now: number): boolean {
    return (
      view !== undefined &&
      view.state === "running" &&
      view.runningSince !== undefined &&
      now >= view.runningSince + ctx.latencies.ssmRegistration * 1000
    );
  }

  /** The instance's host name, K3s's node name by default (the private DNS name on EC2). */
  function hostname(view: InstanceView): string {
    if (view.privateDnsName) return view.privateDnsName;
    if (view.privateIpAddress) return `ip-${view.privateIpAddress.replaceAll(".", "-")}`;
    return view.instanceId;
  }

  function regionCommands(region: string): Map<string, CommandRecord> {
    let m = commands.get(region);
    if (!m) {
      m = new Map();
      commands.set(region, m);
    }
    return m;
  }

  function findCommand(region: string, commandId: string): CommandRecord | undefined {
    return commands.get(region)?.get(commandId);
  }

  // ── actions ────────────────────────────────────────────────────────────────────────

  const sendCommand: Handler = (input, region, now, ids) => {
    // 1. The request as AWS validates it.
    const documentName = reqString(input, "DocumentName");
    if (documentName !== RUN_SHELL_SCRIPT) {
      throw new SsmError("InvalidDocument", `Document with name ${documentName} does not exist.`);
    }
    if (Array.isArray(input.Targets) && input.Targets.length > 0) {
      throw new SsmError("InvalidParameters", "the sim sends to InstanceIds only; Targets are not modelled");
    }
    const instanceIds = optStringList(input, "InstanceIds") ?? [];
    if (instanceIds.length === 0) {
      throw validation(
        "1 validation error detected: Value '[]' at 'instanceIds' failed to satisfy constraint: Member must have length greater than or equal to 1",
      );
    }
    if (instanceIds.length > 50) {
      throw validation(
        `1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50`,
      );
    }
    const bad = instanceIds.find((id) => !INSTANCE_ID.test(id));
    if (bad) {
      throw validation(
        `1 validation error detected: Value '[${bad}]' at 'instanceIds' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 20, Member must have length greater than or equal to 10, Member must satisfy regular expression pattern: (^i-(\\w{8}|\\w{17})$)|(^mi-\\w{17}$)]`,
      );
    }
    if (new Set(instanceIds).size !== instanceIds.length) {
      throw new SsmError("DuplicateInstanceId", "You can't specify a managed node ID more than once.");
    }
    const timeoutSeconds = optInt(input, "TimeoutSeconds", 30, 2_592_000) ?? 3600;
    const comment = optString(input, "Comment") ?? "";
    if (comment.length > 100) {
      throw validation(
        "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100",
      );
    }
    const params = runShellScriptParameters(input.Parameters);
    const executionTimeout = params.executionTimeout ?? timeoutSeconds;
    const maxConcurrency = optPattern(input, "MaxConcurrency", MAX_CONCURRENCY);
    const maxErrors = optPattern(input, "MaxErrors", MAX_ERRORS);

    // 2. Every instance must be a managed instance that is online; AWS refuses the whole call otherwise.
    const views = instanceIds.map((id) => ({ id, view: ec2Instance(region, id) }));
    const offline = views.filter(({ view }) => !online(view, now)).map(({ id }) => id);
    if (offline.length > 0) {
      throw new SsmError(
        "InvalidInstanceId",
        `Instances [[${offline.join(", ")}]] not in a valid state for account ${SIM_ACCOUNT_ID}`,
      );
    }
    for (const { id } of views) seenOnline.set(`${region}/${id}`, now);

    // 3. The command and one invocation per instance, with how each will end.
    const commandId = ctx.random.uuid();
    ids.unshift(commandId);
    const header = findStepHeader(params.commands);
    const cmd: CommandRecord = {
      commandId,
      region,
      documentName,
      comment,
      parameters: params.raw,
      instanceIds,
      timeoutSeconds,
      executionTimeout,
      requestedAt: now,
      ...(maxConcurrency !== undefined ? { maxConcurrency } : {}),
      ...(maxErrors !== undefined ? { maxErrors } : {}),
      step: header?.step,
      invocations: [],
    };
    // A script that names its node after the instance (`node-name=instance-id`, one script
    // for many instances) registers each node under its own instance id.
    const byInstanceId = header?.params["node-name"] === "instance-id";
    for (const { id, view } of views) {
      const v = view as InstanceView;
      const plan = planScript(header, byInstanceId ? id : hostname(v));
      const fault = ctx.faults.take(
        {
          service: "ssm",
          action: "SendCommand",
          region,
          facts: { instanceId: id, step: header?.step, clusterId: header?.cluster },
        },
        ["command-fail", "command-hang", "command-slow"],
      );
      const slow = fault?.kind === "command-slow" ? (fault.delaySeconds ?? 60) * 1000 : 0;
      const run = ctx.latencies[plan.latency] * 1000 + slow;
      const limit = executionTimeout * 1000;
      const inv: Invocation = {
        commandId,
        instanceId: id,
        region,
        plan,
        facts: { availabilityZone: v.availabilityZone, privateIpAddress: v.privateIpAddress },
        startAt: now,
        endAt: now + Math.min(run, limit),
        outcome: run > limit ? "timed-out" : "success",
        exitCode: 0,
        stderr: "",
        ...(fault ? { faultId: fault.id } : {}),
      };
      if (plan.headerErrors.length > 0) {
        failInvocation(inv, `cairn-step header: ${plan.headerErrors.join("; ")}`, 2);
      } else if (fault?.kind === "command-hang") {
        inv.outcome = "timed-out";
        inv.endAt = now + limit;
      } else if (fault?.kind === "command-fail" && inv.outcome === "success") {
        failInvocation(inv, fault.output ?? `[ERROR]  simulated failure of step ${plan.step ?? "(none)"}`);
      }
      cmd.invocations.push(inv);
      unsettled.push(inv);
    }
    // MaxConcurrency (default 50): past that many at once, an invocation waits (Pending)
    // until one running ends. Its outcome and run time stay as drawn.
    const limit = concurrencyOf(maxConcurrency ?? "50", cmd.invocations.length);
    if (limit < cmd.invocations.length) {
      const starts = staggeredStarts(
        now,
        cmd.invocations.map((inv) => inv.endAt - inv.startAt),
        limit,
      );
      cmd.invocations.forEach((inv, i) => {
        const shift = starts[i]! - now;
        (inv as { startAt: number }).startAt += shift;
        inv.endAt += shift;
      });
    }
    regionCommands(region).set(commandId, cmd);
    return { Command: commandJson(cmd, now, true) };
  };

  const getCommandInvocation: Handler = (input, region, now) => {
    const commandId = reqString(input, "CommandId");
    const instanceId = reqString(input, "InstanceId");
    const pluginName = optString(input, "PluginName");
    if (commandId.length !== COMMAND_ID_LENGTH) {
      throw validation(
        `1 validation error detected: Value '${commandId}' at 'commandId' failed to satisfy constraint: Member must have length less than or equal to 36`,
      );
    }
    const cmd = findCommand(region, commandId);
    const inv = cmd?.invocations.find((i) => i.instanceId === instanceId);
    if (!cmd || !inv) throw new SsmError("InvocationDoesNotExist", "");
    if (pluginName !== undefined && pluginName !== PLUGIN_NAME) throw new SsmError("InvalidPluginName", "");
    return invocationResultJson(cmd, inv, now);
  };

  const listCommandInvocations: Handler = (input, region, now) => {
    const commandId = optString(input, "CommandId");
    const instanceId = optString(input, "InstanceId");
    const details = optBool(input, "Details") ?? false;
    const size = maxResults(input.MaxResults, 50, 50);
    const filter = commandFilter(input.Filters);
    const rows: { cmd: CommandRecord; inv: Invocation }[] = [];
    for (const cmd of newestFirst(region)) {
      if (commandId && cmd.commandId !== commandId) continue;
      for (const inv of cmd.invocations) {
        if (instanceId && inv.instanceId !== instanceId) continue;
        const v = viewInvocation(inv, now);
        if (!filter(cmd, v.status, v.terminal)) continue;
        rows.push({ cmd, inv });
      }
    }
    const p = page(rows, optString(input, "NextToken"), size);
    return {
      CommandInvocations: p.items.map(({ cmd, inv }) => invocationJson(cmd, inv, now, details)),
      ...(p.next ? { NextToken: p.next } : {}),
    };
  };

  const listCommands: Handler = (input, region, now) => {
    const commandId = optString(input, "CommandId");
    const instanceId = optString(input, "InstanceId");
    const size = maxResults(input.MaxResults, 50, 50);
    const filter = commandFilter(input.Filters);
    if (commandId && !findCommand(region, commandId)) throw new SsmError("InvalidCommandId", "");
    const rows = newestFirst(region).filter((cmd) => {
      if (commandId && cmd.commandId !== commandId) return false;
      if (instanceId && !cmd.instanceIds.includes(instanceId)) return false;
      const v = viewCommand(cmd, now);
      return filter(cmd, v.status, v.completed === cmd.invocations.length);
    });
    const p = page(rows, optString(input, "NextToken"), size);
    return {
      Commands: p.items.map((cmd) => commandJson(cmd, now)),
      ...(p.next ? { NextToken: p.next } : {}),
    };
  };

  const cancelCommand: Handler = (input, region, now) => {
    const commandId = reqString(input, "CommandId");
    const only = optStringList(input, "InstanceIds");
    const cmd = findCommand(region, commandId);
    if (!cmd) throw new SsmError("InvalidCommandId", "");
    const unknown = (only ?? []).filter((id) => !cmd.instanceIds.includes(id));
    if (unknown.length > 0) {
      throw new SsmError(
        "InvalidInstanceId",
        `Instances [[${unknown.join(", ")}]] are not targets of command ${commandId}`,
      );
    }
    for (const inv of cmd.invocations) {
      if (only && !only.includes(inv.instanceId)) continue;
      if (!viewInvocation(inv, now).terminal) inv.cancelledAt = now;
    }
    return {};
  };

  const describeInstanceInformation: Handler = (input, region, now, ids) => {
    const size = maxResults(input.MaxResults, 50, 50);
    const filters = instanceFilters(input);
    const ec2 = ctx.world.ec2;
    const all = typeof ec2?.instances === "function" ? ec2.instances(region) : [];
    const rows: Record<string, unknown>[] = [];
    for (const view of all) {
      const key = `${region}/${view.instanceId}`;
      let ping: "Online" | "ConnectionLost";
      if (online(view, now)) {
        seenOnline.set(key, now);
        ping = "Online";
      } else if (seenOnline.has(key) && view.state !== "terminated") {
        ping = "ConnectionLost";
      } else {
        continue;
      }
      const facts: Record<string, string> = {
        InstanceIds: view.instanceId,
        PingStatus: ping,
        PlatformTypes: "Linux",
        ResourceType: "EC2Instance",
      };
      if (!filters.every(({ key: k, values }) => values.includes(facts[k] ?? ""))) continue;
      ids.push(view.instanceId);
      rows.push({
        InstanceId: view.instanceId,
        PingStatus: ping,
        LastPingDateTime: (seenOnline.get(key) ?? now) / 1000,
        AgentVersion: AGENT_VERSION,
        IsLatestVersion: false,
        PlatformType: "Linux",
        PlatformName: "Ubuntu",
        PlatformVersion: "24.04",
        ResourceType: "EC2Instance",
        IPAddress: view.privateIpAddress,
        ComputerName: view.privateDnsName,
        AssociationStatus: "Success",
        SourceId: view.instanceId,
        SourceType: "AWS::EC2::Instance",
      });
    }
    const p = page(rows, optString(input, "NextToken"), size);
    return { InstanceInformationList: p.items, ...(p.next ? { NextToken: p.next } : {}) };
  };

  const putParameter: Handler = (input, region, now) => {
    const name = reqString(input, "Name");
    const value = optString(input, "Value");
    if (value === undefined) {
      throw validation(
        "1 validation error detected: Value null at 'value' failed to satisfy constraint: Member must not be null",
      );
    }
    const type = optString(input, "Type");
    const tier = optString(input, "Tier");
    const keyId = optString(input, "KeyId");
    const description = optString(input, "Description");
    const overwrite = optBool(input, "Overwrite");
    const stored = parameters.put(
      region,
      {
        name,
        value,
        hasTags: Array.isArray(input.Tags) && input.Tags.length > 0,
        ...(type !== undefined ? { type } : {}),
        ...(tier !== undefined ? { tier } : {}),
        ...(keyId !== undefined ? { keyId } : {}),
        ...(description !== undefined ? { description } : {}),
        ...(overwrite !== undefined ? { overwrite } : {}),
      },
      now,
    );
    return { Version: stored.version, Tier: stored.tier };
  };

  const getParameter: Handler = (input, region) => {
    const name = reqString(input, "Name");
    const p = parameters.get(region, name);
    if (!p) throw new SsmError("ParameterNotFound", `Parameter ${name} not found.`);
    return { Parameter: parameterJson(region, p, optBool(input, "WithDecryption") ?? false) };
  };

  const getParameters: Handler = (input, region) => {
    const names = optStringList(input, "Names") ?? [];
    if (names.length < 1 || names.length > 10) {
      throw validation(
        `1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10`,
      );
    }
    const decrypt = optBool(input, "WithDecryption") ?? false;
    const found = [...new Set(names)].flatMap((n) => {
      const p = parameters.get(region, n);
      return p ? [parameterJson(region, p, decrypt)] : [];
    });
    const invalid = [...new Set(names)].filter((n) => !parameters.get(region, n));
    return { Parameters: found, InvalidParameters: invalid };
  };

  const deleteParameter: Handler = (input, region) => {
    const name = reqString(input, "Name");
    if (!parameters.delete(region, name))
      throw new SsmError("ParameterNotFound", `Parameter ${name} not found.`);
    return {};
  };

  const actions: Record<string, Handler> = {
    SendCommand: sendCommand,
    GetCommandInvocation: getCommandInvocation,
    ListCommandInvocations: listCommandInvocations,
    ListCommands: listCommands,
    CancelCommand: cancelCommand,
    DescribeInstanceInformation: describeInstanceInformation,
    PutParameter: putParameter,
    GetParameter: getParameter,
    GetParameters: getParameters,
    DeleteParameter: deleteParameter,
  };

  function newestFirst(region: string): CommandRecord[] {
    return [...(commands.get(region)?.values() ?? [])].reverse();
  }

  // ── the module ─────────────────────────────────────────────────────────────────────

  async function handle({ req, res, body, region, at }: SimCall): Promise<void> {
    const requestId = requestIds.uuid();
    const target = String(req.headers["x-amz-target"] ?? "");
    const action = target.startsWith("AmazonSSM.") ? target.slice("AmazonSSM.".length) : target;
    // The call's date, as EC2's (SimCall.at): when it came, the time the journal keeps, so a
    // replay decides it at the very same time. The clock read here instead ran on past the
    // journal's write (~0.65 ms, sim seconds at ×100 under load): a SendCommand that found
    // its instance's agent just online was refused in the replay, and its command was gone
    // after a restart (CI, persistence.int.spec).
    const now = at ?? ctx.clock.now();
    settle(now);
    const ids: string[] = [];
    const record = (status: number, error?: string) =>
      ctx.requests.record({
        time: ctx.clock.iso(now),
        service: "ssm",
        region,
        action,
        ids,
        status,
        ...(error ? { error } : {}),
      });
    try {
      const handler = actions[action];
      if (!handler) {
        throw new SsmError(
          "UnknownOperationException",
          `the sim's SSM does not model ${action || "this operation"}`,
        );
      }
      let input: Input;
      try {
        const parsed: unknown = body.length > 0 ? JSON.parse(body.toString("utf8")) : {};
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
          throw new Error("not an object");
        input = parsed as Input;
      } catch {
        throw new SsmError("SerializationException", "The request body is not a JSON object.");
      }
      ids.push(...namedIds(input));
      const fault = ctx.faults.take({ service: "ssm", action, region, facts: faultFacts(action, input) }, [
        "throttle",
        "internal-error",
      ]);
      if (fault?.kind === "throttle") throw new SsmError("ThrottlingException", "Rate exceeded");
      if (fault?.kind === "internal-error") {
        throw new SsmError("InternalServerError", "An internal error occurred. Try again later.", 500);
      }
      const out = handler(input, region, now, ids);
      record(200);
      send(res, 200, out, requestId);
    } catch (err) {
      const e =
        err instanceof SsmError
          ? err
          : new SsmError("InternalServerError", `sim ssm bug: ${(err as Error).message}`, 500);
      record(e.status, e.code);
      send(res, e.status, e.body(), requestId);
    }
  }

  const port: SsmPort = {
    parameter(region, name) {
      settle();
      return parameters.get(region, name)?.value;
    },
    putParameter(region, name, value, secure) {
      parameters.put(
        region,
        {
          name,
          value,
          type: secure ? "SecureString" : "String",
          overwrite: true,
          tier: "Intelligent-Tiering",
        },
        ctx.clock.now(),
      );
    },
  };

  function state(): unknown {
    const now = ctx.clock.now();
    settle(now);
    const regions = [...new Set([...commands.keys(), ...parameters.regions()])].sort();
    return {
      regions: Object.fromEntries(
        regions.map((region) => [
          region,
          {
            commands: [...(commands.get(region)?.values() ?? [])].flatMap((cmd) =>
              cmd.invocations.map((inv) => ({
                id: cmd.commandId,
                instance: inv.instanceId,
                step: cmd.step ?? null,
                status: viewInvocation(inv, now).status,
              })),
            ),
            parameters: parameters.names(region),
          },
        ]),
      ),
    };
  }

  return {
    port,
    handle,
    state,
    settle: () => settle(),
    snapshot: () => ({
      parameters: parameters.snapshot(),
      commands,
      // Invocations are shared with their commands: named, not copied.
      unsettled: unsettled.map((inv) => [inv.region, inv.commandId, inv.instanceId]),
      seenOnline: [...seenOnline],
      requestIds: requestIds.state,
    }),
    restore(s) {
      const snap = s as {
        parameters: unknown;
        commands: unknown;
        unsettled: [string, string, string][];
        seenOnline: [string, number][];
        requestIds: number;
      };
      parameters.restore(snap.parameters);
      commands.clear();
      for (const [region, m] of snap.commands as Map<string, Map<string, CommandRecord>>)
        commands.set(region, m);
      unsettled = snap.unsettled.flatMap(([region, commandId, instanceId]) => {
        const inv = commands
          .get(region)
          ?.get(commandId)
          ?.invocations.find((i) => i.instanceId === instanceId);
        return inv ? [inv] : [];
      });
      seenOnline.clear();
      for (const [k, t] of snap.seenOnline) seenOnline.set(k, t);
      requestIds.state = snap.requestIds;
    },
  };
}

/** The resource ids a request names (command, instances, parameters), for the request log. */
function namedIds(input: Input): string[] {
  const ids: string[] = [];
  for (const key of ["CommandId", "InstanceId", "Name"]) {
    if (typeof input[key] === "string") ids.push(input[key]);
  }
  for (const key of ["InstanceIds", "Names"]) {
    const v = input[key];
    if (Array.isArray(v)) ids.push(...v.filter((x): x is string => typeof x === "string"));
  }
  return ids;
}

/** The facts a fault rule can match on for this call. */
function faultFacts(action: string, input: Input): Record<string, string | undefined> {
  const instanceId =
    typeof input.InstanceId === "string"
      ? input.InstanceId
      : Array.isArray(input.InstanceIds) && typeof input.InstanceIds[0] === "string"
        ? input.InstanceIds[0]
        : undefined;
  if (action !== "SendCommand") return { instanceId };
  const commands = (input.Parameters as Record<string, unknown> | undefined)?.commands;
  const header = Array.isArray(commands)
    ? findStepHeader(commands.filter((c): c is string => typeof c === "string"))
    : undefined;
  return { instanceId, step: header?.step, clusterId: header?.cluster };
}

/** SendCommand's patterns: a count, or a percentage. */
const MAX_CONCURRENCY = /^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$/;
const MAX_ERRORS = /^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$/;

function optPattern(input: Input, key: string, pattern: RegExp): string | undefined {
  const v = optString(input, key);
  if (v === undefined) return undefined;
  if (v.length > 7 || !pattern.test(v)) {
    throw validation(
      `1 validation error detected: Value '${v}' at '${key[0]!.toLowerCase()}${key.slice(1)}' failed to satisfy constraint: Member must satisfy regular expression pattern: ${pattern.source}`,
    );
  }
  return v;
}

function optInt(input: Input, key: string, min: number, max: number): number | undefined {
  const v = input[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw validation(
      `1 validation error detected: Value '${String(v)}' at '${key[0]!.toLowerCase()}${key.slice(1)}' failed to satisfy constraint: Member must have value ${v !== undefined && typeof v === "number" && v < min ? `greater than or equal to ${min}` : `less than or equal to ${max}`}`,
    );
  }
  return v;
}

/** AWS-RunShellScript's parameters: commands (required), workingDirectory, executionTimeout. */
function runShellScriptParameters(value: unknown): {
  commands: string[];
  executionTimeout?: number;
  raw: Record<string, string[]>;
} {
  const raw: Record<string, string[]> = {};
  if (value !== undefined && value !== null) {
    if (typeof value !== "object" || Array.isArray(value))
      throw new SsmError("InvalidParameters", "Parameters must be a map");
    for (const [k, v] of Object.entries(value)) {
      if (!RUN_SHELL_SCRIPT_PARAMETERS.has(k)) {
        throw new SsmError(
          "InvalidParameters",
          `document ${RUN_SHELL_SCRIPT} does not support parameters: ${k}`,
        );
      }
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
        throw new SsmError("InvalidParameters", `parameter ${k} must be a list of strings`);
      }
      raw[k] = v as string[];
    }
  }
  const commands = raw.commands;
  if (!commands || commands.length === 0 || commands.every((c) => c.trim() === "")) {
    throw new SsmError(
      "InvalidParameters",
      `The "commands" parameter of ${RUN_SHELL_SCRIPT} is required and can't be empty.`,
    );
  }
  const timeout = raw.executionTimeout;
  if (timeout === undefined) return { commands, raw };
  const n = timeout.length === 1 && /^\d+$/.test(timeout[0]!) ? Number(timeout[0]) : Number.NaN;
  if (!(n >= 1 && n <= 172_800)) {
    throw new SsmError(
      "InvalidParameters",
      `Parameter "executionTimeout" "${timeout.join(",")}" failed to satisfy constraint: an integer from 1 to 172800`,
    );
  }
  return { commands, executionTimeout: n, raw };
}

/** ListCommands / ListCommandInvocations filters: InvokedAfter, InvokedBefore, Status, ExecutionStage, DocumentName. */
function commandFilter(
  value: unknown,
): (cmd: CommandRecord, status: InvocationStatus, complete: boolean) => boolean {
  if (value === undefined || value === null) return () => true;
  if (!Array.isArray(value)) throw validation("Filters must be a list");
  const tests: ((cmd: CommandRecord, status: InvocationStatus, complete: boolean) => boolean)[] = [];
  for (const f of value as { key?: unknown; value?: unknown }[]) {
    const key = f?.key;
    const v = typeof f?.value === "string" ? f.value : "";
    const invalid = () =>
      new SsmError("InvalidFilterValue", `value ${JSON.stringify(v)} is not valid for filter ${key}`);
    switch (key) {
      case "InvokedAfter":
      case "InvokedBefore": {
        const t = Date.parse(v);
        if (Number.isNaN(t)) throw invalid();
        tests.push(key === "InvokedAfter" ? (c) => c.requestedAt >= t : (c) => c.requestedAt <= t);
        break;
      }
      case "Status":
        if (!(STATUS_VALUES as readonly string[]).includes(v) && v !== "Cancelling") throw invalid();
        tests.push((_c, s) => s === v);
        break;
      case "ExecutionStage":
        if (v !== "Executing" && v !== "Complete") throw invalid();
        tests.push((_c, _s, complete) => complete === (v === "Complete"));
        break;
      case "DocumentName":
        tests.push((c) => c.documentName === v);
        break;
      default:
        throw new SsmError("InvalidFilterKey", "");
    }
  }
  return (cmd, status, complete) => tests.every((t) => t(cmd, status, complete));
}

/** DescribeInstanceInformation's two filter shapes, merged. */
function instanceFilters(input: Input): { key: string; values: string[] }[] {
  const out: { key: string; values: string[] }[] = [];
  const supported = new Set(["InstanceIds", "PingStatus", "PlatformTypes", "ResourceType"]);
  const add = (key: unknown, values: unknown) => {
    if (typeof key !== "string" || !supported.has(key)) {
      throw new SsmError(
        "InvalidInstanceInformationFilterValue",
        `the sim filters on ${[...supported].join(", ")}; not ${String(key)}`,
      );
    }
    if (!Array.isArray(values) || values.length === 0) {
      throw new SsmError("InvalidInstanceInformationFilterValue", `filter ${key} needs values`);
    }
    out.push({ key, values: values.map(String) });
  };
  const legacy = input.InstanceInformationFilterList;
  if (Array.isArray(legacy))
    for (const f of legacy as { key?: unknown; valueSet?: unknown }[]) add(f?.key, f?.valueSet);
  const filters = input.Filters;
  if (Array.isArray(filters))
    for (const f of filters as { Key?: unknown; Values?: unknown }[]) add(f?.Key, f?.Values);
  return out;
}
