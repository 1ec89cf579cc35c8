/**
 * What scripts print, and how SSM cuts it. Pure.
 *
 * The limits are the SSM Agent's: GetCommandInvocation returns the first 24,000
 * characters of stdout and the first 8,000 of stderr, cut without a marker; the
 * `Output` of a command plugin (ListCommandInvocations with Details) is stdout and
 * stderr merged into 2,500 characters by the agent's TruncateOutput, with its markers.
 */

export const MAX_STDOUT_CONTENT = 24_000;
export const MAX_STDERR_CONTENT = 8_000;
export const PLUGIN_OUTPUT_CAPACITY = 2_500;

const TRUNCATE_OUT = "\n---Output truncated---";
const TRUNCATE_ERROR = "\n---Error truncated----";
const ERROR_TITLE = "\n----------ERROR-------\n";

/** The first `max` characters, as StandardOutputContent / StandardErrorContent are. */
export function firstChars(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}

/**
 * A command plugin's `Output`: stdout, then stderr under an ERROR title, fitted into
 * `capacity` characters exactly as the agent's TruncateOutput does it.
 */
export function pluginOutput(stdout: string, stderr: string, capacity = PLUGIN_OUTPUT_CAPACITY): string {
  const outputSize = stdout.length;
  const errorSize = stderr.length;
  const errorTitle = errorSize > 0 ? ERROR_TITLE : "";
  const available = capacity - errorTitle.length;
  const half = Math.floor(available / 2);
  if (outputSize + errorSize < available) return stdout + errorTitle + stderr;
  if (outputSize > half && errorSize > half) {
    const size = Math.floor((available - TRUNCATE_ERROR.length - TRUNCATE_OUT.length) / 2);
    return stdout.slice(0, size) + TRUNCATE_OUT + errorTitle + stderr.slice(0, size) + TRUNCATE_ERROR;
  }
  if (outputSize < half) {
    const size = available - TRUNCATE_ERROR.length;
    return stdout + errorTitle + stderr.slice(0, size - outputSize) + TRUNCATE_ERROR;
  }
  const size = available - TRUNCATE_OUT.length;
  return stdout.slice(0, size - errorSize) + TRUNCATE_OUT + errorTitle + stderr;
}

/** Exactly `count` characters of numbered lines (the `print` step). */
export function printedText(count: number): string {
  const parts: string[] = [];
  let length = 0;
  for (let n = 1; length < count; n++) {
    const line = `cairn print line ${String(n).padStart(6, "0")} abcdefghijklmnopqrstuvwxyz0123456789\n`;
    parts.push(line);
    length += line.length;
  }
  return parts.join("").slice(0, count);
}

/** The line the agent appends to stderr when a script exits non-zero. */
export function exitLine(code: number): string {
  return `failed to run commands: exit status ${code}`;
}

/** stderr of a script that wrote `text` to stderr and then exited with `code`. */
export function failedStderr(text: string, code: number): string {
  return text.length > 0 ? `${text.replace(/\n+$/, "")}\n${exitLine(code)}` : exitLine(code);
}
