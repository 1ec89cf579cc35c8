/**
 * `cairn events tail`: the event log itself, as it is written — every commit on the `EVT`
 * stream, read from NATS (an ordered consumer: nothing is acknowledged, nothing changes),
 * one line per event. `cairn trace <id>`: one trace's events across aggregates, from the
 * API's event index.
 */
import { AGGREGATE_TYPES, eventSubject, natsServers, Streams } from "@cairn/events";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Command } from "commander";
import { z } from "zod";
import { contextOf } from "../context.ts";
import { parseDuration } from "../durations.ts";
import { InvalidInputError, notFoundAs } from "../errors.ts";
import { natsUrl } from "../nats-url.ts";
import { formatValue, type OutputFormat, outputOption } from "../output.ts";
import { renderTable } from "../table.ts";
import { examples } from "./help.ts";

/** What a line needs of a commit; anything else in it is passed through with -o json. */
const commitShape = z.object({
  events: z.array(
    z
      .object({
        type: z.string(),
        time: z.string(),
        aggregate: z.object({ type: z.string(), id: z.string() }),
        position: z.number(),
        meta: z.object({ actor: z.string().optional(), traceparent: z.string().optional() }).loose(),
      })
      .loose(),
  ),
});
type LoggedEvent = z.infer<typeof commitShape>["events"][number];

/** The trace id in a W3C traceparent. @example traceIdOf("00-4bf9…4736-00f0…02b7-01") // "4bf9…4736" */
const traceOf = (traceparent: string | undefined) => traceparent?.split("-")[1] ?? "-";

/**
 * The subject `--aggregate` names: `cluster` (all clusters) or `cluster/demo-1`.
 * @example aggregateSubject("session/s-1") // "evt.session.s-1"
 */
export function aggregateSubject(text: string | undefined): string {
  if (!text) return `evt.>`;
  const [type, id] = text.split("/", 2);
  if (!type || !(AGGREGATE_TYPES as readonly string[]).includes(type))
    throw new InvalidInputError(`invalid --aggregate ${JSON.stringify(text)}`, [
      `give a type (${AGGREGATE_TYPES.join(", ")}), or type/id such as cluster/demo-1`,
    ]);
  return id ? eventSubject({ type, id }) : `evt.${type}.>`;
}

/**
 * Whether an event's type is one `--type` asks for: exact, or a prefix ending in `*`.
 * @example typeMatches(["session.*"], "session.running") // true
 */
export const typeMatches = (wanted: readonly string[], type: string) =>
  wanted.length === 0 || wanted.some((w) => (w.endsWith("*") ? type.startsWith(w.slice(0, -1)) : w === type));

function line(e: LoggedEvent): string {
  const who = `${e.aggregate.type}/${e.aggregate.id}`;
  return `${e.time}  ${who.padEnd(28)}  ${e.type.padEnd(30)}  ${(e.meta.actor ?? "-").padEnd(14)}  ${traceOf(e.meta.traceparent)}\n`;
}

interface TailFlags {
  readonly aggregate?: string;
  readonly type: string[];
  readonly since?: string;
  readonly count?: string;
  readonly natsUrl?: string;
  readonly output?: OutputFormat;
}

async function tail(o: TailFlags) {
  const subject = aggregateSubject(o.aggregate);
  const sinceMs = o.since ? parseDuration(o.since, "--since") * 1000 : undefined;
  const count = o.count !== undefined ? Number(o.count) : Number.POSITIVE_INFINITY;
  if (!(count >= 1)) throw new InvalidInputError(`invalid --count ${JSON.stringify(o.count)}: 1 or more`);
  const url = o.natsUrl ?? natsUrl();
  const { servers, user, pass } = natsServers(url);
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await connect({
      servers,
      ...(user ? { user } : {}),
      ...(pass ? { pass } : {}),
      name: "cairn-cli-tail",
      timeout: 5_000,
    });
  } catch (err) {
    throw new InvalidInputError(`cannot reach NATS at ${url}: ${(err as Error).message}`, [], {
      hint: "give it with --nats-url or NATS_URL (`npm start` writes it to .cairn/endpoints.json)",
    });
  }
  const stop = () => void nc.close();
  process.once("SIGINT", stop);
  try {
    const consumer = await jetstream(nc).consumers.get(Streams.events, {
      filter_subjects: subject,
      ...(sinceMs !== undefined
        ? {
            deliver_policy: DeliverPolicy.StartTime,
            opt_start_time: new Date(Date.now() - sinceMs).toISOString(),
          }
        : { deliver_policy: DeliverPolicy.New }),
    });
    const messages = await consumer.consume();
    if (!o.output) process.stderr.write(`following ${subject} on ${url} (Ctrl-C to stop)\n`);
    let shown = 0;
    for await (const m of messages) {
      let commit: z.infer<typeof commitShape>;
      try {
        commit = commitShape.parse(JSON.parse(new TextDecoder().decode(m.data)));
      } catch {
        process.stderr.write(`(sequence ${m.seq} on ${m.subject} is not a commit: skipped)\n`);
        continue;
      }
      for (const e of commit.events) {
        if (!typeMatches(o.type, e.type)) continue;
        process.stdout.write(
          o.output === "json"
            ? `${JSON.stringify(e)}\n`
            : o.output === "yaml"
              ? `---\n${formatValue(e, "yaml")}`
              : line(e),
        );
        if (++shown >= count) return;
      }
    }
  } finally {
    process.off("SIGINT", stop);
    await nc.close();
  }
}

interface TraceItem {
  readonly time: string;
  readonly type: string;
  readonly aggregate: { readonly type: string; readonly id: string };
  readonly actor: string;
  readonly commandId: string | null;
}

export function eventsCommand(): Command {
  const events = new Command("events").description("the event log: follow it as it is written");
  events
    .command("tail")
    .description("print events as they are appended to the log (from NATS), one line each")
    .option("--aggregate <type[/id]>", "only this aggregate type, or one aggregate (cluster/demo-1)")
    .option(
      "--type <type>",
      "only this event type; `session.*` for a prefix (repeat for more)",
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option("--since <duration>", "start this long ago instead of now (10m, 2h)")
    .option("--count <n>", "stop after this many events")
    .option("--nats-url <url>", "NATS (default: NATS_URL, else the local run's)")
    .addOption(outputOption(null).choices(["json", "yaml"]))
    .addHelpText(
      "after",
      examples([
        "cairn events tail",
        "cairn events tail --aggregate cluster/demo-1 --since 1h",
        "cairn events tail --type 'session.*' -o json",
      ]),
    )
    .action(tail);
  return events;
}

export function traceCommand(): Command {
  return new Command("trace")
    .description("one trace's events across every aggregate, in order (and its Jaeger link)")
    .argument("<traceId>", "a W3C trace id: 32 hex digits (the API returns it with every command)")
    .addOption(outputOption())
    .addHelpText(
      "after",
      examples([
        "cairn trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "cairn trace 4bf92f3577b34da6a3ce929d0e0e4736 -o json",
      ]),
    )
    .action(async (traceId: string, o: { output: OutputFormat }, cmd: Command) => {
      if (!/^[0-9a-f]{32}$/.test(traceId))
        throw new InvalidInputError(`invalid trace id ${JSON.stringify(traceId)} (nothing was sent)`, [
          "a W3C trace id is 32 lower-case hex digits",
        ]);
      const { api } = contextOf(cmd);
      const items: TraceItem[] = [];
      let jaegerUrl: string | undefined;
      let cursor: string | undefined;
      do {
        const q = new URLSearchParams({ limit: "500", ...(cursor ? { cursor } : {}) });
        const page = await api
          .get<{ items: TraceItem[]; nextCursor?: string; jaegerUrl?: string }>(`/traces/${traceId}?${q}`)
          .catch(notFoundAs("trace", traceId));
        items.push(...page.items);
        jaegerUrl ??= page.jaegerUrl;
        cursor = page.nextCursor;
      } while (cursor);
      if (o.output === "json" || o.output === "yaml")
        return void process.stdout.write(
          formatValue({ traceId, ...(jaegerUrl ? { jaegerUrl } : {}), items }, o.output),
        );
      if (items.length === 0) return void process.stderr.write(`No events in trace ${traceId}.\n`);
      if (jaegerUrl) process.stderr.write(`Jaeger: ${jaegerUrl}\n`);
      process.stdout.write(
        renderTable(
          ["TIME", "AGGREGATE", "EVENT", "ACTOR"],
          items.map((e) => [e.time, `${e.aggregate.type}/${e.aggregate.id}`, e.type, e.actor]),
        ),
      );
    });
}
