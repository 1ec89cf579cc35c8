import { describe, expect, it } from "vitest";
import { isServedCommandSubject, misplacedCommand } from "./command-server.ts";

describe("which service answers a command subject", () => {
  it("cmd.<served family>.<verb> is served; anything else is nobody's", () => {
    for (const s of [
      "cmd.cluster.create",
      "cmd.session.wake",
      "cmd.node.drain",
      "cmd.workload.stop",
      "cmd.install.upgrade",
    ])
      expect(isServedCommandSubject(s), s).toBe(true);
    for (const s of [
      "cmd.kube.observe-node",
      "cmd.bogus.verb",
      "cmd.cluster",
      "cmd.cluster.create.extra",
      "cmd.>",
      "evt.cluster.x",
    ])
      expect(isServedCommandSubject(s), s).toBe(false);
  });

  it("a command belongs on its own subject only", () => {
    expect(misplacedCommand("cmd.cluster.create", "cluster.create")).toBeUndefined();
    expect(misplacedCommand("cmd.session.create", "cluster.create")).toBe(
      "a cluster.create command is sent on cmd.cluster.create, not on cmd.session.create",
    );
    expect(misplacedCommand("cmd.cluster.create.extra", "cluster.create")).toMatch(
      /not on cmd.cluster.create.extra/,
    );
    // A type that is not <aggregate>.<verb> is the catalogue's to refuse.
    expect(misplacedCommand("cmd.cluster.create", "cluster.create.twice")).toBeUndefined();
  });
});
