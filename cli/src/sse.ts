/**
 * Server-sent events (the API's `GET /events/stream`) read off a fetch body, as the
 * WHATWG spec frames them: lines end in LF, CRLF or CR; a blank line ends an event;
 * `data:` lines join with LF; a line starting with `:` is a comment (the API's
 * `: connected` and `: heartbeat`); one space after the colon is dropped.
 */

export interface SseEvent {
  /** `message` unless the event named itself (`event: change`). */
  readonly event: string;
  readonly data: string;
  readonly id: string | undefined;
}

/** A comment line: the stream is alive (`: connected` comes first). */
export interface SseComment {
  readonly comment: string;
}

/**
 * Feeds text in as it arrives and gets back the events and comments it completes.
 * @example const p = sseParser(); p.push(": hi\n\nevent: change\ndata: {}\n\n") // [{ comment: " hi" }, { event: "change", data: "{}", id: undefined }]
 */
export function sseParser() {
  let buffer = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  return {
    push(text: string): (SseEvent | SseComment)[] {
      buffer += text;
      const out: (SseEvent | SseComment)[] = [];
      // A CR at the very end may be half of a CRLF: keep it for the next chunk.
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buffer);
        if (!m || (m[0] === "\r" && m.index === buffer.length - 1)) break;
        const line = buffer.slice(0, m.index);
        buffer = buffer.slice(m.index + m[0].length);
        if (line === "") {
          if (data.length > 0) out.push({ event: event || "message", data: data.join("\n"), id });
          data = [];
          event = "";
          continue;
        }
        if (line.startsWith(":")) {
          out.push({ comment: line.slice(1) });
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "id") id = value;
      }
      return out;
    },
  };
}

/** The events and comments of a text/event-stream body, as they arrive. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent | SseComment> {
  const parser = sseParser();
  const decoder = new TextDecoder();
  for await (const chunk of body) yield* parser.push(decoder.decode(chunk, { stream: true }));
}
