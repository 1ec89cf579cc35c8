/** Durations typed by people (`90`, `90s`, `5m`, `1h30m`, `2d`) and ages shown to them (`5m30s`). */
import { InvalidInputError } from "./errors.ts";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Seconds in a duration: a plain number is seconds; otherwise parts of digits and a unit.
 * @example parseDuration("1h30m") // 5400;  parseDuration("90") // 90
 * @throws InvalidInputError naming `flag` when it is not a duration or not positive.
 */
export function parseDuration(text: string, flag = "duration"): number {
  const t = text.trim();
  let seconds: number | undefined;
  if (/^\d+(\.\d+)?$/.test(t)) seconds = Number(t);
  else if (/^(\d+(\.\d+)?[smhd])+$/.test(t)) {
    seconds = 0;
    for (const [, n, unit] of t.matchAll(/(\d+(?:\.\d+)?)([smhd])/g))
      seconds += Number(n) * UNIT_SECONDS[unit!]!;
  }
  if (seconds === undefined || !(seconds > 0))
    throw new InvalidInputError(`invalid ${flag} ${JSON.stringify(text)} (nothing was sent)`, [
      "give seconds (90) or a duration such as 90s, 5m, 1h30m or 2d",
    ]);
  return seconds;
}

/**
 * A duration as kubectl shows ages: precise while short, coarser as it grows.
 * @example humanDuration(42_000) // "42s";  humanDuration(330_000) // "5m30s";  humanDuration(3 * 86_400_000) // "3d"
 */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(s / 3600);
  const d = Math.floor(s / 86_400);
  if (s < 120) return `${s}s`;
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (h < 3) return `${m}m`;
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** How long ago an ISO time was, as {@link humanDuration}; `<none>` when there is none. */
export function age(iso: string | null | undefined, now: Date): string {
  if (!iso) return "<none>";
  const t = Date.parse(iso);
  return Number.isNaN(t) ? "<invalid>" : humanDuration(now.getTime() - t);
}
