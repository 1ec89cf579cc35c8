// Server-sent events as the HTML standard parses them (event, data, id, retry; comment
// lines ignored), from a byte stream: what EventSource does, for a fetch body.

/**
 * The messages of a `text/event-stream`, one per blank-line-terminated block.
 * @example for await (const m of parseSse(res.body)) m // { event: "change", data: "{…}", id: "42" }
 */
export async function* parseSse(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  let msg = {};
  let data = [];
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // Lines end in CRLF, LF or CR; the last piece may be a partial line.
      const lines = buffer.split(/\r\n|\n|\r/);
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") {
          if (data.length > 0 || msg.retry !== undefined) {
            yield { event: msg.event ?? "message", data: data.join("\n"), id: msg.id, retry: msg.retry };
          }
          msg = {};
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") msg.event = value;
        else if (field === "id") msg.id = value;
        else if (field === "retry" && /^\d+$/.test(value)) msg.retry = Number(value);
      }
    }
  } finally {
    reader.releaseLock();
  }
}
