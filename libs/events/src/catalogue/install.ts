import { z } from "zod";
import { defineRejected } from "./common.ts";
import { defineEvent, type EventOf } from "./define.ts";

// The install aggregate (one per cluster, id = the cluster id) is the installer's:
// K3s on the cluster's instances over SSM Run Command.
export const InstallRejected = defineRejected("install");
export const KubeconfigPublished = defineEvent({
  type: "install.kubeconfig-published",
  aggregate: "install",
  schema: z.object({
    /** The SSM SecureString parameter that holds the kubeconfig (never the kubeconfig itself). */
    parameter: z.string().min(1),
    /** The parameter's version when it was checked. */
    version: z.number().int().positive(),
  }),
  description:
    "The cluster's kubeconfig is in its SecureString parameter: its API server can be reached (node-ops starts watching it).",
});
export const installEvents = [InstallRejected, KubeconfigPublished] as const;
export type InstallEvent = EventOf<(typeof installEvents)[number]>;
