/**
 * How a process reaches NATS: the servers, who it is (its own NATS user) and TLS, from the
 * variables the `nats` CLI also reads:
 *
 * | variable        | what                                                                              |
 * | --------------- | --------------------------------------------------------------------------------- |
 * | `NATS_URL`      | one or more comma-separated URLs; `nats://user:password@host:4222` names a user    |
 * | `NATS_USER`     | the user (with `NATS_PASSWORD`), instead of writing it in the URL                  |
 * | `NATS_PASSWORD` | its password                                                                      |
 * | `NATS_CREDS`    | a creds file (a user JWT and its nkey seed), for NATS in operator/JWT mode         |
 * | `NATS_CA`       | a PEM file of the CA that signed the servers' certificates: TLS on, servers checked |
 * | `NATS_CERT`     | a PEM client certificate (with `NATS_KEY`), for servers that verify clients        |
 * | `NATS_KEY`      | its private key                                                                   |
 *
 * One way to log in at a time: a creds file, a user and password in the environment, or a user
 * and password in the URL. Two at once is refused, naming both, rather than one silently
 * winning. nats.js itself ignores `user:password@` in a server URL, hence this module.
 *
 * Pure except {@link natsConnectOptions}, which reads the files (and re-reads a creds file at
 * every reconnect, so a rotated file is picked up without a restart).
 */
import { readFileSync } from "node:fs";
import { type ConnectionOptions, credsAuthenticator } from "@nats-io/transport-node";

/** The settings as the environment gives them; unset and empty are the same. */
export interface NatsAccessSettings {
  readonly NATS_URL?: string | undefined;
  readonly NATS_USER?: string | undefined;
  readonly NATS_PASSWORD?: string | undefined;
  readonly NATS_CREDS?: string | undefined;
  readonly NATS_CA?: string | undefined;
  readonly NATS_CERT?: string | undefined;
  readonly NATS_KEY?: string | undefined;
}

/** Who the connection logs in as. Never logged whole: see {@link describeNatsAccess}. */
export type NatsAuth =
  | { readonly kind: "none" }
  | { readonly kind: "password"; readonly user: string; readonly pass: string; readonly from: "env" | "url" }
  | { readonly kind: "creds"; readonly file: string };

export interface NatsTlsFiles {
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
}

/** Everything needed to connect, resolved and checked. */
export interface NatsAccess {
  /** Server URLs without user info. */
  readonly servers: readonly string[];
  readonly auth: NatsAuth;
  /** Present when TLS is asked for (a `tls://` URL or any of the TLS files). */
  readonly tls?: NatsTlsFiles;
}

/** The NATS settings are contradictory or incomplete; `message` says which variables and why. */
export class NatsAccessError extends Error {
  override readonly name = "NatsAccessError";
}

/** The local default, as `npm start` runs NATS. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

const present = (s: string | undefined): s is string => s !== undefined && s !== "";

/**
 * Splits `NATS_URL` (one or more comma-separated URLs) into servers and the user and
 * password written in them (`nats://provisioner:secret@nats:4222`): nats.js does not
 * read credentials from a URL, so they are handed over as options and never logged.
 * @example natsServers("nats://p:s@a:4222,b:4222") // { servers: ["nats://a:4222", "nats://b:4222"], user: "p", pass: "s", display: "nats://a:4222,nats://b:4222" }
 */
export function natsServers(url: string): {
  servers: string[];
  user?: string;
  pass?: string;
  display: string;
} {
  let user: string | undefined;
  let pass: string | undefined;
  const servers = url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const withScheme = s.includes("://") ? s : `nats://${s}`;
      let u: URL;
      try {
        u = new URL(withScheme);
      } catch {
        // Never echo the text: it may hold a password.
        throw new NatsAccessError("NATS_URL: a server URL in it is not a URL (e.g. nats://host:4222)");
      }
      if (u.username) user = decodeURIComponent(u.username);
      if (u.password) pass = decodeURIComponent(u.password);
      return `${u.protocol}//${u.host}`;
    });
  if (servers.length === 0) throw new NatsAccessError("NATS_URL: names no server");
  return { servers, ...(user ? { user } : {}), ...(pass ? { pass } : {}), display: servers.join(",") };
}

/**
 * Resolves and checks the settings. Throws {@link NatsAccessError} (never echoing a value) when
 * they contradict each other or are incomplete.
 * @example
 * resolveNatsAccess({ NATS_URL: "nats://nats-1:4222", NATS_USER: "provisioner", NATS_PASSWORD: "…" })
 * // { servers: ["nats://nats-1:4222"], auth: { kind: "password", user: "provisioner", pass: "…", from: "env" } }
 */
export function resolveNatsAccess(settings: NatsAccessSettings): NatsAccess {
  const url = present(settings.NATS_URL) ? settings.NATS_URL : DEFAULT_NATS_URL;
  const parsed = natsServers(url);
  const ways: string[] = [];
  if (present(settings.NATS_CREDS)) ways.push("NATS_CREDS");
  if (present(settings.NATS_USER) || present(settings.NATS_PASSWORD)) ways.push("NATS_USER/NATS_PASSWORD");
  if (parsed.user !== undefined || parsed.pass !== undefined) ways.push("a user in NATS_URL");
  if (ways.length > 1) throw new NatsAccessError(`give one way to log in to NATS, not ${ways.join(" and ")}`);

  let auth: NatsAuth = { kind: "none" };
  if (present(settings.NATS_CREDS)) auth = { kind: "creds", file: settings.NATS_CREDS };
  else if (present(settings.NATS_USER) || present(settings.NATS_PASSWORD)) {
    if (!present(settings.NATS_USER)) throw new NatsAccessError("NATS_PASSWORD is set but NATS_USER is not");
    if (!present(settings.NATS_PASSWORD))
      throw new NatsAccessError("NATS_USER is set but NATS_PASSWORD is not");
    auth = { kind: "password", user: settings.NATS_USER, pass: settings.NATS_PASSWORD, from: "env" };
  } else if (parsed.user !== undefined) {
    if (parsed.pass === undefined)
      throw new NatsAccessError("NATS_URL names a user without a password (nats://user:password@host)");
    auth = { kind: "password", user: parsed.user, pass: parsed.pass, from: "url" };
  } else if (parsed.pass !== undefined) {
    throw new NatsAccessError("NATS_URL holds a password without a user (nats://user:password@host)");
  }

  if (present(settings.NATS_CERT) !== present(settings.NATS_KEY))
    throw new NatsAccessError("NATS_CERT and NATS_KEY go together: a client certificate needs its key");
  const tlsWanted =
    parsed.servers.some((s) => s.startsWith("tls://")) ||
    present(settings.NATS_CA) ||
    present(settings.NATS_CERT);
  const tls: NatsTlsFiles | undefined = tlsWanted
    ? {
        ...(present(settings.NATS_CA) ? { caFile: settings.NATS_CA } : {}),
        ...(present(settings.NATS_CERT) ? { certFile: settings.NATS_CERT } : {}),
        ...(present(settings.NATS_KEY) ? { keyFile: settings.NATS_KEY } : {}),
      }
    : undefined;
  return { servers: parsed.servers, auth, ...(tls ? { tls } : {}) };
}

/**
 * What may be logged about the access: the servers without user info, the user's name (not a
 * secret) and whether TLS is on. Never the password, the creds or the key.
 * @example describeNatsAccess(access) // { nats: "nats://nats-1:4222", natsUser: "provisioner", natsTls: true }
 */
export function describeNatsAccess(access: NatsAccess): {
  nats: string;
  natsUser?: string;
  natsTls: boolean;
} {
  const natsUser =
    access.auth.kind === "password"
      ? access.auth.user
      : access.auth.kind === "creds"
        ? "(creds file)"
        : undefined;
  return {
    nats: access.servers.join(","),
    ...(natsUser ? { natsUser } : {}),
    natsTls: access.tls !== undefined,
  };
}

/**
 * The nats.js connection options for `access`. Reads the creds file once now (so a missing or
 * unreadable file fails the start with its name) and again at every (re)connect.
 * Throws {@link NatsAccessError}.
 */
export function natsConnectOptions(
  access: NatsAccess,
  read: (path: string) => Uint8Array = (p) => readFileSync(p),
): Pick<ConnectionOptions, "servers" | "user" | "pass" | "authenticator" | "tls"> {
  const out: Pick<ConnectionOptions, "servers" | "user" | "pass" | "authenticator" | "tls"> = {
    servers: [...access.servers],
  };
  if (access.auth.kind === "password") {
    out.user = access.auth.user;
    out.pass = access.auth.pass;
  } else if (access.auth.kind === "creds") {
    const file = access.auth.file;
    const readCreds = () => {
      try {
        return read(file);
      } catch (err) {
        throw new NatsAccessError(`NATS_CREDS: cannot read ${file} (${(err as Error).message})`, {
          cause: err,
        });
      }
    };
    readCreds();
    out.authenticator = credsAuthenticator(readCreds);
  }
  if (access.tls) {
    for (const [variable, file] of [
      ["NATS_CA", access.tls.caFile],
      ["NATS_CERT", access.tls.certFile],
      ["NATS_KEY", access.tls.keyFile],
    ] as const) {
      if (file === undefined) continue;
      try {
        read(file);
      } catch (err) {
        throw new NatsAccessError(`${variable}: cannot read ${file} (${(err as Error).message})`, {
          cause: err,
        });
      }
    }
    out.tls = { ...access.tls };
  }
  return out;
}
