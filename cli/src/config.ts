/**
 * Where the CLI finds the API and its token. Each setting comes from the first of:
 *   1. a flag (`--api-url`, `--token`),
 *   2. the environment (`CAIRN_API_URL`, `CAIRN_TOKEN`),
 *   3. the config file (`--config`, else `CAIRN_CONFIG`, else
 *      `$XDG_CONFIG_HOME/cairn/config.yaml`, else `~/.config/cairn/config.yaml`),
 *   4. for the URL only: what `cairn up` wrote in its data dir, else http://127.0.0.1:8080.
 * The file is YAML (JSON is YAML too) with the keys `apiUrl` and `token`; an unknown key
 * is refused, so a typo does not silently fall back to the default.
 */
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { defaultApiUrl, recordedApiUrl } from "./api-client.ts";
import { InvalidInputError } from "./errors.ts";

export const configFile = z
  .object({
    apiUrl: z.url().optional().describe("The API's base URL, e.g. https://cairn.example.com"),
    token: z.string().min(1).optional().describe("A bearer token (`cairn token create`)"),
  })
  .strict();
export type ConfigFile = z.infer<typeof configFile>;

export type Source = "flag" | "env" | "file" | "local run" | "default";

export interface CliConfig {
  readonly apiUrl: string;
  readonly token: string | undefined;
  /** Where each setting came from (for `cairn config view` and error messages). */
  readonly from: { readonly apiUrl: Source; readonly token: Source | undefined };
  /** The config file read, if one was. */
  readonly file: string | undefined;
  /** Things worth telling the user (a token file others can read). */
  readonly warnings: readonly string[];
}

export interface ConfigFlags {
  readonly apiUrl?: string | undefined;
  readonly token?: string | undefined;
  readonly config?: string | undefined;
}

/** How the config file is read: its text and mode, or undefined when there is none. */
export type ReadConfigFile = (path: string) => { text: string; mode: number } | undefined;

export const readConfigFromDisk: ReadConfigFile = (path) => {
  try {
    return { text: readFileSync(path, "utf8"), mode: statSync(path).mode };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
};

/** The config file's path: `--config`, `CAIRN_CONFIG`, else the XDG default. */
export function configPath(flags: ConfigFlags, env: NodeJS.ProcessEnv, home = homedir()): string {
  if (flags.config) return flags.config;
  if (env.CAIRN_CONFIG) return env.CAIRN_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(home, ".config"), "cairn", "config.yaml");
}

/**
 * The settings in force. @throws InvalidInputError when a named config file is missing or
 * the file is not valid.
 * @example resolveConfig({ apiUrl: "http://a" }, { CAIRN_API_URL: "http://b" }).apiUrl // "http://a"
 */
export function resolveConfig(
  flags: ConfigFlags,
  env: NodeJS.ProcessEnv = process.env,
  read: ReadConfigFile = readConfigFromDisk,
  home = homedir(),
): CliConfig {
  const path = configPath(flags, env, home);
  const named = Boolean(flags.config || env.CAIRN_CONFIG);
  const raw = read(path);
  if (!raw && named)
    throw new InvalidInputError(`config file ${path} does not exist`, [], {
      hint: `create it with apiUrl: and token: keys, or unset ${flags.config ? "--config" : "CAIRN_CONFIG"}`,
    });
  const file = raw ? parseConfigFile(path, raw.text) : {};
  const warnings: string[] = [];
  if (raw && file.token && (raw.mode & 0o077) !== 0)
    warnings.push(`${path} holds a token and others can read it: chmod 600 ${path}`);

  const nonEmpty = (s: string | undefined) => (s ? s : undefined);
  const urlFrom: [Source, string | undefined][] = [
    ["flag", nonEmpty(flags.apiUrl)],
    ["env", nonEmpty(env.CAIRN_API_URL)],
    ["file", file.apiUrl],
  ];
  urlFrom.push(["local run", recordedApiUrl(env)], ["default", defaultApiUrl(env)]);
  const [urlSource, found] = urlFrom.find(([, v]) => v !== undefined) ?? ["default", undefined];
  const url = found ?? defaultApiUrl(env);
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol))
    throw new InvalidInputError(
      `the API URL ${JSON.stringify(url)} (from ${SOURCE_NAMES[urlSource]}) is not an http(s) URL`,
      [],
      { hint: "give it as http://host:port, e.g. --api-url http://127.0.0.1:8080" },
    );
  const tokenFrom: [Source, string | undefined][] = [
    ["flag", nonEmpty(flags.token)],
    ["env", nonEmpty(env.CAIRN_TOKEN)],
    ["file", file.token],
  ];
  const token = tokenFrom.find(([, v]) => v !== undefined);
  return {
    apiUrl: url.replace(/\/$/, ""),
    token: token?.[1],
    from: { apiUrl: urlSource, token: token?.[0] },
    file: raw ? path : undefined,
    warnings,
  };
}

const SOURCE_NAMES: Record<Source, string> = {
  flag: "--api-url",
  env: "CAIRN_API_URL",
  file: "the config file",
  "local run": "the data dir's endpoints.json",
  default: "the default",
};

function parseConfigFile(path: string, text: string): ConfigFile {
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (err) {
    throw new InvalidInputError(`config file ${path} is not YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const parsed = configFile.safeParse(doc);
  if (!parsed.success)
    throw new InvalidInputError(
      `config file ${path} is invalid`,
      parsed.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`),
      { hint: "it takes the keys apiUrl and token" },
    );
  return parsed.data;
}
