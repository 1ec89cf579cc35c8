/**
 * The dashboard's pure parts, run in Node: the server-sent events parser, how a change from
 * the stream is merged over the row the page has, the formats, and the page's CSP.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { duration } from "../../dashboard/format.js";
import { parseSse, type SseMessage } from "../../dashboard/sse.js";
import { isNotOlder, merge } from "../../dashboard/store.js";
import { contentSecurityPolicy, DASHBOARD_DIR, VENDOR_MODULES } from "./dashboard.ts";

/** A byte stream that delivers `chunks` as they are cut. */
const streamOf = (chunks: string[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const s of chunks) c.enqueue(new TextEncoder().encode(s));
      c.close();
    },
  });

async function messages(chunks: string[]): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  for await (const m of parseSse(streamOf(chunks))) out.push(m);
  return out;
}

describe("parseSse", () => {
  it("given what the API sends, cut anywhere: the comments skipped, retry and each change whole", async () => {
    const text = `: connected\nretry: 3000\n\nid: 7\nevent: change\ndata: {"resource":"clusters","id":"c-1"}\n\n: heartbeat\n\nid: 8\nevent: change\ndata: {"a":1}\n\n`;
    const expected = [
      { event: "message", data: "", id: undefined, retry: 3000 },
      { event: "change", data: '{"resource":"clusters","id":"c-1"}', id: "7", retry: undefined },
      { event: "change", data: '{"a":1}', id: "8", retry: undefined },
    ];
    expect(await messages([text])).toEqual(expected);
    // Every cut of the text into two chunks, and one byte at a time: the same messages.
    for (let i = 1; i < text.length; i++)
      expect(await messages([text.slice(0, i), text.slice(i)])).toEqual(expected);
    expect(await messages([...text])).toEqual(expected);
  });

  it("multi-line data is joined with newlines; a field without a colon is empty; a block without data is dropped", async () => {
    expect(await messages(["data: a\ndata\ndata:b\n\nevent: x\n\n"])).toEqual([
      { event: "message", data: "a\n\nb", id: undefined, retry: undefined },
    ]);
  });

  it("a message not ended by a blank line when the stream ends is not delivered", async () => {
    expect(await messages(["data: half"])).toEqual([]);
  });
});

describe("the page's merge of a change over its row", () => {
  it("a row is never replaced by an older one: version first, else updatedAt", () => {
    expect(isNotOlder({ version: 4 }, { version: 5 })).toBe(false);
    expect(isNotOlder({ version: 5 }, { version: 5 })).toBe(true);
    expect(isNotOlder({ updatedAt: "2026-01-01T00:00:01Z" }, { updatedAt: "2026-01-01T00:00:02Z" })).toBe(
      false,
    );
    expect(isNotOlder({ updatedAt: "2026-01-01T00:00:02Z" }, undefined)).toBe(true);
  });

  it("a cluster from the stream keeps the session counts only the GET route has", () => {
    const sessions = { total: 2, live: 1, byState: {} };
    expect(merge("clusters", { version: 3 }, { version: 2, sessions })).toEqual({ version: 3, sessions });
  });

  it("a Running session keeps the later activity and idle time (heartbeats are not on the stream)", () => {
    const fromGet = {
      version: 5,
      state: "Running",
      lastActivity: "2026-01-01T00:10:00.000Z",
      idleAt: "2026-01-01T00:41:00.000Z",
    };
    const fromStream = {
      version: 5,
      state: "Running",
      lastActivity: "2026-01-01T00:01:00.000Z",
      idleAt: "2026-01-01T00:32:00.000Z",
    };
    expect(merge("sessions", fromStream, fromGet)).toMatchObject({
      lastActivity: fromGet.lastActivity,
      idleAt: fromGet.idleAt,
    });
    // Hibernated: the stream's view is the truth (no idle time).
    const hibernated = { version: 6, state: "Hibernated", lastActivity: null, idleAt: null };
    expect(merge("sessions", hibernated, fromGet)).toEqual(hibernated);
  });
});

describe("formats", () => {
  it("durations read at a glance", () => {
    expect(duration(95_000)).toBe("1 min 35 s");
    expect(duration(3_723_000)).toBe("1 h 2 min");
    expect(duration(256)).toBe("256 ms");
    expect(duration(null)).toBe("—");
  });
});

describe("serving", () => {
  it("the CSP allows exactly the page's import map, by its hash", () => {
    const html = readFileSync(resolve(DASHBOARD_DIR, "index.html"), "utf8");
    const map = /<script type="importmap">(.*?)<\/script>/s.exec(html)?.[1] ?? "";
    const hash = createHash("sha256").update(map).digest("base64");
    expect(contentSecurityPolicy(html)).toContain(`script-src 'self' 'sha256-${hash}';`);
    expect(contentSecurityPolicy("<p>no script</p>")).toContain("script-src 'self';");
  });

  it("every module the import map names is a vendor ES module whose bare imports the map resolves", () => {
    const html = readFileSync(resolve(DASHBOARD_DIR, "index.html"), "utf8");
    const imports: Record<string, string> = JSON.parse(
      /<script type="importmap">(.*?)<\/script>/s.exec(html)?.[1] ?? "{}",
    ).imports;
    for (const url of Object.values(imports)) {
      const file = VENDOR_MODULES[url.replace(/^\/vendor\//, "")];
      expect(file, url).toBeDefined();
      const source = readFileSync(file!, "utf8");
      expect(source, url).toMatch(/\bexport\b/);
      // A browser resolves a bare specifier only through the map: a new one would break the page.
      const bare = [...source.matchAll(/\b(?:import|from)\s*["']([^"'./][^"']*)["']/g)].map((m) => m[1]);
      for (const name of bare) expect(Object.keys(imports), `${url} imports ${name}`).toContain(name);
    }
    expect(Object.keys(imports)).toContain("preact");
  });
});
