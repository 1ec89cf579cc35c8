/**
 * A lean HTTP/1.1 load generator on plain keep-alive `net` sockets, the request's bytes made
 * once per request, the response read by its status line and content-length: the
 * generator must cost the machine (2 shared cores) as little as possible, since every
 * microsecond it spends is taken from the server it measures.
 *
 *  - `paced`: open loop at a fixed rate, for latency. Request i is due at t0 + i / rate
 *    whatever became of the ones before, goes out on the first idle connection, and its
 *    latency counts from when it was due (a request that waits for a free connection waits
 *    on the clock: no coordinated omission). Why not autocannon's `overallRate`: it lets
 *    each connection send its share of a second back to back at the start of the second
 *    and then sit idle, so what it reports "at 5,000 req/s" is the latency of 100
 *    connections bursting at full speed, not of a steady 5,000 req/s (and it corrects for
 *    coordinated omission with an expected interval of `ceil(1 / rate)` = 1 ms).
 *  - `saturate`: closed loop, for the maximum rate: each connection sends its next request
 *    as soon as its last is answered. Why not autocannon: to vary the path per request it
 *    rebuilds the request in `setupRequest`, which cost as much CPU per request as the
 *    API server it loaded (measured: ~60 µs of 2 cores per request, against ~30 µs with
 *    one fixed request).
 */
import { connect, type Socket } from "node:net";

export interface LoadRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

export interface LoadResult {
  /** Milliseconds of every answered request: from when it was due (paced) or sent (saturate). */
  readonly latencies: number[];
  readonly sent: number;
  /** Answered 2xx. */
  readonly ok: number;
  /** Answered otherwise, or failed (socket closed or refused). */
  readonly errors: number;
  readonly statuses: Record<number, number>;
  /** How long the run took, from its start to the last answer. */
  readonly ms: number;
}

interface Connection {
  socket: Socket;
  buffer: Buffer;
  /** When the request in hand was due (or sent); undefined: idle. */
  due: number | undefined;
}

/** A pool of keep-alive connections that says when each answer is complete. */
async function pool(
  url: string,
  connections: number,
  answered: (c: Connection, status: number) => void,
  closed: (c: Connection) => void,
) {
  const { hostname, port } = new URL(url);
  const host = `${hostname}:${port}`;
  /** One whole response in `c.buffer`, or nothing yet. */
  const parse = (c: Connection) => {
    while (c.due !== undefined) {
      const end = c.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = c.buffer.subarray(0, end).toString("latin1");
      const status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const length = m ? Number(m[1]) : 0;
      if (c.buffer.length < end + 4 + length) return;
      c.buffer = c.buffer.subarray(end + 4 + length);
      answered(c, status);
    }
  };
  const all = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<Connection>((resolve, reject) => {
          const socket = connect({ host: hostname, port: Number(port), noDelay: true });
          const c: Connection = { socket, buffer: Buffer.alloc(0), due: undefined };
          socket.once("connect", () => resolve(c));
          socket.once("error", reject);
          socket.on("data", (d: Buffer) => {
            c.buffer = c.buffer.length === 0 ? d : Buffer.concat([c.buffer, d]);
            parse(c);
          });
          socket.on("close", () => closed(c));
        }),
    ),
  );
  const bytes = (r: LoadRequest) => {
    const body = r.body ?? "";
    let head = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\n`;
    for (const [k, v] of Object.entries(r.headers ?? {})) head += `${k}: ${v}\r\n`;
    return `${head}content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  };
  return {
    all,
    send: (c: Connection, due: number, r: LoadRequest) => {
      c.due = due;
      c.socket.write(bytes(r));
    },
    close: () => {
      for (const c of all) c.socket.destroy();
    },
  };
}

function tally() {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let ok = 0;
  let errors = 0;
  return {
    latencies,
    statuses,
    answer(latency: number, status: number) {
      latencies.push(latency);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) ok++;
      else errors++;
    },
    fail: () => errors++,
    result: (sent: number, ms: number): LoadResult => ({ latencies, sent, ok, errors, statuses, ms }),
  };
}

/** Open loop at `rate` req/s for `seconds` (see above). */
export async function paced(o: {
  url: string;
  connections: number;
  rate: number;
  seconds: number;
  request: (i: number) => LoadRequest;
}): Promise<LoadResult> {
  const total = Math.round(o.rate * o.seconds);
  const t = tally();
  let done = 0;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((r) => (finished = r));
  const queue: { i: number; due: number }[] = [];
  let next = 0;
  let p!: Awaited<ReturnType<typeof pool>>;
  const dispatch = () => {
    // Every connection closed (the server went away): what is due fails.
    if (p.all.every((c) => c.socket.destroyed)) {
      for (const _ of queue.splice(0)) {
        t.fail();
        settle();
      }
      return;
    }
    for (let k = 0; k < p.all.length && queue.length > 0; k++) {
      const c = p.all[(next + k) % p.all.length]!;
      if (c.due !== undefined || c.socket.destroyed) continue;
      const q = queue.shift()!;
      p.send(c, q.due, o.request(q.i));
      next = (next + k + 1) % p.all.length;
      k = -1;
    }
  };
  const settle = () => {
    if (++done === total) finished();
  };
  p = await pool(
    o.url,
    o.connections,
    (c, status) => {
      t.answer(performance.now() - c.due!, status);
      c.due = undefined;
      settle();
      dispatch();
    },
    (c) => {
      if (c.due !== undefined) {
        c.due = undefined;
        t.fail();
        settle();
      }
      dispatch();
    },
  );
  const t0 = performance.now() + 5;
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / o.rate;
    const wait = due - performance.now();
    // Due requests leave together each time the loop wakes (timers are ~1 ms grained).
    if (wait > 1) {
      dispatch();
      await new Promise((r) => setTimeout(r, wait));
    }
    queue.push({ i, due });
  }
  dispatch();
  await allDone;
  const ms = performance.now() - t0;
  p.close();
  return t.result(total, ms);
}

/** Closed loop for `seconds`: every connection always has a request out (see above). */
export async function saturate(o: {
  url: string;
  connections: number;
  seconds: number;
  request: (i: number) => LoadRequest;
}): Promise<LoadResult> {
  const t = tally();
  let sent = 0;
  let inFlight = 0;
  let ending = false;
  let finished: () => void = () => {};
  const allDone = new Promise<void>((r) => (finished = r));
  let p!: Awaited<ReturnType<typeof pool>>;
  const go = (c: Connection) => {
    if (ending || c.socket.destroyed) {
      if (inFlight === 0) finished();
      return;
    }
    inFlight++;
    p.send(c, performance.now(), o.request(sent++));
  };
  p = await pool(
    o.url,
    o.connections,
    (c, status) => {
      t.answer(performance.now() - c.due!, status);
      c.due = undefined;
      inFlight--;
      go(c);
    },
    (c) => {
      if (c.due !== undefined) {
        c.due = undefined;
        inFlight--;
        t.fail();
      }
      if (inFlight === 0) finished();
    },
  );
  const t0 = performance.now();
  for (const c of p.all) go(c);
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  ending = true;
  await allDone;
  const ms = performance.now() - t0;
  p.close();
  return t.result(sent, ms);
}
