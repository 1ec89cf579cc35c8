/**
 * What Postgres can store. Its `text` holds no NUL character and its `jsonb` refuses both
 * `\u0000` and an unpaired surrogate (`\ud800` alone). JavaScript strings hold either, so
 * an event whose strings do — a reason, an actor, a label, a command type any publisher
 * sent — made every write of its batch fail, the batch was retried in place forever and
 * every read model stopped (found by test/fuzz). The projection stores such characters as
 * U+FFFD (the replacement character) instead: the log keeps what was sent, the read models
 * what they can hold.
 */

/** A JSON text that may hold something unstorable (escapes are the only way it can). */
const UNSTORABLE_ESCAPE = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i;
// NUL is the one control character Postgres refuses; the rule against them in a regex is about typos.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is exactly what is looked for
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** `s` with every NUL and unpaired surrogate replaced by U+FFFD. */
export function storableString(s: string): string {
  UNSTORABLE.lastIndex = 0;
  return UNSTORABLE.test(s) ? s.replace(UNSTORABLE, "\uFFFD") : s;
}

/**
 * `v` with every string in it (keys too) storable; the same object when nothing had to
 * change, so the common case allocates nothing.
 */
export function storable<T>(v: T): T {
  if (typeof v === "string") return storableString(v) as T;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = storable(v[i]);
      if (x === v[i]) continue;
      out ??= [...v];
      out[i] = x;
    }
    return (out ?? v) as T;
  }
  if (v !== null && typeof v === "object") {
    let changed = false;
    const entries = Object.entries(v).map(([k, x]) => {
      const k2 = storableString(k);
      const x2 = storable(x);
      if (k2 !== k || x2 !== x) changed = true;
      return [k2, x2] as const;
    });
    return (changed ? Object.fromEntries(entries) : v) as T;
  }
  return v;
}

/**
 * A stored message's JSON body, storable: parsed once, and walked only when its text holds
 * an escape that could be unstorable (a NUL or a surrogate), so a clean log costs one regex
 * test per message. @throws SyntaxError when it is not JSON
 */
export function storableBody(m: { string(): string }): unknown {
  const text = m.string();
  const body: unknown = JSON.parse(text);
  return UNSTORABLE_ESCAPE.test(text) ? storable(body) : body;
}
