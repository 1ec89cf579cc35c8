import { describe, expect, it } from "vitest";
import { type ReadConfigFile, resolveConfig } from "./config.ts";
import { InvalidInputError } from "./errors.ts";

const HOME = "/home/alice";
const DEFAULT_FILE = "/home/alice/.config/cairn/config.yaml";
/** Files by path, mode 0600 unless given. */
const files =
  (fs: Record<string, string | { text: string; mode: number }>): ReadConfigFile =>
  (path) => {
    const f = fs[path];
    return f === undefined ? undefined : typeof f === "string" ? { text: f, mode: 0o100600 } : f;
  };
// A data dir where `cairn up` never ran, so the local-run fallback finds nothing.
const env = (e: Record<string, string> = {}) => ({ CAIRN_DATA_DIR: "/nonexistent/cairn", ...e });

describe("config precedence: flags > env > file > local run > default", () => {
  const file = files({ [DEFAULT_FILE]: "apiUrl: http://file:8080\ntoken: file-token\n" });

  it("a flag wins over the environment and the file", () => {
    const c = resolveConfig(
      { apiUrl: "http://flag:1", token: "flag-token" },
      env({ CAIRN_API_URL: "http://env:2", CAIRN_TOKEN: "env-token" }),
      file,
      HOME,
    );
    expect(c).toMatchObject({
      apiUrl: "http://flag:1",
      token: "flag-token",
      from: { apiUrl: "flag", token: "flag" },
    });
  });

  it("the environment wins over the file", () => {
    const c = resolveConfig(
      {},
      env({ CAIRN_API_URL: "http://env:2/", CAIRN_TOKEN: "env-token" }),
      file,
      HOME,
    );
    expect(c).toMatchObject({
      apiUrl: "http://env:2",
      token: "env-token",
      from: { apiUrl: "env", token: "env" },
    });
  });

  it("the file fills in what flags and environment leave out, each setting on its own", () => {
    const c = resolveConfig({}, env({ CAIRN_API_URL: "http://env:2" }), file, HOME);
    expect(c).toMatchObject({
      apiUrl: "http://env:2",
      token: "file-token",
      from: { apiUrl: "env", token: "file" },
      file: DEFAULT_FILE,
    });
  });

  it("without any of them: the default API on loopback (CAIRN_API_PORT), no token", () => {
    const c = resolveConfig({}, env({ CAIRN_API_PORT: "9090" }), files({}), HOME);
    expect(c).toMatchObject({
      apiUrl: "http://127.0.0.1:9090",
      token: undefined,
      from: { apiUrl: "default" },
    });
    expect(c.file).toBeUndefined();
  });

  it("an empty value counts as not given", () => {
    const c = resolveConfig({}, env({ CAIRN_API_URL: "", CAIRN_TOKEN: "" }), file, HOME);
    expect(c).toMatchObject({ from: { apiUrl: "file", token: "file" } });
  });
});

describe("the config file", () => {
  it("is found through --config, else CAIRN_CONFIG, else XDG_CONFIG_HOME", () => {
    const fs = files({
      "/a.yaml": "apiUrl: http://a:1",
      "/b.yaml": "apiUrl: http://b:1",
      "/xdg/cairn/config.yaml": "apiUrl: http://xdg:1",
    });
    expect(resolveConfig({ config: "/a.yaml" }, env({ CAIRN_CONFIG: "/b.yaml" }), fs, HOME).apiUrl).toBe(
      "http://a:1",
    );
    expect(resolveConfig({}, env({ CAIRN_CONFIG: "/b.yaml" }), fs, HOME).apiUrl).toBe("http://b:1");
    expect(resolveConfig({}, env({ XDG_CONFIG_HOME: "/xdg" }), fs, HOME).apiUrl).toBe("http://xdg:1");
  });

  it("named but missing is an error; the default one missing is not", () => {
    expect(() => resolveConfig({ config: "/missing.yaml" }, env(), files({}), HOME)).toThrow(
      /config file \/missing.yaml does not exist/,
    );
    expect(() => resolveConfig({}, env(), files({}), HOME)).not.toThrow();
  });

  it("refuses an unknown key (a typo does not silently fall back) and a bad URL", () => {
    const typo = () => resolveConfig({}, env(), files({ [DEFAULT_FILE]: "api_url: http://x:1" }), HOME);
    expect(typo).toThrow(InvalidInputError);
    try {
      typo();
    } catch (err) {
      expect((err as InvalidInputError).issues.join()).toMatch(/api_url/);
    }
    expect(() => resolveConfig({}, env(), files({ [DEFAULT_FILE]: "apiUrl: nope" }), HOME)).toThrow(
      /invalid/,
    );
    expect(() => resolveConfig({ apiUrl: "ftp://x" }, env(), files({}), HOME)).toThrow(
      /--api-url.*not an http/,
    );
  });

  it("takes JSON too, and warns when others can read the token in it", () => {
    const open = files({ [DEFAULT_FILE]: { text: '{"token": "t"}', mode: 0o100644 } });
    const c = resolveConfig({}, env(), open, HOME);
    expect(c.token).toBe("t");
    expect(c.warnings).toEqual([
      `${DEFAULT_FILE} holds a token and others can read it: chmod 600 ${DEFAULT_FILE}`,
    ]);
    expect(resolveConfig({}, env(), files({ [DEFAULT_FILE]: '{"token": "t"}' }), HOME).warnings).toEqual([]);
  });
});
