// The dashboard: who the caller is (GET /whoami), a token form when the API wants one,
// then the pages, kept live by the API's stream. Routes are in the hash (#/clusters/…),
// so every page is a static file away.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, get, token } from "./api.js";
import { html, Notices } from "./components.js";
import { connect, disconnect, useStore } from "./store.js";
import { ClusterPage } from "./views/cluster.js";
import { ClustersPage } from "./views/clusters.js";
import { SessionsPage } from "./views/sessions.js";

function parseRoute(hash) {
  const path = hash.replace(/^#/, "") || "/clusters";
  const m = /^\/clusters\/([^/]+)$/.exec(path);
  if (m) return { page: "cluster", id: decodeURIComponent(m[1]) };
  if (path === "/sessions") return { page: "sessions" };
  return { page: "clusters" };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function TokenForm({ problem, onToken }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState(problem);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => input.current?.focus(), []);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    token.set(value.trim());
    try {
      onToken(await get("/whoami"));
    } catch (err) {
      token.clear();
      setError(
        err instanceof ApiError && err.status === 401 ? "That token is not known to this API." : err.message,
      );
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="signin">
    <h1>Cairn</h1>
    <form onSubmit=${submit} aria-describedby="token-help">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required ref=${input}
        value=${value} onInput=${(e) => setValue(e.currentTarget.value)} aria-invalid=${error ? "true" : undefined} aria-errormessage=${error ? "token-error" : undefined} />
      <p id="token-help" class="muted small">This API needs a bearer token (<code>cairn token create</code> makes one). It is kept in this tab only.</p>
      ${error ? html`<p id="token-error" role="alert" class="error">${error}</p>` : null}
      <button type="submit" disabled=${busy}>Sign in</button>
    </form>
  </main>`;
}

function Connection() {
  const c = useStore((s) => s.connection);
  const words = { live: "Live", connecting: "Connecting…", offline: "Offline, reconnecting" }[c.status];
  return html`<span class=${`connection connection-${c.status}`} role="status" title=${c.detail ?? ""} data-connection=${c.status}>
    <span class="dot" aria-hidden="true"></span>${words}
  </span>`;
}

function Shell({ me, onSignOut }) {
  const route = useRoute();
  const main = useRef(null);
  useEffect(() => {
    if (route.page !== "cluster")
      document.title = `${route.page === "sessions" ? "Sessions" : "Clusters"} · Cairn`;
    // A new page: focus its content, as a page load would, for keyboard and screen readers.
    main.current?.focus({ preventScroll: true });
  }, [route.page, route.id]);
  const link = (href, label, current) =>
    html`<a href=${href} aria-current=${current ? "page" : undefined}>${label}</a>`;
  return html`
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      main.current?.focus();
    }}>Skip to content</a>
    <header class="top">
      <span class="brand">Cairn</span>
      <nav aria-label="Pages">
        ${link("#/clusters", "Clusters", route.page !== "sessions")}
        ${link("#/sessions", "Sessions", route.page === "sessions")}
      </nav>
      <${Connection} />
      <span class="me">
        ${me.auth ? html`<span data-role=${me.role}>${me.user} (${me.role})</span> <button type="button" class="link" onClick=${onSignOut}>Sign out</button>` : html`<span data-role=${me.role} title="The API has no tokens: it answers this machine only, with every right">local (${me.role})</span>`}
      </span>
    </header>
    <${Notices} />
    <main id="main" tabindex="-1" ref=${main}>
      ${
        route.page === "cluster"
          ? html`<${ClusterPage} id=${route.id} me=${me} />`
          : route.page === "sessions"
            ? html`<${SessionsPage} me=${me} />`
            : html`<${ClustersPage} />`
      }
    </main>`;
}

function App() {
  const [me, setMe] = useState(undefined);
  const [problem, setProblem] = useState(undefined);
  const [needToken, setNeedToken] = useState(false);
  const start = (who) => {
    setMe(who);
    setNeedToken(false);
    connect(() => {
      token.clear();
      disconnect();
      setProblem("The API refused the token: sign in again.");
      setNeedToken(true);
    });
  };
  useEffect(() => {
    let retry;
    const ask = () =>
      get("/whoami")
        .then(start)
        .catch((err) => {
          if (err instanceof ApiError && err.status === 401) {
            if (token.get()) setProblem("The API refused the saved token: sign in again.");
            token.clear();
            setNeedToken(true);
          } else {
            // The API is down or restarting: say so, and ask again.
            setProblem(`The API could not be reached (${err.message}); trying again…`);
            retry = setTimeout(ask, 3000);
          }
        });
    ask();
    return () => clearTimeout(retry);
  }, []);
  if (needToken) return html`<${TokenForm} problem=${problem} onToken=${start} />`;
  if (!me)
    return html`<main id="main"><p role=${problem ? "alert" : "status"}>${problem ?? "Connecting to the API…"}</p></main>`;
  return html`<${Shell}
    me=${me}
    onSignOut=${() => {
      token.clear();
      disconnect();
      setMe(undefined);
      setProblem(undefined);
      setNeedToken(true);
    }}
  />`;
}

const root = document.getElementById("app");
// The boot message goes: render() would keep it and add the app after it.
root.replaceChildren();
render(html`<${App} />`, root);
