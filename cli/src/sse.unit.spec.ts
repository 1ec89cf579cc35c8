import { describe, expect, it } from "vitest";
import { readSse, sseParser } from "./sse.ts";

describe("server-sent events", () => {
  it("frames events, comments and multi-line data as the spec says", () => {
    const p = sseParser();
    expect(p.push(': connected\nretry: 3000\n\nid: 7\nevent: change\ndata: {"a":\ndata:  1}\n\n')).toEqual([
      { comment: " connected" },
      { event: "change", data: '{"a":\n 1}', id: "7" },
    ]);
  });

  it("puts together what arrives in pieces, CRLF split across chunks included", () => {
    const p = sseParser();
    expect(p.push("data: hel")).toEqual([]);
    expect(p.push("lo\r")).toEqual([]);
    expect(p.push("\n\r\n")).toEqual([{ event: "message", data: "hello", id: undefined }]);
  });

  it("reads a fetch body", async () => {
    const body = new Response("event: change\ndata: x\n\n: heartbeat\n\n").body!;
    const got = [];
    for await (const e of readSse(body)) got.push(e);
    expect(got).toEqual([{ event: "change", data: "x", id: undefined }, { comment: " heartbeat" }]);
  });
});
