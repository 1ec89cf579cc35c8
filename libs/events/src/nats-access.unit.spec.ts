import { createUser, fromPublic } from "@nats-io/nkeys";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_NATS_URL,
  describeNatsAccess,
  NatsAccessError,
  natsConnectOptions,
  resolveNatsAccess,
} from "./nats-access.ts";

const files = (contents: Record<string, string>) => (path: string) => {
  const c = contents[path];
  if (c === undefined) throw new Error(`ENOENT: no such file, open '${path}'`);
  return new TextEncoder().encode(c);
};

describe("resolveNatsAccess: who a service logs in as", () => {
  it("takes a user and password out of NATS_URL, for every server, and keeps them out of the servers", () => {
    const access = resolveNatsAccess({ NATS_URL: "nats://provisioner:s3cret@nats-1:4222, nats-2:4222" });
    expect(access).toEqual({
      servers: ["nats://nats-1:4222", "nats://nats-2:4222"],
      auth: { kind: "password", user: "provisioner", pass: "s3cret", from: "url" },
    });
  });

  it("decodes a percent-encoded password in the URL", () => {
    const access = resolveNatsAccess({ NATS_URL: "nats://node-ops:a%2Fb%40c@127.0.0.1:4222" });
    expect(access.auth).toEqual({ kind: "password", user: "node-ops", pass: "a/b@c", from: "url" });
  });

  it("takes NATS_USER and NATS_PASSWORD", () => {
    const access = resolveNatsAccess({
      NATS_URL: "nats://a:4222,nats://b:4222,nats://c:4222",
      NATS_USER: "installer",
      NATS_PASSWORD: "pw",
    });
    expect(access.auth).toEqual({ kind: "password", user: "installer", pass: "pw", from: "env" });
    expect(access.servers).toHaveLength(3);
  });

  it("takes a creds file", () => {
    expect(resolveNatsAccess({ NATS_CREDS: "/run/secrets/provisioner.creds" })).toEqual({
      servers: [DEFAULT_NATS_URL],
      auth: { kind: "creds", file: "/run/secrets/provisioner.creds" },
    });
  });

  it("without any, connects anonymously to the local default (npm start)", () => {
    expect(resolveNatsAccess({})).toEqual({ servers: [DEFAULT_NATS_URL], auth: { kind: "none" } });
    expect(resolveNatsAccess({ NATS_URL: "", NATS_USER: "" }).auth).toEqual({ kind: "none" });
  });

  it("refuses two ways at once, naming both, and never echoes a value", () => {
    const cases = [
      [
        { NATS_URL: "nats://p:topsecret@h:4222", NATS_USER: "p", NATS_PASSWORD: "topsecret" },
        /NATS_USER\/NATS_PASSWORD and a user in NATS_URL/,
      ],
      [
        { NATS_CREDS: "/x.creds", NATS_USER: "p", NATS_PASSWORD: "topsecret" },
        /NATS_CREDS and NATS_USER\/NATS_PASSWORD/,
      ],
      [{ NATS_CREDS: "/x.creds", NATS_URL: "nats://p:topsecret@h" }, /NATS_CREDS and a user in NATS_URL/],
    ] as const;
    for (const [settings, message] of cases) {
      const err = (() => {
        try {
          resolveNatsAccess(settings);
        } catch (e) {
          return e as Error;
        }
      })();
      expect(err).toBeInstanceOf(NatsAccessError);
      expect(err?.message).toMatch(message);
      expect(err?.message).not.toContain("topsecret");
    }
  });

  it("refuses half a login", () => {
    expect(() => resolveNatsAccess({ NATS_USER: "p" })).toThrow("NATS_USER is set but NATS_PASSWORD is not");
    expect(() => resolveNatsAccess({ NATS_PASSWORD: "x" })).toThrow(
      "NATS_PASSWORD is set but NATS_USER is not",
    );
    expect(() => resolveNatsAccess({ NATS_URL: "nats://p@h:4222" })).toThrow(/user without a password/);
    expect(() => resolveNatsAccess({ NATS_URL: "nats://:pw@h:4222" })).toThrow(/password without a user/);
  });

  it("refuses a URL it cannot read without echoing it", () => {
    expect(() => resolveNatsAccess({ NATS_URL: "nats://p:sec ret@[bad" })).toThrow(NatsAccessError);
    try {
      resolveNatsAccess({ NATS_URL: "nats://p:sec ret@[bad" });
    } catch (e) {
      expect((e as Error).message).not.toContain("sec ret");
    }
  });

  it("turns TLS on for a tls:// URL or any TLS file; a certificate needs its key", () => {
    expect(resolveNatsAccess({ NATS_URL: "tls://nats:4222" }).tls).toEqual({});
    expect(resolveNatsAccess({ NATS_CA: "/ca.pem" }).tls).toEqual({ caFile: "/ca.pem" });
    expect(resolveNatsAccess({ NATS_CA: "/ca.pem", NATS_CERT: "/c.pem", NATS_KEY: "/k.pem" }).tls).toEqual({
      caFile: "/ca.pem",
      certFile: "/c.pem",
      keyFile: "/k.pem",
    });
    expect(resolveNatsAccess({}).tls).toBeUndefined();
    expect(() => resolveNatsAccess({ NATS_CERT: "/c.pem" })).toThrow(/NATS_CERT and NATS_KEY go together/);
    expect(() => resolveNatsAccess({ NATS_KEY: "/k.pem" })).toThrow(/NATS_CERT and NATS_KEY go together/);
  });
});

describe("describeNatsAccess: what may be logged", () => {
  it("names the servers and the user, never the password", () => {
    const shown = describeNatsAccess(resolveNatsAccess({ NATS_URL: "nats://projector:hunter2@nats-1:4222" }));
    expect(shown).toEqual({ nats: "nats://nats-1:4222", natsUser: "projector", natsTls: false });
    expect(JSON.stringify(shown)).not.toContain("hunter2");
    expect(describeNatsAccess(resolveNatsAccess({ NATS_CREDS: "/x.creds", NATS_CA: "/ca" }))).toEqual({
      nats: DEFAULT_NATS_URL,
      natsUser: "(creds file)",
      natsTls: true,
    });
  });
});

describe("natsConnectOptions: what nats.js is given", () => {
  it("passes a user and password as options (nats.js ignores them in a URL)", () => {
    const opts = natsConnectOptions(resolveNatsAccess({ NATS_URL: "nats://provisioner:pw@h:4222" }));
    expect(opts).toEqual({ servers: ["nats://h:4222"], user: "provisioner", pass: "pw" });
  });

  it("signs the server's nonce with the creds file's seed and sends its JWT, re-reading the file each time", () => {
    const user = createUser();
    const jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln"; // any JWT: the server checks it
    const creds = (seed: string) =>
      `-----BEGIN NATS USER JWT-----\n${jwt}\n------END NATS USER JWT------\n\n` +
      `-----BEGIN USER NKEY SEED-----\n${seed}\n------END USER NKEY SEED------\n`;
    const contents: Record<string, string> = { "/creds": creds(new TextDecoder().decode(user.getSeed())) };
    const opts = natsConnectOptions(resolveNatsAccess({ NATS_CREDS: "/creds" }), files(contents));
    expect(opts.user).toBeUndefined();
    const auth = opts.authenticator;
    if (typeof auth !== "function") throw new Error("no authenticator for a creds file");
    const nonce = "a-nonce";
    const answer = auth(nonce) as { nkey: string; sig: string; jwt: string };
    expect(answer.jwt).toBe(jwt);
    expect(answer.nkey).toBe(user.getPublicKey());
    const sig = Uint8Array.from(atob(answer.sig.replaceAll("-", "+").replaceAll("_", "/")), (c) =>
      c.charCodeAt(0),
    );
    expect(fromPublic(answer.nkey).verify(new TextEncoder().encode(nonce), sig)).toBe(true);
    // Rotated on disk: the next connect uses the new one.
    const rotated = createUser();
    contents["/creds"] = creds(new TextDecoder().decode(rotated.getSeed()));
    expect((auth(nonce) as { nkey: string }).nkey).toBe(rotated.getPublicKey());
  });

  it("fails at once, naming the variable and the file, when a file cannot be read", () => {
    expect(() => natsConnectOptions(resolveNatsAccess({ NATS_CREDS: "/nope.creds" }), files({}))).toThrow(
      /NATS_CREDS: cannot read \/nope.creds/,
    );
    expect(() => natsConnectOptions(resolveNatsAccess({ NATS_CA: "/ca.pem" }), files({}))).toThrow(
      /NATS_CA: cannot read \/ca.pem/,
    );
  });

  it("hands the TLS files to nats.js", () => {
    const opts = natsConnectOptions(
      resolveNatsAccess({ NATS_URL: "tls://h:4222", NATS_CA: "/ca", NATS_CERT: "/c", NATS_KEY: "/k" }),
      files({ "/ca": "x", "/c": "y", "/k": "z" }),
    );
    expect(opts).toEqual({
      servers: ["tls://h:4222"],
      tls: { caFile: "/ca", certFile: "/c", keyFile: "/k" },
    });
  });
});
