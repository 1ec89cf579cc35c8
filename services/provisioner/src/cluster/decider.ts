/**
 * The cluster aggregate's pure core. No I/O, no clock: time arrives in the context.
 * Cluster states are the provisioner's words in PascalCase (DESIGN §7).
 */
import {
  assertNever,
  type ClusterCommand,
  type ClusterEvent,
  type ClusterSpec,
  type Decider,
  reject,
} from "@cairn/events";

export type ClusterStatus =
  | "Pending"
  | "Validating"
  | "Provisioning"
  | "Configuring"
  | "Ready"
  | "Scaling"
  | "Degraded"
  | "Recovering"
  | "RollingBack"
  | "Deleting"
  | "Deleted"
  | "Failed";

export type ClusterState =
  | { readonly status: "Absent" }
  | {
      readonly status: ClusterStatus;
      readonly spec: ClusterSpec;
      /** The spec after each version that changed it, for rollback. */
      readonly specHistory: readonly { readonly version: number; readonly spec: ClusterSpec }[];
    };

const initialState = (): ClusterState => ({ status: "Absent" });

/** A cluster that is going away accepts nothing but another delete. */
const isEnding = (s: ClusterState) => s.status === "Deleting" || s.status === "Deleted";

export function specAt(state: ClusterState, version: number): ClusterSpec | undefined {
  if (state.status === "Absent") return undefined;
  let found: ClusterSpec | undefined;
  for (const h of state.specHistory) if (h.version <= version) found = h.spec;
  return found;
}

export const clusterDecider: Decider<ClusterCommand, ClusterEvent, ClusterState> = {
  aggregate: "cluster",
  initialState,

  decide(command, state, ctx) {
    switch (command.type) {
      case "cluster.create": {
        if (state.status !== "Absent") {
          return reject(
            "already-exists",
            `cluster ${command.data.clusterId} already exists (state ${state.status}); choose another id`,
          );
        }
        return [{ type: "cluster.requested", data: { spec: command.data } }];
      }
      case "cluster.scale": {
        const { clusterId, pool, count } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        if (isEnding(state))
          return reject("conflict", `cluster ${clusterId} is ${state.status}; it cannot be scaled`);
        const current = state.spec.pools.find((p) => p.name === pool);
        if (!current) {
          const names = state.spec.pools.map((p) => p.name).join(", ") || "none";
          return reject("invalid", `cluster ${clusterId} has no pool ${pool} (pools: ${names})`);
        }
        if (current.count === count) return [];
        return [{ type: "cluster.scale-requested", data: { pool, from: current.count, to: count } }];
      }
      case "cluster.rollback": {
        const { clusterId, toVersion } = command.data;
        if (state.status === "Absent") return reject("not-found", `cluster ${clusterId} does not exist`);
        if (isEnding(state))
          return reject("conflict", `cluster ${clusterId} is ${state.status}; it cannot be rolled back`);
        if (toVersion > ctx.version) {
          return reject(
            "invalid",
            `cluster ${clusterId} is at version ${ctx.version}; cannot roll back to ${toVersion}`,
          );
        }
        const spec = specAt(state, toVersion);
        if (!spec) return reject("invalid", `cluster ${clusterId} had no spec at version ${toVersion}`);
        return [{ type: "cluster.rollback-requested", data: { toVersion, spec } }];
      }
      case "cluster.delete": {
        if (state.status === "Absent")
          return reject("not-found", `cluster ${command.data.clusterId} does not exist`);
        // Deleting twice is one delete.
        if (isEnding(state)) return [];
        return [{ type: "cluster.deletion-requested", data: {} }];
      }
      default:
        return assertNever(command);
    }
  },

  evolve(state, event) {
    switch (event.type) {
      case "cluster.requested":
        return {
          status: "Pending",
          spec: event.data.spec,
          specHistory: [{ version: event.position, spec: event.data.spec }],
        };
      case "cluster.scale-requested": {
        if (state.status === "Absent") return state;
        const spec = {
          ...state.spec,
          pools: state.spec.pools.map((p) =>
            p.name === event.data.pool ? { ...p, count: event.data.to } : p,
          ),
        };
        return {
          status: "Scaling",
          spec,
          specHistory: [...state.specHistory, { version: event.position, spec }],
        };
      }
      case "cluster.rollback-requested": {
        if (state.status === "Absent") return state;
        const spec = event.data.spec;
        return {
          status: "RollingBack",
          spec,
          specHistory: [...state.specHistory, { version: event.position, spec }],
        };
      }
      case "cluster.deletion-requested":
        return state.status === "Absent" ? state : { ...state, status: "Deleting" };
      case "cluster.rejected":
        return state;
      default:
        return assertNever(event);
    }
  },
};
