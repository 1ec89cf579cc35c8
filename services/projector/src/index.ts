export {
  type ApiAuth,
  createToken,
  loadTokensFile,
  parseRateLimit,
  ROLES,
  type Role,
  type TokenEntry,
} from "./api/auth.ts";
export type { ApiOptions } from "./api/server.ts";
export { type Change, ChangeFeed } from "./changes.ts";
export { type Database, DEFAULT_SCHEMA, openDatabase } from "./db/database.ts";
export { migrateDownAll, migrateToLatest } from "./db/migrate.ts";
export { type BatchOutcome, projectBatch } from "./projection.ts";
export {
  applyClusterEvent,
  CLUSTER_STATES,
  type ClusterRow,
  type ClusterState,
  foldCluster,
} from "./projections/clusters.ts";
export { applyCommandEvent, type CommandRow, type CommandStatus } from "./projections/commands.ts";
export { type EventIndexRow, toEventIndexRow } from "./projections/event-index.ts";
export type { NodeOpKind, NodeOpRow, NodeOpState } from "./projections/nodeops.ts";
export {
  type NatsSource,
  PROJECTOR_ROLES,
  type Projector,
  type ProjectorOptions,
  type ProjectorRole,
  startProjector,
} from "./projector.ts";
export { type Comparison, compareDigests, digestSchema, type TableDigest } from "./replay/compare.ts";
export {
  ReplayAbortedError,
  ReplayInProgressError,
  type ReplayOptions,
  type ReplayProgress,
  type ReplayResult,
  replay,
} from "./replay/replay.ts";
export { REPLAY_SUBJECT, type ReplayReply, type ReplayRequest, replayRequest } from "./replay/trigger.ts";
export { copyEventIndex, eventIndexCopyText } from "./repository/event-index-copy.ts";
