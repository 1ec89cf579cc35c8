import { defineRejected } from "./common.ts";
import type { EventOf } from "./define.ts";

// The install aggregate (one per cluster) is driven by cluster events; its own
// commands and step events arrive with the installer.
export const InstallRejected = defineRejected("install");
export const installEvents = [InstallRejected] as const;
export type InstallEvent = EventOf<(typeof installEvents)[number]>;
