/**
 * An open-loop HTTP/1.1 load generator for latency at a fixed rate: request i is due at
 * t0 + i / rate whatever became of the ones before, goes out on the first idle keep-alive
 * connection of a pool, and its latency counts from when it was due (a request that waits
 * for a free connection waits on the clock: no coordinated omission).
 *
 * Why not autocannon's `overallRate`: it lets each connection send its share of a second
 * back to back at the start of the second and then sit idle, so what it reports "at 5,000
 * req/s" is the latency of 100 connections bursting at full speed (about 100 / the
 * server's maximum rate), not of a steady 5,000 req/s. (It then corrects for coordinated
 * omission with an expected interval of `ceil(1 / rate)` = 1 ms.) autocannon stays for the
 * open-loop maximum, where bursting is the point.
 *
 * Plain `net` sockets with the request's bytes made once per request: the generator must
 * cost the machine (2 shared cores) as little as the server it measures.
 */
import { connect, type Socket } from "node:net";

export interface PacedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

export interface PacedResult {
  /** Milliseconds from due to answered, of every answered request. */
  readonly latencies: number[];
  readonly sent: number;
  /** Answered 2xx. */
  readonly ok: number;
  /** Answered otherwise, or failed (socket closed or refused). */
  readonly errors: number;
  readonly statuses: Record<number, number>;
  /** How long the run took, from the first due time to the last answer. */
  readonly ms: number;
}

interface Connection {
  socket: Socket;
  buffer: Buffer;
  due: number;
  busy: boolean;
}

export async function paced(o: {
  url: string;
  connections: number;
  rate: number;
  seconds: number;
  request: (i: number) => PacedRequest;
}): Promise<PacedResult> {
  const { hostname, port } = new URL(o.url);
  const host = `${hostname}:${port}`;
  const total = Math.round(o.rate * o.seconds);
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let ok = 0;
  let errors = 0;
  let answered = 0;
  const queue: { i: number; due: number }[] = [];
  let finished: () => void = () => {};
  const allAnswered = new Promise<void>((r) => (finished = r));

  const bytes = (r: PacedRequest) => {
    const body = r.body ?? "";
    let head = `${r.method} ${r.path} HTTP/1.1\r\nhost: ${host}\r\n`;
    for (const [k, v] of Object.entries(r.headers ?? {})) head += `${k}: ${v}\r\n`;
    head += `content-length: ${Buffer.byteLength(body)}\r\n\r\n`;
    return head + body;
  };
  const done = (c: Connection, status: number) => {
    latencies.push(performance.now() - c.due);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) ok++;
    else errors++;
    c.busy = false;
    if (++answered === total) finished();
    dispatch();
  };
  /** One whole response in `c.buffer`, or nothing yet. */
  const parse = (c: Connection) => {
    const end = c.buffer.indexOf("\r\n\r\n");
    if (end < 0) return;
    const head = c.buffer.subarray(0, end).toString("latin1");
    const status = Number(head.slice(9, 12));
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const length = m ? Number(m[1]) : 0;
    if (c.buffer.length < end + 4 + length) return;
    c.buffer = c.buffer.subarray(end + 4 + length);
    done(c, status);
  };
  const pool: Connection[] = [];
  let idle = 0;
  const dispatch = () => {
    // Every connection closed (the server went away): what is due fails.
    if (pool.length > 0 && pool.every((c) => c.socket.destroyed)) {
      errors += queue.length;
      answered += queue.splice(0).length;
      if (answered === total) finished();
      return;
    }
    while (queue.length > 0) {
      let c: Connection | undefined;
      for (let k = 0; k < pool.length && !c; k++) {
        const candidate = pool[(idle + k) % pool.length]!;
        if (!candidate.busy && !candidate.socket.destroyed) c = candidate;
      }
      if (!c) return;
      idle = (pool.indexOf(c) + 1) % pool.length;
      const next = queue.shift()!;
      c.busy = true;
      c.due = next.due;
      c.socket.write(bytes(o.request(next.i)));
    }
  };

  pool.push(
    ...(await Promise.all(
      Array.from(
        { length: o.connections },
        () =>
          new Promise<Connection>((resolve, reject) => {
            const socket = connect({ host: hostname, port: Number(port), noDelay: true });
            const c: Connection = { socket, buffer: Buffer.alloc(0), due: 0, busy: false };
            socket.once("connect", () => resolve(c));
            socket.once("error", reject);
            socket.on("data", (d: Buffer) => {
              c.buffer = c.buffer.length === 0 ? d : Buffer.concat([c.buffer, d]);
              if (c.busy) parse(c);
            });
            socket.on("close", () => {
              if (c.busy) {
                c.busy = false;
                errors++;
                if (++answered === total) finished();
              }
              dispatch();
            });
          }),
      ),
    )),
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
  await allAnswered;
  const ms = performance.now() - t0;
  for (const c of pool) c.socket.destroy();
  return { latencies, sent: total, ok, errors, statuses, ms };
}
