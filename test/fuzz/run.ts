/**
 * Sends the fuzz cases to a running stack — bus cases with the harness's JetStream client,
 * requests on core NATS, API cases over HTTP — a few at a time, and records what each got.
 */
import { request as httpRequest } from "node:http";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { Stack } from "../harness/stack.ts";
import {
  type ApiCase,
  type BusCase,
  type Case,
  certainlyRefused,
  type Envelope,
  type RequestCase,
} from "./cases.ts";
import type { Sent } from "./oracle.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

/**
 * Resolves the duplicated-id cases: a case marked `reuse` takes the command id (and the
 * `Nats-Msg-Id`, when it has one) of an earlier case, in order, so the same seed always
 * pairs the same cases.
 */
export function resolveReuse(cases: readonly Case[]): Case[] {
  const ids: string[] = [];
  return cases.map((c) => {
    if (c.via !== "bus") return c;
    if (c.reuse !== undefined && ids.length > 0) {
      const id = ids[c.reuse % ids.length]!;
      let env: Envelope;
      try {
        env = JSON.parse(dec.decode(c.body)) as Envelope;
      } catch {
        return c;
      }
      // A case whose only fault was its id would be repaired by a good one: it keeps its own.
      if (!certainlyRefused({ ...env, id })) return c;
      return {
        ...c,
        body: enc.encode(JSON.stringify({ ...env, id })),
        commandId: id,
        ...(c.msgId !== undefined ? { msgId: id } : {}),
      } satisfies BusCase;
    }
    if (c.commandId) ids.push(c.commandId);
    return c;
  });
}

async function sendBus(stack: Stack, c: BusCase): Promise<Omit<Sent, "index" | "case">> {
  const h = natsHeaders();
  for (const [k, v] of c.headers) h.append(k, v);
  try {
    const ack = await stack.nats.js.publish(c.subject, c.body, {
      headers: h,
      ...(c.msgId !== undefined ? { msgID: c.msgId } : {}),
    });
    return { commandId: c.commandId, seq: ack.seq, duplicate: ack.duplicate };
  } catch (err) {
    return { commandId: c.commandId, publishError: err instanceof Error ? err.message : String(err) };
  }
}

async function sendRequest(stack: Stack, c: RequestCase): Promise<Omit<Sent, "index" | "case">> {
  try {
    const m = await stack.nats.nc.request(c.subject, c.body, { timeout: 5_000 });
    const answer = JSON.parse(dec.decode(m.data)) as { status?: number; error?: string };
    return { status: answer.status, message: answer.error };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * One HTTP request on a connection of its own (`agent: false`): a kept-alive socket that sat
 * idle while the cases were generated can be closed by the server just as it is reused,
 * which fails the request before it is sent ("other side closed") — a client's race, not an
 * answer of the API.
 */
function request(url: URL, c: ApiCase): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: c.method,
        agent: false,
        headers: {
          ...(c.contentType ? { "content-type": c.contentType } : {}),
          ...(c.body !== undefined ? { "content-length": String(c.body.length) } : {}),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
    req.on("error", reject);
    req.end(c.body);
  });
}

async function sendApi(stack: Stack, c: ApiCase): Promise<Omit<Sent, "index" | "case">> {
  try {
    const res = await request(new URL(`${stack.api()}${c.path}`), c);
    let body: { message?: unknown; commandId?: unknown } = {};
    try {
      body = JSON.parse(res.text) as typeof body;
    } catch {
      // a non-JSON answer: its status still says what happened
    }
    return {
      status: res.status,
      ...(typeof body.message === "string" ? { message: body.message } : {}),
      ...(typeof body.commandId === "string" ? { commandId: body.commandId } : {}),
    };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

/** Sends every case, `concurrency` at a time; the result is in case order. */
export async function sendCases(stack: Stack, cases: readonly Case[], concurrency = 16): Promise<Sent[]> {
  const out: Sent[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const index = next++;
      const c = cases[index]!;
      const r =
        c.via === "bus"
          ? await sendBus(stack, c)
          : c.via === "request"
            ? await sendRequest(stack, c)
            : await sendApi(stack, c);
      out[index] = { index, case: c, ...r };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}
