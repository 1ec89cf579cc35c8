import { z } from "zod";
import type { AggregateType } from "../subjects.ts";
import { defineEvent } from "./define.ts";

/** Why a command was refused: a stable code for machines, a reason for people. */
export const rejectionCode = z.enum([
  /** The command's data is not valid (schema or business rule). */
  "invalid",
  /** The target does not exist. */
  "not-found",
  /** The target exists but is in a state that does not allow the command. */
  "conflict",
  /** The target already exists (a second create). */
  "already-exists",
  /** The owning service does not handle this command (yet, or any more). */
  "unsupported",
  /** Over a quota (a user's or group's sessions, CPU, memory): the API answers 403. */
  "over-quota",
]);
export type RejectionCode = z.infer<typeof rejectionCode>;

export const rejectedData = z.object({
  commandId: z.string(),
  commandType: z.string(),
  code: rejectionCode,
  reason: z.string(),
});

/** `<aggregate>.rejected`: a command the aggregate refused, on the aggregate's own subject. */
export function defineRejected<A extends AggregateType>(aggregate: A) {
  return defineEvent({
    type: `${aggregate}.rejected` as `${A}.rejected`,
    aggregate,
    schema: rejectedData,
    description: `A ${aggregate} command was refused; names the command and the reason.`,
  });
}

/** A Kubernetes label key (optional DNS prefix, then a name of at most 63 characters). */
export const labelKey = z
  .string()
  .max(317)
  .regex(
    /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
    "must be a Kubernetes label key ([prefix/]name)",
  );
export const labelValue = z
  .string()
  .max(63)
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, "must be a Kubernetes label value");
export const labels = z.record(labelKey, labelValue);

export const taint = z.object({
  key: labelKey,
  value: labelValue.optional(),
  effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
});
export type Taint = z.infer<typeof taint>;
