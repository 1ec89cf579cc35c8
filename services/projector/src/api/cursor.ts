/**
 * Opaque page cursors: base64url JSON that only this API reads. Clients pass
 * `nextCursor` back as `cursor` and must not build one; the format may change.
 */
import type { z } from "zod";

export function encodeCursor(position: unknown): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export class BadCursorError extends Error {
  override readonly name = "BadCursorError";
  readonly statusCode = 400;
  constructor() {
    super("cursor is not one this API gave out: pass the `nextCursor` of the previous page unchanged");
  }
}

/** @throws BadCursorError (answered 400) when the cursor was not made by `encodeCursor` with this shape. */
export function decodeCursor<T>(cursor: string, shape: z.ZodType<T>): T {
  try {
    return shape.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
  } catch {
    throw new BadCursorError();
  }
}
