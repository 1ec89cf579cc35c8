/**
 * The command bus while its stream cannot take commands, on a real nats-server: an R3
 * stream's leader election leaves nobody answering its subjects for seconds (the
 * production-stack e2e saw `POST /commands` answer 500 then). A send tries again with the
 * same id until its timeout is spent, so the command is kept once; then it fails with an
 * error `isBusUnavailable` knows.
 */
import { jetstream } from "@nats-io/jetstream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PublishNotAcked } from "./acked-publisher.ts";
import { CommandBus, isBusUnavailable } from "./command-bus.ts";
import { ensureStreams } from "./streams.ts";
import { Streams } from "./subjects.ts";
import { counterCatalogue } from "./testing/counter.ts";
import { startJetStream, type TestJetStream } from "./testing/jetstream.ts";

let js: TestJetStream;
beforeEach(async () => {
  js = await startJetStream();
  await js.nats.jsm.streams.delete(Streams.commands);
});
afterEach(async () => {
  await js.dispose();
});

const command = { type: "workload.increment", data: { counterId: "c-1", by: 1 } };

describe("command bus, stream unavailable", () => {
  it("a send made while no stream answers lands once when the stream is back within its timeout", async () => {
    const bus = new CommandBus({ js: js.nats.js, catalogue: counterCatalogue });
    const sending = bus.send({ ...command, id: "01936f7e-0000-7000-8000-000000000001" });
    await new Promise((r) => setTimeout(r, 400));
    await ensureStreams(js.nats.jsm);
    const sent = await sending;
    expect(sent.duplicate).toBe(false);
    const info = await js.nats.jsm.streams.info(Streams.commands);
    expect(info.state.messages).toBe(1);
    const m = await js.nats.jsm.streams.getMessage(Streams.commands, { seq: sent.sequence });
    expect(m?.header.get("Nats-Msg-Id")).toBe("01936f7e-0000-7000-8000-000000000001");
  });

  it("a stream still gone when the timeout is spent: the send fails with an error `isBusUnavailable` knows, after trying for the timeout", async () => {
    const bus = new CommandBus({
      js: jetstream(js.nats.nc, { timeout: 700 }),
      catalogue: counterCatalogue,
    });
    const start = performance.now();
    const err = await bus.send(command).catch((e: unknown) => e);
    const took = performance.now() - start;
    expect(err).toBeInstanceOf(PublishNotAcked);
    expect((err as PublishNotAcked).reason).toBe("no-stream");
    expect(isBusUnavailable(err)).toBe(true);
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(5_000);
  });

  it("a bad command is not tried again: it is refused at once", async () => {
    const bus = new CommandBus({ js: js.nats.js, catalogue: counterCatalogue });
    const start = performance.now();
    const err = await bus
      .send({ type: "workload.increment", data: { counterId: "c-1" } })
      .catch((e: unknown) => e);
    expect(isBusUnavailable(err)).toBe(false);
    expect(performance.now() - start).toBeLessThan(1_000);
  });
});
