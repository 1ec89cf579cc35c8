/**
 * What a script sent with AWS-RunShellScript would do, told by its step header: how
 * long it runs, what it prints, and which effect it has on the world when it succeeds.
 * Pure: the module applies the effect (see index.ts).
 */
import type { Latencies } from "../clock.ts";
import { printedText } from "./output.ts";
import { impliedRole, type StepHeader, type Taint } from "./step-header.ts";

/** The K3s version a script reports when its header names none. */
export const DEFAULT_K3S_VERSION = "v1.31.4+k3s1";

/** The node a K3s step registers, as the header describes it. */
interface NodeSpec {
  cluster: string;
  node: string;
  labels: Record<string, string>;
  taints: Taint[];
}

export type ScriptEffect =
  | { kind: "none" }
  | (NodeSpec & { kind: "server-init"; kubeconfigParam: string })
  | (NodeSpec & { kind: "join"; role: "server" | "agent" })
  /** A restart of K3s on a node: a kubelet that had stopped reporting is Ready again. */
  | { kind: "restart"; cluster: string; node: string };

export interface ScriptPlan {
  /** The step header's step, or undefined for a script without one. */
  step: string | undefined;
  /** Which latency knob says how long the script runs. */
  latency: keyof Pick<Latencies, "k3sServerInstall" | "k3sJoin" | "scriptDefault">;
  /** What it prints when it runs to the end. */
  stdout: string;
  /** What it has printed when it is cut short (fails, times out, is cancelled). */
  partialStdout: string;
  /** What happens in the world when it succeeds. */
  effect: ScriptEffect;
  /** Set when the header is malformed: the script fails (exit 2) after scriptDefault. */
  headerErrors: string[];
}

/** The parameter `k3s-server-init` writes the kubeconfig to, unless the header names one. */
export function defaultKubeconfigParam(cluster: string): string {
  return `/cairn/${cluster}/kubeconfig`;
}

/**
 * Plans a script run.
 * @param header the parsed step header, or undefined when the script has none
 * @param hostname the instance's host name, the node name when the header names none
 */
export function planScript(header: StepHeader | undefined, hostname: string): ScriptPlan {
  if (!header) {
    return {
      step: undefined,
      latency: "scriptDefault",
      stdout: "",
      partialStdout: "",
      effect: none,
      headerErrors: [],
    };
  }
  const step = header.step;
  if (header.errors.length > 0) {
    return {
      step,
      latency: "scriptDefault",
      stdout: "",
      partialStdout: "",
      effect: none,
      headerErrors: header.errors,
    };
  }
  const tag = `[cairn] step ${step}:`;
  const version = header.version ?? DEFAULT_K3S_VERSION;
  const role = impliedRole(step);
  if (role && header.cluster) {
    const cluster = header.cluster;
    const node = header.node ?? hostname;
    const spec: NodeSpec = { cluster, node, labels: header.labels, taints: header.taints };
    const start = `${tag} cluster ${cluster}, node ${node} (${role})\n`;
    const install = [
      `[INFO]  Using ${version} as release\n`,
      `[INFO]  Downloading hash https://github.com/k3s-io/k3s/releases/download/${version}/sha256sum-amd64.txt\n`,
      `[INFO]  Downloading binary https://github.com/k3s-io/k3s/releases/download/${version}/k3s\n`,
      "[INFO]  Verifying binary download\n",
      "[INFO]  Installing k3s to /usr/local/bin/k3s\n",
      `[INFO]  systemd: Starting ${role === "agent" ? "k3s-agent" : "k3s"}\n`,
    ].join("");
    if (step === "k3s-server-init") {
      const kubeconfigParam = header.kubeconfigParam ?? defaultKubeconfigParam(cluster);
      return {
        step,
        latency: "k3sServerInstall",
        stdout: `${start}${install}${tag} k3s ${version} installed\n${tag} kubeconfig written to SSM parameter ${kubeconfigParam}\n`,
        partialStdout: start,
        effect: { kind: "server-init", ...spec, kubeconfigParam },
        headerErrors: [],
      };
    }
    return {
      step,
      latency: "k3sJoin",
      stdout: `${start}${install}${tag} k3s ${version} installed\n${tag} node ${node} joined cluster ${cluster}\n`,
      partialStdout: start,
      effect: { kind: "join", ...spec, role },
      headerErrors: [],
    };
  }
  if (step === "k3s-restart") {
    return {
      step,
      latency: "scriptDefault",
      stdout: `${tag} restarting k3s\n${tag} k3s active\n`,
      partialStdout: `${tag} restarting k3s\n`,
      effect: header.cluster
        ? { kind: "restart", cluster: header.cluster, node: header.node ?? hostname }
        : none,
      headerErrors: [],
    };
  }
  if (step === "k3s-check") {
    return {
      step,
      latency: "scriptDefault",
      stdout: "active\n",
      partialStdout: "",
      effect: none,
      headerErrors: [],
    };
  }
  if (step === "print") {
    const text = printedText(header.bytes ?? 0);
    return {
      step,
      latency: "scriptDefault",
      stdout: text,
      partialStdout: "",
      effect: none,
      headerErrors: [],
    };
  }
  // An unknown step: a plain script that succeeds quietly.
  return { step, latency: "scriptDefault", stdout: "", partialStdout: "", effect: none, headerErrors: [] };
}

const none: ScriptEffect = { kind: "none" };
