import { describe, expect, it } from "vitest";
import { isoDuration } from "./commands.ts";
import { failedStderr, firstChars, pluginOutput, printedText } from "./output.ts";
import { planScript } from "./scripts.ts";
import { parseStepHeader } from "./step-header.ts";

describe("printedText", () => {
  it("is exactly the asked number of characters, in numbered lines", () => {
    for (const n of [0, 1, 63, 64, 24_000, 30_001]) expect(printedText(n)).toHaveLength(n);
    expect(printedText(200).split("\n")[1]).toMatch(/^cairn print line 000002 /);
  });
});

describe("firstChars", () => {
  it("cuts at the limit without a marker", () => {
    expect(firstChars("abcdef", 4)).toBe("abcd");
    expect(firstChars("abc", 4)).toBe("abc");
  });
});

describe("pluginOutput (the agent's TruncateOutput)", () => {
  const cap = 100;
  it("keeps what fits, with stderr under an ERROR title", () => {
    expect(pluginOutput("", "", cap)).toBe("");
    expect(pluginOutput("out", "", cap)).toBe("out");
    expect(pluginOutput("out", "err", cap)).toBe("out\n----------ERROR-------\nerr");
  });
  it("cuts a long stdout to the capacity, marking it", () => {
    const s = pluginOutput("x".repeat(500), "", cap);
    expect(s).toHaveLength(cap);
    expect(s.endsWith("\n---Output truncated---")).toBe(true);
  });
  it("cuts a long stderr behind a short stdout", () => {
    const s = pluginOutput("ok", "e".repeat(500), cap);
    expect(s.startsWith("ok\n----------ERROR-------\neee")).toBe(true);
    expect(s.endsWith("\n---Error truncated----")).toBe(true);
    expect(s).toHaveLength(cap);
  });
  it("halves the room when both are long", () => {
    const s = pluginOutput("o".repeat(500), "e".repeat(500), cap);
    expect(s).toMatch(/^o+\n---Output truncated---\n----------ERROR-------\ne+\n---Error truncated----$/);
    expect(s.length).toBeLessThanOrEqual(cap);
  });
  it("uses 2,500 characters by default", () => {
    expect(pluginOutput("y".repeat(10_000), "")).toHaveLength(2_500);
  });
});

describe("failedStderr", () => {
  it("ends with the agent's exit line", () => {
    expect(failedStderr("boom\n", 1)).toBe("boom\nfailed to run commands: exit status 1");
    expect(failedStderr("", 2)).toBe("failed to run commands: exit status 2");
  });
});

describe("isoDuration", () => {
  it("writes ExecutionElapsedTime like AWS", () => {
    expect(isoDuration(91)).toBe("PT0.091S");
    expect(isoDuration(2000)).toBe("PT2S");
    expect(isoDuration(60_500)).toBe("PT60.5S");
    expect(isoDuration(0)).toBe("PT0S");
  });
});

describe("planScript", () => {
  it("plans a server init: install latency, its effect and an output that names no secret", () => {
    const plan = planScript(parseStepHeader("k3s-server-init cluster=c1 labels=a=1"), "ip-10-0-0-5");
    expect(plan.latency).toBe("k3sServerInstall");
    expect(plan.effect).toEqual({
      kind: "server-init",
      cluster: "c1",
      node: "ip-10-0-0-5",
      labels: { a: "1" },
      taints: [],
      kubeconfigParam: "/cairn/c1/kubeconfig",
    });
    expect(plan.stdout).toContain("[cairn] step k3s-server-init: k3s v1.31.4+k3s1 installed");
    expect(plan.stdout).not.toMatch(/token/i);
    expect(plan.stdout.startsWith(plan.partialStdout)).toBe(true);
  });
  it("plans joins with their role and the join latency", () => {
    const agent = planScript(parseStepHeader("k3s-agent-join cluster=c1 node=w1"), "h");
    expect(agent).toMatchObject({ latency: "k3sJoin", effect: { kind: "join", role: "agent", node: "w1" } });
    const server = planScript(parseStepHeader("k3s-server-join cluster=c1"), "h");
    expect(server.effect).toMatchObject({ kind: "join", role: "server", node: "h" });
  });
  it("prints `active` for k3s-check, nothing for a script without a header or with an unknown step", () => {
    expect(planScript(parseStepHeader("k3s-check"), "h").stdout).toBe("active\n");
    expect(planScript(undefined, "h")).toMatchObject({
      latency: "scriptDefault",
      stdout: "",
      effect: { kind: "none" },
    });
    expect(planScript(parseStepHeader("wat"), "h")).toMatchObject({
      step: "wat",
      stdout: "",
      headerErrors: [],
    });
  });
  it("carries header errors", () => {
    expect(planScript(parseStepHeader("print"), "h").headerErrors).toEqual([
      "step print needs bytes=<count>",
    ]);
  });
});
