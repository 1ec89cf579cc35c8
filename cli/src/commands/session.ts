import { setTimeout as sleep } from "node:timers/promises";
import { SESSION_STATES, type SessionStatus, tokenSafeId } from "@cairn/events";
import { Command } from "commander";
import { type ApiClient, ApiError, isApiError } from "../api-client.ts";
import { commandStatus, NO_OP_GRACE_MS } from "../command-status.ts";
import { type Context, contextOf } from "../context.ts";
import { parseDuration } from "../durations.ts";
import { InvalidInputError, notFoundAs, OutcomeError } from "../errors.ts";
import { formatList, formatOne, formatValue, type OutputFormat, outputOption, showEach } from "../output.ts";
import { progress } from "../progress.ts";
import { type CreateFlags as CreateDataFlags, createData } from "../session/create-data.ts";
import { rejectionHint, sessionVerdict } from "../session/outcome.ts";
import {
  type CommandAccepted,
  type CommandView,
  SESSION_COLUMNS,
  type SessionView,
} from "../session/view.ts";
import { renderTable } from "../table.ts";
import { parseInput } from "../validate.ts";
import { waitFor } from "../wait.ts";
import { examples } from "./help.ts";

const DEFAULT_WAIT = "5m";
/** How long a created session may take to show in the read model before it is "not found". */
const CREATE_GRACE_MS = 10_000;

const path = (id: string, rest = "") => `/sessions/${encodeURIComponent(id)}${rest}`;
const out = (text: string): void => void process.stdout.write(text);

/** A session id as typed, checked as the catalogue checks it. */
const sessionId = (id: string) =>
  parseInput(tokenSafeId, id, "session id", { names: { "": `session id ${JSON.stringify(id)}` } });

interface WaitFlags {
  readonly wait?: boolean;
  readonly timeout: string;
  readonly output?: OutputFormat;
}

const waitOptions = (cmd: Command, what: string) =>
  cmd
    .option("-w, --wait", `wait until the session is ${what} (exit 1 if refused or it fails)`)
    .option("--timeout <duration>", "with --wait: give up after this long (90s, 5m, 1h)", DEFAULT_WAIT)
    .addOption(outputOption(null));

/**
 * Follows session `id` until it is `goal`, its command (`commandId`) refused, or it fails.
 * @throws OutcomeError, WaitTimeoutError, NotFoundError
 */
export async function waitForSession(
  api: ApiClient,
  id: string,
  goal: SessionStatus,
  o: { commandId?: string | undefined; timeoutMs: number; quiet?: boolean; creating?: boolean },
): Promise<SessionView> {
  let command: CommandView | undefined;
  const started = Date.now();
  return waitFor({
    api,
    subject: `session/${id}`,
    goal,
    changes: { resource: "sessions", id },
    timeoutMs: o.timeoutMs,
    progress: progress(`session/${id}`, { silent: o.quiet }),
    check: async () => {
      const [view, cmd] = await Promise.all([
        api.get<SessionView>(path(id)).catch((err: unknown) => {
          // A create the API answered Pending may not be projected yet: give it a moment.
          if (o.creating && isApiError(err, 404) && Date.now() - started < CREATE_GRACE_MS) return undefined;
          return notFoundAs("session", id)(err);
        }),
        command || o.commandId === undefined ? command : commandStatus(api, o.commandId),
      ]);
      command = cmd;
      if (!view)
        return {
          kind: "waiting",
          state: "Pending",
          hint: "admission has not answered: is the idle-detector running?",
        };
      return sessionVerdict(goal, view, command, o.commandId, {
        unanswered: Date.now() - started > NO_OP_GRACE_MS,
      });
    },
  });
}

/** Prints a session after an action: the line people read, or the view as `-o` asks. */
function report(
  view: SessionView | undefined,
  line: string,
  format: OutputFormat | undefined,
  answer: unknown,
): void {
  if (!format) out(`${line}\n`);
  else if (view) out(formatOne(view, format, SESSION_COLUMNS));
  else out(formatValue(answer, format === "table" || format === "wide" ? "yaml" : format));
}

// ── create ───────────────────────────────────────────────────────────────────────────

/**
 * `POST /sessions` with checked create data: the API's answer (202, Pending).
 * @throws OutcomeError when the API refuses it (over quota, invalid, no such cluster), with a hint
 */
export async function postSession(
  api: ApiClient,
  data: { readonly sessionId: string },
): Promise<CommandAccepted & { sessionId: string; state: SessionStatus }> {
  try {
    return await api.post("/sessions", data);
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401 && err.status !== 429 && err.status < 500) {
      const b = err.body as { message?: string; issues?: string[] } | undefined;
      throw new OutcomeError(
        `session/${data.sessionId}: refused: ${b?.message ?? err.message}${b?.issues ? `\n  ${b.issues.join("\n  ")}` : ""}`,
        { hint: rejectionHint(err.code, data.sessionId, "session.create") },
      );
    }
    throw err;
  }
}

interface CreateFlags extends WaitFlags, CreateDataFlags {}

async function create(id: string | undefined, o: CreateFlags, cmd: Command) {
  if (id !== undefined) sessionId(id);
  const { config, api } = contextOf(cmd);
  const data = await createData(id, o, config.token !== undefined);
  const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
  const answer = await postSession(api, data);
  if (!o.wait)
    return report(undefined, `session/${answer.sessionId} created (${answer.state})`, o.output, answer);
  const view = await waitForSession(api, answer.sessionId, "Running", {
    commandId: answer.commandId,
    timeoutMs,
    quiet: o.output === "json" || o.output === "yaml",
    creating: true,
  });
  report(view, `session/${view.id} Running${view.node ? ` on ${view.node}` : ""}`, o.output, view);
}

// ── list, get, history ───────────────────────────────────────────────────────────────

/** A state as typed (`running`), as the API spells it (`Running`). */
function sessionState(text: string): SessionStatus {
  const state = SESSION_STATES.find((s) => s.toLowerCase() === text.toLowerCase());
  if (!state)
    throw new InvalidInputError(`invalid --state ${JSON.stringify(text)} (nothing was sent)`, [
      `one of ${SESSION_STATES.join(", ")}`,
    ]);
  return state;
}

async function list(
  o: { user?: string; cluster?: string; state?: string; limit?: string; output: OutputFormat },
  cmd: Command,
) {
  const query: Record<string, string> = {};
  if (o.user !== undefined) query.user = parseInput(tokenSafeId, o.user, "--user");
  if (o.cluster !== undefined) query.clusterId = parseInput(tokenSafeId, o.cluster, "--cluster");
  if (o.state !== undefined) query.state = sessionState(o.state);
  const max = o.limit === undefined ? Number.POSITIVE_INFINITY : Number(o.limit);
  if (!(max > 0) || (Number.isFinite(max) && !Number.isInteger(max)))
    throw new InvalidInputError(`invalid --limit ${JSON.stringify(o.limit)}: a whole number above 0`);
  const { api } = contextOf(cmd);
  const items: SessionView[] = [];
  let cursor: string | undefined;
  do {
    const q = new URLSearchParams({
      ...query,
      limit: String(Math.min(500, max - items.length)),
      ...(cursor ? { cursor } : {}),
    });
    const page = await api.get<{ items: SessionView[]; nextCursor?: string }>(`/sessions?${q}`);
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  if (items.length === 0 && (o.output === "table" || o.output === "wide"))
    return void process.stderr.write("No sessions found.\n");
  out(formatList(items, o.output, SESSION_COLUMNS));
}

async function get(ids: string[], o: { at?: string; output: OutputFormat }, cmd: Command) {
  for (const id of ids) sessionId(id);
  const { api } = contextOf(cmd);
  const at = o.at ? `?at=${encodeURIComponent(o.at)}` : "";
  await showEach(ids, (id) => api.get<SessionView>(path(id, at)).catch(notFoundAs("session", id)), {
    kind: "session",
    kinds: "sessions",
    format: o.output,
    columns: SESSION_COLUMNS,
  });
}

interface HistoryItem {
  readonly version: number;
  readonly time: string;
  readonly type: string;
  readonly actor: string;
  readonly traceId: string | null;
}

async function history(id: string, o: { output: OutputFormat }, cmd: Command) {
  sessionId(id);
  const { api } = contextOf(cmd);
  const items: HistoryItem[] = [];
  let cursor: string | undefined;
  do {
    const q = new URLSearchParams({ limit: "500", ...(cursor ? { cursor } : {}) });
    const page = await api
      .get<{ items: HistoryItem[]; nextCursor?: string }>(path(id, `/history?${q}`))
      .catch(notFoundAs("session", id));
    items.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  if (o.output === "json" || o.output === "yaml") return out(formatValue(items, o.output));
  out(
    renderTable(
      ["VERSION", "TIME", "EVENT", "ACTOR", ...(o.output === "wide" ? ["TRACE"] : [])],
      items.map((e) => [
        String(e.version),
        e.time,
        e.type,
        e.actor,
        ...(o.output === "wide" ? [e.traceId ?? "<none>"] : []),
      ]),
    ),
  );
}

// ── actions ──────────────────────────────────────────────────────────────────────────

/** hibernate, wake, connect, terminate: send, then follow to `goal` with --wait. */
function action(
  verb: string,
  goal: SessionStatus,
  send: (api: ApiClient, id: string) => Promise<CommandAccepted>,
) {
  return async (id: string, o: WaitFlags, cmd: Command) => {
    sessionId(id);
    const timeoutMs = parseDuration(o.timeout, "--timeout") * 1000;
    const { api }: Context = contextOf(cmd);
    let answer: CommandAccepted;
    try {
      answer = await send(api, id).catch(notFoundAs("session", id));
    } catch (err) {
      if (err instanceof ApiError && err.status === 409)
        throw new OutcomeError(
          `session/${id}: refused: ${(err.body as { message?: string })?.message ?? err.message}`,
          {
            hint: rejectionHint("conflict", id),
          },
        );
      throw err;
    }
    if (!o.wait)
      return report(
        undefined,
        `session/${id} ${verb} requested (command ${answer.commandId})`,
        o.output,
        answer,
      );
    const view = await waitForSession(api, id, goal, {
      commandId: answer.commandId,
      timeoutMs,
      quiet: o.output === "json" || o.output === "yaml",
    });
    const woke =
      goal === "Running" && view.wakeLatencyMs !== null ? ` (woke in ${view.wakeLatencyMs}ms)` : "";
    report(view, `session/${id} ${goal}${woke}`, o.output, view);
  };
}

async function heartbeat(
  id: string,
  o: { connections: string; every?: string; count?: string },
  cmd: Command,
) {
  sessionId(id);
  const connections = Number(o.connections);
  if (!Number.isInteger(connections) || connections < 0)
    throw new InvalidInputError(`invalid --connections ${JSON.stringify(o.connections)} (nothing was sent)`, [
      "a whole number, 0 or more (0 is not activity)",
    ]);
  const everyMs = o.every ? parseDuration(o.every, "--every") * 1000 : undefined;
  const count = o.count !== undefined ? Number(o.count) : everyMs ? Number.POSITIVE_INFINITY : 1;
  if (!(count >= 1)) throw new InvalidInputError(`invalid --count ${JSON.stringify(o.count)}: 1 or more`);
  const { api } = contextOf(cmd);
  for (let sent = 0; sent < count; sent++) {
    if (sent > 0 && everyMs) await sleep(everyMs);
    const a = await api
      .post<{ activity: boolean }>(path(id, "/heartbeat"), { connections })
      .catch(notFoundAs("session", id));
    out(
      `session/${id} heartbeat: ${connections} connection(s)${a.activity ? "" : " (not activity: it does not keep the session awake)"}\n`,
    );
  }
}

// ── the command group ────────────────────────────────────────────────────────────────

export function sessionCommand(): Command {
  const session = new Command("session")
    .alias("sessions")
    .description("interactive user sessions on a cluster: create, list, hibernate, wake, terminate")
    .addHelpText(
      "after",
      examples([
        "cairn session create --cluster demo-1 --image ghcr.io/acme/ide:1 --wait",
        "cairn session list",
        "cairn session get alice-x7k2p -o yaml",
        "cairn session connect alice-x7k2p --wait",
      ]),
    );

  waitOptions(
    session
      .command("create")
      .description(
        "create a session (session.create): admitted against the quota, then started on the cluster",
      )
      .argument("[id]", "the session's id (default: generated from the user)")
      .option("--cluster <id>", "the cluster it runs on (Ready)")
      .option("--image <image>", "the container image of the session")
      .option("--cpu <quantity>", "CPU, a Kubernetes quantity (500m, 2); default 1")
      .option("--memory <quantity>", "memory (512Mi, 4Gi); default 2Gi")
      .option("--storage <quantity>", "its volume's size (10Gi); default 10Gi")
      .option("--user <name>", "whose session it is (default: the token's holder, else $USER)")
      .option("--idle-timeout <duration>", "hibernate after this long without activity (30m)")
      .option("--max-lifetime <duration>", "end it after this long whatever its activity (8h)")
      .option("-f, --file <path>", "the session.create data as YAML or JSON (flags override it)"),
    "Running",
  )
    .addHelpText(
      "after",
      examples([
        "cairn session create --cluster demo-1 --image ghcr.io/acme/ide:1",
        "cairn session create alice-1 --cluster demo-1 --image ghcr.io/acme/ide:1 --cpu 500m --memory 1Gi --wait",
        "cairn session create -f session.yaml --idle-timeout 30m --wait --timeout 10m",
      ]),
    )
    .action(create);

  session
    .command("list")
    .alias("ls")
    .description("list sessions (a viewer token sees its own only)")
    .option("--user <name>", "only this user's")
    .option("--cluster <id>", "only on this cluster")
    .option("--state <state>", `only in this state (${SESSION_STATES.join(", ")})`)
    .option("--limit <n>", "at most this many")
    .addOption(outputOption())
    .addHelpText(
      "after",
      examples([
        "cairn session list",
        "cairn session list --cluster demo-1 --state running -o wide",
        "cairn session list --user alice -o json",
      ]),
    )
    .action(list);

  session
    .command("get")
    .description("show sessions: state, user, cluster, last activity (-o yaml: everything)")
    .argument("<id...>", "session ids")
    .option("--at <sequence|time>", "as it was then: an event sequence or an ISO time")
    .addOption(outputOption())
    .addHelpText(
      "after",
      examples([
        "cairn session get alice-1",
        "cairn session get alice-1 -o yaml",
        "cairn session get alice-1 --at 2025-01-31T12:00:00Z",
      ]),
    )
    .action(get);

  session
    .command("history")
    .description("every event of a session, oldest first: time, event, actor (-o wide: trace)")
    .argument("<id>", "session id")
    .addOption(outputOption())
    .addHelpText(
      "after",
      examples(["cairn session history alice-1", "cairn session history alice-1 -o json"]),
    )
    .action(history);

  const actions: [
    string,
    string,
    SessionStatus,
    string,
    (api: ApiClient, id: string) => Promise<CommandAccepted>,
  ][] = [
    [
      "hibernate",
      "hibernate a Running session (session.hibernate): its pod stops, its volume stays",
      "Hibernated",
      "hibernate",
      (api, id) => api.post(path(id, "/hibernate"), {}),
    ],
    [
      "wake",
      "wake a Hibernated session (session.wake)",
      "Running",
      "wake",
      (api, id) => api.post(path(id, "/wake"), {}),
    ],
    [
      "connect",
      "connect to a session (session.connect): wakes it when Hibernated, its wake latency recorded",
      "Running",
      "connect",
      (api, id) => api.post(path(id, "/connect"), {}),
    ],
    [
      "terminate",
      "end a session for good (session.terminate): its pod and volume are released",
      "Terminated",
      "terminate",
      (api, id) => api.delete(path(id)),
    ],
  ];
  for (const [name, description, goal, verb, send] of actions) {
    const sub = waitOptions(
      session.command(name).description(description).argument("<id>", "session id"),
      goal,
    )
      .addHelpText(
        "after",
        examples([`cairn session ${name} alice-1`, `cairn session ${name} alice-1 --wait --timeout 2m`]),
      )
      .action(action(verb, goal, send));
    if (name === "terminate") sub.alias("delete");
  }

  session
    .command("heartbeat")
    .description("report activity on a session (never an event: it keeps a Running session from idling)")
    .argument("<id>", "session id")
    .option("--connections <n>", "connections open to it now (0 is not activity)", "1")
    .option("--every <duration>", "keep sending, this far apart, until Ctrl-C (or --count)")
    .option("--count <n>", "send this many")
    .addHelpText(
      "after",
      examples([
        "cairn session heartbeat alice-1",
        "cairn session heartbeat alice-1 --connections 2 --every 30s",
      ]),
    )
    .action(heartbeat);

  return session;
}
