// Wiring only. See index.ts for what this service owns.
import { runService } from "@cairn/service";
import { capabilities } from "./index.ts";

await runService({
  name: "installer",
  start: async ({ log }) => {
    if (capabilities.length === 0)
      log.info("no commands served yet: this service's capabilities arrive with its issue");
    return { stop: async () => {} };
  },
});
