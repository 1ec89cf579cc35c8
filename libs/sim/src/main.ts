// The sim as a standalone process: `node libs/sim/src/main.ts [config.json]`.
// Config (all optional): { "seed": 1, "timeScale": 1, "port": 4566, "latencies": {…}, "faults": [ … ],
// "compactAfter": 10000 }. CAIRN_SIM_PORT, CAIRN_SIM_SEED and CAIRN_SIM_TIME_SCALE override the file.
// CAIRN_SIM_DATA_DIR (`cairn up` sets it to <CAIRN_DATA_DIR>/sim): the simulated cloud is kept
// there and survives a restart; CAIRN_SIM_COMPACT_AFTER: journaled calls between compactions.
import { readFile } from "node:fs/promises";
import { type SimOptions, startSim } from "./sim.ts";

const file = process.argv[2];
const config: SimOptions = file ? JSON.parse(await readFile(file, "utf8")) : {};
if (process.env.CAIRN_SIM_PORT) config.port = Number(process.env.CAIRN_SIM_PORT);
if (process.env.CAIRN_SIM_SEED) config.seed = Number(process.env.CAIRN_SIM_SEED);
if (process.env.CAIRN_SIM_TIME_SCALE) config.timeScale = Number(process.env.CAIRN_SIM_TIME_SCALE);
if (process.env.CAIRN_SIM_DATA_DIR) config.dataDir = process.env.CAIRN_SIM_DATA_DIR;
if (process.env.CAIRN_SIM_COMPACT_AFTER) config.compactAfter = Number(process.env.CAIRN_SIM_COMPACT_AFTER);
const sim = await startSim({
  port: 4566,
  ...config,
  onCompaction: (c) =>
    process.stdout.write(
      `${JSON.stringify({ msg: "journal compacted", calls: c.calls, bytes: c.bytes, ms: c.ms })}\n`,
    ),
});
process.stdout.write(
  `${JSON.stringify({ msg: "sim listening", url: sim.url, admin: sim.adminUrl, timeScale: sim.clock.timeScale })}\n`,
);
const stop = async () => {
  await sim.stop();
  process.exit(0);
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
