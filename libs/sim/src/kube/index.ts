// PLACEHOLDER until the kube module lands: answers every call with 501.
import type { KubePort, SimCall, SimContext, SimModule } from "../world.ts";

export function createKube(_ctx: SimContext): SimModule<KubePort> {
  return {
    port: {} as KubePort,
    handle: async ({ res }: SimCall) => {
      res.writeHead(501);
      res.end("kube: not implemented yet");
    },
    state: () => ({}),
  };
}
