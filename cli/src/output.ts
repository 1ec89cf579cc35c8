/**
 * What a command prints on stdout, as `-o` asks: `table` (the default: the columns a
 * person scans), `wide` (more columns), `json` or `yaml` (the API's full view, for
 * scripts). A list in json or yaml is an array of the views.
 */
import { Option } from "commander";
import { stringify as toYaml } from "yaml";
import { NotFoundError } from "./errors.ts";
import { renderTable } from "./table.ts";

export const OUTPUT_FORMATS = ["table", "wide", "json", "yaml"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The `-o` option: reading commands default to a table; commands that act print a line unless asked. */
export const outputOption = (byDefault: OutputFormat | null = "table") => {
  const o = new Option("-o, --output <format>", "output format: table, wide, json or yaml").choices(
    OUTPUT_FORMATS,
  );
  return byDefault ? o.default(byDefault) : o;
};

/** One column of a table: its header and how to show a row's cell. */
export interface Column<T> {
  readonly header: string;
  readonly cell: (row: T, now: Date) => string;
  /** Only in `-o wide`. */
  readonly wide?: boolean;
}

/** The views as `format` shows them (a whole text, ending with a newline). */
export function formatList<T>(
  items: readonly T[],
  format: OutputFormat,
  columns: readonly Column<T>[],
  now = new Date(),
): string {
  switch (format) {
    case "json":
      return `${JSON.stringify(items, null, 2)}\n`;
    case "yaml":
      return toYaml(items);
    case "table":
    case "wide": {
      const shown = columns.filter((c) => format === "wide" || !c.wide);
      return renderTable(
        shown.map((c) => c.header),
        items.map((row) => shown.map((c) => c.cell(row, now))),
      );
    }
  }
}

/** One view as `format` shows it: json and yaml print the object itself, not a list of one. */
export function formatOne<T>(item: T, format: OutputFormat, columns: readonly Column<T>[], now = new Date()) {
  if (format === "json") return `${JSON.stringify(item, null, 2)}\n`;
  if (format === "yaml") return toYaml(item);
  return formatList([item], format, columns, now);
}

/**
 * `get <id...>`: each id read with `read` (which throws NotFoundError for an unknown one),
 * the found ones printed — one as `formatOne`, several as a list — and then one
 * NotFoundError naming every missing id (kubectl prints what it found, then the errors).
 */
export async function showEach<T>(
  ids: readonly string[],
  read: (id: string) => Promise<T>,
  o: { kind: string; kinds: string; format: OutputFormat; columns: readonly Column<T>[] },
): Promise<void> {
  const found: T[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    try {
      found.push(await read(id));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      missing.push(id);
    }
  }
  const [only] = found;
  if (only && ids.length === 1) process.stdout.write(formatOne(only, o.format, o.columns));
  else if (found.length > 0) process.stdout.write(formatList(found, o.format, o.columns));
  if (missing.length > 0)
    throw new NotFoundError(missing.length === 1 ? o.kind : o.kinds, missing.join(", "));
}

/** A plain value (an API answer without columns) as json or yaml; tables fall back to yaml. */
export function formatValue(value: unknown, format: OutputFormat): string {
  return format === "json" ? `${JSON.stringify(value, null, 2)}\n` : toYaml(value);
}
