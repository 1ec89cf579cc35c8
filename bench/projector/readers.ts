/**
 * bench/projector's API readers, run as a child process of the bench (`fork`): `READERS`
 * loops of `GET <API_URL>/clusters/b<0..999>` until the parent sends "stop", then every
 * read's latency (ms), the server's own time (Server-Timing `app`), how many answers came
 * from memory (`src;desc=mem`) and this process's own event-loop delay p99 go back on the
 * IPC channel.
 *
 * Its own process, not a worker thread of the bench: the bench's main thread publishes the
 * commits and takes the checkpoint notifications, and a worker shares its process's heap
 * allocator, libuv pool and scheduling with it. A reader that is itself delayed inflates
 * the latency it measures, so its own loop delay is measured and reported beside it.
 *
 * Two shapes: closed loop (`READERS_RATE` unset or 0: each reader sends its next read when
 * the last is answered, as fast as the machine lets it: a saturating client, which on two
 * shared cores takes a core of its own and measures its own queue as much as the server), and
 * paced (`READERS_RATE` reads/s in all, open loop: the k-th read is due at a fixed time and sent
 * then whatever the others are doing, its latency counted from that time, so no coordinated
 * omission). Paced is what many dashboards and CLIs do to the API while the control plane is
 * busy: independent readers, so a slow read delays only itself.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

const apiUrl = process.env.READERS_API_URL ?? "";
const readers = Number(process.env.READERS ?? 4);
const ratePerS = Number(process.env.READERS_RATE ?? 0);
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
let done = false;
const reads: number[] = [];
const server: number[] = [];
let fromMemory = 0;
process.once("message", () => {
  done = true;
});

// One read per reader first, not counted: the connections and the fetch machinery are made
// before the schedule starts (a paced run would otherwise charge every read its start-up).
await Promise.all(
  Array.from({ length: readers }, () => fetch(`${apiUrl}/clusters/b0`).then((r) => r.arrayBuffer())),
);
const start = performance.now();

/** One read; its latency counts from `t0` (when it was due, paced; when it was sent, closed loop). */
async function read(t0: number): Promise<void> {
  const id = `b${Math.floor(Math.random() * 1000)}`;
  const res = await fetch(`${apiUrl}/clusters/${id}`);
  await res.arrayBuffer();
  reads.push(performance.now() - t0);
  const timing = res.headers.get("server-timing") ?? "";
  const app = /app;dur=([0-9.]+)/.exec(timing);
  if (app) server.push(Number(app[1]));
  if (timing.includes("src;desc=mem")) fromMemory++;
}

/** Closed loop: the next read when the last is answered. */
async function loop(): Promise<void> {
  while (!done) await read(performance.now());
}

/**
 * Paced, open loop: the k-th read goes at start + k / rate whatever the reads before it are
 * doing (independent users, not one user's queue: a slow read delays only itself), timed from
 * when it was due (a sender late on its own schedule is charged its lateness).
 */
async function paced(): Promise<void> {
  const every = 1000 / ratePerS;
  const inFlight = new Set<Promise<void>>();
  for (let due = start; !done; due += every) {
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (done) break;
    const p = read(due).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
}

// The parent starts publishing once this process runs (its start-up is not in the run).
process.send?.({ ready: true });
await (ratePerS > 0 ? paced() : Promise.all(Array.from({ length: readers }, loop)));
process.send?.({ reads, server, fromMemory, loopDelayP99: delay.percentile(99) / 1e6 }, () =>
  process.exit(0),
);
