/**
 * A projector process as deployed (its `main`, the environment the manifests give it), for
 * the benches that measure it from outside: bench/projector and its API A/B.
 */
import { type ChildProcess, spawn } from "node:child_process";

export interface ProjectorProcess {
  /** The entry point: `services/projector/src/main.ts` or another build's. */
  readonly main: string;
  readonly natsUrl: string;
  readonly databaseUrl: string;
  /** Its API's port. */
  readonly port: number;
  readonly role: "all" | "api";
  readonly env?: Record<string, string>;
}

export function spawnProjector(o: ProjectorProcess): ChildProcess {
  return spawn(process.execPath, [o.main], {
    env: {
      ...process.env,
      ...o.env,
      NATS_URL: o.natsUrl,
      DATABASE_URL: o.databaseUrl,
      CAIRN_API_PORT: String(o.port),
      CAIRN_PROJECTOR_ROLE: o.role,
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
}

/** Until `url`/healthz answers 200 (the process exiting first is an error). */
export async function waitForHealth(url: string, p: ChildProcess): Promise<void> {
  for (;;) {
    if (p.exitCode !== null) throw new Error(`a projector process exited with ${p.exitCode}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
