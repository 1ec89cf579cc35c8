/**
 * What every command that talks to the API starts from: the settings in force (flags,
 * environment, config file: config.ts) and a client built from them.
 */
import type { Command } from "commander";
import { type ApiClient, apiClient } from "./api-client.ts";
import { type CliConfig, resolveConfig } from "./config.ts";

/** The global options, as commander hands them to any subcommand. */
export interface GlobalOptions {
  readonly apiUrl?: string;
  readonly token?: string;
  readonly config?: string;
}

export interface Context {
  readonly config: CliConfig;
  readonly api: ApiClient;
  /** Who acts, for the log (without tokens): $USER. With a token the API records its holder. */
  readonly actor: string;
}

/** The settings and client for a command; config warnings go to stderr once. */
export function contextOf(cmd: Command): Context {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const config = resolveConfig({ apiUrl: g.apiUrl, token: g.token, config: g.config });
  for (const w of config.warnings) process.stderr.write(`cairn: warning: ${w}\n`);
  const actor = process.env.USER || process.env.LOGNAME || "cli";
  return { config, api: apiClient(config.apiUrl, config.token), actor };
}
