// The API as the page uses it: JSON calls with the bearer token, every page of a list,
// and the live stream of read-model changes.
import { parseSse } from "./sse.js";

const TOKEN_KEY = "cairn.token";

/** The token lives in this tab's session storage only: closing the tab forgets it. */
export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? undefined,
  set: (t) => sessionStorage.setItem(TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An API answer other than 2xx: its status and the body's message (and issues, on a 400). */
export class ApiError extends Error {
  constructor(status, body) {
    const issues = Array.isArray(body?.issues) ? `: ${body.issues.join("; ")}` : "";
    super(`${body?.message ?? `the API answered ${status}`}${issues}`);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

function headers(extra = {}) {
  const t = token.get();
  return { accept: "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra };
}

/**
 * One call; resolves with the JSON body of a 2xx answer.
 * @throws ApiError on any other status (401: the token is missing or unknown).
 */
export async function call(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = { message: text };
  }
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export const get = (path) => call("GET", path);

/** Every item of a paged list (`items` + `nextCursor`), following the cursor. */
export async function getAll(path, limit = 500) {
  const items = [];
  let cursor;
  const sep = path.includes("?") ? "&" : "?";
  for (let page = 0; page < 100; page++) {
    const q = `${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const body = await get(`${path}${q}`);
    items.push(...body.items);
    cursor = body.nextCursor;
    if (!cursor) break;
  }
  return items;
}

/**
 * Follows `GET /events/stream` for as long as the page wants it, reconnecting after a
 * drop (the server's `retry`, doubled up to 30 s while it keeps failing). EventSource
 * cannot send an Authorization header, so this reads the stream with fetch.
 *
 * - `onOpen()` on every (re)connection: the page reloads what it shows, since changes
 *   made while it was away are not replayed;
 * - `onChange({ resource, id, sequence, data })` for every change;
 * - `onStatus("live" | "connecting" | "offline", detail)`;
 * - `onUnauthorized()` when the token is refused (no reconnect then).
 * @returns a function that stops it.
 */
export function follow({ onOpen, onChange, onStatus, onUnauthorized }) {
  const ctl = new AbortController();
  let retryMs = 3000;
  let failures = 0;
  const run = async () => {
    while (!ctl.signal.aborted) {
      onStatus("connecting");
      try {
        const res = await fetch("/events/stream", {
          headers: headers({ accept: "text/event-stream" }),
          signal: ctl.signal,
          cache: "no-store",
        });
        if (res.status === 401 || res.status === 403) return onUnauthorized();
        if (!res.ok || !res.body) throw new Error(`the stream answered ${res.status}`);
        failures = 0;
        onStatus("live");
        await onOpen();
        for await (const msg of parseSse(res.body)) {
          if (msg.retry !== undefined) retryMs = msg.retry;
          if (msg.event !== "change" || !msg.data) continue;
          try {
            onChange(JSON.parse(msg.data));
          } catch (err) {
            console.warn("dashboard: a change could not be applied", err);
          }
        }
        if (ctl.signal.aborted) return;
        onStatus("offline", "the stream ended");
      } catch (err) {
        if (ctl.signal.aborted) return;
        failures += 1;
        onStatus("offline", err instanceof Error ? err.message : String(err));
      }
      const wait = Math.min(30_000, retryMs * 2 ** Math.max(0, failures - 1));
      await new Promise((r) => setTimeout(r, wait));
    }
  };
  void run();
  return () => ctl.abort();
}
