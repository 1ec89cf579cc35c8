// PLACEHOLDER until the ssm module lands: answers every call with 501.
import type { SsmPort, SimCall, SimContext, SimModule } from "../world.ts";

export function createSsm(_ctx: SimContext): SimModule<SsmPort> {
  return {
    port: {} as SsmPort,
    handle: async ({ res }: SimCall) => {
      res.writeHead(501);
      res.end("ssm: not implemented yet");
    },
    state: () => ({}),
  };
}
