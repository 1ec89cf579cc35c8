/**
 * The dashboard at `/`: static files (services/projector/dashboard/) and the three ES
 * modules it is built on, served from their npm packages as published (preact, its hooks,
 * htm). No build step and no CDN: everything the page loads comes from this API.
 *
 * The files hold no data, so they are public (a browser loads them before it has a token);
 * the data comes from the API's own routes, with the token the page asks for. Only the
 * files that exist are routes (`wildcard: false`): an unknown path is still the API's
 * 404 (or 401 without a token), as before.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply } from "fastify";

/** Where the dashboard's own files are. */
export const DASHBOARD_DIR = resolve(import.meta.dirname, "../../dashboard");

/**
 * The modules the page imports by bare name (its import map), each a file of an installed
 * package: `import.meta.resolve` finds what Node would load, which for these packages is
 * the same browser-ready ES module.
 */
export const VENDOR_MODULES: Readonly<Record<string, string>> = {
  "preact.mjs": fileURLToPath(import.meta.resolve("preact")),
  "preact-hooks.mjs": fileURLToPath(import.meta.resolve("preact/hooks")),
  "htm.mjs": fileURLToPath(import.meta.resolve("htm")),
};

/**
 * The Content-Security-Policy of the page: its own origin only, plus the one inline
 * script it has (the import map), allowed by its hash.
 * @example contentSecurityPolicy('<script type="importmap">{"imports":{}}</script>')
 *   // "default-src 'self'; script-src 'self' 'sha256-…'; …"
 */
export function contentSecurityPolicy(html: string): string {
  const inline = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map(
    (m) =>
      `'sha256-${createHash("sha256")
        .update(m[1] ?? "")
        .digest("base64")}'`,
  );
  return [
    "default-src 'self'",
    `script-src 'self' ${inline.join(" ")}`.trim(),
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}

export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  const csp = contentSecurityPolicy(readFileSync(resolve(DASHBOARD_DIR, "index.html"), "utf8"));
  await app.register(async (scope) => {
    // Every route of this scope serves files that hold no data: open to all.
    scope.addHook("onRoute", (route) => {
      route.config = { ...(route.config ?? {}), access: "public" };
    });
    await scope.register(fastifyStatic, {
      root: DASHBOARD_DIR,
      prefix: "/",
      wildcard: false,
      // Type declarations and tests beside the modules are for Node, not the browser.
      globIgnore: ["**/*.d.ts", "**/*.spec.*"],
      // Not cached without asking: a new version shows at the next load (ETag → 304).
      cacheControl: true,
      maxAge: 0,
      setHeaders: (res, path) => {
        res.header("x-content-type-options", "nosniff");
        if (path.endsWith(".html")) {
          res.header("content-security-policy", csp);
          res.header("referrer-policy", "no-referrer");
        }
      },
    });
    for (const [name, file] of Object.entries(VENDOR_MODULES)) {
      scope.get(`/vendor/${name}`, { schema: { hide: true } }, (_req, reply: FastifyReply) =>
        reply.header("x-content-type-options", "nosniff").sendFile(basename(file), dirname(file)),
      );
    }
  });
}
