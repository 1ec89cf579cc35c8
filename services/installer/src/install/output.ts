/**
 * What of a step's output goes into its event: the last lines, bounded, with anything
 * that looks like a secret replaced. Scripts never print secrets; this is the second
 * line of defence (a tool that echoes its config, a `set -x` left in a script).
 */

/** Each pattern with what it becomes; `$1` keeps a field's name. */
const SECRET_PATTERNS: readonly (readonly [RegExp, string])[] = [
  // K3s tokens: K10<ca hash>::<user>:<password>.
  [/K10[0-9a-f]{16,}::[A-Za-z0-9_-]+:[A-Za-z0-9]+/g, "[redacted]"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, "[redacted]"],
  // kubeconfig and config-file fields that carry credentials.
  [
    /((?:client-key-data|client-certificate-data|certificate-authority-data|token|password|secret)\s*[:=]\s*)("[^"]*"|'[^']*'|\S+)/gi,
    "$1[redacted]",
  ],
  // AWS secret keys and session tokens, should a tool print its environment.
  [/(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)=\S+/g, "$1=[redacted]"],
];

export function redact(text: string): string {
  return SECRET_PATTERNS.reduce((out, [p, by]) => out.replace(p, by), text);
}

export const OUTPUT_TAIL_LINES = 20;
export const OUTPUT_TAIL_CHARS = 2_000;

/** The last lines of stdout, then of stderr (marked), redacted, at most `maxChars`. */
export function outputTail(
  stdout: string,
  stderr: string,
  maxLines = OUTPUT_TAIL_LINES,
  maxChars = OUTPUT_TAIL_CHARS,
) {
  const last = (s: string) => s.replace(/\s+$/, "").split("\n").slice(-maxLines).join("\n");
  const parts = [last(stdout)];
  if (stderr.trim() !== "") parts.push(`--- stderr ---\n${last(stderr)}`);
  const text = redact(parts.filter((p) => p !== "").join("\n"));
  return text.length <= maxChars ? text : `…${text.slice(text.length - maxChars + 1)}`;
}
