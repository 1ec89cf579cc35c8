/**
 * `?watch=true`: newline-delimited JSON watch events over a chunked response, as
 * kube-apiserver streams them. A watch without a resourceVersion (or "0") starts with
 * synthetic ADDED events for what exists; with one it replays the history after it, or,
 * when that history is compacted, sends one ERROR event with a 410 Expired Status and
 * ends. Selectors filter like the real server: an object that stops matching arrives
 * as DELETED, one that starts matching as ADDED.
 */
import type { ServerResponse } from "node:http";
import type { Cluster, HistEvent, WatchSink } from "./cluster.ts";
import type { KObj } from "./model.ts";
import type { ResourceDef } from "./resources.ts";
import { type FieldRequirement, type LabelSelector, matchesFields, matchesLabels } from "./selectors.ts";
import { expired } from "./status.ts";

export interface WatchOptions {
  def: ResourceDef;
  ns: string | undefined;
  labels: LabelSelector;
  fields: readonly FieldRequirement[];
  /** undefined or "0": start with the current state. */
  resourceVersion: number | undefined;
  /** Sim ms after which the server ends the watch. */
  deadline: number;
  bookmarks: boolean;
  /**
   * Sim ms per wall ms (the clock's time scale). The server's own timers — the watch's
   * lifetime, the bookmark interval — run on wall time, as kube-apiserver's do (a Go
   * timer of `timeoutSeconds` on the request, the cacher's bookmark ticker): they bound a
   * connection, not the simulated world. Default 1.
   */
  timeScale?: number;
}

/**
 * How often (wall ms; sim ms at time scale 1) a watch that asked for them gets a BOOKMARK:
 * about once a minute, as kube-apiserver's watch cache does (`bookmarkFrequency`,
 * cacher.go), plus one 2 s before the watch's deadline. Like the cacher, a bookmark goes only to a watch behind the
 * resourceVersion it would carry, so a quiet cluster sends none.
 */
export const BOOKMARK_EVERY_MS = 60_000;
/** The last bookmark goes this long (wall ms; sim ms at time scale 1) before the watch's deadline. */
export const FINAL_BOOKMARK_MS = 2_000;

export class WatchStream implements WatchSink {
  readonly def: ResourceDef;
  readonly deadline: number;
  readonly clusterId: string;
  readonly #cluster: Cluster;
  readonly #res: ServerResponse;
  readonly #o: WatchOptions;
  readonly #filtered: boolean;
  #lastBookmark: number;
  /** BOOKMARK_EVERY_MS and FINAL_BOOKMARK_MS in sim ms. */
  readonly #bookmarkEvery: number;
  readonly #finalBookmarkBefore: number;
  /** The resourceVersion this watch has seen up to: nothing at or below it is sent (not even a bookmark). */
  #seen: number;
  #finalBookmark = false;
  #closed = false;

  constructor(cluster: Cluster, res: ServerResponse, o: WatchOptions, now: number) {
    this.def = o.def;
    this.deadline = o.deadline;
    this.clusterId = cluster.id;
    this.#cluster = cluster;
    this.#res = res;
    this.#o = o;
    this.#filtered = o.labels.length > 0 || o.fields.length > 0;
    this.#lastBookmark = now;
    this.#bookmarkEvery = BOOKMARK_EVERY_MS * (o.timeScale ?? 1);
    this.#finalBookmarkBefore = FINAL_BOOKMARK_MS * (o.timeScale ?? 1);
    this.#seen = o.resourceVersion ?? cluster.rv;
  }

  /** Sends the initial events (or the 410) and joins the cluster's watches. */
  start(): void {
    const res = this.#res;
    res.writeHead(200, {
      "Content-Type": "application/json",
      "Cache-Control": "no-cache, private",
      "Transfer-Encoding": "chunked",
    });
    res.flushHeaders();
    res.on("close", () => this.close());
    res.on("error", () => this.close());
    const c = this.#cluster;
    const from = this.#o.resourceVersion;
    if (from === undefined) {
      const lines: string[] = [];
      for (const e of c.entries(this.def, this.#o.ns)) {
        if (this.#matches(e.obj)) lines.push(`{"type":"ADDED","object":${e.json}}\n`);
      }
      if (lines.length > 0) res.write(lines.join(""));
    } else if (from < c.compactedRv(this.def)) {
      const status = expired(`too old resource version: ${from} (${c.compactedRv(this.def)})`).toStatus();
      res.end(`${JSON.stringify({ type: "ERROR", object: status })}\n`);
      this.#closed = true;
      return;
    } else {
      for (const ev of c.eventsSince(this.def, from)) this.offer(ev);
    }
    c.watchers.add(this);
  }

  #matches(o: KObj): boolean {
    if (this.#o.ns !== undefined && o.metadata.namespace !== this.#o.ns) return false;
    if (!this.#filtered) return true;
    const fields = this.def.fields;
    return (
      matchesLabels(this.#o.labels, o.metadata.labels) && matchesFields(this.#o.fields, (f) => fields[f]?.(o))
    );
  }

  offer(ev: HistEvent): void {
    if (this.#closed) return;
    // A watch from a resourceVersion the server has not reached yet (its datastore was
    // replaced) gets nothing until the server passes it: it stays open and silent, as the
    // real watch cache does (cacheWatcher.process sends only events above the watch's RV).
    if (ev.rv <= this.#seen) return;
    this.#seen = ev.rv;
    const now = this.#matches(ev.obj);
    let type: string = ev.type;
    if (ev.type === "MODIFIED") {
      const before = ev.prev !== undefined && this.#matches(ev.prev);
      if (now && !before) type = "ADDED";
      else if (!now && before) type = "DELETED";
      else if (!now) return;
    } else if (!now) {
      return;
    }
    this.#write(`{"type":"${type}","object":${ev.json}}\n`);
  }

  /** Ends the watch at its deadline; sends a BOOKMARK when one is due. */
  tick(now: number): void {
    if (this.#closed) return;
    if (now >= this.deadline) {
      this.close();
      return;
    }
    const finalDue = !this.#finalBookmark && now >= this.deadline - this.#finalBookmarkBefore;
    if (this.#o.bookmarks && (finalDue || now - this.#lastBookmark >= this.#bookmarkEvery)) {
      this.#lastBookmark = now;
      if (finalDue) this.#finalBookmark = true;
      if (this.#cluster.rv <= this.#seen) return;
      this.#seen = this.#cluster.rv;
      const obj = {
        kind: this.def.kind,
        apiVersion: this.def.apiVersion,
        metadata: { resourceVersion: String(this.#cluster.rv) },
      };
      this.#write(`${JSON.stringify({ type: "BOOKMARK", object: obj })}\n`);
    }
  }

  #write(line: string): void {
    if (this.#res.destroyed || this.#res.writableEnded) {
      this.close();
      return;
    }
    this.#res.write(line);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cluster.watchers.delete(this);
    if (!this.#res.writableEnded) this.#res.end();
  }

  get closed(): boolean {
    return this.#closed;
  }
}
