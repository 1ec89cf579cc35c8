// One cluster: summary and operator commands, nodes, the K3s install and its steps,
// node operations and what blocks them, the dependency graph, and the history.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, getAll } from "../api.js";
import {
  CommandButton,
  Conditions,
  Confirm,
  Failure,
  healthWord,
  html,
  ProgressBar,
  StateBadge,
  sendCommand,
  useNow,
} from "../components.js";
import { ago, duration, plural, shortId, when } from "../format.js";
import { useStore } from "../store.js";
import { failureOf, isBusy, LIVE_SESSION, nodeSummary, progressOf } from "./clusters.js";

/**
 * Fetches `path` now and again whenever `key` changes, at most once per `ms` (the
 * stream says that something changed; this reads what the stream does not carry).
 */
function useRefetch(path, key, fetcher = get, ms = 750) {
  const [result, setResult] = useState({ data: undefined, error: undefined });
  const timer = useRef(undefined);
  const inFlight = useRef(false);
  const again = useRef(false);
  useEffect(() => {
    let live = true;
    const run = async () => {
      if (inFlight.current) {
        again.current = true;
        return;
      }
      inFlight.current = true;
      try {
        const data = await fetcher(path);
        if (live) setResult({ data, error: undefined });
      } catch (err) {
        if (live) setResult((r) => ({ data: r.data, error: err }));
      } finally {
        inFlight.current = false;
        if (again.current && live) {
          again.current = false;
          timer.current = setTimeout(run, ms);
        }
      }
    };
    clearTimeout(timer.current);
    timer.current = setTimeout(run, result.data === undefined ? 0 : ms);
    return () => {
      live = false;
      clearTimeout(timer.current);
    };
  }, [path, key]);
  return result;
}

const enc = encodeURIComponent;

function Summary({ cluster, install, now, sessions }) {
  const failure = failureOf(cluster, install);
  const health = healthWord(cluster.health);
  const spec = cluster.spec ?? {};
  return html`<section aria-labelledby="summary-title" class="card">
    <h2 id="summary-title" class="visually-hidden">Summary</h2>
    <dl class="facts">
      <div><dt>State</dt><dd><${StateBadge} state=${cluster.state} /></dd></div>
      <div><dt>Health</dt><dd>${health ? html`<${StateBadge} state=${health} />` : "—"}</dd></div>
      <div><dt>Region</dt><dd>${cluster.region}</dd></div>
      <div><dt>K3s</dt><dd>${install?.k3sVersion ?? spec.k3sVersion ?? "—"}</dd></div>
      <div><dt>Version</dt><dd title="Events in the cluster so far: what a rollback names">${cluster.version}</dd></div>
      <div><dt>Sessions</dt><dd>${sessions ? `${sessions.live} live, ${sessions.total} in all` : "—"}</dd></div>
      <div><dt>Created</dt><dd>${when(cluster.createdAt)}</dd></div>
      <div><dt>Updated</dt><dd title=${when(cluster.updatedAt)}>${ago(cluster.updatedAt, now)}</dd></div>
      <div><dt>Trace</dt><dd>${cluster.jaegerUrl ? html`<a href=${cluster.jaegerUrl} target="_blank" rel="noopener">Open in Jaeger</a>` : cluster.traceId ? html`<code title=${cluster.traceId}>${shortId(cluster.traceId)}</code>` : "—"}</dd></div>
    </dl>
    ${isBusy(cluster) ? html`<${ProgressBar} progress=${progressOf(cluster, install)} label=${`Progress of ${cluster.name}`} now=${now} />` : null}
    <${Failure} failure=${failure} title=${cluster.state === "Failed" ? "Failed" : "Problem"} />
    <${Conditions} conditions=${cluster.conditions} />
  </section>`;
}

function ClusterActions({ cluster, liveSessions }) {
  const pools = (cluster.spec?.pools ?? []).map((p) => p.name);
  const [pool, setPool] = useState(pools[0] ?? "");
  const current = (cluster.spec?.pools ?? []).find((p) => p.name === pool)?.count ?? 0;
  const [count, setCount] = useState(String(current));
  const [toVersion, setToVersion] = useState("");
  const [confirm, setConfirm] = useState(undefined);
  const [force, setForce] = useState(false);
  useEffect(() => setCount(String(current)), [pool, current]);
  const base = `/clusters/${enc(cluster.id)}`;
  const gone = cluster.state === "Deleted" || cluster.state === "Deleting";
  return html`<section aria-labelledby="actions-title" class="card">
    <h2 id="actions-title">Commands</h2>
    <div class="action-row">
      <form class="inline" onSubmit=${(e) => e.preventDefault()}>
        <label>Pool <select value=${pool} onChange=${(e) => setPool(e.currentTarget.value)} name="pool">${pools.map((p) => html`<option value=${p}>${p}</option>`)}</select></label>
        <label>Node count <input type="number" min="0" max="1000" name="count" value=${count} onInput=${(e) => setCount(e.currentTarget.value)} /></label>
        <${CommandButton} command="cluster.scale" label="Scale" disabled=${gone || !pool} title="Set the pool's node count (cluster.scale)"
          send=${() => sendCommand({ label: `Scale ${cluster.id} ${pool} to ${count}`, method: "POST", path: `${base}/scale`, body: { pool, count: Number(count) } })} />
      </form>
      <form class="inline" onSubmit=${(e) => e.preventDefault()}>
        <label>To version <input type="number" min="1" max=${cluster.version} name="toVersion" value=${toVersion} onInput=${(e) => setToVersion(e.currentTarget.value)} placeholder="e.g. 12" /></label>
        <${CommandButton} command="cluster.rollback" label="Roll back" disabled=${gone || !toVersion} title="Reconcile the cluster back to the spec it had at that version (cluster.rollback)"
          send=${() => setConfirm("rollback")} />
      </form>
      <${CommandButton} command="cluster.retry" label="Retry" disabled=${cluster.state !== "Failed"} title="Try a Failed cluster again (cluster.retry)"
        send=${() => sendCommand({ label: `Retry ${cluster.id}`, method: "POST", path: `${base}/retry`, body: {} })} />
      <${CommandButton} command="cluster.delete" label="Delete…" danger disabled=${gone} title="Delete the cluster (cluster.delete)"
        send=${() => setConfirm("delete")} />
    </div>
    <${Confirm}
      open=${confirm === "rollback"}
      title=${`Roll ${cluster.name} back to version ${toVersion}?`}
      confirmLabel="Roll back"
      onCancel=${() => setConfirm(undefined)}
      onConfirm=${() => {
        setConfirm(undefined);
        void sendCommand({
          label: `Roll ${cluster.id} back to version ${toVersion}`,
          method: "POST",
          path: `${base}/rollback`,
          body: { toVersion: Number(toVersion) },
        });
      }}
    >
      <p>Instances the spec of then did not have are terminated; missing ones are launched; labels, taints and the K3s version are restored.</p>
    </${Confirm}>
    <${Confirm}
      open=${confirm === "delete"}
      title=${`Delete ${cluster.name}?`}
      confirmLabel="Delete"
      onCancel=${() => setConfirm(undefined)}
      onConfirm=${() => {
        setConfirm(undefined);
        void sendCommand({
          label: `Delete ${cluster.id}${force ? " (force)" : ""}`,
          method: "DELETE",
          path: `${base}${force ? "?force=true" : ""}`,
        });
      }}
    >
      <p>Every instance of the cluster is terminated. This cannot be undone.</p>
      ${liveSessions > 0 ? html`<p><strong>${plural(liveSessions, "live session")}</strong> run on it: the delete is refused unless they are terminated first.</p>` : null}
      <label class="check"><input type="checkbox" checked=${force} onChange=${(e) => setForce(e.currentTarget.checked)} name="force" /> Terminate its live sessions first (force)</label>
    </${Confirm}>
  </section>`;
}

function kubeWords(n) {
  const k = n.kube ?? {};
  // K3s's own state while it installs, then the node's Ready condition.
  const parts = n.k3s === "ready" && k.ready !== false ? [] : [`k3s ${n.k3s}`];
  if (k.ready === true) parts.push("Ready");
  else if (k.ready === false) parts.push(`NotReady${k.notReadyReason ? ` (${k.notReadyReason})` : ""}`);
  if (k.unschedulable || n.cordon)
    parts.push(`cordoned${n.cordon ? ` by ${n.cordon.by}: ${n.cordon.reason}` : ""}`);
  if (k.pressure?.length) parts.push(`pressure: ${k.pressure.join(", ")}`);
  return parts.join(" · ");
}

function Nodes({ cluster, nodes, canOperate }) {
  const here = nodes.filter((n) => !n.gone);
  const gone = nodes.filter((n) => n.gone);
  const node = (n) => {
    const base = `/clusters/${enc(cluster.id)}/nodes/${enc(n.node)}`;
    const cordoned = n.kube?.unschedulable || n.cordon;
    return html`<tr data-node=${n.node}>
      <th scope="row"><code>${n.node}</code>${n.availabilityZone ? html`<div class="muted small">${n.availabilityZone}</div>` : null}</th>
      <td>${n.role ?? "—"}</td>
      <td>${n.pool ?? "—"}</td>
      <td>${n.capacityType ?? "—"}</td>
      <td><${StateBadge} state=${n.instance ?? undefined} />${n.instanceId ? html`<div class="muted small"><code>${n.instanceId}</code></div>` : null}</td>
      <td><${StateBadge} state=${n.kube?.ready ? "ready" : n.k3s} label=${kubeWords(n)} />${n.reason ? html`<div class="muted small">${n.reason}</div>` : null}</td>
      ${
        canOperate
          ? html`<td class="actions-cell">
        ${
          cordoned
            ? html`<${CommandButton} command="node.uncordon" label="Uncordon" title="Let pods be scheduled on it again"
                send=${() => sendCommand({ label: `Uncordon ${n.node}`, method: "POST", path: `${base}/uncordon`, body: { reason: "from the dashboard" } })} />`
            : html`<${CommandButton} command="node.cordon" label="Cordon" title="Stop new pods landing on it"
                send=${() => sendCommand({ label: `Cordon ${n.node}`, method: "POST", path: `${base}/cordon`, body: { reason: "from the dashboard" } })} />`
        }
        <${CommandButton} command="node.drain" label="Drain" title="Cordon it and evict its pods, honouring PodDisruptionBudgets"
          send=${() => sendCommand({ label: `Drain ${n.node}`, method: "POST", path: `${base}/drain`, body: { reason: "from the dashboard" } })} />
      </td>`
          : null
      }
    </tr>`;
  };
  return html`<section aria-labelledby="nodes-title" class="card">
    <h2 id="nodes-title">Nodes <span class="muted small">${plural(here.length, "node")}</span></h2>
    ${
      here.length === 0
        ? html`<p class="muted">No nodes yet.</p>`
        : html`<div class="table-wrap"><table>
      <caption class="visually-hidden">Nodes of ${cluster.name}</caption>
      <thead><tr><th scope="col">Node</th><th scope="col">Role</th><th scope="col">Pool</th><th scope="col">Capacity</th><th scope="col">Instance</th><th scope="col">Kubernetes</th>${canOperate ? html`<th scope="col">Commands</th>` : null}</tr></thead>
      <tbody>${here.map(node)}</tbody>
    </table></div>`
    }
    ${gone.length > 0 ? html`<details><summary>${plural(gone.length, "node")} gone</summary><ul>${gone.map((n) => html`<li><code>${n.node}</code> (${n.pool ?? "?"}): ${n.gone.reason}, ${when(n.gone.at)}</li>`)}</ul></details>` : null}
  </section>`;
}

function Install({ install, steps }) {
  if (!install)
    return html`<section aria-labelledby="install-title" class="card"><h2 id="install-title">K3s install</h2><p class="muted">Not started: K3s is installed once every instance runs.</p></section>`;
  return html`<section aria-labelledby="install-title" class="card">
    <h2 id="install-title">K3s install <${StateBadge} state=${install.state} /></h2>
    <${ProgressBar} progress=${install.progress} label="Install progress" />
    <${Failure} failure=${install.failure} title="Install failed" />
    ${install.failing?.length ? html`<ul class="failing" aria-label="Failing health checks">${install.failing.map((f) => html`<li><strong>${f.check}</strong>${f.node ? ` on ${f.node}` : ""}: ${f.evidence}${f.remediation ? html` — <em>${f.remediation}</em>` : null}</li>`)}</ul>` : null}
    ${install.upgrade ? html`<p>Upgrade ${install.upgrade.from} → ${install.upgrade.to}: ${install.upgrade.done}/${install.upgrade.nodes} nodes, ${install.upgrade.state}${install.upgrade.reason ? ` (${install.upgrade.reason})` : ""}</p>` : null}
    ${
      steps?.length
        ? html`<div class="table-wrap"><table class="steps">
      <caption>Steps (SSM Run Command), oldest first</caption>
      <thead><tr><th scope="col">Step</th><th scope="col">Node</th><th scope="col">Attempt</th><th scope="col">Status</th><th scope="col">Duration</th><th scope="col">Ended</th></tr></thead>
      <tbody>${steps.map(
        (s) => html`<tr>
          <th scope="row">${s.step}</th>
          <td><code>${s.node ?? `slot ${s.slot}`}</code></td>
          <td>${s.attempt}</td>
          <td><${StateBadge} state=${s.status} />${s.reason ? html`<div class="muted small">${s.reason}${s.willRetry ? " (will retry)" : ""}</div>` : null}
            ${s.outputTail && s.status !== "Success" ? html`<details><summary>Output</summary><pre class="output">${s.outputTail}</pre></details>` : null}</td>
          <td>${s.durationMs !== null ? duration(s.durationMs) : "running"}</td>
          <td>${when(s.endedAt)}</td>
        </tr>`,
      )}</tbody>
    </table></div>`
        : null
    }
  </section>`;
}

function NodeOps({ ops }) {
  const shown = ops
    .filter((o) => o.operation !== null && !o.deleted)
    .sort((a, b) => (b.updatedAt ?? "").localeCompare(a.updatedAt ?? ""));
  return html`<section aria-labelledby="nodeops-title" class="card">
    <h2 id="nodeops-title">Node operations</h2>
    ${
      shown.length === 0
        ? html`<p class="muted">No cordon, drain or other node operation so far.</p>`
        : html`<div class="table-wrap"><table>
      <caption class="visually-hidden">Node operations and what blocks them</caption>
      <thead><tr><th scope="col">Node</th><th scope="col">Operation</th><th scope="col">State</th><th scope="col">By, why</th><th scope="col">Drain</th><th scope="col">Blocked by</th></tr></thead>
      <tbody>${shown.map(
        (o) => html`<tr data-nodeop=${o.id}>
          <th scope="row"><code>${o.node}</code></th>
          <td>${o.operation}</td>
          <td><${StateBadge} state=${o.state} /></td>
          <td>${o.by ?? "—"}${o.reason ? html`<div class="muted small">${o.reason}</div>` : null}</td>
          <td>${o.drain ? html`${o.drain.evicted} evicted, ${o.drain.remaining} left${o.drain.deadline ? html`<div class="muted small">until ${when(o.drain.deadline)}</div>` : null}` : "—"}</td>
          <td>
            ${o.drain?.blockedBy?.length ? html`<div>PodDisruptionBudget: ${o.drain.blockedBy.map((p) => html`<code>${p}</code> `)}</div>` : null}
            ${o.blocking?.length ? html`<ul class="plain">${o.blocking.map((b) => html`<li>pod <code>${b.pod}</code>${b.pdb ? html` (PDB <code>${b.pdb}</code>)` : null}</li>`)}</ul>` : null}
            ${o.waiting ? html`<div>the cluster's disruption limit (${o.waiting.limit}), waiting for ${o.waiting.waitingFor.join(", ")}</div>` : null}
            <${Failure} failure=${o.failure} title="Failed" />
            ${!o.drain?.blockedBy?.length && !o.blocking?.length && !o.waiting && !o.failure ? html`<span class="muted">nothing</span>` : null}
          </td>
        </tr>`,
      )}</tbody>
    </table></div>`
    }
  </section>`;
}

function Dependencies({ deps }) {
  if (!deps) return null;
  const session = (s) =>
    html`<li class="dep-session"><a href="#/sessions" title=${`${s.user}'s session`}><code>${s.id}</code></a> <${StateBadge} state=${s.state} /> <span class="muted small">${s.user}</span></li>`;
  return html`<section aria-labelledby="deps-title" class="card">
    <h2 id="deps-title">Dependencies</h2>
    <p class="muted small">cluster → nodes → sessions (by the node a session's pod runs on)</p>
    <ul class="tree" aria-label="Dependency graph">
      <li><span class="dep-node"><strong>${deps.cluster.id}</strong> <${StateBadge} state=${deps.cluster.state} /></span>
        <ul>
          ${deps.nodes.map(
            (
              n,
            ) => html`<li><span class="dep-node"><code>${n.node}</code> <span class="muted small">${n.pool ?? ""}</span> <${StateBadge} state=${n.k3sState} /></span>
              ${n.sessions.length ? html`<ul>${n.sessions.map(session)}</ul>` : null}</li>`,
          )}
          ${deps.unplaced.length ? html`<li><span class="dep-node muted">not on a node (pending, hibernated…)</span><ul>${deps.unplaced.map(session)}</ul></li>` : null}
        </ul>
      </li>
    </ul>
  </section>`;
}

/**
 * Every event with its trace: in Jaeger when JAEGER_UI_URL is set; else, without tokens,
 * the API's own `GET /traces/<id>` (with tokens a new tab could not send one: the id only).
 */
function History({ items, error, linkTraces }) {
  return html`<section aria-labelledby="history-title" class="card">
    <h2 id="history-title">History</h2>
    ${error ? html`<p role="alert">${error.message}</p>` : null}
    ${
      !items
        ? html`<p class="muted">Loading…</p>`
        : html`<ol class="timeline" reversed aria-label="Events, newest first">
      ${[...items].reverse().map(
        (e) => html`<li data-event=${e.type}>
          <time datetime=${e.time}>${when(e.time)}</time>
          <span class="event-type"><span class="muted">v${e.version}</span> ${e.type}</span>
          <span class="muted small">by ${e.actor}${e.commandId ? html`, command <code title=${e.commandId}>${shortId(e.commandId)}</code>` : null}</span>
          ${
            e.jaegerUrl
              ? html`<a class="trace-link" href=${e.jaegerUrl} target="_blank" rel="noopener" aria-label=${`Trace of ${e.type} (v${e.version}) in Jaeger`}>Jaeger</a>`
              : e.traceId && linkTraces
                ? html`<a class="trace-link" href=${`/traces/${e.traceId}`} target="_blank" rel="noopener" aria-label=${`Trace of ${e.type} (v${e.version}), as JSON`}>trace</a>`
                : e.traceId
                  ? html`<code class="small" title=${`trace ${e.traceId}`}>${shortId(e.traceId)}</code>`
                  : null
          }
        </li>`,
      )}
    </ol>`
    }
  </section>`;
}

export function ClusterPage({ id, me }) {
  const now = useNow();
  const { cluster, install, nodes, ops, sessions, loaded } = useStore((s) => ({
    cluster: s.clusters.get(id),
    install: s.installs.get(id),
    nodes: [...s.nodes.values()]
      .filter((n) => n.clusterId === id)
      .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0)),
    ops: [...s.nodeops.values()].filter((o) => o.clusterId === id),
    sessions: [...s.sessions.values()].filter((x) => x.clusterId === id),
    loaded: s.loaded,
  }));
  const canOperate = me.role === "operator" || me.role === "admin";
  const history = useRefetch(`/clusters/${enc(id)}/history`, cluster?.version, (p) => getAll(p, 1000));
  const installFull = useRefetch(`/installs/${enc(id)}`, install ? `${install.version}` : undefined);
  const sessionsKey = sessions.map((s) => `${s.id}:${s.state}:${s.node}`).join();
  const nodesKey = nodes.map((n) => `${n.id}:${n.k3s}:${n.gone ? 1 : 0}`).join();
  const deps = useRefetch(
    `/clusters/${enc(id)}/dependencies`,
    `${cluster?.state}|${nodesKey}|${sessionsKey}`,
  );
  useEffect(() => {
    document.title = `${id} · Cairn`;
  }, [id]);
  if (!cluster)
    return html`<section><h1>Cluster ${id}</h1><p class="muted">${loaded ? "No such cluster (or not projected yet): it shows here as soon as it is." : "Loading…"}</p></section>`;
  const sessionCounts = deps.data?.sessions ?? {
    live: sessions.filter(LIVE_SESSION).length,
    total: sessions.length,
  };
  const n = nodeSummary(nodes);
  return html`<article aria-labelledby="cluster-title" data-cluster-page=${id}>
    <p class="crumbs"><a href="#/clusters">Clusters</a> /</p>
    <h1 id="cluster-title">${cluster.name} <${StateBadge} state=${cluster.state} /></h1>
    <p class="muted">${cluster.id} · ${cluster.region} · ${plural(n.total, "node")} (${n.ready} Ready)</p>
    <nav class="sections" aria-label="Sections">
      <a href="#nodes-title" onClick=${jump}>Nodes</a> <a href="#install-title" onClick=${jump}>Install</a>
      <a href="#nodeops-title" onClick=${jump}>Node operations</a> <a href="#deps-title" onClick=${jump}>Dependencies</a>
      <a href="#history-title" onClick=${jump}>History</a>
    </nav>
    <${Summary} cluster=${cluster} install=${install} now=${now} sessions=${sessionCounts} />
    ${canOperate ? html`<${ClusterActions} cluster=${cluster} liveSessions=${sessionCounts.live} />` : null}
    <${Nodes} cluster=${cluster} nodes=${nodes} canOperate=${canOperate} />
    <${Install} install=${installFull.data ?? install} steps=${installFull.data?.steps} />
    <${NodeOps} ops=${ops} />
    <${Dependencies} deps=${deps.data} />
    <${History} items=${history.data} error=${history.error} linkTraces=${!me.auth} />
  </article>`;
}

/** In-page links must not change the hash (the router's): move focus to the section instead. */
function jump(e) {
  e.preventDefault();
  const target = document.getElementById(e.currentTarget.getAttribute("href").slice(1));
  if (!target) return;
  target.setAttribute("tabindex", "-1");
  target.focus();
  target.scrollIntoView({ block: "start" });
}
