import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** `CAIRN_API_URL`, else what `cairn up` wrote in the data dir, else the default port on loopback. */
export function apiUrl(env = process.env): string {
  if (env.CAIRN_API_URL) return env.CAIRN_API_URL.replace(/\/$/, "");
  try {
    const endpoints = JSON.parse(
      readFileSync(join(resolve(env.CAIRN_DATA_DIR ?? ".cairn"), "endpoints.json"), "utf8"),
    );
    if (typeof endpoints.apiUrl === "string") return endpoints.apiUrl;
  } catch {
    // no local run recorded
  }
  return `http://127.0.0.1:${env.CAIRN_API_PORT ?? 8080}`;
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    const b = body as { message?: string; error?: string; issues?: string[] } | undefined;
    super(
      `${status}: ${b?.message ?? b?.error ?? JSON.stringify(body)}${b?.issues ? `\n  ${b.issues.join("\n  ")}` : ""}`,
    );
    this.status = status;
    this.body = body;
  }
}

/** A thin JSON client for the query API and the command endpoint. */
export function apiClient(base = apiUrl(), token = process.env.CAIRN_TOKEN) {
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new Error(`cannot reach the Cairn API at ${base} (is \`npm start\` running?)`, { cause: err });
    }
    const text = await res.text();
    const parsed = text ? JSON.parse(text) : undefined;
    if (!res.ok) throw new ApiError(res.status, parsed);
    return parsed as T;
  };
  return {
    base,
    get: <T>(path: string) => call<T>("GET", path),
    post: <T>(path: string, body: unknown) => call<T>("POST", path, body),
  };
}
