/**
 * TLS to Postgres reaches the driver: the projector's DATABASE_URL, with libpq's variables written
 * into it (postgresUrlWithTls), is what node-postgres parses into its `ssl` options (the files read).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { postgresUrlWithTls } from "@cairn/service";
import { parse } from "pg-connection-string";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-pg-tls-"));
  await writeFile(join(dir, "ca.pem"), "CA-PEM");
  await writeFile(join(dir, "client.pem"), "CLIENT-PEM");
  await writeFile(join(dir, "client.key"), "CLIENT-KEY");
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("Postgres TLS from PGSSL* variables", () => {
  it("gives node-postgres the CA, the client certificate and key, verifying the server", () => {
    const url = postgresUrlWithTls("postgres://cairn:pw@db.example.com:5432/cairn", {
      PGSSLROOTCERT: join(dir, "ca.pem"),
      PGSSLCERT: join(dir, "client.pem"),
      PGSSLKEY: join(dir, "client.key"),
    });
    const config = parse(url);
    expect(config.ssl).toMatchObject({ ca: "CA-PEM", cert: "CLIENT-PEM", key: "CLIENT-KEY" });
    // verify-full: the certificate chain and the host name are checked (no rejectUnauthorized: false).
    expect(config.ssl).not.toHaveProperty("rejectUnauthorized", false);
    expect(config.host).toBe("db.example.com");
  });

  it("is off without them", () => {
    expect(parse(postgresUrlWithTls("postgres://cairn:pw@db:5432/cairn", {})).ssl).toBeUndefined();
  });
});
