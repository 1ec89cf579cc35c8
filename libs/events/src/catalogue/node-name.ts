import { z } from "zod";

/** A Kubernetes node name (DNS subdomain). */
export const nodeName = z
  .string()
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
    "must be a Kubernetes node name",
  );
