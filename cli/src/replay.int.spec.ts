import { startJetStream, type TestJetStream } from "@cairn/events/testing";
import { type Projector, startProjector } from "@cairn/projector";
import { createTestDatabase, type DisposableDatabase } from "@cairn/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { requestReplay } from "./replay.ts";

let js: TestJetStream;
let database: DisposableDatabase;

beforeAll(async () => {
  [js, database] = await Promise.all([startJetStream(), createTestDatabase("cli_replay")]);
});
afterAll(async () => {
  await js?.dispose();
  await database?.dispose();
});

describe("cairn replay", () => {
  it("says so when no projector answers", async () => {
    await expect(requestReplay({}, { url: js.server.url, timeoutMs: 2_000 })).rejects.toThrow(
      /no projector answers/,
    );
  });

  it("asks the running projector to check, then to replay, and returns its report", async () => {
    const projector: Projector = await startProjector({
      nats: js.nats,
      databaseUrl: database.url,
      api: false,
    });
    try {
      const check = await requestReplay({ checkOnly: true }, { url: js.server.url });
      expect(check).toMatchObject({
        ok: true,
        result: { swapped: false, comparison: { compared: true, equal: true } },
      });
      const swap = await requestReplay({}, { url: js.server.url });
      expect(swap).toMatchObject({ ok: true, result: { swapped: true, rebuildSchema: "cairn_rebuild_1" } });
    } finally {
      await projector.stop();
    }
  });
});
