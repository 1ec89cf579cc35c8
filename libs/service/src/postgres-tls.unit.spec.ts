import { describe, expect, it } from "vitest";
import { postgresUrlWithTls } from "./postgres-tls.ts";

describe("postgresUrlWithTls", () => {
  it("leaves the URL alone without TLS variables", () => {
    expect(postgresUrlWithTls("postgres://cairn:pw@db:5432/cairn", {})).toBe(
      "postgres://cairn:pw@db:5432/cairn",
    );
  });

  it("writes libpq's variables into the URL, verify-full unless a mode is given", () => {
    const url = postgresUrlWithTls("postgres://cairn:pw@db:5432/cairn", {
      PGSSLROOTCERT: "/etc/cairn/ca.pem",
      PGSSLCERT: "/etc/cairn/client.pem",
      PGSSLKEY: "/etc/cairn/client.key",
    });
    const u = new URL(url);
    expect(Object.fromEntries(u.searchParams)).toEqual({
      sslrootcert: "/etc/cairn/ca.pem",
      sslcert: "/etc/cairn/client.pem",
      sslkey: "/etc/cairn/client.key",
      sslmode: "verify-full",
    });
    expect(u.password).toBe("pw");
    expect(
      new URL(postgresUrlWithTls("postgres://db/cairn", { PGSSLMODE: "require" })).searchParams.get(
        "sslmode",
      ),
    ).toBe("require");
  });

  it("keeps what the URL already says", () => {
    const url = postgresUrlWithTls("postgres://db/cairn?sslmode=verify-ca&sslrootcert=/url-ca.pem", {
      PGSSLMODE: "require",
      PGSSLROOTCERT: "/env-ca.pem",
    });
    expect(Object.fromEntries(new URL(url).searchParams)).toEqual({
      sslmode: "verify-ca",
      sslrootcert: "/url-ca.pem",
    });
  });
});
