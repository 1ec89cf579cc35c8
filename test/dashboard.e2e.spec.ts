/**
 * The dashboard in a real browser (Debian's headless Chromium, driven by playwright-core),
 * against the whole control plane as processes, with bearer tokens on: what a person sees.
 *
 * - a cluster appears and progresses to Ready live, without a reload;
 * - its page shows nodes, the install's steps, the history with a Jaeger link on every
 *   entry, and the dependency graph;
 * - an operator's click scales a pool: the command is on the bus as the operator's, the
 *   new node shows up;
 * - a drain held up by a PodDisruptionBudget shows the budget and the pod left;
 * - an operator's own session is hibernated and woken from the sessions page;
 * - a Failed cluster shows its reason and what to do;
 * - a viewer sees no command buttons for clusters and nodes, nor sessions not theirs;
 * - every page passes axe-core's WCAG 2.1 A/AA rules (labels, contrast, roles), and the
 *   commands work from the keyboard.
 *
 * Screenshots of each step are kept in test-results/dashboard/ (CI artefacts).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { exampleClusterCreate } from "@cairn/events";
import { fixturePodOwner } from "@cairn/node-ops/testing";
import { createToken } from "@cairn/projector";
import { CoreV1Api, KubeConfig, PolicyV1Api } from "@kubernetes/client-node";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REGION, type Stack, startStack, until } from "./harness/stack.ts";

/** Debian's chromium; CHROMIUM_PATH for another. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const JAEGER = "http://jaeger.example.test:16686";
const SHOTS = resolve(import.meta.dirname, "..", "test-results", "dashboard");
const TEMPLATE = { image: "ghcr.io/acme/ide:1", cpu: "500m", memory: "1Gi", storage: "1Gi" };

const admin = createToken("ada", "admin");
const operator = createToken("otto", "operator");
const viewer = createToken("vera", "viewer");

let stack: Stack;
let browser: Browser;
let tokensDir: string;
let opsContext: BrowserContext;
let ops: Page;

/** The API as the admin, for setting the scene (the browser is the operator or the viewer). */
async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${stack.api()}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${admin.token}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as Record<string, unknown> };
}

const axeSource = readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * What the callbacks run in the page read of its globals (this package compiles without
 * the DOM library: its code runs in Node, these few lines in the browser).
 */
interface InPage {
  document: { activeElement: { textContent: string | null } | null };
  notReloaded?: boolean;
  axe: {
    run(
      ctx: unknown,
      o: unknown,
    ): Promise<{ violations: { id: string; help: string; nodes: { target: unknown }[] }[] }>;
  };
}

/** The text of the element that has the keyboard focus. (Callbacks travel to the page as source: no closures.) */
const focused = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as InPage).document.activeElement?.textContent);

/** axe-core's WCAG 2.1 A and AA rules on the page as it is: no violation. */
async function accessible(page: Page, where: string) {
  await page.evaluate(await axeSource);
  const violations = await page.evaluate(async () => {
    const { axe, document } = globalThis as unknown as InPage;
    const r = await axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
    });
    return r.violations.map(
      (v) => `${v.id}: ${v.help} (${v.nodes.length}×, e.g. ${JSON.stringify(v.nodes[0]?.target)})`,
    );
  });
  expect(violations, where).toEqual([]);
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

/** A page signed in with `token` through the token form, on the clusters page. */
async function signIn(context: BrowserContext, token: string): Promise<Page> {
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error(`browser error: ${err.message}`));
  await page.goto(stack.api());
  await page.getByLabel("API token").waitFor();
  await accessible(page, "the token form");
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Clusters" }).waitFor();
  await page.locator('[data-connection="live"]').waitFor();
  return page;
}

/** A link of the top bar's navigation. */
const nav = (page: Page, name: string) =>
  page.getByRole("navigation", { name: "Pages" }).getByRole("link", { name });

const stateIn = (page: Page, clusterId: string) =>
  page.locator(`tr[data-cluster="${clusterId}"] td [data-state]`).first().textContent();

beforeAll(async () => {
  await mkdir(SHOTS, { recursive: true });
  tokensDir = await mkdtemp(join(tmpdir(), "cairn-dashboard-tokens-"));
  const tokensFile = join(tokensDir, "tokens.json");
  await writeFile(tokensFile, JSON.stringify({ tokens: [admin.entry, operator.entry, viewer.entry] }));
  [stack, browser] = await Promise.all([
    startStack({ timeScale: 50, env: { CAIRN_TOKENS_FILE: tokensFile, JAEGER_UI_URL: JAEGER } }),
    chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] }),
  ]);
  opsContext = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  ops = await signIn(opsContext, operator.token);
});
afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  if (tokensDir) await rm(tokensDir, { recursive: true, force: true });
});

describe("the dashboard, in headless Chromium", () => {
  it("serves itself and its modules without a token, with a strict CSP; the data needs one", async () => {
    const page = await fetch(`${stack.api()}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toMatch(
      /default-src 'self'; script-src 'self' 'sha256-/,
    );
    for (const m of ["preact.mjs", "preact-hooks.mjs", "htm.mjs"]) {
      const res = await fetch(`${stack.api()}/vendor/${m}`);
      expect(res.status, m).toBe(200);
      expect(res.headers.get("content-type"), m).toMatch(/javascript/);
    }
    expect((await fetch(`${stack.api()}/clusters`)).status).toBe(401);
    expect((await fetch(`${stack.api()}/whoami`)).status).toBe(401);
  });

  it("a cluster appears and progresses to Ready live, without a reload", async () => {
    // A mark on the window: a reload would lose it.
    await ops.evaluate(() => {
      (globalThis as unknown as InPage).notReloaded = true;
    });
    const c = exampleClusterCreate("dash-1");
    const created = await api("POST", "/clusters", { ...c.data, name: "dash-one" });
    expect(created.status, JSON.stringify(created.body)).toBe(202);

    const row = ops.locator('tr[data-cluster="dash-1"]');
    await row.waitFor({ timeout: 10_000 });
    // Every state it showed, and whether a progress bar with step X/Y and percent did.
    const seen: string[] = [];
    let sawBar = false;
    await until(stack, "dash-1 Ready on the page", async () => {
      const state = await stateIn(ops, "dash-1");
      if (state && seen.at(-1) !== state) seen.push(state);
      const bar = row.getByRole("progressbar");
      if (!sawBar && (await bar.count()) > 0) {
        const text = await row.locator(".progress-numbers").textContent();
        if (/step \d+\/\d+ · \d+ %/.test(text ?? "")) {
          sawBar = true;
          await shot(ops, "01-clusters-provisioning");
        }
      }
      return state === "Ready";
    });
    expect(seen.at(-1)).toBe("Ready");
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.some((s) => ["Provisioning", "Configuring", "Validating", "Pending"].includes(s))).toBe(true);
    expect(sawBar).toBe(true);
    expect(await ops.evaluate(() => (globalThis as unknown as InPage).notReloaded)).toBe(true);
    await expect.poll(() => row.locator("td").nth(4).textContent()).toMatch(/3 nodes/);
    await shot(ops, "02-clusters-ready");
    await accessible(ops, "the clusters page");
  });

  it("the cluster page: nodes, install steps with durations, history with a Jaeger link on every entry, dependencies", async () => {
    await ops.getByRole("link", { name: "dash-one" }).click();
    await ops.getByRole("heading", { name: /dash-one/ }).waitFor();
    const nodes = ops.locator("tr[data-node]");
    await expect.poll(() => nodes.count()).toBe(3);
    const nodeText = await ops.locator("#nodes-title").locator("..").textContent();
    expect(nodeText).toContain("server");
    expect(nodeText).toContain("workers");
    expect(nodeText).toContain("spot");
    expect(nodeText).toContain("running");
    // Steps with their durations: one per node, each Success.
    const steps = ops.locator("table.steps tbody tr");
    await expect.poll(() => steps.count()).toBeGreaterThanOrEqual(3);
    expect(await steps.first().textContent()).toMatch(/k3s-server-init.*Success.*\d+ (s|ms)/);
    // The history: every entry links to its trace in Jaeger.
    const history = (await api("GET", "/clusters/dash-1/history?limit=1000")).body.items as {
      type: string;
      traceId: string;
    }[];
    const entries = ops.locator(".timeline li");
    await expect.poll(() => entries.count()).toBeGreaterThanOrEqual(history.length);
    const links = await Promise.all(
      (await ops.locator(".timeline li a.trace-link").all()).map((a) => a.getAttribute("href")),
    );
    expect(links).toHaveLength(await entries.count());
    for (const href of links) expect(href).toMatch(new RegExp(`^${JAEGER}/trace/[0-9a-f]{32}$`));
    expect(links).toContain(`${JAEGER}/trace/${history[0]?.traceId}`);
    // The dependency graph: the cluster, then each node.
    const tree = ops.getByRole("list", { name: "Dependency graph" });
    await expect.poll(() => tree.locator("code").count()).toBeGreaterThanOrEqual(3);
    await shot(ops, "03-cluster-page");
    await accessible(ops, "a cluster's page");
  });

  it("an operator's click scales a pool: the command is on the bus as theirs, the new node shows", async () => {
    await ops.getByLabel("Pool").selectOption("workers");
    await ops.getByLabel("Node count").fill("3");
    await ops.getByRole("button", { name: "Scale" }).click();
    const scaled = await until(stack, "cluster.scale-requested on the bus", async () =>
      (await stack.events({ type: "cluster", id: "dash-1" })).find(
        (e) => e.type === "cluster.scale-requested",
      ),
    );
    expect(scaled.data).toEqual({ pool: "workers", from: 2, to: 3 });
    expect(scaled.meta.actor).toBe("otto");
    await ops.locator('[data-command-status="accepted"]').waitFor();
    await expect.poll(() => ops.locator("tr[data-node]").count(), { timeout: 30_000 }).toBe(4);
    await until(stack, "dash-1 Ready again", async () =>
      (await ops.locator("#cluster-title [data-state]").textContent()) === "Ready" ? true : undefined,
    );
    await shot(ops, "04-cluster-scaled");
  });

  it("an operator cordons a node and uncordons it: the node and its operation show it", async () => {
    const worker = ops.locator("tr[data-node]").filter({ hasText: "workers" }).first();
    const node = await worker.getAttribute("data-node");
    await worker.getByRole("button", { name: "Cordon" }).click();
    await worker.getByRole("button", { name: "Uncordon" }).waitFor({ timeout: 30_000 });
    expect(await worker.textContent()).toMatch(/cordoned by otto/);
    const op = ops.locator(`tr[data-nodeop$="${node?.replaceAll(".", "_")}"]`);
    await expect.poll(() => op.textContent()).toMatch(/cordon\s*done/);
    await worker.getByRole("button", { name: "Uncordon" }).click();
    await worker.getByRole("button", { name: "Cordon" }).waitFor({ timeout: 30_000 });
    await expect.poll(() => op.textContent()).toMatch(/uncordon\s*done/);
  });

  it("sessions: an operator hibernates and wakes their own session; the page shows the wake latency", async () => {
    for (const [sessionId, user] of [
      ["s-otto", "otto"],
      ["s-ada", "ada"],
    ]) {
      const created = await api("POST", "/sessions", {
        sessionId,
        user,
        clusterId: "dash-1",
        template: TEMPLATE,
      });
      expect(created.status, JSON.stringify(created.body)).toBe(202);
    }
    await nav(ops, "Sessions").click();
    const mine = ops.locator('tr[data-session="s-otto"]');
    const theirs = ops.locator('tr[data-session="s-ada"]');
    await mine.getByRole("button", { name: "Hibernate" }).waitFor({ timeout: 30_000 });
    expect(await mine.textContent()).toMatch(/otto.*dash-1.*Running/);
    expect(await mine.locator("td").nth(4).textContent()).toMatch(/^in \d/);
    // Not theirs: an operator may not act on another user's session (the API's rule).
    await theirs.waitFor();
    expect(await theirs.locator("button").count()).toBe(0);

    await mine.getByRole("button", { name: "Hibernate" }).click();
    await mine.getByRole("button", { name: "Wake" }).waitFor({ timeout: 30_000 });
    expect(await mine.locator("[data-state]").first().textContent()).toBe("Hibernated");
    await mine.getByRole("button", { name: "Wake" }).click();
    await mine.getByRole("button", { name: "Hibernate" }).waitFor({ timeout: 30_000 });
    await expect.poll(() => mine.locator("td").nth(5).textContent()).toMatch(/\d+ (ms|s)/);
    const woken = (await api("GET", "/sessions/s-otto")).body;
    expect(woken.wakeLatencyMs).toEqual(expect.any(Number));
    await shot(ops, "05-sessions");
    await accessible(ops, "the sessions page");
  });

  it("a drain held up by a PodDisruptionBudget shows the budget and the pod left; it ends once the budget allows", async () => {
    // The cluster's own Kubernetes API (the sim's), as kubectl would reach it.
    const ssm = new SSMClient({
      endpoint: stack.simUrl,
      region: REGION,
      credentials: { accessKeyId: "SIMACCESSKEY", secretAccessKey: "simsecretkey" },
    });
    const kubeconfig = await ssm.send(
      new GetParameterCommand({ Name: "/cairn/dash-1/kubeconfig", WithDecryption: true }),
    );
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfig.Parameter?.Value ?? "");
    const core = kc.makeApiClient(CoreV1Api);
    const policy = kc.makeApiClient(PolicyV1Api);
    // A node no session runs on, with one pod of a Deployment and a budget that allows no eviction.
    const deps = (await api("GET", "/clusters/dash-1/dependencies")).body as {
      nodes: { node: string; pool: string; sessions: unknown[] }[];
    };
    const node = deps.nodes.find((n) => n.pool === "workers" && n.sessions.length === 0)?.node;
    expect(node, JSON.stringify(deps)).toBeDefined();
    const ownerRef = await fixturePodOwner(kc, { name: "web", labels: { app: "web" } });
    await core.createNamespacedPod({
      namespace: "default",
      body: {
        metadata: {
          name: "web-1",
          labels: { app: "web" },
          ownerReferences: [ownerRef],
        },
        spec: { nodeName: node, containers: [{ name: "app", image: "nginx:1.27" }] },
      },
    });
    await policy.createNamespacedPodDisruptionBudget({
      namespace: "default",
      body: {
        metadata: { name: "web-pdb" },
        spec: { minAvailable: 1, selector: { matchLabels: { app: "web" } } },
      },
    });

    await nav(ops, "Clusters").click();
    await ops.getByRole("link", { name: "dash-one" }).click();
    const row = ops.locator(`tr[data-node="${node}"]`);
    await row.getByRole("button", { name: "Drain" }).click();
    const op = ops.locator(`tr[data-nodeop$="${node}"]`);
    await expect.poll(() => op.textContent(), { timeout: 30_000 }).toMatch(/PodDisruptionBudget: web-pdb/);
    expect(await op.textContent()).toMatch(/drain\s*in progress.*0 evicted, 1 left/);
    await shot(ops, "06-drain-blocked");
    await accessible(ops, "a cluster's page with a blocked drain");

    // The budget goes: the pod is evicted, the drain ends, the node stays cordoned.
    await policy.deleteNamespacedPodDisruptionBudget({ name: "web-pdb", namespace: "default" });
    await expect.poll(() => op.textContent(), { timeout: 30_000 }).toMatch(/drain\s*done/);
    expect(await op.textContent()).toMatch(/1 evicted, 0 left.*nothing/);
    expect(await row.textContent()).toMatch(/cordoned/);
    await row.getByRole("button", { name: "Uncordon" }).click();
    await row.getByRole("button", { name: "Cordon" }).waitFor({ timeout: 30_000 });
  });

  it("a Failed cluster shows its reason and what to do", async () => {
    // K3s never installs on its first server: the installer gives up after its attempts.
    await stack.sim("faults", {
      kind: "command-fail",
      service: "ssm",
      match: { clusterId: "dash-fail", step: "k3s-server-init" },
      count: 20,
      output: "[INFO]  Finding release for channel stable\ncurl: (6) Could not resolve host: get.k3s.io",
    });
    const c = exampleClusterCreate("dash-fail");
    expect((await api("POST", "/clusters", { ...c.data, name: "dash-fail" })).status).toBe(202);
    await nav(ops, "Clusters").click();
    await until(
      stack,
      "dash-fail Failed on the page",
      async () => (await stateIn(ops, "dash-fail")) === "Failed",
    );
    const install = (await api("GET", "/installs/dash-fail")).body as {
      failure: { reason: string; remediation: string };
    };
    expect(install.failure.reason).toBeTruthy();
    expect(install.failure.remediation).toBeTruthy();
    const row = ops.locator('tr[data-cluster="dash-fail"]');
    await expect.poll(() => row.locator(".failure-reason").textContent()).toContain(install.failure.reason);
    expect(await row.locator(".failure-remediation").textContent()).toContain(install.failure.remediation);
    await shot(ops, "07-clusters-failed");
    // Its page says the same, and offers a retry.
    await ops.getByRole("link", { name: "dash-fail" }).click();
    await ops.locator("#summary-title").waitFor();
    expect(await ops.locator(".card .failure-reason").first().textContent()).toContain(
      install.failure.reason,
    );
    expect(await ops.getByRole("button", { name: "Retry" }).isEnabled()).toBe(true);
    await shot(ops, "08-cluster-failed");
    await accessible(ops, "a Failed cluster's page");

    // Deleted from the keyboard alone: the button, the dialog's focus, its confirm.
    await ops.getByRole("button", { name: "Delete…" }).focus();
    await ops.keyboard.press("Enter");
    const dialog = ops.getByRole("dialog", { name: "Delete dash-fail?" });
    await dialog.waitFor();
    await accessible(ops, "the delete dialog");
    expect(await focused(ops)).toBe("Cancel");
    await ops.keyboard.press("Tab");
    expect(await focused(ops)).toBe("Delete");
    await ops.keyboard.press("Enter");
    await until(stack, "dash-fail Deleted on the page", async () =>
      (await ops.locator("#cluster-title [data-state]").textContent()) === "Deleted" ? true : undefined,
    );
    const deletion = (await stack.events({ type: "cluster", id: "dash-fail" })).find(
      (e) => e.type === "cluster.deletion-requested",
    );
    expect(deletion?.meta.actor).toBe("otto");
  });

  it("a viewer sees no command buttons for clusters and nodes, nor for sessions not theirs", async () => {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    try {
      const page = await signIn(context, viewer.token);
      expect(await page.locator("[data-role]").textContent()).toContain("vera (viewer)");
      await page.locator('tr[data-cluster="dash-1"]').waitFor();
      expect(await page.locator("button[data-command]").count()).toBe(0);
      await page.getByRole("link", { name: "dash-one" }).click();
      await expect.poll(() => page.locator("tr[data-node]").count()).toBe(4);
      expect(await page.getByRole("heading", { name: "Commands" }).count()).toBe(0);
      expect(await page.locator("button[data-command]").count()).toBe(0);
      await shot(page, "09-viewer-cluster");
      await accessible(page, "a cluster's page, as a viewer");
      await nav(page, "Sessions").click();
      await page.getByRole("heading", { name: "Sessions" }).waitFor();
      // A viewer sees their own sessions only, and vera has none: nothing to act on.
      expect(await page.locator("tr[data-session]").count()).toBe(0);
      expect(await page.locator("button[data-command]").count()).toBe(0);
    } finally {
      await context.close();
    }
    expect(stack.crashes()).toEqual([]);
  });
});
