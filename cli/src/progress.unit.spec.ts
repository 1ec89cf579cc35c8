import { describe, expect, it } from "vitest";
import { bar, progress, seconds } from "./progress.ts";

/** A stream that keeps what is written. */
function sink(isTTY: boolean) {
  const s = {
    text: "",
    isTTY,
    columns: 80,
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s;
}

describe("progress", () => {
  it("without a terminal: one line per state entered, with the time since the wait began", () => {
    const out = sink(false);
    let t = 0;
    const p = progress("session/s-1", { out: out as unknown as NodeJS.WritableStream, now: () => t });
    p.update("Pending");
    t = 400;
    p.update("Pending");
    t = 1_500;
    p.update("Starting", "pulling");
    p.stop();
    expect(out.text).toBe("session/s-1 Pending  (0.0s)\nsession/s-1 Starting  pulling  (1.5s)\n");
  });

  it("on a terminal: a live line redrawn in place; a state left stays as a line with its time", () => {
    const out = sink(true);
    let t = 0;
    const p = progress("session/s-1", { out: out as unknown as NodeJS.WritableStream, now: () => t });
    p.update("Starting");
    t = 2_300;
    p.update("Running");
    p.stop();
    const lines = out.text.split("\r\x1b[2K").filter(Boolean);
    expect(lines).toEqual([
      expect.stringMatching(/^\S session\/s-1 Starting {2}0\.0s$/),
      "  session/s-1 Starting  2.3s\n",
      expect.stringMatching(/^\S session\/s-1 Running {2}0\.0s$/),
    ]);
    // Stopped: the live line is cleared, the cursor at the start of an empty line.
    expect(out.text.endsWith("\r\x1b[2K")).toBe(true);
  });

  it("silent says nothing", () => {
    const out = sink(true);
    const p = progress("x", { out: out as unknown as NodeJS.WritableStream, silent: true });
    p.update("Pending");
    p.stop();
    expect(out.text).toBe("");
  });

  it("formats times and bars", () => {
    expect(seconds(3_210)).toBe("3.2s");
    expect(seconds(125_000)).toBe("125s");
    expect(bar(50, 10)).toBe("[#####.....]");
    expect(bar(140, 4)).toBe("[####]");
  });
});
