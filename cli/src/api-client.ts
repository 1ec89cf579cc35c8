import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** `CAIRN_API_URL`, else what `cairn up` wrote in the data dir, else the default port on loopback. */
export function apiUrl(env = process.env): string {
  if (env.CAIRN_API_URL) return env.CAIRN_API_URL.replace(/\/$/, "");
  return recordedApiUrl(env) ?? defaultApiUrl(env);
}

/** What `cairn up` wrote in the data dir (`<CAIRN_DATA_DIR>/endpoints.json`), if it ran here. */
export function recordedApiUrl(env = process.env): string | undefined {
  try {
    const endpoints = JSON.parse(
      readFileSync(join(resolve(env.CAIRN_DATA_DIR ?? ".cairn"), "endpoints.json"), "utf8"),
    );
    if (typeof endpoints.apiUrl === "string") return endpoints.apiUrl;
  } catch {
    // no local run recorded
  }
  return undefined;
}

/** The API's default place: loopback, `CAIRN_API_PORT` (8080). */
export const defaultApiUrl = (env = process.env) => `http://127.0.0.1:${env.CAIRN_API_PORT ?? 8080}`;

/** An answer of the API that is not 2xx, with its body: `{ error, message, issues?, code? }`. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const b = body as { message?: string; error?: string; issues?: string[] } | undefined;
    super(
      `${b?.message ?? b?.error ?? JSON.stringify(body) ?? "no answer"} (HTTP ${status})${b?.issues ? `\n  ${b.issues.join("\n  ")}` : ""}`,
    );
    this.status = status;
    this.body = body;
  }
  /** The rejection's code the API answered with (`over-quota`, `conflict`…), if any. */
  get code(): string | undefined {
    const c = (this.body as { code?: unknown } | undefined)?.code;
    return typeof c === "string" ? c : undefined;
  }
}

export const isApiError = (err: unknown, status?: number): err is ApiError =>
  err instanceof ApiError && (status === undefined || err.status === status);

/** The API could not be reached at all (refused, reset, timed out). */
export class ApiUnreachableError extends Error {
  override readonly name = "ApiUnreachableError";
  readonly hint: string;
  constructor(base: string, cause: unknown) {
    super(`cannot reach the Cairn API at ${base}`, { cause });
    this.hint = "start it with `npm start`, or point the CLI at it with --api-url or CAIRN_API_URL";
  }
}

export interface ApiClientOptions {
  /** Give up on one request after this long (not on streams). Default 30 s. */
  readonly requestTimeoutMs?: number;
}

export type ApiClient = ReturnType<typeof apiClient>;

/** A thin JSON client for the query API and the command endpoint. */
export function apiClient(base = apiUrl(), token = process.env.CAIRN_TOKEN, o: ApiClientOptions = {}) {
  const root = base.replace(/\/$/, "");
  const headers = (body: boolean, extra: Record<string, string> = {}) => ({
    ...(body ? { "content-type": "application/json" } : {}),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...extra,
  });
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(`${root}${path}`, {
        method,
        headers: headers(body !== undefined),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(o.requestTimeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new ApiUnreachableError(root, err);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // A proxy's HTML error page, say: keep its start for the message.
      parsed = { message: text.slice(0, 200) };
    }
    if (!res.ok) throw new ApiError(res.status, parsed);
    return parsed as T;
  };
  return {
    base: root,
    get: <T>(path: string) => call<T>("GET", path),
    post: <T>(path: string, body: unknown) => call<T>("POST", path, body),
    delete: <T>(path: string) => call<T>("DELETE", path),
    /** Opens a server-sent event stream; the caller reads `body` and aborts with `signal`. */
    async stream(path: string, signal: AbortSignal): Promise<Response> {
      let res: Response;
      try {
        res = await fetch(`${root}${path}`, {
          headers: headers(false, { accept: "text/event-stream" }),
          signal,
        });
      } catch (err) {
        throw new ApiUnreachableError(root, err);
      }
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => undefined));
      return res;
    },
  };
}
