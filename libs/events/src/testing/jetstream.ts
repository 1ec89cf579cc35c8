import { type DisposableNats, startNatsServer } from "@cairn/testkit";
import { connectNats, type Nats } from "../connection.ts";
import { ensureStreams } from "../streams.ts";

export interface TestJetStream {
  readonly server: DisposableNats;
  readonly nats: Nats;
  /** Closes the connection and removes the server and its store. */
  dispose(): Promise<void>;
}

/** A disposable nats-server with Cairn's streams in place, and a connection to it. */
export async function startJetStream(): Promise<TestJetStream> {
  const server = await startNatsServer();
  const nats = await connectNats(server.url);
  await ensureStreams(nats.jsm);
  return {
    server,
    nats,
    dispose: async () => {
      await nats.close();
      await server.dispose();
    },
  };
}
