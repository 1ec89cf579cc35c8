/**
 * How a wait shows itself on stderr (stdout stays the result, for scripts). Without a
 * terminal, each state it enters is a line, with the time since the wait began. On a
 * terminal, a live line shows the state now with the time ticking, redrawn in place; a
 * state left stays above it as a line with the time spent in it.
 */

export interface Progress {
  /** The state now, and what else is worth showing (a bar, a step). */
  update(state: string, detail?: string): void;
  /** Clears the live line; the lines written stay. */
  stop(): void;
}

export interface ProgressOptions {
  readonly out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** A live line redrawn in place; default: when `out` is a terminal. */
  readonly live?: boolean;
  readonly now?: () => number;
  /** Nothing at all (`--quiet`, or json/yaml output that wants no noise). */
  readonly silent?: boolean;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/** Seconds with one decimal while short, whole seconds after a minute. @example seconds(3210) // "3.2s" */
export const seconds = (ms: number) =>
  ms < 60_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;

/** A progress bar of `width` cells. @example bar(50, 10) // "[#####.....]" */
export const bar = (percent: number, width = 20) => {
  const full = Math.max(0, Math.min(width, Math.round((percent / 100) * width)));
  return `[${"#".repeat(full)}${".".repeat(width - full)}]`;
};

/** Progress of `subject` (`session/s-1`). */
export function progress(subject: string, o: ProgressOptions = {}): Progress {
  const out = o.out ?? process.stderr;
  const now = o.now ?? Date.now;
  const live = !o.silent && (o.live ?? Boolean(out.isTTY));
  const started = now();
  let state = "";
  let detail = "";
  let since = started;
  let frame = 0;
  let drawn = false;
  const clear = () => {
    if (drawn) out.write("\r\x1b[2K");
    drawn = false;
  };
  const draw = () => {
    if (!live) return;
    const text = `${SPINNER[frame++ % SPINNER.length]} ${subject} ${state}${detail ? `  ${detail}` : ""}  ${seconds(now() - since)}`;
    const width = out.columns ?? 120;
    out.write(`\r\x1b[2K${text.length > width - 1 ? text.slice(0, width - 1) : text}`);
    drawn = true;
  };
  const timer = live ? setInterval(draw, 100) : undefined;
  timer?.unref();
  return {
    update(next, nextDetail = "") {
      if (o.silent) return;
      if (next !== state) {
        const at = now();
        if (!live)
          out.write(`${subject} ${next}${nextDetail ? `  ${nextDetail}` : ""}  (${seconds(at - started)})\n`);
        else if (state) {
          clear();
          out.write(`  ${subject} ${state}  ${seconds(at - since)}\n`);
        }
        since = at;
      }
      state = next;
      detail = nextDetail;
      draw();
    },
    stop() {
      if (timer) clearInterval(timer);
      clear();
    },
  };
}
