/** The real `cairn` binary (cli/bin/cairn, the `npx cairn` bin) as a child process, for the CLI's tests. */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bin", "cairn");

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
}

/**
 * Runs `cairn args…` with `env` over a clean base: no config file, token or API URL of the
 * person running the tests leaks in (HOME is `home`). Killed after `killAfterMs`.
 */
export function runCli(
  args: readonly string[],
  env: Record<string, string | undefined>,
  o: { home: string; killAfterMs?: number },
): Promise<CliRun> {
  const started = Date.now();
  const child = spawn(bin, args, {
    env: {
      ...process.env,
      HOME: o.home,
      XDG_CONFIG_HOME: undefined,
      CAIRN_CONFIG: undefined,
      CAIRN_TOKEN: undefined,
      CAIRN_API_URL: undefined,
      NATS_URL: undefined,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  const killer = setTimeout(() => child.kill("SIGKILL"), o.killAfterMs ?? 60_000);
  return new Promise((resolve) =>
    child.once("close", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    }),
  );
}
