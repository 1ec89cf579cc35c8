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
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

const apiUrl = process.env.READERS_API_URL ?? "";
const readers = Number(process.env.READERS ?? 4);
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
let done = false;
const reads: number[] = [];
const server: number[] = [];
let fromMemory = 0;
process.once("message", () => {
  done = true;
});

async function loop(): Promise<void> {
  while (!done) {
    const id = `b${Math.floor(Math.random() * 1000)}`;
    const t0 = performance.now();
    const res = await fetch(`${apiUrl}/clusters/${id}`);
    await res.arrayBuffer();
    reads.push(performance.now() - t0);
    const timing = res.headers.get("server-timing") ?? "";
    const app = /app;dur=([0-9.]+)/.exec(timing);
    if (app) server.push(Number(app[1]));
    if (timing.includes("src;desc=mem")) fromMemory++;
  }
}

// The parent starts publishing once this process runs (its start-up is not in the run).
process.send?.({ ready: true });
await Promise.all(Array.from({ length: readers }, loop));
process.send?.({ reads, server, fromMemory, loopDelayP99: delay.percentile(99) / 1e6 }, () =>
  process.exit(0),
);
