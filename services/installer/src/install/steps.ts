/**
 * The install steps, pure: init the first server, join further servers one at a time
 * (embedded etcd grows one member at a time), join agents side by side (at most
 * `maxParallelJoins` at once, as soon as the first server is up), and verify: the
 * install completes when every instance the provisioner runs is a Ready node.
 *
 * Never re-sending: a step in flight is only ever polled. A new attempt is a new
 * decision, taken when the last one failed or passed its deadline (the reactor cancels
 * it first), up to `maxAttempts`; then the node is given up on (the provisioner
 * replaces it) — or, for the first server, the install fails.
 */
import type { InstallEvent, InstallStep } from "@cairn/events";
import {
  type Active,
  after,
  type CommandData,
  type InstallNode,
  type InstallPolicy,
  type InstallState,
  isLive,
  isOver,
} from "./state.ts";

export const joinStep = (n: InstallNode): InstallStep =>
  n.role === "server" ? "k3s-server-join" : "k3s-agent-join";

/** `install.step-requested` for `n`, numbered "step X of Y" with `inFlight` steps ahead of it. */
export function requestStep(
  state: Active,
  n: InstallNode,
  step: InstallStep,
  inFlight: number,
  counts: { readonly nodes: number; readonly joined: number } = countNodes(state),
): InstallEvent {
  // X counts the joins of the nodes the install has now: steps of nodes removed since
  // (scaled down, interrupted, replaced) are not ahead of this one.
  const { nodes, joined: done } = counts;
  return {
    type: "install.step-requested",
    data: {
      step,
      slot: n.slot,
      instanceId: n.instanceId,
      node: n.node,
      attempt: (n.attempts[step] ?? 0) + 1,
      number: Math.min(done + inFlight + 1, Math.max(nodes, 1)),
      of: Math.max(nodes, 1),
    },
  };
}

/** The install's nodes not given up on, and how many of them joined: a step's "X of Y". */
const countNodes = (state: Active) => {
  let nodes = 0;
  let joined = 0;
  for (const n of Object.values(state.nodes)) {
    if (n.failed) continue;
    nodes++;
    if (n.joined) joined++;
  }
  return { nodes, joined };
};

/**
 * The steps that can start now: the first server's init; then one server join at a
 * time; agents side by side up to the policy's limit. Nodes not online, joined, failed
 * or with a step in flight wait.
 *
 * One pass over the nodes (in slot order: an object's integer keys enumerate ascending),
 * however many steps it requests: it runs after every record of a group commit, so a
 * 500-node install's records must not each sort or scan the node table several times.
 */
function nextSteps(state: Active, policy: InstallPolicy): InstallEvent[] {
  if (!isLive(state)) return [];
  if (!state.secrets) return [];
  let inFlight = 0;
  let agents = 0;
  let initInFlight = false;
  let serverJoinInFlight = false;
  let idleServer: InstallNode | undefined;
  const idleAgents: InstallNode[] = [];
  let nodes = 0;
  let joined = 0;
  for (const n of Object.values(state.nodes)) {
    if (!n.failed) {
      nodes++;
      if (n.joined) joined++;
    }
    if (n.step) {
      inFlight++;
      if (n.step.name === "k3s-server-init") initInFlight = true;
      else if (n.step.name === "k3s-server-join") serverJoinInFlight = true;
      else if (n.step.name === "k3s-agent-join") agents++;
    } else if (n.online && !n.joined && !n.failed) {
      if (n.role === "server") idleServer ??= n;
      else if (idleAgents.length < policy.maxParallelJoins) idleAgents.push(n);
    }
  }
  const counts = { nodes, joined };
  if (state.initialisedBy === undefined) {
    if (initInFlight) return [];
    return idleServer ? [requestStep(state, idleServer, "k3s-server-init", inFlight, counts)] : [];
  }
  const out: InstallEvent[] = [];
  if (!serverJoinInFlight && idleServer) {
    out.push(requestStep(state, idleServer, "k3s-server-join", inFlight, counts));
    inFlight++;
  }
  for (const n of idleAgents) {
    if (agents >= policy.maxParallelJoins) break;
    out.push(requestStep(state, n, "k3s-agent-join", inFlight, counts));
    inFlight++;
    agents++;
  }
  return out;
}

/** `install.completed` when a completion is owed and every instance is a Ready node. */
function completion(state: InstallState): InstallEvent[] {
  if (!isLive(state)) return [];
  if (state.awaiting === undefined || !state.kubeconfig) return [];
  const nodes = Object.values(state.nodes);
  if (nodes.length !== state.awaiting) return [];
  if (!nodes.every((n) => n.joined && n.ready && !n.failed)) return [];
  return [{ type: "install.completed", data: { nodes: nodes.length, k3sVersion: state.plan.k3sVersion } }];
}

/** The decision's events on `state`, then whatever steps and completion they make possible. */
export function andThen(state: InstallState, events: InstallEvent[], policy: InstallPolicy): InstallEvent[] {
  if (events.length === 0) return events;
  const s1 = after(state, events);
  if (s1.status === "Absent") return events;
  const steps = nextSteps(s1, policy);
  const s2 = after(s1, steps);
  return [...events, ...steps, ...completion(s2)];
}

/** The secrets are stored: the first server can be initialised. */
export function decideRecordSecrets(
  d: CommandData<"install.record-secrets">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent" || isOver(state) || state.secrets) return [];
  return andThen(state, [{ type: "install.secrets-stored", data: { parameters: d.parameters } }], policy);
}

/** An instance for a slot: a new node (replacing the slot's last one), with its join deadline. */
export function decideAddNode(
  d: CommandData<"install.add-node">,
  state: InstallState,
  policy: InstallPolicy,
  now: Date,
): InstallEvent[] {
  if (state.status === "Absent" || isOver(state)) return [];
  const { slot, instanceId, role, pool, capacityType, privateIp } = d;
  const have = state.nodes[slot];
  if (have?.instanceId === instanceId) return [];
  // Its removal is on record already: this add came late, its instance is going away.
  if (state.gone?.includes(instanceId)) return [];
  const events: InstallEvent[] = have ? removal(have) : [];
  events.push({
    type: "install.node-added",
    data: {
      slot,
      instanceId,
      // The EC2 instance id is the node's name: unique, and it maps facts to slots.
      node: instanceId,
      role,
      pool,
      capacityType,
      ...(privateIp ? { privateIp } : {}),
      joinDeadline: new Date(now.getTime() + policy.joinTimeoutMs).toISOString(),
    },
  });
  return andThen(state, events, policy);
}

export function decideRemoveNode(
  d: CommandData<"install.remove-node">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent") return [];
  const have = state.nodes[d.slot];
  if (d.instanceId !== undefined && have?.instanceId !== d.instanceId) {
    // Not the slot's instance now: its successor (added first) stays. The removal is
    // recorded all the same, so an add of the removed instance arriving later is known stale.
    if (state.gone?.includes(d.instanceId)) return [];
    return [
      { type: "install.node-removed", data: { slot: d.slot, instanceId: d.instanceId, node: d.instanceId } },
    ];
  }
  if (!have) return [];
  return andThen(state, removal(have), policy);
}

/**
 * A node's instance goes away. A step under way on it ends here, recorded: nothing will poll
 * it again, the reactor cancels its command (a script left running on a node that is going,
 * or gone, answers to no one), and a later attempt in the slot follows a recorded failure.
 */
function removal(have: InstallNode): InstallEvent[] {
  const s = have.step;
  const forgotten: InstallEvent[] = s
    ? [
        {
          type: "install.step-failed",
          data: {
            step: s.name,
            slot: have.slot,
            instanceId: have.instanceId,
            attempt: s.attempt,
            ...(s.commandId ? { commandId: s.commandId } : {}),
            status: "Cancelled",
            reason: `${have.node} went away (instance ${have.instanceId}) while ${s.name} was ${s.status}: the step is forgotten${s.commandId ? " and its command cancelled" : ""}`,
            outputTail: "",
            willRetry: false,
          },
        },
      ]
    : [];
  return [
    ...forgotten,
    { type: "install.node-removed", data: { slot: have.slot, instanceId: have.instanceId, node: have.node } },
  ];
}

/** The node's SSM Agent registered: its step can be sent. */
export function decideRecordOnline(
  d: CommandData<"install.record-online">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent" || isOver(state)) return [];
  const n = state.nodes[d.slot];
  if (!n || n.instanceId !== d.instanceId || n.online) return [];
  return andThen(
    state,
    [{ type: "install.node-online", data: { slot: n.slot, instanceId: n.instanceId } }],
    policy,
  );
}

/** The reactor sent the step: its command id, and the deadline it is polled against. */
export function decideStepSent(
  d: CommandData<"install.record-step-sent">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent") return [];
  const { slot, step, attempt, commandId, sentAt } = d;
  const n = state.nodes[slot];
  if (n?.step?.name !== step || n.step.attempt !== attempt || n.step.status !== "requested") return [];
  const deadline = new Date(Date.parse(sentAt) + policy.stepTimeoutMs[step]).toISOString();
  return [
    {
      type: "install.step-sent",
      data: { step, slot, instanceId: n.instanceId, attempt, commandId, sentAt, deadline },
    },
  ];
}

/**
 * SSM took one command for a batch: each of the batch's nodes the command names whose step
 * is still requested is recorded sent (its own `install.step-sent`, with the batch), then
 * `install.batch-sent` for the reactor to poll. Idempotent by the state: a node recorded
 * already, gone, or not named by the command is left alone.
 */
export function decideBatchSent(
  d: CommandData<"install.record-batch-sent">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent") return [];
  const named = new Set(d.instanceIds);
  const members = Object.values(state.nodes)
    .filter((n) => n.step?.batch === d.batch && n.step.status === "requested" && named.has(n.instanceId))
    .sort((a, b) => a.slot - b.slot);
  const step = members[0]?.step?.name;
  if (!step) return [];
  const deadline = new Date(Date.parse(d.sentAt) + policy.stepTimeoutMs[step]).toISOString();
  const { batch, commandId, sentAt } = d;
  return [
    ...members.flatMap((n): InstallEvent[] =>
      n.step?.name === step
        ? [
            {
              type: "install.step-sent",
              data: {
                step,
                slot: n.slot,
                instanceId: n.instanceId,
                attempt: n.step.attempt,
                commandId,
                sentAt,
                deadline,
                batch,
              },
            },
          ]
        : [],
    ),
    {
      type: "install.batch-sent",
      data: { batch, step, commandId, slots: members.map((n) => n.slot), sentAt, deadline },
    },
  ];
}

/**
 * A step ended: it succeeded, or failed and is tried again, handed to the recovery
 * ladder, stops the upgrade, or the node (the first server: the install) is given up on.
 */
export function decideStepResult(
  d: CommandData<"install.record-step-result">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent") return [];
  const n = state.nodes[d.slot];
  const inFlight = n?.step;
  if (!n || !inFlight || inFlight.name !== d.step || inFlight.attempt !== d.attempt) return [];
  if (d.commandId !== undefined && inFlight.commandId !== undefined && inFlight.commandId !== d.commandId)
    return [];
  const commandId = d.commandId ?? inFlight.commandId;
  if (d.status === "Success") {
    return andThen(
      state,
      [
        {
          type: "install.step-succeeded",
          data: {
            step: d.step,
            slot: n.slot,
            instanceId: n.instanceId,
            attempt: d.attempt,
            commandId: commandId ?? "",
            durationMs: d.durationMs ?? 0,
            outputTail: d.outputTail,
          },
        },
      ],
      policy,
    );
  }
  const retry = !d.permanent && d.attempt < policy.maxAttempts && !isOver(state) && state.status !== "Failed";
  const reason = d.reason ?? `${d.step} ended ${d.status}`;
  const remediation = remediationFor(d.step, d.status);
  const failed: InstallEvent = {
    type: "install.step-failed",
    data: {
      step: d.step,
      slot: n.slot,
      instanceId: n.instanceId,
      attempt: d.attempt,
      ...(commandId ? { commandId } : {}),
      status: d.status,
      reason,
      outputTail: d.outputTail,
      willRetry: retry,
      remediation,
    },
  };
  if (retry) return andThen(state, [failed], policy);
  // A recovery action that failed: the ladder's next rung decides, after its grace.
  if (n.remedy) return [failed];
  // An upgrade that failed stops the rollout; the node stays cordoned for a person to look.
  if (d.step === "k3s-upgrade")
    return [
      failed,
      {
        type: "install.upgrade-failed",
        data: {
          slot: n.slot,
          node: n.node,
          reason: `k3s-upgrade failed ${d.attempt} times on ${n.node}: ${reason}`,
          remediation: `${remediation}; the node stays cordoned: fix it, then uncordon it and send install.upgrade again`,
        },
      },
    ];
  const giveUp: InstallEvent =
    d.step === "k3s-server-init" && state.initialisedBy === undefined
      ? {
          type: "install.failed",
          data: {
            step: d.step,
            slot: n.slot,
            reason: `the first server could not be installed after ${d.attempt} attempts: ${reason}`,
            remediation,
            outputTail: d.outputTail,
          },
        }
      : {
          type: "install.node-failed",
          data: {
            slot: n.slot,
            instanceId: n.instanceId,
            node: n.node,
            reason: `${d.step} failed ${d.attempt} times: ${reason}`,
            remediation,
            outputTail: d.outputTail,
          },
        };
  return andThen(state, [failed, giveUp], policy);
}

function remediationFor(step: InstallStep, status: string): string {
  if (status === "TimedOut")
    return `${step} did not finish in time: check the instance reaches the K3s download and the first server (port 6443), and the instance's size`;
  if (status === "Undeliverable" || status === "Lost")
    return "the SSM Agent did not take the command: check the instance is running and its agent is online";
  if (step === "k3s-server-init")
    return "read the step's output: a K3s version that does not exist, a checksum mismatch or no outbound HTTPS are the usual causes";
  return "read the step's output; check the node reaches the first server on port 6443 and that the join token parameter is readable by the instance role";
}

/** The kubeconfig is published: part of what a completion needs. */
export function decideRecordKubeconfig(
  d: CommandData<"install.record-kubeconfig">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent" || isOver(state)) return [];
  const { parameter, version } = d;
  if (state.kubeconfig?.parameter === parameter && state.kubeconfig.version === version) return [];
  return andThen(state, [{ type: "install.kubeconfig-published", data: { parameter, version } }], policy);
}

/** The provisioner's count of running instances: a completion is owed once they all are Ready nodes. */
export function decideInstancesReady(
  d: CommandData<"install.record-instances-ready">,
  state: InstallState,
  policy: InstallPolicy,
): InstallEvent[] {
  if (state.status === "Absent" || isOver(state) || state.status === "Failed") return [];
  return andThen(state, [{ type: "install.instances-ready", data: { count: d.count } }], policy);
}

/** Nodes not Ready by their join deadline are given up on (`now` comes with the decision). */
export function decideCheckDeadlines(state: InstallState, policy: InstallPolicy, now: Date): InstallEvent[] {
  if (state.status === "Absent" || isOver(state) || state.status === "Failed") return [];
  const late = Object.values(state.nodes).filter(
    (n) => !n.failed && !(n.joined && n.ready) && Date.parse(n.joinDeadline) <= now.getTime(),
  );
  return late.map((n) => ({
    type: "install.node-failed",
    data: {
      slot: n.slot,
      instanceId: n.instanceId,
      node: n.node,
      reason: `not a Ready node ${Math.round(policy.joinTimeoutMs / 1000)} s after its instance ran: ${whereStuck(n)}`,
      remediation:
        "the instance is replaced; if replacements keep failing, check the instance's SSM Agent (IAM instance profile, outbound HTTPS) and the step output",
    },
  }));
}

/** Where a late node got stuck, for the reason a human reads. */
function whereStuck(n: InstallNode): string {
  if (!n.online) return "its SSM Agent never registered";
  if (n.step) return `${n.step.name} attempt ${n.step.attempt} had not finished`;
  if (!n.joined) return "K3s was not installed on it";
  return "K3s runs but the node is not Ready";
}
