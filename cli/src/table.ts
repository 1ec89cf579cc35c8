/**
 * Tables as kubectl prints them: upper-case headers, columns aligned by the widest cell
 * and three spaces apart, no borders, no trailing spaces. Widths count what the terminal
 * shows (wide characters, no colour codes): cli-table3 measures them.
 */
import Table from "cli-table3";

const NO_BORDER = {
  top: "",
  "top-mid": "",
  "top-left": "",
  "top-right": "",
  bottom: "",
  "bottom-mid": "",
  "bottom-left": "",
  "bottom-right": "",
  left: "",
  "left-mid": "",
  mid: "",
  "mid-mid": "",
  right: "",
  "right-mid": "",
  middle: "   ",
};

/**
 * The table's text, one line per row after the header, ending with a newline.
 * @example renderTable(["NAME", "STATE"], [["s-1", "Running"]]) // "NAME   STATE\ns-1    Running\n"
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = new Table({
    head: [...headers],
    chars: NO_BORDER,
    style: { head: [], border: [], "padding-left": 0, "padding-right": 0, compact: true },
  });
  // An empty cell would still pad; a newline inside a cell would break the row apart.
  for (const row of rows) table.push(row.map((c) => c.replace(/\s*\n\s*/g, " ")));
  return `${table
    .toString()
    .split("\n")
    .map((l) => l.trimEnd())
    .join("\n")}\n`;
}
