// The page's copy of the read models: loaded once per connection of the live stream,
// then kept current by its changes. Components read it through `useStore`.
import { useEffect, useState } from "preact/hooks";
import { follow, getAll } from "./api.js";

/** The read models the page keeps, by the stream's resource names. */
const RESOURCES = {
  clusters: "/clusters",
  sessions: "/sessions",
  nodes: "/nodes",
  installs: "/installs",
  nodeops: "/nodeops",
};

export const state = {
  clusters: new Map(),
  sessions: new Map(),
  nodes: new Map(),
  installs: new Map(),
  nodeops: new Map(),
  /** The commands this page sent, by id: what the API answered and how they ended. */
  commands: new Map(),
  /** "connecting" | "live" | "offline", and why when offline. */
  connection: { status: "connecting", detail: undefined },
  /** The stream's last change: pages that fetch more (history, steps) refetch on it. */
  lastChange: undefined,
  loaded: false,
};

const listeners = new Set();
let scheduled = false;
/** Coalesces a burst of changes into one render. */
function notify() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    for (const l of listeners) l();
  });
}

/** Re-renders the component on every change of the store; returns `select(state)`. */
export function useStore(select) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return select(state);
}

/**
 * Whether `incoming` is not older than `current`: by the aggregate's version when both
 * have one, else by `updatedAt` (event times, ISO). A change read from the stream before
 * a reload finished must not undo the reload.
 */
export function isNotOlder(incoming, current) {
  if (!current) return true;
  if (typeof incoming.version === "number" && typeof current.version === "number")
    return incoming.version >= current.version;
  if (incoming.updatedAt && current.updatedAt) return incoming.updatedAt >= current.updatedAt;
  return true;
}

const keyOf = (resource, row) => (resource === "installs" ? row.clusterId : row.id);
/** The later of two ISO times (either may be missing). */
const later = (a, b) => (a && b ? [a, b].sort()[1] : (a ?? b));

/**
 * A row from the stream over the one the page has. The stream's views lack what only
 * the GET routes add: a cluster's session counts, and a session's heartbeats (they go to
 * a KV bucket, not the log), so a Running session keeps the later activity and idle time.
 */
export function merge(resource, incoming, current) {
  if (!current) return incoming;
  if (resource === "clusters" && current.sessions && !incoming.sessions)
    return { ...incoming, sessions: current.sessions };
  if (resource === "sessions" && incoming.state === "Running" && current.state === "Running")
    return {
      ...incoming,
      lastActivity: later(incoming.lastActivity, current.lastActivity),
      idleAt: later(incoming.idleAt, current.idleAt),
    };
  return incoming;
}

/** Heartbeats make no changes on the stream: the sessions are read again this often. */
const SESSIONS_REREAD_MS = 30_000;

function applyChange(change) {
  const { resource, id, data } = change;
  if (resource === "commands") {
    // Kept whether or not this page sent it: the outcome may come before the API's 202 does.
    const before = state.commands.get(id);
    state.commands.set(id, { ...before, ...data, settledAt: before?.settledAt ?? Date.now() });
    if (state.commands.size > 500) state.commands.delete(state.commands.keys().next().value);
  } else {
    const map = state[resource];
    if (!map) return;
    const current = map.get(id);
    if (isNotOlder(data, current)) map.set(id, merge(resource, data, current));
  }
  state.lastChange = change;
  notify();
}

async function reload() {
  const loaded = await Promise.all(
    Object.entries(RESOURCES).map(async ([r, path]) => [r, await getAll(path)]),
  );
  for (const [resource, rows] of loaded) {
    const fresh = new Map();
    for (const row of rows) {
      const key = keyOf(resource, row);
      const current = state[resource].get(key);
      fresh.set(key, isNotOlder(row, current) ? row : current);
    }
    // Rows that arrived through the stream while the lists loaded.
    for (const [key, row] of state[resource]) if (!fresh.has(key)) fresh.set(key, row);
    state[resource] = fresh;
  }
  state.loaded = true;
  notify();
}

async function reread(resource) {
  const rows = await getAll(RESOURCES[resource]);
  const map = state[resource];
  for (const row of rows) {
    const key = keyOf(resource, row);
    if (isNotOlder(row, map.get(key))) map.set(key, row);
  }
  notify();
}

let stop;
/** Starts following the API (again, after a sign-in); `onUnauthorized` when the token is refused. */
export function connect(onUnauthorized) {
  stop?.();
  const timer = setInterval(() => {
    if (state.connection.status === "live") reread("sessions").catch(() => {});
  }, SESSIONS_REREAD_MS);
  const unfollow = follow({
    onOpen: () =>
      reload().catch((err) => {
        state.connection = { status: "offline", detail: `could not load: ${err.message}` };
        notify();
      }),
    onChange: applyChange,
    onStatus: (status, detail) => {
      state.connection = { status, detail };
      notify();
    },
    onUnauthorized: () => {
      state.connection = { status: "offline", detail: "the token was refused" };
      notify();
      onUnauthorized();
    },
  });
  stop = () => {
    clearInterval(timer);
    unfollow();
  };
}

export function disconnect() {
  stop?.();
  stop = undefined;
  for (const r of Object.keys(RESOURCES)) state[r] = new Map();
  state.loaded = false;
  notify();
}

/** Records a command this page sent, so its outcome (from the stream) can be shown. */
export function trackCommand(commandId, entry) {
  state.commands.set(commandId, { ...state.commands.get(commandId), commandId, mine: true, ...entry });
  notify();
}

export function forgetCommand(commandId) {
  state.commands.delete(commandId);
  notify();
}
