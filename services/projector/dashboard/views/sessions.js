// The sessions page: state, user, last activity, time until the idle sweep, wake latency.
import { CommandButton, Failure, html, StateBadge, sendCommand, useNow } from "../components.js";
import { ago, duration, when } from "../format.js";
import { useStore } from "../store.js";
import { LIVE_SESSION } from "./clusters.js";

/**
 * Whether the caller may act on a session: the API's own rule (its owner, or an admin;
 * without tokens, anyone on this machine).
 */
export const canAct = (me, session) => !me.auth || me.role === "admin" || me.user === session.user;

function idleWords(s, now) {
  if (s.state !== "Running") return s.idledAt ? `idled ${ago(s.idledAt, now)}` : "—";
  if (!s.idleAt) return "—";
  const left = Date.parse(s.idleAt) - now;
  return left <= 0 ? "due now" : `in ${duration(left)}`;
}

function SessionCommands({ s }) {
  const base = `/sessions/${encodeURIComponent(s.id)}`;
  const live = LIVE_SESSION(s) && s.state !== "Terminating";
  return html`${
    s.state === "Running"
      ? html`<${CommandButton} command="session.hibernate" label="Hibernate" title="Stop its pod, keep its volume"
          send=${() => sendCommand({ label: `Hibernate ${s.id}`, method: "POST", path: `${base}/hibernate` })} />`
      : null
  }${
    s.state === "Hibernated"
      ? html`<${CommandButton} command="session.wake" label="Wake" title="Start its pod again on its volume"
          send=${() => sendCommand({ label: `Wake ${s.id}`, method: "POST", path: `${base}/wake` })} />`
      : null
  }${
    live
      ? html`<${CommandButton} command="session.terminate" label="Terminate" danger title="End it for good, its volume released"
          send=${() => sendCommand({ label: `Terminate ${s.id}`, method: "DELETE", path: base })} />`
      : null
  }`;
}

export function SessionsPage({ me }) {
  const now = useNow();
  const { sessions, loaded } = useStore((s) => ({ sessions: [...s.sessions.values()], loaded: s.loaded }));
  // Live ones first, then the most recently changed.
  const rows = sessions.sort(
    (a, b) =>
      Number(LIVE_SESSION(b)) - Number(LIVE_SESSION(a)) ||
      (b.updatedAt ?? "").localeCompare(a.updatedAt ?? ""),
  );
  const anyActions = rows.some((s) => canAct(me, s));
  return html`<section aria-labelledby="sessions-title">
    <h1 id="sessions-title">Sessions</h1>
    ${me.auth && me.role === "viewer" ? html`<p class="muted small">As a viewer you see your own sessions.</p>` : null}
    ${
      !loaded
        ? html`<p class="muted">Loading…</p>`
        : rows.length === 0
          ? html`<p class="muted">No sessions yet.</p>`
          : html`<div class="table-wrap"><table class="sessions">
      <caption class="visually-hidden">Sessions, live</caption>
      <thead><tr>
        <th scope="col">Session</th><th scope="col">User</th><th scope="col">Cluster</th><th scope="col">State</th>
        <th scope="col">Last activity</th><th scope="col">Idle</th><th scope="col">Wake latency</th>${anyActions ? html`<th scope="col">Commands</th>` : null}
      </tr></thead>
      <tbody>${rows.map(
        (s) => html`<tr data-session=${s.id}>
          <th scope="row"><code>${s.id}</code>${s.node ? html`<div class="muted small">on ${s.node}</div>` : null}</th>
          <td>${s.user}</td>
          <td><a href=${`#/clusters/${encodeURIComponent(s.clusterId)}`}>${s.clusterId}</a></td>
          <td><${StateBadge} state=${s.state} />${s.cause ? html`<div class="muted small">${s.cause}</div>` : null}
            <${Failure} failure=${s.failure} title="Failed" />
            ${s.rejection ? html`<div class="small">last command refused: ${s.rejection.reason}</div>` : null}</td>
          <td title=${when(s.lastActivity)}>${ago(s.lastActivity, now)}</td>
          <td title=${s.idleAt ? `the idle sweep hibernates it at ${when(s.idleAt)} unless it is used` : ""}>${idleWords(s, now)}</td>
          <td>${s.wakeLatencyMs !== null && s.wakeLatencyMs !== undefined ? duration(s.wakeLatencyMs) : "—"}${s.wakes ? html`<div class="muted small">${s.wakes} wake${s.wakes === 1 ? "" : "s"}</div>` : null}</td>
          ${anyActions ? html`<td class="actions-cell">${canAct(me, s) ? html`<${SessionCommands} s=${s} />` : null}</td>` : null}
        </tr>`,
      )}</tbody>
    </table></div>`
    }
  </section>`;
}
