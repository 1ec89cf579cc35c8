/**
 * The simulated SQS: the AWS JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.<Action>`,
 * `application/x-amz-json-1.0`) that `@aws-sdk/client-sqs` speaks, for the actions
 * Cairn calls: GetQueueUrl, CreateQueue, SendMessage, ReceiveMessage (long polling),
 * DeleteMessage, DeleteMessageBatch. Standard queues only. It is also where the sim's
 * EventBridge puts the EC2 Spot Instance Interruption Warning (see `SqsSimPort`).
 * See docs/sim-sqs.md.
 */
import type { ServerResponse } from "node:http";
import { SimRandom } from "../random.ts";
import type { SimCall, SimContext, SimModule, SqsPort } from "../world.ts";
import {
  MAX_VISIBILITY_TIMEOUT,
  type Queue,
  type QueueAttributes,
  SqsWorld,
  type StoredMessage,
} from "./queues.ts";

export const SQS_CONTENT_TYPE = "application/x-amz-json-1.0";
const ACCOUNT_ID = "123456789012";
/** The queue the sim's EventBridge rule sends spot interruption warnings to, in each region. */
export const SPOT_INTERRUPTION_QUEUE = "cairn-spot-interruptions";
/** SQS's own limit on `WaitTimeSeconds` (sim seconds). */
const MAX_WAIT_SECONDS = 20;
/**
 * The longest a long poll holds its connection in wall time, whatever the time scale:
 * at time scale 1 a 20 s poll would otherwise keep a test's client (and the sim's stop)
 * waiting. SQS itself may answer a long poll early; clients poll again.
 */
const MAX_WAIT_REAL_MS = 5_000;
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$/;

/** An SQS error: `__type` as the JSON protocol names it, plus the query-compatible code header. */
export class SqsError extends Error {
  readonly code: string;
  readonly queryCode: string;
  readonly status: number;
  constructor(code: string, message: string, o: { queryCode?: string; status?: number } = {}) {
    super(message);
    this.name = "SqsError";
    this.code = code;
    this.queryCode = o.queryCode ?? code;
    this.status = o.status ?? 400;
  }
}

const nonExistentQueue = () =>
  new SqsError("QueueDoesNotExist", "The specified queue does not exist.", {
    queryCode: "AWS.SimpleQueueService.NonExistentQueue",
  });
const invalidParameter = (name: string, value: unknown, reason: string) =>
  new SqsError(
    "InvalidParameterValue",
    `Value ${String(value)} for parameter ${name} is invalid. Reason: ${reason}.`,
  );
const missingParameter = (name: string) =>
  new SqsError("MissingParameter", `The request must contain the parameter ${name}.`);
const invalidHandle = (h: string) =>
  new SqsError("ReceiptHandleIsInvalid", `The input receipt handle "${h}" is not a valid receipt handle.`);

type Input = Record<string, unknown>;

export function createSqs(ctx: SimContext): SimModule<SqsPort> {
  const world = new SqsWorld();
  // Message ids and receipt handles come from a PRNG of their own, so how often a client
  // polls never shifts the ids the seed gives the rest of the world; request ids from
  // another, so that reads (which the journal does not replay) never shift message ids.
  const ids = new SimRandom(0x535153);
  const requestIds = new SimRandom(0x5351);
  const now = () => ctx.clock.now();

  const urlOf = (q: Queue) => `${ctx.baseUrl()}/${ACCOUNT_ID}/${q.name}`;
  /**
   * A queue of the region. The spot interruption queue exists in every region from the
   * start, as if the EventBridge rule and its target queue were deployed with Cairn.
   */
  const lookup = (region: string, name: string): Queue | undefined =>
    world.queue(region, name) ??
    (name === SPOT_INTERRUPTION_QUEUE ? world.create(region, name, {}, now()).queue : undefined);
  /** The queue a QueueUrl names, in the region the request was signed for. */
  const queueOf = (region: string, input: Input): Queue => {
    const url = str(input, "QueueUrl");
    if (url === undefined) throw missingParameter("QueueUrl");
    const name = url.replace(/\/+$/, "").split("/").at(-1) ?? "";
    const q = lookup(region, name);
    if (!q) throw nonExistentQueue();
    return q;
  };

  const port: SqsPort = {
    deliver(region, queueName, body) {
      const { queue } = world.create(region, queueName, {}, now());
      const m = world.send(queue, ids.uuid(), body, now());
      return { messageId: m.id };
    },
    messages: (region, queueName) => world.queue(region, queueName)?.messages.map((m) => m.body) ?? [],
  };

  const receiptHandle = (m: StoredMessage) =>
    Buffer.from(`${m.id}#${m.receiveCount}#${ids.hex(16)}`).toString("base64url");

  /** Resolves when a message is sent to `q`, or after `ms` wall milliseconds. */
  const waitForSend = (q: Queue, ms: number) =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = world.onSend((region, name) => {
        if (region === q.region && name === q.name) done();
      });
    });

  const actions: Record<
    string,
    (input: Input, region: string, journal: () => void) => Promise<unknown> | unknown
  > = {
    GetQueueUrl(input, region) {
      const name = str(input, "QueueName");
      if (name === undefined) throw missingParameter("QueueName");
      const q = lookup(region, name);
      if (!q) throw nonExistentQueue();
      return { QueueUrl: urlOf(q) };
    },
    CreateQueue(input, region) {
      const name = str(input, "QueueName");
      if (name === undefined) throw missingParameter("QueueName");
      if (name.endsWith(".fifo")) throw invalidParameter("QueueName", name, "FIFO queues are not simulated");
      if (!QUEUE_NAME.test(name))
        throw new SqsError(
          "InvalidParameterValue",
          "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length",
        );
      const attributes = queueAttributes(input.Attributes);
      const { queue, mismatch } = world.create(region, name, attributes, now());
      if (mismatch)
        throw new SqsError(
          "QueueNameExists",
          `A queue already exists with the same name and a different value for attribute ${mismatch}`,
          { queryCode: "QueueAlreadyExists" },
        );
      return { QueueUrl: urlOf(queue) };
    },
    SendMessage(input, region) {
      const q = queueOf(region, input);
      const body = str(input, "MessageBody");
      if (body === undefined || body === "") throw missingParameter("MessageBody");
      const m = world.send(q, ids.uuid(), body, now());
      return { MessageId: m.id, MD5OfMessageBody: m.md5 };
    },
    async ReceiveMessage(input, region, journal) {
      const q = queueOf(region, input);
      const max = int(input, "MaxNumberOfMessages", 1, 1, 10, "Must be between 1 and 10, if provided");
      const wait = int(
        input,
        "WaitTimeSeconds",
        q.attributes.ReceiveMessageWaitTimeSeconds,
        0,
        MAX_WAIT_SECONDS,
        `Must be >= 0 and <= ${MAX_WAIT_SECONDS}, if provided`,
      );
      const visibility = int(
        input,
        "VisibilityTimeout",
        q.attributes.VisibilityTimeout,
        0,
        MAX_VISIBILITY_TIMEOUT,
        `Must be >= 0 and <= ${MAX_VISIBILITY_TIMEOUT}, if provided`,
      );
      const wanted = attributeNames(input);
      // Long polling: answer as soon as something is visible, else at the wait's end.
      const endReal = Date.now() + Math.min(MAX_WAIT_REAL_MS, ctx.clock.realMs(wait * 1000));
      while (!world.hasVisible(q, now()) && Date.now() < endReal) {
        // Also wakes when a hidden message's visibility timeout runs out meanwhile.
        await waitForSend(q, Math.min(endReal - Date.now(), 50));
      }
      // Journaled now, when it takes messages, not when it arrived (journal.ts): a replay
      // at this moment, without waiting, takes the same ones. Taking none changes nothing.
      if (world.hasVisible(q, now())) journal();
      const got = world.receive(q, max, visibility, now(), receiptHandle);
      if (got.length === 0) return {};
      return {
        Messages: got.map(({ message: m, receiptHandle: h }) => ({
          MessageId: m.id,
          ReceiptHandle: h,
          MD5OfBody: m.md5,
          Body: m.body,
          ...(wanted.size > 0 ? { Attributes: systemAttributes(m, wanted) } : {}),
        })),
      };
    },
    DeleteMessage(input, region) {
      const q = queueOf(region, input);
      const h = str(input, "ReceiptHandle");
      if (h === undefined) throw missingParameter("ReceiptHandle");
      if (world.delete(q, h) === "invalid") throw invalidHandle(h);
      return {};
    },
    DeleteMessageBatch(input, region) {
      const q = queueOf(region, input);
      const entries = input.Entries;
      if (!Array.isArray(entries) || entries.length === 0)
        throw new SqsError(
          "EmptyBatchRequest",
          "There should be at least one DeleteMessageBatchRequestEntry in the request.",
          { queryCode: "AWS.SimpleQueueService.EmptyBatchRequest" },
        );
      if (entries.length > 10)
        throw new SqsError(
          "TooManyEntriesInBatchRequest",
          `Maximum number of entries per request are 10. You have sent ${entries.length}.`,
          { queryCode: "AWS.SimpleQueueService.TooManyEntriesInBatchRequest" },
        );
      const seen = new Set<string>();
      for (const e of entries as Input[]) {
        const id = str(e, "Id") ?? "";
        if (!/^[A-Za-z0-9_-]{1,80}$/.test(id))
          throw new SqsError(
            "InvalidBatchEntryId",
            "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            { queryCode: "AWS.SimpleQueueService.InvalidBatchEntryId" },
          );
        if (seen.has(id))
          throw new SqsError("BatchEntryIdsNotDistinct", `Id ${id} repeated.`, {
            queryCode: "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
          });
        seen.add(id);
      }
      const Successful: { Id: string }[] = [];
      const Failed: { Id: string; SenderFault: boolean; Code: string; Message: string }[] = [];
      for (const e of entries as Input[]) {
        const id = str(e, "Id")!;
        const h = str(e, "ReceiptHandle");
        if (h !== undefined && world.delete(q, h) === "deleted") Successful.push({ Id: id });
        else {
          const err = h === undefined ? missingParameter("ReceiptHandle") : invalidHandle(h);
          Failed.push({ Id: id, SenderFault: true, Code: err.code, Message: err.message });
        }
      }
      return { Successful, Failed };
    },
  };

  async function handle(call: SimCall): Promise<void> {
    const { req, res, region } = call;
    const target = String(req.headers["x-amz-target"] ?? "");
    const action = target.startsWith("AmazonSQS.") ? target.slice("AmazonSQS.".length) : "";
    const requestId = requestIds.uuid();
    let queueName: string[] = [];
    try {
      let input: Input;
      try {
        const text = call.body.toString("utf8");
        input = text === "" ? {} : (JSON.parse(text) as Input);
        if (!input || typeof input !== "object" || Array.isArray(input)) throw new Error("not an object");
      } catch {
        throw new SqsError("InvalidParameterValue", "The request body is not valid JSON.");
      }
      const url = str(input, "QueueUrl") ?? str(input, "QueueName");
      if (url) queueName = [url.split("/").at(-1) ?? url];
      const fault = ctx.faults.take({ service: "sqs", action, region, facts: { queue: queueName[0] } }, [
        "throttle",
        "internal-error",
      ]);
      if (fault?.kind === "throttle")
        throw new SqsError("RequestThrottled", "Rate exceeded", { queryCode: "RequestThrottled" });
      if (fault)
        throw new SqsError("InternalError", "We encountered an internal error. Please try again.", {
          status: 500,
        });
      const run = Object.hasOwn(actions, action) ? actions[action] : undefined;
      if (!run)
        throw new SqsError(
          "UnsupportedOperation",
          `The action ${action || "(none)"} is not valid for this endpoint (the sim speaks ${Object.keys(actions).join(", ")}).`,
          { queryCode: "AWS.SimpleQueueService.UnsupportedOperation" },
        );
      const out = await run(input, region, () => call.journal?.());
      send(res, 200, out, requestId);
      ctx.requests.record({
        time: ctx.clock.iso(),
        service: "sqs",
        region,
        action,
        ids: queueName,
        status: 200,
      });
    } catch (err) {
      const e =
        err instanceof SqsError
          ? err
          : new SqsError(
              "InternalError",
              `We encountered an internal error (sim: ${(err as Error).message})`,
              {
                status: 500,
              },
            );
      send(res, e.status, { __type: `com.amazonaws.sqs#${e.code}`, message: e.message }, requestId, {
        "x-amzn-query-error": `${e.queryCode};${e.status >= 500 ? "Receiver" : "Sender"}`,
      });
      ctx.requests.record({
        time: ctx.clock.iso(),
        service: "sqs",
        region,
        action: action || "(none)",
        ids: queueName,
        status: e.status,
        error: e.code,
      });
    }
  }

  const state = () => ({
    regions: Object.fromEntries(
      world.regionNames().map((r) => [
        r,
        {
          queues: world.queues(r).map((q) => ({
            name: q.name,
            url: urlOf(q),
            messages: q.messages.length,
            inFlight: q.messages.filter((m) => m.visibleAt > now()).length,
          })),
        },
      ]),
    ),
  });

  async function admin(action: string, body: unknown): Promise<unknown> {
    const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
    const region = typeof b.region === "string" ? b.region : undefined;
    const queue = typeof b.queue === "string" ? b.queue : SPOT_INTERRUPTION_QUEUE;
    if (!region) throw new Error(`sqs/${action}: body needs "region" (a string)`);
    switch (action) {
      case "messages":
        return { region, queue, messages: port.messages(region, queue) };
      case "send": {
        if (typeof b.body !== "string") throw new Error('sqs/send: body needs "body" (a string)');
        return port.deliver(region, queue, b.body);
      }
      default:
        throw new Error(`no sqs admin action "${action}"; there are messages, send`);
    }
  }

  return {
    port,
    handle,
    state,
    admin,
    snapshot: () => ({ world: world.snapshot(), ids: ids.state, requestIds: requestIds.state }),
    restore(s) {
      const snap = s as { world: unknown; ids: number; requestIds: number };
      world.restore(snap.world);
      ids.state = snap.ids;
      requestIds.state = snap.requestIds;
    },
  };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  requestId: string,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": SQS_CONTENT_TYPE,
    "content-length": Buffer.byteLength(text),
    "x-amzn-requestid": requestId,
    ...headers,
  });
  res.end(text);
}

function str(input: Input, key: string): string | undefined {
  const v = input[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalidParameter(key, v, "Must be a string");
  return v;
}

function int(input: Input, key: string, def: number, min: number, max: number, reason: string): number {
  const v = input[key];
  if (v === undefined || v === null) return def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max)
    throw invalidParameter(key, v, reason);
  return v;
}

const ATTRIBUTES: readonly (keyof QueueAttributes)[] = [
  "VisibilityTimeout",
  "ReceiveMessageWaitTimeSeconds",
  "MessageRetentionPeriod",
];
const LIMITS: Record<keyof QueueAttributes, [number, number]> = {
  VisibilityTimeout: [0, MAX_VISIBILITY_TIMEOUT],
  ReceiveMessageWaitTimeSeconds: [0, MAX_WAIT_SECONDS],
  MessageRetentionPeriod: [60, 1_209_600],
};

/** CreateQueue's `Attributes` (string values, as SQS takes them); others are refused. */
function queueAttributes(raw: unknown): Partial<QueueAttributes> {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object") throw new SqsError("InvalidAttributeName", "Attributes must be a map.");
  const out: Partial<QueueAttributes> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (!(ATTRIBUTES as readonly string[]).includes(k))
      throw new SqsError("InvalidAttributeName", `Unknown Attribute ${k}.`);
    const n = Number(v);
    const [min, max] = LIMITS[k as keyof QueueAttributes];
    if (!Number.isInteger(n) || n < min || n > max)
      throw new SqsError("InvalidAttributeValue", `Invalid value for the parameter ${k}.`);
    out[k as keyof QueueAttributes] = n;
  }
  return out;
}

/** The system attributes a ReceiveMessage asked for (`All` or by name). */
function attributeNames(input: Input): Set<string> {
  const raw = [input.MessageSystemAttributeNames, input.AttributeNames].flatMap((v) =>
    Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [],
  );
  return new Set(raw);
}

function systemAttributes(m: StoredMessage, wanted: Set<string>): Record<string, string> {
  const all: Record<string, string> = {
    SentTimestamp: String(Math.floor(m.sentAt)),
    ApproximateReceiveCount: String(m.receiveCount),
    ApproximateFirstReceiveTimestamp: String(Math.floor(m.firstReceivedAt ?? m.sentAt)),
  };
  if (wanted.has("All")) return all;
  return Object.fromEntries(Object.entries(all).filter(([k]) => wanted.has(k)));
}
