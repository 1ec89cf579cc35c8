import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/**
 * Sessions by the last sequence folded into them: the API's session directory asks every
 * couple of seconds for the rows changed since it last asked (`last_sequence > n`), which
 * must not scan the table.
 */
export function sessionsLastSequence(schema: string): Migration {
  return {
    async up(db: Kysely<unknown>) {
      await db.schema
        .withSchema(schema)
        .createIndex("sessions_last_sequence_idx")
        .on("sessions")
        .column("last_sequence")
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.withSchema(schema).dropIndex("sessions_last_sequence_idx").ifExists().execute();
    },
  };
}
