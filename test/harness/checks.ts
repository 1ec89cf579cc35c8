/**
 * What the end-to-end suites assert, written once: each check reads the world (the sim through
 * the real AWS SDK clients, the log, the API) and returns the problems it found as sentences,
 * so a failing suite says what went wrong, not only that something did.
 */
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { ListCommandsCommand, SSMClient } from "@aws-sdk/client-ssm";
import { type SessionStatus, sessionStatusAfter } from "@cairn/events";
import { replay } from "@cairn/projector";
import { type DeadLetter, type LoggedEvent, REGION, type Stack } from "./stack.ts";

const credentials = { accessKeyId: "SIMACCESSKEY", secretAccessKey: "simsecretkey" };

export interface SeenInstance {
  readonly instanceId: string;
  readonly state: string;
  readonly clientToken: string | undefined;
  /** The RunInstances call it came from, and its position in it. */
  readonly reservationId?: string | undefined;
  readonly amiLaunchIndex?: number | undefined;
  readonly pool: string | undefined;
  /**
   * The slot it is: its `cairn:slot` tag (a batch's first slot) plus its AmiLaunchIndex
   * (one RunInstances launches a batch of consecutive slots, tagged alike).
   */
  readonly slot: string | undefined;
  readonly attempt: string | undefined;
}

/** An instance as the suites see it, from DescribeInstances. */
export function seenInstance(
  i: {
    InstanceId?: string | undefined;
    State?: { Name?: string | undefined } | undefined;
    ClientToken?: string | undefined;
    AmiLaunchIndex?: number | undefined;
    Tags?: { Key?: string | undefined; Value?: string | undefined }[] | undefined;
  },
  reservationId?: string,
): SeenInstance {
  const tag = (k: string) => i.Tags?.find((t) => t.Key === k)?.Value;
  const first = tag("cairn:slot");
  const index = i.AmiLaunchIndex ?? 0;
  return {
    instanceId: i.InstanceId ?? "?",
    state: i.State?.Name ?? "?",
    clientToken: i.ClientToken || undefined,
    reservationId,
    amiLaunchIndex: index,
    pool: tag("cairn:pool"),
    slot: first !== undefined && /^\d+$/.test(first) ? String(Number(first) + index) : first,
    attempt: tag("cairn:attempt"),
  };
}

/** Every instance tagged `cairn:cluster = clusterId` (terminated ones too, while EC2 shows them). */
export async function describeClusterInstances(stack: Stack, clusterId: string): Promise<SeenInstance[]> {
  const ec2 = new EC2Client({ endpoint: stack.simUrl, region: REGION, credentials, maxAttempts: 5 });
  const out: SeenInstance[] = [];
  let NextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeInstancesCommand({
        Filters: [{ Name: "tag:cairn:cluster", Values: [clusterId] }],
        ...(NextToken ? { NextToken } : {}),
      }),
    );
    for (const r of page.Reservations ?? [])
      for (const i of r.Instances ?? []) out.push(seenInstance(i, r.ReservationId));
    NextToken = page.NextToken;
  } while (NextToken);
  ec2.destroy();
  return out;
}

/**
 * Samples DescribeInstances every half second while a suite runs, so an instance is counted
 * even once EC2 (the sim, at its time scale) no longer shows it terminated.
 */
export function watchInstances(stack: Stack, clusterId: string) {
  const seen = new Map<string, SeenInstance>();
  let running = true;
  const sample = async () => {
    for (const i of await describeClusterInstances(stack, clusterId).catch(() => []))
      seen.set(i.instanceId, i);
  };
  const loop = (async () => {
    while (running) {
      await sample();
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    /** Every instance seen so far (sampling goes on). */
    peek: async (): Promise<SeenInstance[]> => [...seen.values()],
    /** Stops sampling after one last look; every instance ever seen. */
    stop: async (): Promise<SeenInstance[]> => {
      running = false;
      await loop;
      await sample();
      return [...seen.values()];
    },
  };
}

/**
 * A duplicate launch: two reservations for one ClientToken (EC2 answers a repeated token
 * with the first call's reservation, so a second one is a second launch), two instances
 * at one position of one ClientToken's call, or two for one (pool, slot, attempt) — the
 * slot read from the batch's first slot plus the AmiLaunchIndex.
 */
export function duplicateInstances(instances: readonly SeenInstance[]): string[] {
  const problems: string[] = [];
  const group = (key: (i: SeenInstance) => string | undefined, what: string) => {
    const by = new Map<string, SeenInstance[]>();
    for (const i of instances) {
      const k = key(i);
      if (k === undefined) continue;
      by.set(k, [...(by.get(k) ?? []), i]);
    }
    for (const [k, is] of by)
      if (is.length > 1)
        problems.push(
          `${is.length} instances for ${what} ${k}: ${is.map((i) => `${i.instanceId} (${i.state})`).join(", ")}`,
        );
  };
  const reservations = new Map<string, Set<string>>();
  for (const i of instances) {
    if (i.clientToken === undefined || i.reservationId === undefined) continue;
    reservations.set(i.clientToken, (reservations.get(i.clientToken) ?? new Set()).add(i.reservationId));
  }
  for (const [token, rs] of reservations)
    if (rs.size > 1)
      problems.push(`${rs.size} RunInstances reservations for ClientToken ${token}: ${[...rs].join(", ")}`);
  group(
    (i) => (i.clientToken ? `${i.clientToken} #${i.amiLaunchIndex ?? 0}` : undefined),
    "ClientToken and launch index",
  );
  group(
    (i) => (i.pool && i.slot && i.attempt ? `${i.pool}/${i.slot}/attempt ${i.attempt}` : undefined),
    "slot",
  );
  return problems;
}

/** Every instance EC2 has for the cluster was recorded launched in the log (none launched behind its back). */
export function unrecordedInstances(
  instances: readonly SeenInstance[],
  clusterEvents: readonly LoggedEvent[],
): string[] {
  const launched = new Set(
    clusterEvents.filter((e) => e.type === "cluster.instance-launched").map((e) => String(e.data.instanceId)),
  );
  // One RunInstances launches a whole batch, whatever became of its slots meanwhile: an
  // instance for a slot whose attempt was superseded before the call (a scale-down, a
  // replacement) is launched, never recorded, and terminated by the reactor. Such an
  // instance is no problem once it is gone — one that lives, or that no request asked
  // for, is.
  const requested = new Set<string>();
  const superseded = new Set<string>();
  const attemptsOf = new Map<string, number[]>();
  for (const e of clusterEvents) {
    const d = e.data as { slot?: number; attempt?: number };
    if (e.type === "cluster.instance-launch-requested" && d.slot !== undefined && d.attempt !== undefined) {
      requested.add(`${d.slot}/${d.attempt}`);
      attemptsOf.set(String(d.slot), [...(attemptsOf.get(String(d.slot)) ?? []), d.attempt]);
    }
    if (e.type === "cluster.instance-termination-requested" && d.slot !== undefined)
      superseded.add(String(d.slot));
  }
  const gone = (i: SeenInstance) => i.state === "terminated" || i.state === "shutting-down";
  const supersededLaunch = (i: SeenInstance) =>
    i.slot !== undefined &&
    requested.has(`${i.slot}/${i.attempt}`) &&
    (superseded.has(i.slot) || (attemptsOf.get(i.slot) ?? []).some((a) => a > Number(i.attempt))) &&
    gone(i);
  return instances
    .filter((i) => !launched.has(i.instanceId) && !supersededLaunch(i))
    .map(
      (i) =>
        `instance ${i.instanceId} (${i.pool}/${i.slot}, attempt ${i.attempt}, ${i.state}) is in EC2 but no cluster.instance-launched names it`,
    );
}

export interface SentCommand {
  readonly commandId: string;
  readonly instanceId: string;
  readonly comment: string;
  readonly status: string;
}

/** Every Run Command the sim has for these instances (SSM ListCommands, by instance). */
export async function ssmCommands(stack: Stack, instanceIds: readonly string[]): Promise<SentCommand[]> {
  const ssm = new SSMClient({ endpoint: stack.simUrl, region: REGION, credentials, maxAttempts: 5 });
  const out = new Map<string, SentCommand>();
  for (const instanceId of instanceIds) {
    let NextToken: string | undefined;
    do {
      const page = await ssm.send(
        new ListCommandsCommand({ InstanceId: instanceId, ...(NextToken ? { NextToken } : {}) }),
      );
      for (const c of page.Commands ?? [])
        if (c.CommandId)
          out.set(c.CommandId, {
            commandId: c.CommandId,
            instanceId,
            comment: c.Comment ?? "",
            status: c.Status ?? "?",
          });
      NextToken = page.NextToken;
    } while (NextToken);
  }
  ssm.destroy();
  return [...out.values()];
}

/**
 * `stepSendProblems` of clusters read as a whole world: SSM's commands first, then the log
 * (the installer sends a step only after reading its `install.step-requested` from the log,
 * so every command read has its cause in the log read after it). A command SSM took whose
 * `install.step-sent` is not recorded yet is a send in flight (a self-healing rung can start
 * at any moment, also while the checks read): the check looks again until `graceMs`, so a
 * send never recorded still fails, and one recorded a moment later does not.
 */
export async function settledStepSendProblems(
  stack: Stack,
  clusterIds: readonly string[],
  instanceIds: readonly string[],
  graceMs = 30_000,
): Promise<{ problems: string[]; commands: SentCommand[]; installEvents: Map<string, LoggedEvent[]> }> {
  const deadline = Date.now() + graceMs;
  for (;;) {
    const commands = await ssmCommands(stack, instanceIds);
    const installEvents = new Map<string, LoggedEvent[]>();
    for (const id of clusterIds) installEvents.set(id, await stack.events({ type: "install", id }));
    const problems = clusterIds.flatMap((id) => stepSendProblems(id, commands, installEvents.get(id) ?? []));
    if (problems.length === 0 || Date.now() >= deadline) return { problems, commands, installEvents };
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** `cairn <step> slot=<n> attempt=<a> cluster=<id>`: an install step's command (installer stepComment). */
const STEP_COMMENT = /^cairn (\S+) slot=(\d+) attempt=(\d+) cluster=(\S+)$/;

/**
 * No install step sent twice: every step command SSM has for the cluster's instances is the
 * one an `install.step-sent` recorded (or, Cancelled, one sent to a node the install then
 * removed: its record came too late to be taken), each (instance, slot, step, attempt) is sent once, and a
 * later attempt follows a recorded failure (`install.step-failed`, a timeout included) of the
 * one before, or is a recovery rung's (`install.remediation-requested` names that attempt: the
 * node's health check failed again after the last one). Health probes (`cairn k3s-check cluster=…`) are not steps and are left out.
 */
export function stepSendProblems(
  clusterId: string,
  sent: readonly SentCommand[],
  installEvents: readonly LoggedEvent[],
): string[] {
  const problems: string[] = [];
  const recorded = new Map<string, LoggedEvent>();
  for (const e of installEvents.filter((e) => e.type === "install.step-sent"))
    recorded.set(String(e.data.commandId), e);
  const failed = new Set(
    installEvents
      .filter((e) => e.type === "install.step-failed")
      .map((e) => `${e.data.instanceId}/${e.data.slot}/${e.data.step}/${e.data.attempt}`),
  );
  // A recovery rung sends its step again as a new attempt because the node's health check
  // failed again, not the step: `install.remediation-requested` (slot, action, attempt) records it.
  // (A rung's attempt counts its action on the ladder, a step's its sends on the node: a rejoin is
  // join attempt 2. So: each rung explains one send of its step on its slot.)
  // A node that went away between SSM taking its step's command and the record: the
  // record finds the step no longer requested and appends nothing, and the installer
  // cancels the command nobody will poll (reactor.ts, `cancelForgotten`). Not a send
  // twice: the node is removed, so no step of it is sent again.
  const removed = new Set(
    installEvents.filter((e) => e.type === "install.node-removed").map((e) => String(e.data.instanceId)),
  );
  const remedied = new Map<string, number>();
  for (const e of installEvents.filter((e) => e.type === "install.remediation-requested")) {
    const k = `${e.data.slot}/${e.data.action}`;
    remedied.set(k, (remedied.get(k) ?? 0) + 1);
  }
  const takeRung = (k: string) => {
    const n = remedied.get(k) ?? 0;
    if (n > 0) remedied.set(k, n - 1);
    return n > 0;
  };
  const rung = (step: string) =>
    step === "k3s-restart" ? "restart-k3s" : /-join$/.test(step) ? "rejoin" : "";
  const byAttempt = new Map<string, SentCommand[]>();
  for (const c of sent) {
    const m = STEP_COMMENT.exec(c.comment);
    if (!m || m[4] !== clusterId) continue;
    const [, step, slot, attempt] = m;
    const key = `${c.instanceId}/${slot}/${step}/${attempt}`;
    byAttempt.set(key, [...(byAttempt.get(key) ?? []), c]);
    if (!recorded.has(c.commandId) && !(c.status === "Cancelled" && removed.has(c.instanceId)))
      problems.push(
        `SSM command ${c.commandId} (${c.comment}, ${c.status}) was sent but no install.step-sent records it`,
      );
    // A restart is only ever a rung's: even its first send needs one.
    if (step === "k3s-restart" && Number(attempt) === 1 && !takeRung(`${slot}/restart-k3s`))
      problems.push(
        `k3s-restart on ${c.instanceId} (slot ${slot}) was sent with no install.remediation-requested`,
      );
    const rungKey = `${slot}/${rung(step!)}`;
    if (
      Number(attempt) > 1 &&
      !failed.has(`${c.instanceId}/${slot}/${step}/${Number(attempt) - 1}`) &&
      !takeRung(rungKey)
    )
      problems.push(
        `${step} on ${c.instanceId} (slot ${slot}) was sent as attempt ${attempt} with no recorded failure of attempt ${Number(attempt) - 1}`,
      );
  }
  for (const [key, cs] of byAttempt)
    if (cs.length > 1)
      problems.push(
        `step ${key} was sent ${cs.length} times: ${cs.map((c) => `${c.commandId} (${c.status})`).join(", ")}`,
      );
  const known = new Set(sent.map((c) => c.commandId));
  for (const [commandId, e] of recorded)
    if (!known.has(commandId))
      problems.push(`install.step-sent #${e.seq} names SSM command ${commandId}, which SSM does not have`);
  return problems;
}

/**
 * The projector's read model of the cluster equals the log folded up to its last commit
 * (`GET /clusters/:id` against `GET /clusters/:id?at=<sequence>`, which folds the log with the
 * projection's own reducer). Waits for the projector to catch up first.
 */
/** JSON with every object's keys sorted: objects are equal whatever order their keys came in (Postgres jsonb reorders them). */
export function canonical(v: unknown): string {
  const sort = (x: unknown): unknown =>
    Array.isArray(x)
      ? x.map(sort)
      : x && typeof x === "object"
        ? Object.fromEntries(
            Object.entries(x as Record<string, unknown>)
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, val]) => [k, sort(val)]),
          )
        : x;
  return JSON.stringify(sort(v));
}

export async function readModelProblems(
  stack: Stack,
  clusterId: string,
  timeoutMs = 15_000,
): Promise<string[]> {
  const events = await stack.events({ type: "cluster", id: clusterId });
  const last = events.at(-1);
  if (!last) return [`the log has no events of cluster ${clusterId}`];
  // The view's progress counts its install's steps too: fold to the later of the two logs' ends
  // (an install goes on after a cluster's last event, e.g. a server still joining when it failed).
  const installLast = (await stack.events({ type: "install", id: clusterId })).at(-1);
  const at = Math.max(last.seq, installLast?.seq ?? 0);
  const pick = (b: Record<string, unknown>) => {
    const progress = { ...(b.progress as Record<string, unknown>) };
    delete progress.eta;
    delete progress.etaSeconds;
    return {
      id: b.id,
      state: b.state,
      version: b.version,
      spec: b.spec,
      traceId: b.traceId,
      progress,
      // Folded from the cluster's events alone, like the state: the log's fold must agree.
      health: b.health,
      conditions: b.conditions,
      failure: b.failure,
    };
  };
  const deadline = Date.now() + timeoutMs;
  let live: Record<string, unknown> | undefined;
  let fromLog: Record<string, unknown> | undefined;
  while (Date.now() < deadline) {
    const [a, b] = await Promise.all([
      stack.get(`/clusters/${clusterId}`),
      stack.get(`/clusters/${clusterId}?at=${at}`),
    ]);
    live = a.status === 200 ? pick(a.body) : { status: a.status };
    fromLog = b.status === 200 ? pick(b.body) : { status: b.status };
    if (canonical(live) === canonical(fromLog)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const problems: string[] = [];
  if (canonical(live) !== canonical(fromLog))
    problems.push(
      `read model of ${clusterId} ≠ the log folded to #${at}:\n  read model: ${JSON.stringify(live)}\n  log:        ${JSON.stringify(fromLog)}`,
    );
  if (fromLog?.version !== events.length)
    problems.push(
      `the log has ${events.length} events of ${clusterId}, the fold says version ${fromLog?.version}`,
    );
  return problems;
}

/**
 * Every command answered: `GET /commands/:id` says accepted or rejected (a rejection with its
 * reason), and an accepted one has events in the log that name it.
 */
export async function unansweredCommands(
  stack: Stack,
  commands: readonly { commandId: string; type: string }[],
  logged: readonly LoggedEvent[],
  timeoutMs = 15_000,
): Promise<string[]> {
  const problems: string[] = [];
  for (const c of commands) {
    let body: Record<string, unknown> | undefined;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await stack.get(`/commands/${c.commandId}`);
      if (r.status === 200) {
        body = r.body;
        break;
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    const events = logged.filter((e) => e.meta.commandId === c.commandId);
    if (!body) problems.push(`${c.type} ${c.commandId}: GET /commands/:id never answered 200`);
    else if (body.status === "rejected" && !body.reason)
      problems.push(`${c.type} ${c.commandId}: rejected without a reason`);
    else if (body.status !== "accepted" && body.status !== "rejected")
      problems.push(`${c.type} ${c.commandId}: status ${JSON.stringify(body.status)}`);
    if (events.length === 0) problems.push(`${c.type} ${c.commandId}: no event in the log names it`);
  }
  return problems;
}

/** The trace id of a W3C traceparent. */
export const traceIdOf = (tp: string | undefined) => tp?.split("-")[1];

/**
 * Every event given is on `traceId` (its traceparent) or links to it (meta.links): the
 * lifecycle trace survived. Returns one line per event that is on neither.
 */
export function offTrace(events: readonly LoggedEvent[], traceId: string): string[] {
  return events
    .filter(
      (e) =>
        traceIdOf(e.meta.traceparent) !== traceId &&
        !(e.meta.links ?? []).some((l) => traceIdOf(l) === traceId),
    )
    .map(
      (e) =>
        `${e.aggregate.type} ${e.type} #${e.seq} is on trace ${traceIdOf(e.meta.traceparent) ?? "(none)"}${e.meta.links?.length ? ` linking ${e.meta.links.map(traceIdOf).join(",")}` : " with no links"}`,
    );
}

/** The longest wait between consecutive events in [from, to] (wall ms), with the events around it. */
export function longestGap(events: readonly LoggedEvent[], from: number, to: number) {
  const within = [...events].sort((a, b) => a.at - b.at || a.seq - b.seq);
  // The last event before `from` opens the window: a kill right after it counts.
  const start = within.findLastIndex((e) => e.at <= from);
  const window = within.slice(Math.max(0, start)).filter((e) => e.at <= to);
  let best = { ms: 0, after: "", before: "" };
  for (let i = 1; i < window.length; i++) {
    const ms = window[i]!.at - window[i - 1]!.at;
    if (ms > best.ms)
      best = {
        ms,
        after: `${window[i - 1]!.type} #${window[i - 1]!.seq}`,
        before: `${window[i]!.type} #${window[i]!.seq}`,
      };
  }
  return best;
}

/** One row of a run's table of checks (test/chaos): what was checked, and what was wrong. */
export interface CheckRow {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
  readonly problems: string[];
}

/**
 * Every cluster ends Ready, Deleted, or Failed with a remediation hint (`GET /clusters/:id`);
 * anything else (a cluster left Provisioning, Scaling, Deleting) is named with its last events.
 * A cluster still on its way (Recovering from a node a SIGKILL or a spot notice upset, a delete
 * under way) is given up to `settleMs` to get there: the invariant is where it ends.
 */
export async function clusterEndProblems(
  stack: Stack,
  clusterIds: readonly string[],
  settleMs = 120_000,
): Promise<string[]> {
  const ended = (r: { status: number; body: Record<string, unknown> }) =>
    r.status === 200 && ["Ready", "Deleted", "Failed"].includes(String(r.body.state));
  const deadline = Date.now() + settleMs;
  for (const id of clusterIds)
    while (
      Date.now() < deadline &&
      !ended(await stack.get(`/clusters/${id}`).catch(() => ({ status: 0, body: {} })))
    )
      await new Promise((r) => setTimeout(r, 500));
  const problems: string[] = [];
  for (const id of clusterIds) {
    const r = await stack.get(`/clusters/${id}`);
    const state = r.body.state;
    const failure = r.body.failure as { reason?: string; remediation?: string } | null | undefined;
    if (r.status !== 200) problems.push(`cluster ${id}: GET /clusters/${id} answered ${r.status}`);
    else if (state === "Ready" || state === "Deleted") continue;
    else if (state === "Failed") {
      if (!failure?.remediation)
        problems.push(`cluster ${id} is Failed without a remediation hint: ${JSON.stringify(failure)}`);
    } else {
      const events = await stack.events({ type: "cluster", id });
      // The slots and instances the last events name, and the install's side of them: what
      // it takes to tell a lost node from a late fact (docs/chaos.md, Known failures).
      const named = (e: { type: string; seq: number; data?: unknown }) => {
        const d = (e.data ?? {}) as { slot?: number; instanceId?: string; node?: string; count?: number };
        const what = [d.slot, d.instanceId ?? d.node, d.count].filter((x) => x !== undefined).join(" ");
        return `${e.type}${what ? ` (${what})` : ""} #${e.seq}`;
      };
      const install = await stack.events({ type: "install", id }).catch(() => []);
      problems.push(
        `cluster ${id} ended ${state}, not Ready, Deleted or Failed; its last events: ${events
          .slice(-8)
          .map(named)
          .join(", ")}; its install's last events: ${install.slice(-16).map(named).join(", ")}`,
      );
    }
  }
  return problems;
}

/**
 * Every session is in the state its history explains: the read model's state is the fold of
 * its events (`sessionStatusAfter`, the catalogue's transitions), the session exists in the
 * log, and its create was answered (a session whose create was rejected has no state).
 */
export async function sessionStateProblems(stack: Stack, sessionIds: readonly string[]): Promise<string[]> {
  const problems: string[] = [];
  for (const id of sessionIds) {
    const events = await stack.events({ type: "session", id });
    let folded: SessionStatus | undefined;
    for (const e of events) folded = sessionStatusAfter(folded, e);
    const deadline = Date.now() + 15_000;
    let state: unknown;
    for (;;) {
      const r = await stack.get(`/sessions/${id}`);
      state = r.status === 200 ? r.body.state : undefined;
      if (state === folded || Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    if (events.length === 0) problems.push(`session ${id}: no event in the log`);
    else if (state !== folded)
      problems.push(
        `session ${id}: the read model says ${state ?? "(none)"}, its history (${events.map((e) => e.type.replace("session.", "")).join(" → ")}) says ${folded ?? "(none)"}`,
      );
  }
  return problems;
}

/**
 * The dead-letter stream holds only what was deliberately sent bad, and each of those once
 * (matched on the subject it came from and its body).
 */
export function deadLetterProblems(
  dead: readonly DeadLetter[],
  deliberate: readonly { subject: string; data: string }[],
): string[] {
  const problems: string[] = [];
  const left = [...deliberate];
  for (const d of dead) {
    const i = left.findIndex((x) => x.subject === d.fromSubject && x.data === d.data);
    if (i >= 0) left.splice(i, 1);
    else
      problems.push(
        `dead letter #${d.seq} from ${d.fromStream}/${d.fromSubject}#${d.fromSequence} (${d.consumer}) was not sent bad: ${d.reason}; ${d.data.slice(0, 200)}`,
      );
  }
  for (const x of left)
    problems.push(`the bad message on ${x.subject} is not in the dead-letter stream: ${x.data}`);
  return problems;
}

/**
 * The projector's read models equal a fresh replay of the whole log: `replay({ checkOnly })`
 * rebuilds every table in a schema of its own and compares row counts and content hashes
 * (docs/projector.md, Replay step 4) at the live checkpoint.
 */
export async function replayProblems(stack: Stack, timeoutMs = 60_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const result = await replay({ databaseUrl: stack.databaseUrl, nats: stack.nats, checkOnly: true }).catch(
      (err: Error) => ({ comparison: { compared: false as const, reason: err.message } }),
    );
    const c = result.comparison;
    if (c?.compared && c.equal) return [];
    if (c?.compared)
      return c.tables
        .filter((t) => !t.equal)
        .map(
          (t) =>
            `table ${t.table}: live ${t.live.rows} rows (${t.live.hash}) ≠ replay ${t.rebuilt.rows} rows (${t.rebuilt.hash}) at #${c.at}`,
        );
    // Not compared (live behind the rebuild, a replay under way): ask again.
    last = c?.reason ?? "no comparison";
    await new Promise((r) => setTimeout(r, 1_000));
  }
  return [`the replay never compared with live: ${last}`];
}

/** Every event of one lifecycle is on its trace (`traceId`, its first command's) or links to it. */
export function lifecycleTraceProblems(
  what: string,
  events: readonly LoggedEvent[],
  traceId: string | undefined,
): string[] {
  if (!traceId) return events.length ? [`${what}: its first command answered no trace id`] : [];
  return offTrace(events, traceId).map((line) => `${what}: ${line}`);
}
