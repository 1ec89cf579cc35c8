/**
 * The simulated EC2: the Query protocol (form-encoded requests, XML answers) for the
 * actions Cairn calls, per region, with lazy lifecycle timing, ClientToken
 * idempotency, spot interruptions and injected faults. See docs/sim-ec2.md.
 */
import type { ServerResponse } from "node:http";
import { SimRandom } from "../random.ts";
import { SPOT_INTERRUPTION_QUEUE } from "../sqs/index.ts";
import type { Ec2Port, InstanceView, SimCall, SimContext, SimModule } from "../world.ts";
import { ACTIONS, launchFacts } from "./actions.ts";
import { Ec2Error, internalError, throttled } from "./errors.ts";
import {
  Ec2World,
  type Ec2WorldSnapshot,
  SIM_ACCOUNT_ID,
  type SpotInterruptionNotice,
  STATE_CODES,
} from "./model.ts";
import { QueryParams } from "./params.ts";
import { errorXml, responseXml } from "./xml.ts";

export type { SpotInterruptionNotice } from "./model.ts";

/** The EC2 port, plus spot interruptions (in process, as the admin API offers them). */
export interface Ec2SimPort extends Ec2Port {
  /** Every spot interruption notice given so far, oldest first; of one region or of all. */
  interruptions(region?: string): SpotInterruptionNotice[];
  /**
   * Gives a spot instance its two-minute notice and, as AWS's EventBridge rule would, puts
   * the "EC2 Spot Instance Interruption Warning" event on the region's SQS queue
   * `cairn-spot-interruptions`.
   */
  interruptSpot(region: string, instanceId: string): SpotInterruptionNotice;
}

/**
 * The event EventBridge delivers for a spot interruption, as AWS shapes it
 * (`time` to the second, the instance's ARN in `resources`).
 */
export function spotInterruptionWarning(notice: SpotInterruptionNotice, id: string) {
  return {
    version: "0",
    id,
    "detail-type": "EC2 Spot Instance Interruption Warning",
    source: "aws.ec2",
    account: SIM_ACCOUNT_ID,
    time: notice.noticeTime.replace(/\.\d{3}Z$/, "Z"),
    region: notice.region,
    resources: [`arn:aws:ec2:${notice.availabilityZone}:${SIM_ACCOUNT_ID}:instance/${notice.instanceId}`],
    detail: { "instance-id": notice.instanceId, "instance-action": notice.action },
  };
}

/** A picture of one region for the admin API. */
export interface Ec2RegionState {
  counts: Record<string, number>;
  instances: {
    id: string;
    state: string;
    type: string;
    az: string;
    spot: boolean;
    tags: Record<string, string>;
  }[];
  interruptions: SpotInterruptionNotice[];
}

/** Admin actions: `POST /_sim/ec2/<action>`. */
export const EC2_ADMIN_ACTIONS = ["interrupt-spot", "interruptions", "missing-ami", "subnet"] as const;

export function createEc2(ctx: SimContext): SimModule<Ec2SimPort> {
  const world = new Ec2World({ now: () => ctx.clock.now(), random: ctx.random, latencies: ctx.latencies });
  // Request ids come from their own PRNG so that how often a client polls never shifts
  // the instance ids the seed gives.
  const requestIds = new SimRandom(0xec2);
  const eventIds = new SimRandom(0xeb);

  const views = (region: string): InstanceView[] => {
    const r = world.existing(region);
    if (!r) return [];
    const now = world.now();
    return r.ordered.map((i) => world.view(i, now));
  };

  const port: Ec2SimPort = {
    instance(region, instanceId) {
      const i = world.existing(region)?.byId.get(instanceId);
      return i ? world.view(i) : undefined;
    },
    instances: views,
    interruptions: (region) => world.interruptions(region),
    interruptSpot(region, instanceId) {
      const notice = world.interruptSpot(region, instanceId);
      const event = spotInterruptionWarning(notice, eventIds.uuid());
      ctx.world.sqs?.deliver(region, SPOT_INTERRUPTION_QUEUE, JSON.stringify(event));
      return notice;
    },
  };

  async function handle(call: SimCall): Promise<void> {
    const { region, res } = call;
    const at = call.at ?? ctx.clock.now();
    // When the call waited behind others, the request log says when it was dated too.
    const dated = () => (at < ctx.clock.now() ? { at: ctx.clock.iso(at) } : {});
    const params = new QueryParams(call.body.toString("utf8"));
    const action = params.get("Action") ?? "";
    const requestId = requestIds.uuid();
    let ids: string[] = [];
    try {
      if (!action) throw new Ec2Error("MissingAction", "The request must contain the parameter Action");
      const a = Object.hasOwn(ACTIONS, action) ? ACTIONS[action] : undefined;
      if (!a) throw new Ec2Error("InvalidAction", `The action ${action} is not valid for this web service.`);
      ids = a.named(params);

      // Throttling and internal errors come before anything else is looked at, as in AWS.
      const facts: Record<string, string | undefined> =
        action === "RunInstances" ? launchFacts(world, region, params) : { instanceId: factId(ids) };
      const fault = ctx.faults.take({ service: "ec2", action, region, facts }, [
        "throttle",
        "internal-error",
      ]);
      if (fault) throw fault.kind === "throttle" ? throttled() : internalError();

      const result = a.run({
        world,
        region,
        params,
        at,
        capacityFault: (launch) => {
          const rule = ctx.faults.take({ service: "ec2", action, region, facts: launch }, [
            "insufficient-capacity",
          ]);
          return rule === undefined ? undefined : (rule.available ?? 0);
        },
      });
      ids = result.ids;
      send(res, 200, responseXml(action, requestId, result.xml), requestId);
      ctx.requests.record({
        time: ctx.clock.iso(),
        ...dated(),
        service: "ec2",
        region,
        action,
        ids,
        status: 200,
      });
    } catch (err) {
      const e =
        err instanceof Ec2Error
          ? err
          : new Ec2Error(
              "InternalError",
              `An internal error has occurred (sim: ${(err as Error).message})`,
              500,
            );
      send(res, e.status, errorXml(e.code, e.message, requestId), requestId);
      ctx.requests.record({
        time: ctx.clock.iso(),
        service: "ec2",
        region,
        action: action || "(none)",
        ids,
        status: e.status,
        error: e.code,
      });
    }
  }

  /**
   * The instance id a fault rule's `match.instanceId` is compared with: of a call naming
   * several, the one some rule names (so a rule for i-b fires on a call for i-a and i-b).
   */
  function factId(ids: readonly string[]): string | undefined {
    if (ids.length <= 1) return ids[0];
    const targeted = new Set(
      ctx.faults.list().flatMap((r) => (r.match?.instanceId ? [r.match.instanceId] : [])),
    );
    return ids.find((id) => targeted.has(id)) ?? ids[0];
  }

  function state(): {
    regions: Record<string, Ec2RegionState>;
    missingAmis: Record<string, string[]>;
    subnets: Record<string, string>;
  } {
    const regions: Record<string, Ec2RegionState> = {};
    for (const name of world.regionNames()) {
      const counts: Record<string, number> = Object.fromEntries(Object.keys(STATE_CODES).map((s) => [s, 0]));
      const instances = views(name).map((v) => {
        counts[v.state] = (counts[v.state] ?? 0) + 1;
        return {
          id: v.instanceId,
          state: v.state,
          type: v.instanceType,
          az: v.availabilityZone,
          spot: v.spot,
          tags: v.tags,
        };
      });
      regions[name] = { counts, instances, interruptions: world.interruptions(name) };
    }
    return { regions, missingAmis: world.missingAmis(), subnets: world.subnets() };
  }

  async function admin(action: string, body: unknown): Promise<unknown> {
    const b = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
    const str = (name: string, required: boolean): string | undefined => {
      const v = b[name];
      if (v === undefined && !required) return undefined;
      if (typeof v !== "string" || v === "")
        throw new Error(`ec2/${action}: body needs "${name}" (a string)`);
      return v;
    };
    switch (action) {
      case "interrupt-spot":
        return port.interruptSpot(str("region", true)!, str("instanceId", true)!);
      case "interruptions":
        return { notices: world.interruptions(str("region", false)) };
      case "missing-ami": {
        const imageId = str("imageId", true)!;
        if (!imageId.startsWith("ami-")) throw new Error(`ec2/missing-ami: "${imageId}" is not an AMI id`);
        world.addMissingAmi(imageId, str("region", false));
        return { missingAmis: world.missingAmis() };
      }
      case "subnet":
        world.pinSubnet(str("subnetId", true)!, str("availabilityZone", true)!);
        return { subnets: world.subnets() };
      default:
        throw new Error(`no ec2 admin action "${action}"; there are ${EC2_ADMIN_ACTIONS.join(", ")}`);
    }
  }

  return {
    port,
    handle,
    state,
    admin,
    snapshot: () => ({ world: world.snapshot(), requestIds: requestIds.state, eventIds: eventIds.state }),
    restore(s) {
      const snap = s as { world: Ec2WorldSnapshot; requestIds: number; eventIds: number };
      world.restore(snap.world);
      requestIds.state = snap.requestIds;
      eventIds.state = snap.eventIds;
    },
  };
}

function send(res: ServerResponse, status: number, body: string, requestId: string): void {
  res.writeHead(status, {
    "content-type": "text/xml;charset=UTF-8",
    "content-length": Buffer.byteLength(body),
    "x-amzn-requestid": requestId,
  });
  res.end(body);
}
