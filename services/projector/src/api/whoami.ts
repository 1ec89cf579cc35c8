/**
 * `GET /whoami`: who the API takes the caller for, and what that role may do. The dashboard
 * asks it first: a 401 means "show the token form", the role decides which buttons it draws.
 */
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { ROLES } from "./auth.ts";
import type { ApiDeps } from "./server.ts";

export const whoamiView = z
  .object({
    auth: z.boolean().describe("Whether the API requires bearer tokens (CAIRN_TOKENS_FILE)"),
    user: z.string().nullable().describe("The token's user; null without tokens"),
    role: z
      .enum(ROLES)
      .describe("The token's role; without tokens every caller is this machine and may do anything (admin)"),
    jaegerUiUrl: z.string().nullable().describe("Where traces are shown (JAEGER_UI_URL), when configured"),
  })
  .meta({ id: "WhoAmI" });

export function whoamiRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/whoami",
    {
      config: { access: "viewer" },
      schema: {
        summary: "The caller as the API sees it: user and role (what the dashboard shows and hides by)",
        tags: ["auth"],
        response: { 200: whoamiView },
      },
    },
    async (req) => ({
      auth: deps.auth !== undefined,
      user: req.principal?.user ?? null,
      // Without tokens the API answers only on loopback and checks no role: all is allowed.
      role: req.principal?.role ?? "admin",
      jaegerUiUrl: deps.jaegerUiUrl ?? null,
    }),
  );
}
