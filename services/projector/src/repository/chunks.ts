/** Postgres takes at most 65,535 bind parameters per statement: multi-row inserts are cut to fit. */
const MAX_PARAMETERS = 60_000;

export function chunksFor<T>(rows: readonly T[], columns: number): T[][] {
  const size = Math.max(1, Math.floor(MAX_PARAMETERS / columns));
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}
