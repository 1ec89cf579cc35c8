/**
 * The operator's session policy: timeouts, their maxima, the grace and the dormancy
 * period. Plain data, handed to the decider (which never reads the environment) and to
 * the sweep; main.ts fills it from the environment (docs/sessions.md).
 */
export interface SessionPolicy {
  /** A session's idle timeout when its create names none (CAIRN_SESSION_IDLE_TIMEOUT_SECONDS). */
  readonly defaultIdleTimeoutSeconds: number;
  /** The most a create may ask for; more is refused, not clamped (CAIRN_SESSION_MAX_IDLE_TIMEOUT_SECONDS). */
  readonly maxIdleTimeoutSeconds: number;
  /** Idle this much longer than the timeout before the sweep hibernates (CAIRN_SESSION_IDLE_GRACE_SECONDS). */
  readonly idleGraceSeconds: number;
  /** The longest a session may live, and its lifetime when the create names none (CAIRN_SESSION_MAX_LIFETIME_SECONDS). */
  readonly maxLifetimeSeconds: number;
  /** Hibernated longer than this: terminated, its volume released (CAIRN_SESSION_DORMANCY_DAYS). */
  readonly dormancySeconds: number;
}

export const DEFAULT_SESSION_POLICY: SessionPolicy = {
  defaultIdleTimeoutSeconds: 1800,
  maxIdleTimeoutSeconds: 86_400,
  idleGraceSeconds: 60,
  maxLifetimeSeconds: 7 * 86_400,
  dormancySeconds: 14 * 86_400,
};
