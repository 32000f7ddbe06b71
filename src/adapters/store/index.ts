/**
 * Store adapters behind the RunStore port. `openRunStore` picks one from a target:
 * a `postgres://` or `postgresql://` URL opens PostgreSQL, anything else is a SQLite file path.
 */
import { SluiceError } from "../../core/errors.js";
import type { RunStore } from "../../ports/run-store.js";
import { openPostgresRunStore } from "./postgres/postgres-run-store.js";
import { openSqliteRunStore } from "./sqlite/sqlite-run-store.js";

export { FileResourceStore, parseResourceRef, resourceRefOf } from "./file-resource-store.js";
export { openPostgresRunStore, PostgresRunStore, WAKE_CHANNEL } from "./postgres/postgres-run-store.js";
export { openSqliteRunStore, SqliteRunStore } from "./sqlite/sqlite-run-store.js";

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/** Opens the store named by a database URL (`DATABASE_URL`) or a SQLite path, migrating it. */
export async function openRunStore(target: string): Promise<RunStore> {
  if (typeof target !== "string" || target.trim() === "") {
    throw new SluiceError("USAGE", "no store given: pass a postgres:// URL or a SQLite file path");
  }
  if (isPostgresUrl(target)) return openPostgresRunStore(target);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    throw new SluiceError("USAGE", `unsupported database URL scheme in '${target.replace(/\/\/[^@/]*@/, "//***@")}': use postgres:// or a SQLite file path`);
  }
  return openSqliteRunStore(target);
}
