import type { Migration } from "kysely/migration";
import { initial } from "./20261122054700_initial.ts";
import { clusterProgress } from "./20261122071500_cluster_progress.ts";
import { installsNodesNodeops } from "./20261122090000_installs_nodes_nodeops.ts";
import { sessions } from "./20261123090000_sessions.ts";
import { clusterConditions } from "./20261124090000_cluster_conditions.ts";
import { sessionsLastSequence } from "./20261202200000_sessions_last_sequence.ts";
import { hotPath } from "./20261203130000_hot_path.ts";
import { clustersJson } from "./20261203170000_clusters_json.ts";
import { clustersCompactConditions } from "./20261203220000_clusters_compact_conditions.ts";

/**
 * Every migration, keyed by its timestamped name (kysely runs them in name order).
 * Built per schema: the same migrations create the read models in any schema.
 * A new migration is a new file here named `<yyyymmddhhmmss>_<what>.ts`, added below.
 */
export function migrationsFor(schema: string): Record<string, Migration> {
  return {
    "20261122054700_initial": initial(schema),
    "20261122071500_cluster_progress": clusterProgress(schema),
    "20261122090000_installs_nodes_nodeops": installsNodesNodeops(schema),
    "20261123090000_sessions": sessions(schema),
    "20261124090000_cluster_conditions": clusterConditions(schema),
    "20261202200000_sessions_last_sequence": sessionsLastSequence(schema),
    "20261203130000_hot_path": hotPath(schema),
    "20261203170000_clusters_json": clustersJson(schema),
    "20261203220000_clusters_compact_conditions": clustersCompactConditions(schema),
  };
}
