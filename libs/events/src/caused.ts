import type { ParsedCommand } from "./catalogue/catalogue.ts";
import { type CommandDataInput, type CommandType, catalogue } from "./catalogue/index.ts";
import type { RawEventEnvelope } from "./envelope.ts";
import { PermanentError } from "./errors.ts";
import { derivedId } from "./ids.ts";

/**
 * The command a reactor decides because of an event, parsed against the catalogue. Its
 * id is derived from the cause (and `key`, when one cause leads to several commands of a
 * type), so a redelivered cause decides nothing twice; its meta links it to the cause.
 * A command the reactor could not build validly is a bug: a permanent error.
 *
 * @example await handler.handle(commandCausedBy(event, "cluster.record-running", { clusterId, slot }, { actor: "provisioner" }));
 */
export function commandCausedBy<T extends CommandType>(
  cause: Pick<RawEventEnvelope, "id" | "meta">,
  type: T,
  data: CommandDataInput<T>,
  o: { actor: string; key?: string },
): ParsedCommand {
  const parsed = catalogue.parseCommand({
    id: o.key === undefined ? derivedId(cause.id, type) : derivedId(cause.id, type, o.key),
    type,
    data,
    meta: {
      actor: o.actor,
      causationId: cause.id,
      correlationId: cause.meta.correlationId,
      // The lifecycles the cause belongs to are this command's too: what it writes on another
      // aggregate (a node operation, a session) stays findable from the cause's lifecycle trace.
      ...(cause.meta.links?.length ? { links: cause.meta.links } : {}),
    },
  });
  if (!parsed.ok) throw new PermanentError(`${o.actor} built an invalid ${type}: ${parsed.error.message}`);
  return parsed.value;
}
