/**
 * TLS to Postgres from libpq's own variables, so an operator sets it as for psql:
 *
 * | variable        | what                                                                        |
 * | --------------- | --------------------------------------------------------------------------- |
 * | `PGSSLMODE`     | `require`, `verify-ca` or `verify-full` (node-postgres treats all three as verify-full unless the URL says `uselibpqcompat=true`) |
 * | `PGSSLROOTCERT` | PEM file of the CA that signed the server's certificate                    |
 * | `PGSSLCERT`     | PEM client certificate, for servers that verify clients (with `PGSSLKEY`)   |
 * | `PGSSLKEY`      | its private key                                                             |
 *
 * node-postgres reads `sslmode`, `sslrootcert`, `sslcert` and `sslkey` from the connection
 * string (reading the files) but not these variables, so they are written into `DATABASE_URL`;
 * what the URL already says wins. Every connection the projector opens (its pool, replay's
 * dedicated connections) then uses TLS. Pure.
 */
import type { Env } from "./config.ts";

const PARAMS = [
  ["PGSSLMODE", "sslmode"],
  ["PGSSLROOTCERT", "sslrootcert"],
  ["PGSSLCERT", "sslcert"],
  ["PGSSLKEY", "sslkey"],
] as const;

/** The variables {@link postgresUrlWithTls} reads. */
export const POSTGRES_TLS_VARIABLES = PARAMS.map(([v]) => v);

/**
 * `url` with the TLS settings of `env` added as query parameters (those the URL does not set).
 * A file given without `PGSSLMODE` implies `verify-full`.
 * @example
 * postgresUrlWithTls("postgres://cairn@db/cairn", { PGSSLROOTCERT: "/etc/cairn/pg-ca.pem" })
 * // "postgres://cairn@db/cairn?sslrootcert=%2Fetc%2Fcairn%2Fpg-ca.pem&sslmode=verify-full"
 */
export function postgresUrlWithTls(url: string, env: Env): string {
  const given = PARAMS.filter(([v]) => env[v] !== undefined && env[v] !== "");
  if (given.length === 0) return url;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Left as it is: the driver names the problem (and this never echoes a password).
    return url;
  }
  for (const [variable, param] of given) {
    if (!u.searchParams.has(param)) u.searchParams.set(param, env[variable] as string);
  }
  if (!u.searchParams.has("sslmode")) u.searchParams.set("sslmode", "verify-full");
  return u.toString();
}
