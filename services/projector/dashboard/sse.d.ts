/** Types of sse.js, for the unit tests that run it in Node. */
export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
  retry: number | undefined;
}
export function parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage>;
