import { type MigrationResultSet, Migrator, NO_MIGRATIONS } from "kysely/migration";
import { assertSchemaName, type Db } from "./database.ts";
import { migrationsFor } from "./migrations/index.ts";

/** A migrator for one schema; its bookkeeping tables live in that schema too. */
export function migratorFor(db: Db, schema: string): Migrator {
  assertSchemaName(schema);
  return new Migrator({
    db,
    provider: { getMigrations: async () => migrationsFor(schema) },
    migrationTableSchema: schema,
  });
}

function check(result: MigrationResultSet, what: string): MigrationResultSet {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === "Error")?.migrationName;
    throw new Error(`${what} failed${failed ? ` at ${failed}` : ""}`, { cause: result.error });
  }
  return result;
}

/** Creates the schema if needed and applies every pending migration. Idempotent. */
export async function migrateToLatest(db: Db, schema: string): Promise<MigrationResultSet> {
  return check(await migratorFor(db, schema).migrateToLatest(), `migrating schema ${schema}`);
}

/** Undoes every migration in the schema (drops the read models). */
export async function migrateDownAll(db: Db, schema: string): Promise<MigrationResultSet> {
  return check(await migratorFor(db, schema).migrateTo(NO_MIGRATIONS), `reverting schema ${schema}`);
}
