import { describe, expect, it } from "vitest";
import { recordsetUpsert, Staging } from "./recordset.ts";

const columns = [
  { column: "id", key: "id", type: "text" },
  { column: "doc", key: "doc", type: "json" },
  { column: "n", key: "n", type: "bigint" },
];

describe("Staging", () => {
  it("stages rows as COPY text (null as \\N, documents as JSON, COPY's specials escaped) and the upsert reads them from its table", () => {
    const staging = new Staging();
    const rows = [
      { id: "a\tb\nc\rd\\e", doc: { x: "t\tab" }, n: 3 },
      { id: "\\N", doc: null },
    ];
    const upsert = recordsetUpsert('"s"."t"', columns, ["id"], rows, ["doc"], staging);
    const [table] = staging.tables();
    expect(table!.text).toBe('a\\tb\\nc\\rd\\\\e\t{"x":"t\\\\tab"}\t3\n\\\\N\t\\N\t\\N\n');
    const name = /^copy pg_temp\.(\w+) from stdin$/.exec(table!.copy)![1]!;
    expect(table!.create).toBe(
      `create temp table if not exists ${name} ("id" text, "doc" json, "n" bigint) on commit delete rows`,
    );
    expect(upsert).toContain(`from pg_temp.${name} as r`);
    expect(upsert).not.toContain("_to_recordset");
    // Without staging, the rows go inline as before.
    expect(recordsetUpsert('"s"."t"', columns, ["id"], rows)).toContain("json_to_recordset(");
  });

  it("names tables of different shapes differently, in the order they were staged", () => {
    const staging = new Staging();
    recordsetUpsert('"s"."t"', columns, ["id"], [], [], staging);
    recordsetUpsert('"s"."u"', columns.slice(0, 2), ["id"], [], [], staging);
    const [a, b] = staging.tables().map((t) => t.copy);
    expect(a).toMatch(/cairn_stage_0_/);
    expect(b).toMatch(/cairn_stage_1_/);
    expect(a!.slice(a!.lastIndexOf("_"))).not.toBe(b!.slice(b!.lastIndexOf("_")));
  });
});
