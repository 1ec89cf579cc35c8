/** The projector's Prometheus metrics (served on the harness's /metrics). */
import { counter, gauge } from "@cairn/service";

/** Events written to read models; `rate()` of it is the apply rate. mode: live | replay. */
export const eventsApplied = counter(
  "cairn_projector_events_applied_total",
  "Events applied to read models",
  ["mode"],
);
/** The last stream sequence the live projection applied. */
export const checkpointGauge = gauge(
  "cairn_projector_checkpoint",
  "Last EVT sequence applied by the live projection",
);
/** Stream head minus the checkpoint, seen at each batch. */
export const lagGauge = gauge("cairn_projector_lag_messages", "EVT last sequence minus the live checkpoint");
/** Sequences missing before a batch, read from the stream to fill the gap. */
export const gapsFilled = counter(
  "cairn_projector_gap_fills_total",
  "Missing sequences filled from the stream",
);
/** Batches that stopped at a missing, unreadable sequence (WaitingForSequenceError). */
export const gapWaits = counter(
  "cairn_projector_gap_waits_total",
  "Batches that waited at a missing sequence",
);
/** A running rebuild: where it is and where the head was when it looked. */
export const replayCheckpoint = gauge(
  "cairn_projector_replay_checkpoint",
  "EVT sequence a running rebuild reached",
);
export const replayHead = gauge("cairn_projector_replay_head", "EVT head the running rebuild catches up to");
/** Heartbeats with connections (POST /sessions/:id/heartbeat), by what became of them in the bucket. */
export const heartbeatOutcomes = counter(
  "cairn_session_activity_total",
  "Heartbeats with connections by outcome: written, covered (by a write within the resolution), conflict (a lost compare-and-set, decided again), failed",
  ["outcome"],
);
/** `GET /clusters/:id` on a replica with the cluster cache (api/cluster-cache.ts): hit, miss, fill, reset. */
export const clusterCacheOutcomes = counter(
  "cairn_projector_cluster_cache_total",
  "The cluster cache: hit (answered from memory), miss (read from Postgres), fill (a read kept), reset (emptied: a batch missed, announcements behind, a replay's swap)",
  ["outcome"],
);
