/**
 * Polls `f` until it gives something other than `undefined` or `false`, and returns it:
 * how a test waits for an eventual outcome (a reactor's event, a state on the sim)
 * without asserting on time. Fails after `ms`, naming what it waited for.
 *
 * @example const ready = await until("demo-1 Ready", async () => (await status()) === "Ready" || undefined);
 */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 30_000,
  everyMs = 25,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
