// How times, durations and counts read on the page. Pure functions.

/**
 * A duration in words a person reads at a glance.
 * @example duration(95_000) // "1 min 35 s"
 */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  const neg = ms < 0;
  let s = Math.round(Math.abs(ms) / 1000);
  if (s < 1 && Math.abs(ms) > 0) return `${neg ? "-" : ""}${Math.max(1, Math.round(Math.abs(ms)))} ms`;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = h > 0 ? [`${h} h`, `${m} min`] : m > 0 ? [`${m} min`, `${s} s`] : [`${s} s`];
  return `${neg ? "-" : ""}${parts.join(" ")}`;
}

/** @example ago("2026-01-01T00:00:00Z", Date.parse("2026-01-01T00:01:00Z")) // "1 min 0 s ago" */
export function ago(iso, now) {
  if (!iso) return "—";
  const ms = now - Date.parse(iso);
  return ms < 1000 ? "just now" : `${duration(ms)} ago`;
}

/** Local date and time, to the second: for `title`s and timelines. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

export const plural = (n, word, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;

/** A short id for tables: the first 8 characters of a UUID, the rest in a title. */
export const shortId = (id) => (id && id.length > 12 ? `${id.slice(0, 8)}…` : (id ?? "—"));
