// PLACEHOLDER until the ec2 module lands: answers every call with 501.
import type { Ec2Port, SimCall, SimContext, SimModule } from "../world.ts";

export function createEc2(_ctx: SimContext): SimModule<Ec2Port> {
  return {
    port: {} as Ec2Port,
    handle: async ({ res }: SimCall) => {
      res.writeHead(501);
      res.end("ec2: not implemented yet");
    },
    state: () => ({}),
  };
}
