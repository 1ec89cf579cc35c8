#!/usr/bin/env node
// `cairn`: run Cairn locally, publish commands, read the read models. Run it through
// cli/bin/cairn (`npx cairn`, `npm run cairn --`), which finds a Node that runs TypeScript.
import { CommanderError } from "commander";
import { describeFailure } from "./errors.ts";
import { buildProgram } from "./program.ts";

const program = buildProgram().exitOverride();
try {
  // No exit on success: `cairn up` returns once the stack is up and keeps running.
  await program.parseAsync();
} catch (err) {
  // Commander already said what was wrong with the command line (or printed the help).
  if (err instanceof CommanderError) process.exit(err.exitCode);
  const [first, ...rest] = describeFailure(err);
  process.stderr.write(`cairn: ${first}\n${rest.map((l) => `${l}\n`).join("")}`);
  if (process.env.CAIRN_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}
