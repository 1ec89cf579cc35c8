/**
 * The harness's ServiceProcess when a service dies at its start: the start rejects with the
 * service's own last lines, its output after its exit (a grandchild's) is still kept in the
 * tail, and stopping it afterwards raises nothing. (The log's guard in ServiceProcess is for
 * output arriving between stop()'s end() and the log's finish — a window this test cannot
 * aim at: after the finish, Node drops a write to the destroyed stream without an error.)
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServiceProcess } from "./stack.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cairn-service-process-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("ServiceProcess", () => {
  it("a service that exits at its start: the start says why, and stop() afterwards is quiet", async () => {
    const entry = join(dir, "dies.mjs");
    // Prints, exits, and keeps printing from a grandchild sharing its stdout after the exit.
    await writeFile(
      entry,
      [
        `import { spawn } from "node:child_process";`,
        `console.error("fatal: NATS_URL is not a URL");`,
        `spawn(process.execPath, ["-e", "setTimeout(() => console.log('late line'), 300)"], { stdio: ["ignore", "inherit", "inherit"] });`,
        `process.exit(1);`,
      ].join("\n"),
    );
    const p = new ServiceProcess("projector", 1, { ...process.env }, dir, entry);
    const failures: unknown[] = [];
    const onError = (err: unknown) => failures.push(err);
    process.on("uncaughtException", onError);
    try {
      await expect(p.start()).rejects.toThrow(
        /projector#1 exited \(1\) before it was ready:[\s\S]*NATS_URL is not a URL/,
      );
      await p.stop();
      // The grandchild's line arrives after the log was ended.
      await new Promise((r) => setTimeout(r, 800));
      expect(p.tail()).toContain("late line");
      expect(failures).toEqual([]);
      expect(p.exits).toHaveLength(1);
      expect(p.exits[0]).toMatchObject({ code: 1, expected: false });
      const log = await readFile(join(dir, "projector-1.log"), "utf8");
      expect(log).toContain("NATS_URL is not a URL");
    } finally {
      process.off("uncaughtException", onError);
      await p.stop();
    }
  });
});
