import { describe, expect, it } from "vitest";
import { findStepHeader, MAX_PRINT_BYTES, parseStepHeader } from "./step-header.ts";

describe("findStepHeader", () => {
  it("finds the header on any line of any element, the first one winning", () => {
    const h = findStepHeader([
      "#!/bin/bash\nset -euo pipefail",
      "echo hi\n  #   cairn-step:   k3s-check cluster=demo-1",
      "# cairn-step: print bytes=3",
    ]);
    expect(h).toMatchObject({ step: "k3s-check", known: true, cluster: "demo-1", errors: [] });
  });

  it("returns undefined for a script without a header, and reads CRLF scripts", () => {
    expect(findStepHeader(["echo hello", "# a comment", "# cairn-stepper: no"])).toBeUndefined();
    expect(findStepHeader(["echo a\r\n# cairn-step: k3s-restart\r\n"])?.step).toBe("k3s-restart");
  });
});

describe("parseStepHeader", () => {
  it("reads a server init with labels, taints and a kubeconfig parameter", () => {
    const h = parseStepHeader(
      "k3s-server-init cluster=demo-1 node=cp-1 labels=node.kubernetes.io/pool=system,tier=a taints=CriticalAddonsOnly=true:NoExecute,dedicated:NoSchedule kubeconfig-param=/x/kc version=v1.30.2+k3s1",
    );
    expect(h).toEqual({
      step: "k3s-server-init",
      known: true,
      cluster: "demo-1",
      node: "cp-1",
      version: "v1.30.2+k3s1",
      kubeconfigParam: "/x/kc",
      labels: { "node.kubernetes.io/pool": "system", tier: "a" },
      taints: [
        { key: "CriticalAddonsOnly", value: "true", effect: "NoExecute" },
        { key: "dedicated", effect: "NoSchedule" },
      ],
      params: {
        cluster: "demo-1",
        node: "cp-1",
        labels: "node.kubernetes.io/pool=system,tier=a",
        taints: "CriticalAddonsOnly=true:NoExecute,dedicated:NoSchedule",
        "kubeconfig-param": "/x/kc",
        version: "v1.30.2+k3s1",
      },
      errors: [],
    });
  });

  it("keeps a value with = and : after the first =, and reads double-quoted values", () => {
    const h = parseStepHeader('k3s-agent-join cluster=c1 labels="a=1, b=x:y" note="say \\"hi\\" \\\\ there"');
    expect(h.labels).toEqual({ a: "1", b: "x:y" });
    expect(h.params.note).toBe('say "hi" \\ there');
    expect(h.errors).toEqual([]);
  });

  it("treats an unknown step as known: false, without errors, and keeps unknown keys", () => {
    const h = parseStepHeader("Rotate-Certs cluster=c1 when=now");
    expect(h).toMatchObject({ step: "rotate-certs", known: false, params: { when: "now" }, errors: [] });
  });

  it("reports malformed pairs, keys, roles, labels, taints and byte counts", () => {
    const h = parseStepHeader(
      'k3s-agent-join cluster=c1 lonely Bad_Key=1 role=worker labels=a,b=2 taints=x=1:Sometimes,:NoSchedule bytes=12 note="open',
    );
    expect(h.errors).toEqual([
      "unterminated double quote",
      'expected key=value, got "lonely"',
      'bad key "Bad_Key" (lower case letters, digits and dashes)',
      'role must be server or agent, got "worker"',
      'label "a" is not key=value',
      'taint "x=1:Sometimes" needs an effect: key[=value]:NoSchedule|PreferNoSchedule|NoExecute',
      'taint ":NoSchedule" has no key',
    ]);
    expect(h.labels).toEqual({ b: "2" });
    expect(h.bytes).toBe(12);
  });

  it("needs a cluster for K3s steps and bytes for print, and refuses a contradicting role", () => {
    expect(parseStepHeader("k3s-server-join node=n").errors).toEqual([
      "step k3s-server-join needs cluster=<cluster id>",
    ]);
    expect(parseStepHeader("print").errors).toEqual(["step print needs bytes=<count>"]);
    expect(parseStepHeader(`print bytes=${MAX_PRINT_BYTES + 1}`).errors[0]).toMatch(
      /bytes must be an integer/,
    );
    expect(parseStepHeader("print bytes=-1").errors[0]).toMatch(/bytes must be an integer/);
    expect(parseStepHeader("k3s-agent-join cluster=c role=server").errors).toEqual([
      "role=server contradicts step k3s-agent-join (role agent)",
    ]);
    expect(parseStepHeader("k3s-agent-join cluster=c role=agent").role).toBe("agent");
  });

  it("needs a step first", () => {
    expect(parseStepHeader("   ").errors).toEqual(["no step named after `cairn-step:`"]);
    expect(parseStepHeader("cluster=c1").errors).toContain(
      "the step comes first, before any key=value (got cluster=c1)",
    );
  });

  it("reports empty values of keys that need one", () => {
    expect(parseStepHeader("k3s-check cluster= node=").errors).toEqual(["cluster is empty", "node is empty"]);
  });
});
