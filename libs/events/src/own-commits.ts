/**
 * The commits this process appended, each as the exact text it published, by commit id
 * (the commit's `Nats-Msg-Id`). A reader in the same process — a service's reactors
 * reading their own aggregate's commits back — that gets a message whose body is that
 * text, character for character, knows every event's data in it went through
 * `catalogue.checkEventData` here before it was appended (the command handler builds no
 * envelope without it), so it reads it with `parseCommitTrusted` instead of parsing each
 * event's data against its zod schema again: at 500 nodes a provisioner's launch commit
 * is 500 events, parsed before its first RunInstances goes out.
 *
 * What this does not trust: anything it did not write itself. A commit of another
 * process (a replica, another service), a text that differs in one character (a commit
 * retried after a conflict under the same id with other positions, or garbage published
 * under a remembered id), or one already forgotten is parsed in full, as before. The
 * texts are kept until `maxChars` of them are held, the oldest forgotten first: enough for
 * a reactor a few commits behind; one further behind only pays the full parse.
 *
 * @example
 * ownCommits.remember(commitId, body); // by EventStore.append, before publishing
 * ownCommits.wrote(msg.headers?.get("Nats-Msg-Id"), text); // true: parseCommitTrusted
 */
export class OwnCommits {
  readonly #texts = new Map<string, { readonly text: string; readonly at: number }>();
  #chars = 0;
  /** Reads that found their text here, and that did not (an id known, the text not this process's). */
  readonly stats = { hits: 0, misses: 0 };

  readonly maxChars: number;
  /**
   * A text older than this (ms) is forgotten too: a reactor reads its own commit back within
   * seconds, and without an age bound a service that commits many small commits (node-ops'
   * workloads: ~760 characters each) kept the last `maxChars` of them for ever — 4.8 MB of
   * node-ops' 52 MB heap at 100 clusters × 20 sessions (a heap snapshot, docs/benchmarks.md
   * load1000c), up to 16 MB in every service that commits.
   */
  readonly maxAgeMs: number;
  readonly #now: () => number;

  constructor(maxChars: number, o: { maxAgeMs?: number; now?: () => number } = {}) {
    this.maxChars = maxChars;
    this.maxAgeMs = o.maxAgeMs ?? 60_000;
    this.#now = o.now ?? Date.now;
  }

  /** Remembers `text` as the body this process publishes for commit `commitId`. */
  remember(commitId: string, text: string): void {
    if (text.length > this.maxChars) return;
    const before = this.#texts.get(commitId);
    if (before !== undefined) {
      this.#chars -= before.text.length;
      this.#texts.delete(commitId);
    }
    const now = this.#now();
    this.#texts.set(commitId, { text, at: now });
    this.#chars += text.length;
    this.#forget(now);
  }

  /** Forgets the texts past the age bound (the process calls it on a timer: an idle process holds none). */
  forgetOld(): void {
    this.#forget(this.#now());
  }

  /** Oldest first: past the character bound or the age bound. */
  #forget(now: number): void {
    for (const [id, t] of this.#texts) {
      if (this.#chars <= this.maxChars && now - t.at <= this.maxAgeMs) break;
      this.#texts.delete(id);
      this.#chars -= t.text.length;
    }
  }

  /** True when this process published exactly `text` as commit `commitId`. */
  wrote(commitId: string | undefined, text: string): boolean {
    if (!commitId) return false;
    const mine = this.#texts.get(commitId)?.text;
    if (mine === undefined) return false;
    const same = mine === text;
    if (same) this.stats.hits++;
    else this.stats.misses++;
    return same;
  }

  /** Characters held (for tests and metrics). */
  get chars(): number {
    return this.#chars;
  }
}

/** The process's own commits, shared by every event store and reactor in it. 16 M characters (one 500-event commit is ~0.3 M). */
export const ownCommits = new OwnCommits(16 * 1024 * 1024);
// Unref'd: it never keeps a process alive.
setInterval(() => ownCommits.forgetOld(), 10_000).unref();
