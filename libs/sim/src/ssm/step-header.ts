/**
 * The step header: one comment line Cairn's installer writes into every script it sends
 * over Run Command, so the sim knows what the script would do on a real machine.
 *
 *   # cairn-step: <step> key=value key="value with spaces" …
 *
 * Bash ignores it (it is a comment); the sim reads it instead of running the script.
 * Pure: no clock, no I/O. The grammar is documented in docs/sim-ssm.md.
 */
import type { NodeRegistration } from "../world.ts";

export const KNOWN_STEPS = [
  "k3s-server-init",
  "k3s-server-join",
  "k3s-agent-join",
  "k3s-restart",
  "k3s-check",
  "print",
] as const;
export type KnownStep = (typeof KNOWN_STEPS)[number];

export type Taint = NodeRegistration["taints"][number];
const TAINT_EFFECTS: readonly Taint["effect"][] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

/** The most a `print` step may print (the sim keeps the whole output in memory). */
export const MAX_PRINT_BYTES = 10_000_000;

export interface StepHeader {
  /** The step as written (lower case), known or not. */
  step: string;
  /** Whether the sim models this step; an unknown step runs as a plain script. */
  known: boolean;
  cluster?: string;
  node?: string;
  role?: "server" | "agent";
  labels: Record<string, string>;
  taints: Taint[];
  /** Where `k3s-server-init` writes the kubeconfig; default `/cairn/<cluster>/kubeconfig`. */
  kubeconfigParam?: string;
  /** How many characters `print` prints. */
  bytes?: number;
  /** The K3s version the script installs (only shown in its output). */
  version?: string;
  /** Every key=value pair as written, including keys the sim does not interpret. */
  params: Record<string, string>;
  /** What is wrong with the header; a script with a bad header fails (exit 2). */
  errors: string[];
}

const HEADER = /^\s*#\s*cairn-step:\s*(.*)$/;
const KEY = /^[a-z][a-z0-9-]*$/;

/**
 * Finds the step header in the `commands` parameter of AWS-RunShellScript. Any line of any
 * element counts (an element may hold a whole multi-line script); the first header wins.
 * Returns undefined when no line is a header.
 * @example findStepHeader(["#!/bin/bash", "# cairn-step: k3s-check cluster=demo-1"])
 *          // → { step: "k3s-check", known: true, cluster: "demo-1", … }
 */
export function findStepHeader(commands: readonly string[]): StepHeader | undefined {
  for (const command of commands) {
    for (const line of command.split(/\r?\n/)) {
      const m = HEADER.exec(line);
      if (m) return parseStepHeader(m[1] ?? "");
    }
  }
  return undefined;
}

/**
 * Parses what follows `# cairn-step:`. Never throws: problems land in `errors`.
 * @example parseStepHeader('k3s-agent-join cluster=c1 node=n1 taints=gpu=true:NoSchedule')
 */
export function parseStepHeader(rest: string): StepHeader {
  const errors: string[] = [];
  const { tokens, error } = tokenize(rest);
  if (error) errors.push(error);
  const [first, ...pairs] = tokens;
  const step = (first ?? "").toLowerCase();
  const header: StepHeader = {
    step,
    known: (KNOWN_STEPS as readonly string[]).includes(step),
    labels: {},
    taints: [],
    params: {},
    errors,
  };
  if (!first) {
    errors.push("no step named after `cairn-step:`");
    return header;
  }
  if (first.includes("=")) errors.push(`the step comes first, before any key=value (got ${first})`);

  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      errors.push(`expected key=value, got ${JSON.stringify(pair)}`);
      continue;
    }
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    if (!KEY.test(key)) {
      errors.push(`bad key ${JSON.stringify(key)} (lower case letters, digits and dashes)`);
      continue;
    }
    header.params[key] = value;
  }

  const p = header.params;
  if (p.cluster !== undefined) header.cluster = nonEmpty("cluster", p.cluster, errors);
  if (p.node !== undefined) header.node = nonEmpty("node", p.node, errors);
  if (p.version !== undefined) header.version = nonEmpty("version", p.version, errors);
  if (p["kubeconfig-param"] !== undefined) {
    header.kubeconfigParam = nonEmpty("kubeconfig-param", p["kubeconfig-param"], errors);
  }
  if (p.role !== undefined) {
    if (p.role === "server" || p.role === "agent") header.role = p.role;
    else errors.push(`role must be server or agent, got ${JSON.stringify(p.role)}`);
  }
  if (p.labels !== undefined) header.labels = parseLabels(p.labels, errors);
  if (p.taints !== undefined) header.taints = parseTaints(p.taints, errors);
  if (p.bytes !== undefined) {
    if (/^\d+$/.test(p.bytes) && Number(p.bytes) <= MAX_PRINT_BYTES) header.bytes = Number(p.bytes);
    else errors.push(`bytes must be an integer from 0 to ${MAX_PRINT_BYTES}, got ${JSON.stringify(p.bytes)}`);
  }

  const implied = impliedRole(step);
  if (implied && header.role && header.role !== implied) {
    errors.push(`role=${header.role} contradicts step ${step} (role ${implied})`);
  }
  if (implied && !header.cluster) errors.push(`step ${step} needs cluster=<cluster id>`);
  if (step === "print" && header.bytes === undefined) errors.push("step print needs bytes=<count>");
  return header;
}

/** The node role a K3s step registers, if it registers one. */
export function impliedRole(step: string): "server" | "agent" | undefined {
  if (step === "k3s-server-init" || step === "k3s-server-join") return "server";
  if (step === "k3s-agent-join") return "agent";
  return undefined;
}

/** `a=1,node.kubernetes.io/pool=workers` → { a: "1", "node.kubernetes.io/pool": "workers" }. */
export function parseLabels(text: string, errors: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const item of splitList(text)) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      errors.push(`label ${JSON.stringify(item)} is not key=value`);
      continue;
    }
    labels[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labels;
}

/** `gpu=true:NoSchedule,dedicated:NoExecute` → [{ key: "gpu", value: "true", effect: "NoSchedule" }, …]. */
export function parseTaints(text: string, errors: string[]): Taint[] {
  const taints: Taint[] = [];
  for (const item of splitList(text)) {
    const colon = item.lastIndexOf(":");
    const effect = colon >= 0 ? item.slice(colon + 1) : "";
    if (!(TAINT_EFFECTS as readonly string[]).includes(effect)) {
      errors.push(`taint ${JSON.stringify(item)} needs an effect: key[=value]:${TAINT_EFFECTS.join("|")}`);
      continue;
    }
    const kv = item.slice(0, colon);
    const eq = kv.indexOf("=");
    const key = eq >= 0 ? kv.slice(0, eq) : kv;
    if (!key) {
      errors.push(`taint ${JSON.stringify(item)} has no key`);
      continue;
    }
    taints.push({ key, ...(eq >= 0 ? { value: kv.slice(eq + 1) } : {}), effect: effect as Taint["effect"] });
  }
  return taints;
}

function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function nonEmpty(key: string, value: string, errors: string[]): string | undefined {
  if (value.length > 0) return value;
  errors.push(`${key} is empty`);
  return undefined;
}

/**
 * Splits on whitespace; a double-quoted stretch (`key="a b"`) is one token without its
 * quotes, and `\"` / `\\` inside quotes stand for `"` / `\`.
 */
function tokenize(text: string): { tokens: string[]; error?: string } {
  const tokens: string[] = [];
  let current = "";
  let inToken = false;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) {
        current += text[++i];
      } else if (c === '"') {
        quoted = false;
      } else {
        current += c;
      }
    } else if (c === '"') {
      quoted = true;
      inToken = true;
    } else if (/\s/.test(c)) {
      if (inToken) tokens.push(current);
      current = "";
      inToken = false;
    } else {
      current += c;
      inToken = true;
    }
  }
  if (inToken) tokens.push(current);
  return quoted ? { tokens, error: "unterminated double quote" } : { tokens };
}
