/**
 * Input checked on this side, with the very schemas the API and the owning service check
 * (libs/events catalogue), so a bad value is refused before anything is sent and the
 * message names the flag the person typed, not the field of the command.
 */
import type { z } from "zod";
import { InvalidInputError } from "./errors.ts";

/**
 * `value` parsed by `schema`. @throws InvalidInputError listing each problem, its field
 * named as the user gave it (`names` maps a field path such as `template.cpu` to `--cpu`).
 * @example parseInput(tokenSafeId, "a.b", "session id") // throws: invalid session id / a.b: must be token-safe…
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  value: unknown,
  what: string,
  o: { names?: Readonly<Record<string, string>>; hint?: string } = {},
): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => {
    const path = i.path.map(String).join(".");
    const name = o.names?.[path] ?? (path || JSON.stringify(value));
    return `${name}: ${i.message}`;
  });
  throw new InvalidInputError(`invalid ${what} (nothing was sent)`, issues, { hint: o.hint });
}
