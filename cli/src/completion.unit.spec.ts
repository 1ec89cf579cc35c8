import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { completionScript, completionTable } from "./completion.ts";
import { buildProgram } from "./program.ts";

/** What bash offers after `words` (the last one being typed), with the generated script loaded. */
function complete(words: string[]): string[] {
  const script = completionScript(buildProgram(), "bash");
  const line = words.map((w) => JSON.stringify(w)).join(" ");
  const r = spawnSync(
    "bash",
    [
      "-c",
      `${script}\nCOMP_WORDS=(${line}); COMP_CWORD=${words.length - 1}; _cairn; printf '%s\\n' "\${COMPREPLY[@]}"`,
    ],
    { encoding: "utf8" },
  );
  expect(r.stderr).toBe("");
  return r.stdout.split("\n").filter(Boolean);
}

describe("shell completion", () => {
  it("is made from the command tree: every group and its verbs, aliases included", () => {
    const table = new Map(completionTable(buildProgram()).map((n) => [n.path, n.words]));
    expect(table.get("")).toEqual(
      expect.arrayContaining(["cluster", "clusters", "node", "session", "events", "trace"]),
    );
    expect(table.get("session")).toEqual(
      expect.arrayContaining(["create", "hibernate", "terminate", "delete"]),
    );
    expect(table.get("cluster create")).toEqual(
      expect.arrayContaining(["--pool", "--wait", "--timeout", "-o"]),
    );
  });

  it("bash completes commands, subcommands, flags and output formats", () => {
    expect(complete(["cairn", "se"])).toEqual(["session", "sessions", "send"]);
    expect(complete(["cairn", "session", "hib"])).toEqual(["hibernate"]);
    expect(complete(["cairn", "cluster", "create", "c-1", "--po"])).toEqual(["--pool"]);
    expect(complete(["cairn", "session", "list", "-o", ""])).toEqual(["table", "wide", "json", "yaml"]);
  });
});
