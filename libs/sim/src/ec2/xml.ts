/**
 * EC2 Query responses as the SDK's deserializers read them (element names from the
 * `ec2` xmlName traits of @aws-sdk/client-ec2: `reservationSet`, `instancesSet`,
 * `instanceState`, `tagSet`, lists as `<item>`s). Built by string concatenation: a page
 * of 1,000 instances must cost well under a millisecond of the sim's own time, so the
 * parts of an instance that only an API call changes are serialized once and cached.
 */
import { xmlEscape } from "../aws.ts";
import type { InstanceState } from "../world.ts";
import {
  type Ec2World,
  type Instance,
  type InstanceStateChange,
  type Reservation,
  SIM_ACCOUNT_ID,
  STATE_CODES,
  STATUS_INITIALIZING_MS,
} from "./model.ts";

export const EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/";
const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';
const NEEDS_ESCAPE = /[&<>"']/;

/** Escapes text only when it needs it (most ids and names never do). */
export const esc = (s: string) => (NEEDS_ESCAPE.test(s) ? xmlEscape(s) : s);

const iso = (t: number) => new Date(t).toISOString();
const el = (name: string, value: string) => `<${name}>${esc(value)}</${name}>`;

/** `<XxxResponse xmlns=…><requestId>…</requestId>…</XxxResponse>` */
export function responseXml(action: string, requestId: string, inner: string): string {
  return `${HEAD}<${action}Response xmlns="${EC2_XMLNS}"><requestId>${requestId}</requestId>${inner}</${action}Response>`;
}

/** The error body every EC2 error has; the SDK reads `Code` into the exception name. */
export function errorXml(code: string, message: string, requestId: string): string {
  return `${HEAD}<Response><Errors><Error><Code>${esc(code)}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

export const stateXml = (state: InstanceState) => `<code>${STATE_CODES[state]}</code><name>${state}</name>`;

function tagSetXml(tags: ReadonlyMap<string, string>): string {
  if (tags.size === 0) return "";
  let s = "<tagSet>";
  for (const [k, v] of tags) s += `<item><key>${esc(k)}</key><value>${esc(v)}</value></item>`;
  return `${s}</tagSet>`;
}

/**
 * The attributes only API calls change (tags, launch time), cached on the instance.
 * Lean on purpose: what a control plane reads (ids, type, zone, subnet, addresses,
 * lifecycle, tags, times); EC2's fixed decorations (hypervisor, monitoring, root device,
 * ENA, …) are left out, since the SDK's XML parsing is what a large page costs.
 */
function staticXml(i: Instance): string {
  let s =
    el("instanceId", i.id) +
    el("imageId", i.imageId) +
    el("privateDnsName", i.privateDnsName) +
    (i.keyName !== undefined ? el("keyName", i.keyName) : "") +
    `<amiLaunchIndex>${i.amiLaunchIndex}</amiLaunchIndex>` +
    el("instanceType", i.instanceType) +
    `<launchTime>${iso(i.launchTime)}</launchTime>` +
    `<placement><availabilityZone>${i.availabilityZone}</availabilityZone><tenancy>default</tenancy></placement>` +
    el("subnetId", i.subnetId) +
    el("vpcId", i.vpcId) +
    `<privateIpAddress>${i.privateIpAddress}</privateIpAddress><groupSet>`;
  for (const g of i.securityGroupIds) s += `<item><groupId>${esc(g)}</groupId></item>`;
  s +=
    "</groupSet>" +
    `<architecture>${i.architecture}</architecture>` +
    (i.spotInstanceRequestId !== undefined
      ? `<instanceLifecycle>spot</instanceLifecycle><spotInstanceRequestId>${i.spotInstanceRequestId}</spotInstanceRequestId>`
      : "") +
    (i.clientToken ? el("clientToken", i.clientToken) : "") +
    tagSetXml(i.tags) +
    (i.iamInstanceProfileArn !== undefined
      ? `<iamInstanceProfile>${el("arn", i.iamInstanceProfileArn)}</iamInstanceProfile>`
      : "");
  return s;
}

/** One `<item>` of an `instancesSet`; the instance must be settled to now. */
export function instanceXml(i: Instance): string {
  if (i.xml === undefined) i.xml = staticXml(i);
  const p = i.phase;
  const reason = p.reason;
  return (
    `<item><instanceState>${stateXml(p.state)}</instanceState>` +
    (reason?.text ? `<reason>${reason.text}</reason>` : "") +
    (reason
      ? `<stateReason><code>${reason.code}</code><message>${reason.message}</message></stateReason>`
      : "") +
    i.xml +
    "</item>"
  );
}

/** A reservation's fields and its instances (RunInstances answers one; DescribeInstances lists them). */
export function reservationBodyXml(reservationId: string, instances: readonly Instance[]): string {
  let s = `<reservationId>${reservationId}</reservationId><ownerId>${SIM_ACCOUNT_ID}</ownerId><instancesSet>`;
  for (const i of instances) s += instanceXml(i);
  return `${s}</instancesSet>`;
}

/** RunInstances: the reservation, its instances settled to now. */
export function runInstancesXml(world: Ec2World, r: Reservation): string {
  const now = world.now();
  for (const i of r.instances) world.settle(i, now);
  return reservationBodyXml(r.id, r.instances);
}

/** DescribeInstances: a page of instances grouped into their reservations, in launch order. */
export function reservationSetXml(instances: readonly Instance[]): string {
  const groups = new Map<string, Instance[]>();
  for (const i of instances) {
    const g = groups.get(i.reservationId);
    if (g) g.push(i);
    else groups.set(i.reservationId, [i]);
  }
  let s = "<reservationSet>";
  for (const [id, members] of groups) s += `<item>${reservationBodyXml(id, members)}</item>`;
  return `${s}</reservationSet>`;
}

/** Start/Stop/TerminateInstances: one `<item>` per instance with its current and previous state. */
export function stateChangesXml(changes: readonly InstanceStateChange[]): string {
  let s = "<instancesSet>";
  for (const c of changes) {
    s += `<item><instanceId>${c.instanceId}</instanceId><currentState>${stateXml(c.current)}</currentState><previousState>${stateXml(c.previous)}</previousState></item>`;
  }
  return `${s}</instancesSet>`;
}

/**
 * The status checks of a settled instance: `initializing` for the first
 * STATUS_INITIALIZING_MS after it starts running, then `ok`; `not-applicable` when it
 * is not running.
 */
export function statusOf(i: Instance, now: number): "initializing" | "ok" | "not-applicable" {
  if (i.phase.state !== "running" || i.runningSince === undefined) return "not-applicable";
  return now < i.runningSince + STATUS_INITIALIZING_MS ? "initializing" : "ok";
}

function summaryXml(status: "initializing" | "ok" | "not-applicable"): string {
  if (status === "not-applicable") return "<status>not-applicable</status>";
  const detail = status === "ok" ? "passed" : "initializing";
  return `<status>${status}</status><details><item><name>reachability</name><status>${detail}</status></item></details>`;
}

/** DescribeInstanceStatus: one `<item>` per instance. */
export function instanceStatusSetXml(instances: readonly Instance[], now: number): string {
  let s = "<instanceStatusSet>";
  for (const i of instances) {
    const status = summaryXml(statusOf(i, now));
    s +=
      `<item><instanceId>${i.id}</instanceId><availabilityZone>${i.availabilityZone}</availabilityZone>` +
      `<instanceState>${stateXml(i.phase.state)}</instanceState>` +
      `<systemStatus>${status}</systemStatus><instanceStatus>${status}</instanceStatus></item>`;
  }
  return `${s}</instanceStatusSet>`;
}
