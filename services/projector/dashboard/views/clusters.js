// The clusters page: every cluster with its state, progress, health, region, nodes and sessions.
import { Conditions, Failure, healthWord, html, ProgressBar, StateBadge, useNow } from "../components.js";
import { plural } from "../format.js";
import { useStore } from "../store.js";

/** Sessions that still hold (or may again hold) resources. */
export const LIVE_SESSION = (s) => s.state !== "Terminated" && s.state !== "Failed";

/**
 * What a cluster is doing, as a progress: the cluster's own while it builds; while K3s
 * installs (Configuring) the install's, when the cluster's has nothing to count.
 */
export function progressOf(cluster, install) {
  const p = cluster.progress;
  if (cluster.state === "Configuring" && p?.operation === null && install?.progress) {
    return { ...install.progress, eta: p.eta, etaSeconds: p.etaSeconds };
  }
  return p;
}

/** Whether a cluster is at work (its progress is worth a bar). */
export const isBusy = (cluster) =>
  !["Ready", "Failed", "Deleted", "Degraded"].includes(cluster.state) || cluster.progress?.operation;

/** Why a cluster failed: its own reason when the read model has one, else its install's. */
export function failureOf(cluster, install) {
  if (cluster.failure) return cluster.failure;
  if (["Failed", "Degraded", "Recovering"].includes(cluster.state) && install?.failure)
    return install.failure;
  return undefined;
}

export function nodeSummary(nodes) {
  const here = nodes.filter((n) => !n.gone);
  const servers = here.filter((n) => n.role === "server").length;
  const agents = here.filter((n) => n.role === "agent").length;
  const ready = here.filter((n) => n.kube?.ready === true).length;
  return { total: here.length, servers, agents, ready };
}

export function ClustersPage() {
  const now = useNow();
  const { clusters, installs, nodes, sessions, loaded } = useStore((s) => s);
  const rows = [...clusters.values()].sort((a, b) => a.id.localeCompare(b.id));
  const nodesOf = (id) => [...nodes.values()].filter((n) => n.clusterId === id);
  const sessionsOf = (id) => [...sessions.values()].filter((s) => s.clusterId === id);
  return html`<section aria-labelledby="clusters-title">
    <h1 id="clusters-title">Clusters</h1>
    ${
      !loaded
        ? html`<p class="muted">Loading…</p>`
        : rows.length === 0
          ? html`<p class="muted">No clusters yet. Create one with <code>cairn cluster create</code> or <code>POST /clusters</code>; it shows here as soon as it is requested.</p>`
          : html`<div class="table-wrap"><table class="clusters">
        <caption class="visually-hidden">Clusters, live</caption>
        <thead><tr>
          <th scope="col">Cluster</th><th scope="col">State</th><th scope="col">Progress</th>
          <th scope="col">Health</th><th scope="col">Region</th><th scope="col">Nodes</th><th scope="col">Sessions</th>
        </tr></thead>
        <tbody>
          ${rows.map((c) => {
            const install = installs.get(c.id);
            const n = nodeSummary(nodesOf(c.id));
            const ss = sessionsOf(c.id);
            const live = ss.filter(LIVE_SESSION).length;
            const failure = failureOf(c, install);
            // While it is being built, its False conditions say what the progress bar says: not listed.
            const health = healthWord(c.health);
            return html`<tr data-cluster=${c.id}>
              <th scope="row"><a href=${`#/clusters/${encodeURIComponent(c.id)}`}>${c.name}</a>${c.name !== c.id ? html`<div class="muted small">${c.id}</div>` : null}</th>
              <td><${StateBadge} state=${c.state} /></td>
              <td class="progress-cell">${isBusy(c) ? html`<${ProgressBar} progress=${progressOf(c, install)} label=${`Progress of ${c.name}`} now=${now} />` : html`<span class="muted">${c.progress?.step ?? "—"}</span>`}</td>
              <td>
                ${health ? html`<${StateBadge} state=${health} />` : null}
                ${health !== "Progressing" ? html`<${Conditions} conditions=${c.conditions} compact />` : null}
                ${failure ? html`<${Failure} failure=${failure} title=${c.state === "Failed" ? "Failed" : "Problem"} />` : !health && !c.conditions ? html`<span class="muted">—</span>` : null}
              </td>
              <td>${c.region}</td>
              <td><span title=${`${n.servers} server(s), ${n.agents} agent(s); ${c.progress?.done ?? 0} of ${c.progress?.total ?? 0} instances running`}>${plural(n.total, "node")}</span><div class="muted small">${n.ready} Ready · ${n.servers} srv / ${n.agents} agt</div></td>
              <td>${live} live<div class="muted small">${ss.length} in all</div></td>
            </tr>`;
          })}
        </tbody>
      </table></div>`
    }
  </section>`;
}
