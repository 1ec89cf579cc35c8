// Wiring only: the harness boots, the idle-detector serves session commands, admits
// sessions under the quota policy, follows their workloads and sweeps for idle ones.
import { envVars, runService, serviceConfig } from "@cairn/service";
import { startIdleDetector } from "./idle-detector.ts";

const config = serviceConfig.extend({
  /** The quota policy file (YAML or JSON); absent: the default limits for every user. */
  CAIRN_QUOTAS_FILE: envVars.string().optional(),
  /** A session's idle timeout when its create names none. */
  CAIRN_SESSION_IDLE_TIMEOUT_SECONDS: envVars.positiveNumber().default(1800),
  /** The most a create may ask for as idle timeout (more is refused). */
  CAIRN_SESSION_MAX_IDLE_TIMEOUT_SECONDS: envVars.positiveNumber().default(86_400),
  /** Idle this much longer than the timeout before the sweep hibernates. */
  CAIRN_SESSION_IDLE_GRACE_SECONDS: envVars.positiveNumber().default(60),
  /** The longest a session may live, and its lifetime when the create names none. */
  CAIRN_SESSION_MAX_LIFETIME_SECONDS: envVars.positiveNumber().default(7 * 86_400),
  /** How often the sweep runs (in the one process holding its lease). */
  CAIRN_SESSION_SWEEP_SECONDS: envVars.positiveNumber().default(15),
  /** Hibernated longer than this: terminated, volume released. */
  CAIRN_SESSION_DORMANCY_DAYS: envVars.positiveNumber().default(14),
});

await runService({
  name: "idle-detector",
  config,
  start: async ({ nats, log, config: c }) =>
    startIdleDetector({
      nats,
      logger: log,
      ...(c.CAIRN_QUOTAS_FILE ? { quotasFile: c.CAIRN_QUOTAS_FILE } : {}),
      policy: {
        defaultIdleTimeoutSeconds: Math.floor(c.CAIRN_SESSION_IDLE_TIMEOUT_SECONDS),
        maxIdleTimeoutSeconds: Math.floor(c.CAIRN_SESSION_MAX_IDLE_TIMEOUT_SECONDS),
        idleGraceSeconds: Math.floor(c.CAIRN_SESSION_IDLE_GRACE_SECONDS),
        maxLifetimeSeconds: Math.floor(c.CAIRN_SESSION_MAX_LIFETIME_SECONDS),
        dormancySeconds: Math.round(c.CAIRN_SESSION_DORMANCY_DAYS * 86_400),
      },
      sweepIntervalMs: c.CAIRN_SESSION_SWEEP_SECONDS * 1000,
    }),
});
