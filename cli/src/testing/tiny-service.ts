/**
 * A tiny long-running process for the supervisor's tests: tells its supervisor it is ready the
 * way runService does, then runs until SIGTERM. `--crash <code>` exits at once with that code
 * instead (a service that cannot start).
 */
import { tellSupervisorReady } from "@cairn/service/supervised";

const name = process.argv[2] ?? "tiny";
const crash = process.argv.indexOf("--crash");
if (crash > 0) process.exit(Number(process.argv[crash + 1] ?? 1));

const keepAlive = setInterval(() => {}, 60_000);
process.once("SIGTERM", () => {
  clearInterval(keepAlive);
  process.exit(0);
});
tellSupervisorReady({ service: name });
