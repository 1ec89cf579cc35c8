import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { type Column, formatList, formatOne } from "./output.ts";
import { renderTable } from "./table.ts";

interface Row {
  readonly id: string;
  readonly state: string;
  readonly node: string | null;
  readonly createdAt: string;
}
const now = new Date("2025-01-31T12:00:00Z");
const rows: [Row, Row] = [
  { id: "s-1", state: "Running", node: "agent-a", createdAt: "2025-01-31T11:59:18Z" },
  { id: "session-long-2", state: "Hibernated", node: null, createdAt: "2025-01-28T12:00:00Z" },
];
const columns: Column<Row>[] = [
  { header: "NAME", cell: (r) => r.id },
  { header: "STATE", cell: (r) => r.state },
  { header: "NODE", cell: (r) => r.node ?? "<none>", wide: true },
  { header: "AGE", cell: (r, at) => `${Math.round((at.getTime() - Date.parse(r.createdAt)) / 1000)}s` },
];

describe("tables", () => {
  it("aligns columns three spaces apart under upper-case headers, with no borders or trailing spaces", () => {
    expect(formatList(rows, "table", columns, now)).toBe(
      [
        "NAME             STATE        AGE",
        "s-1              Running      42s",
        "session-long-2   Hibernated   259200s",
        "",
      ].join("\n"),
    );
  });

  it("-o wide adds the wide columns in their place", () => {
    expect(formatList(rows, "wide", columns, now).split("\n")).toEqual([
      "NAME             STATE        NODE      AGE",
      "s-1              Running      agent-a   42s",
      "session-long-2   Hibernated   <none>    259200s",
      "",
    ]);
  });

  it("measures wide characters as the terminal shows them, and keeps a cell on its row", () => {
    expect(
      renderTable(
        ["A", "B"],
        [
          ["日本", "x"],
          ["ab", "two\nlines"],
        ],
      ),
    ).toBe("A      B\n日本   x\nab     two lines\n");
  });

  it("an empty list is the header alone", () => {
    expect(formatList([], "table", columns, now)).toBe("NAME   STATE   AGE\n");
  });
});

describe("json and yaml", () => {
  it("print the views themselves: a list as an array, one as the object", () => {
    expect(JSON.parse(formatList(rows, "json", columns, now))).toEqual(rows);
    expect(JSON.parse(formatOne(rows[0], "json", columns, now))).toEqual(rows[0]);
    expect(parseYaml(formatList(rows, "yaml", columns, now))).toEqual(rows);
    expect(parseYaml(formatOne(rows[1], "yaml", columns, now))).toEqual(rows[1]);
  });

  it("yaml reads as YAML, not as JSON", () => {
    expect(formatOne(rows[0], "yaml", columns, now)).toBe(
      "id: s-1\nstate: Running\nnode: agent-a\ncreatedAt: 2025-01-31T11:59:18Z\n",
    );
  });
});
