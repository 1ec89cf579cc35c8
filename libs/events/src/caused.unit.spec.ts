import { describe, expect, it } from "vitest";
import { commandCausedBy } from "./caused.ts";
import { newId } from "./ids.ts";

const tp = (t: string) => `00-${t.repeat(32)}-${"1".repeat(16)}-01`;

describe("commandCausedBy", () => {
  it("carries the cause's lifecycle links, so what it writes elsewhere stays on the cause's lifecycle", () => {
    const cause = {
      id: newId(),
      meta: {
        causationId: "x",
        correlationId: "corr-1",
        actor: "e2e",
        traceparent: tp("c"),
        links: [tp("a")],
      },
    };
    const parsed = commandCausedBy(cause, "session.record-hibernated", { sessionId: "s-1" }, { actor: "t" });
    expect(parsed.command.meta).toMatchObject({
      causationId: cause.id,
      correlationId: "corr-1",
      links: [tp("a")],
    });
    const unlinked = commandCausedBy(
      { ...cause, meta: { ...cause.meta, links: undefined } },
      "session.record-hibernated",
      { sessionId: "s-1" },
      { actor: "t" },
    );
    expect(unlinked.command.meta).not.toHaveProperty("links");
  });
});
