/**
 * The admin API under `/_sim/`: state, the request log, faults and time. Loopback only,
 * like the rest of the sim.
 *
 *   GET    /_sim/health
 *   GET    /_sim/state                 every module's state
 *   GET    /_sim/requests?service=&region=&action=
 *   DELETE /_sim/requests
 *   GET    /_sim/faults                POST /_sim/faults {rule}   DELETE /_sim/faults[/<id>]
 *   POST   /_sim/time/advance {seconds}
 *   POST   /_sim/<module>/<action> {…} module-specific (e.g. ec2/interrupt-spot)
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { SimClock } from "./clock.ts";
import { FAULT_KINDS, type FaultInput, type FaultRegistry } from "./faults.ts";
import type { RequestLog } from "./request-log.ts";
import type { SimModule } from "./world.ts";

export interface AdminDeps {
  clock: SimClock;
  faults: FaultRegistry;
  requests: RequestLog;
  modules: Record<string, SimModule<unknown>>;
  seed: number;
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

export async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  body: Buffer,
  d: AdminDeps,
) {
  const parts = url.pathname.split("/").filter(Boolean).slice(1); // drop "_sim"
  const parse = () => (body.length > 0 ? JSON.parse(body.toString("utf8")) : {});
  try {
    const [first, second] = parts;
    if (req.method === "GET" && first === "health")
      return json(res, 200, { ok: true, simTime: d.clock.iso(), timeScale: d.clock.timeScale, seed: d.seed });
    if (req.method === "GET" && first === "state") {
      return json(res, 200, Object.fromEntries(Object.entries(d.modules).map(([k, m]) => [k, m.state()])));
    }
    if (first === "requests") {
      if (req.method === "DELETE") {
        d.requests.clear();
        return json(res, 200, { cleared: true });
      }
      const q = url.searchParams;
      const filter = {
        ...(q.get("service") ? { service: q.get("service") as "ec2" } : {}),
        ...(q.get("region") ? { region: q.get("region")! } : {}),
        ...(q.get("action") ? { action: q.get("action")! } : {}),
      };
      return json(res, 200, d.requests.list(filter));
    }
    if (first === "faults") {
      if (req.method === "GET")
        return json(res, 200, { rules: d.faults.list(), hits: Object.fromEntries(d.faults.hits) });
      if (req.method === "POST") {
        const input = parse() as FaultInput;
        if (!FAULT_KINDS.includes(input.kind))
          return json(res, 400, { error: `kind must be one of ${FAULT_KINDS.join(", ")}` });
        return json(res, 201, d.faults.add(input));
      }
      if (req.method === "DELETE") {
        if (second) return json(res, d.faults.remove(second) ? 200 : 404, { id: second });
        d.faults.clear();
        return json(res, 200, { cleared: true });
      }
    }
    if (req.method === "POST" && first === "time" && second === "advance") {
      const { seconds } = parse() as { seconds?: number };
      if (typeof seconds !== "number" || !(seconds >= 0))
        return json(res, 400, { error: "body is { seconds: number >= 0 }" });
      d.clock.advance(seconds * 1000);
      return json(res, 200, { simTime: d.clock.iso() });
    }
    const module = first ? d.modules[first] : undefined;
    if (req.method === "POST" && module?.admin && second)
      return json(res, 200, await module.admin(second, parse()));
    return json(res, 404, { error: `no admin route ${req.method} ${url.pathname}` });
  } catch (err) {
    return json(res, 400, { error: (err as Error).message });
  }
}
