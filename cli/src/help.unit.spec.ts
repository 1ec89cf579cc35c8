import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "./program.ts";

/** Every command that does something (no subcommands of its own). */
function leaves(cmd: Command, path: string[] = []): [string, Command][] {
  const here = [...path, cmd.name()];
  if (cmd.commands.length === 0) return [[here.join(" "), cmd]];
  return cmd.commands.flatMap((c) => leaves(c, here));
}

/** A command's whole --help text, as commander prints it. */
function helpOf(cmd: Command): string {
  let text = "";
  cmd.configureOutput({
    writeOut: (s) => {
      text += s;
    },
  });
  cmd.outputHelp();
  return text;
}

describe("--help", () => {
  it("every command shows examples of its own use", () => {
    const all = leaves(buildProgram());
    expect(all.length).toBeGreaterThan(15);
    for (const [name, cmd] of all) {
      const help = helpOf(cmd);
      expect(help, name).toContain("Examples:");
      expect(help, name).toContain(
        `$ ${name
          .replace(/^cairn /, "cairn ")
          .split(" ")
          .slice(0, 2)
          .join(" ")}`,
      );
    }
  });
});
