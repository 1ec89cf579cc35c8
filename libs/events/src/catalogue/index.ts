import { Catalogue } from "./catalogue.ts";
import { clusterCommands, clusterEvents } from "./cluster.ts";
import { installCommands, installEvents } from "./install.ts";
import { kubeCommands, kubeEvents } from "./kube.ts";
import { nodeopCommands, nodeopEvents } from "./nodeop.ts";
import { sessionCommands, sessionEvents } from "./session.ts";
import { workloadEvents } from "./workload.ts";

export * from "./catalogue.ts";
export * from "./cluster.ts";
export * from "./cluster-lifecycle.ts";
export * from "./common.ts";
export * from "./define.ts";
export * from "./install.ts";
export * from "./kube.ts";
export * from "./nodeop.ts";
export * from "./nodeop-classification.ts";
export * from "./nodeop-limit.ts";
export * from "./session.ts";
export * from "./workload.ts";

export const allEventDefinitions = [
  ...clusterEvents,
  ...installEvents,
  ...sessionEvents,
  ...nodeopEvents,
  ...workloadEvents,
  ...kubeEvents,
] as const;
export const allCommandDefinitions = [
  ...clusterCommands,
  ...sessionCommands,
  ...nodeopCommands,
  ...kubeCommands,
  ...installCommands,
] as const;

/** Every event and command Cairn knows. */
export const catalogue = new Catalogue(allEventDefinitions, allCommandDefinitions);
export * from "./examples.ts";
