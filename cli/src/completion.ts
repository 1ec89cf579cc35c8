/**
 * `cairn completion bash|zsh`: a completion script made from the command tree itself, so
 * it never lags behind the commands. It completes command words and each command's flags
 * (and `-o`'s formats); ids are not looked up.
 */
import type { Command } from "commander";

interface Node {
  readonly path: string;
  readonly words: readonly string[];
}

/** Every command path (`""`, `session`, `session create`…) with the words that may follow it. */
export function completionTable(program: Command): Node[] {
  const out: Node[] = [];
  const walk = (cmd: Command, path: string[]) => {
    const subs = cmd.commands.filter((c) => c.name() !== "help").flatMap((c) => [c.name(), ...c.aliases()]);
    const flags = cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
    const globals = path.length === 0 ? [] : ["--api-url", "--token", "--config"];
    out.push({ path: path.join(" "), words: [...subs, ...flags, ...globals, "--help"] });
    for (const c of cmd.commands) for (const name of [c.name(), ...c.aliases()]) walk(c, [...path, name]);
  };
  walk(program, []);
  return out;
}

/** The bash script (zsh runs it through bashcompinit). */
export function completionScript(program: Command, shell: "bash" | "zsh"): string {
  const cases = completionTable(program)
    .map((n) => `    "${n.path}") words="${n.words.join(" ")}" ;;`)
    .join("\n");
  const body = `# cairn completion (${shell}): eval "$(cairn completion ${shell})"
_cairn() {
  local cur prev path="" words="" i w
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=( $(compgen -W "table wide json yaml" -- "$cur") ); return ;;
  esac
  # The command path: the words before the cursor that are commands, not flags or ids.
  for (( i=1; i<COMP_CWORD; i++ )); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case "\${path:+$path }$w" in
${completionTable(program)
  .filter((n) => n.path !== "")
  .map((n) => `      "${n.path}") path="${n.path}" ;;`)
  .join("\n")}
    esac
  done
  case "$path" in
${cases}
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -F _cairn cairn
`;
  return shell === "zsh" ? `autoload -U +X bashcompinit && bashcompinit\n${body}` : body;
}
