/**
 * Store adapters behind the RunStore port. `openRunStore` picks one from a target:
 * a `postgres://` or `postgresql://` URL opens PostgreSQL, anything else is a SQLite file path.
 */
import { SluiceError } from "../../core/errors.js";
import { isDuration, parseDuration } from "../../core/flow/duration.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { DEFAULT_DB_DEADLINE_MS, openPostgresRunStore } from "./postgres/postgres-run-store.js";
import { openSqliteRunStore } from "./sqlite/sqlite-run-store.js";

export { FileResourceStore, parseResourceRef, resourceRefOf } from "./file-resource-store.js";
export { openPostgresRunStore, PostgresRunStore, WAKE_CHANNEL } from "./postgres/postgres-run-store.js";
export { openSqliteRunStore, SqliteRunStore } from "./sqlite/sqlite-run-store.js";

export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/**
 * How long a process keeps trying to reach its database before it gives up (exit code 5):
 * SLUICE_DB_DEADLINE, a duration (`30s`, `5m`), default 5 minutes.
 */
export function dbDeadlineMs(env: NodeJS.ProcessEnv): number {
  const text = env.SLUICE_DB_DEADLINE;
  if (text === undefined || text === "") return DEFAULT_DB_DEADLINE_MS;
  if (!isDuration(text)) throw new SluiceError("USAGE", `SLUICE_DB_DEADLINE must be a duration (500ms, 30s, 5m, 1h), not '${text}'`);
  return parseDuration(text);
}

export interface OpenStoreOptions {
  /** Where SLUICE_DB_DEADLINE is read from (default: the process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Where a database outage and its end are told. */
  logger?: Logger;
}

/** Opens the store named by a database URL (`DATABASE_URL`) or a SQLite path, migrating it. */
export async function openRunStore(target: string, opts: OpenStoreOptions = {}): Promise<RunStore> {
  if (typeof target !== "string" || target.trim() === "") {
    throw new SluiceError("USAGE", "no store given: pass a postgres:// URL or a SQLite file path");
  }
  if (isPostgresUrl(target)) return openPostgresRunStore(target, { deadlineMs: dbDeadlineMs(opts.env ?? process.env), ...(opts.logger ? { logger: opts.logger } : {}) });
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    throw new SluiceError("USAGE", `unsupported database URL scheme in '${target.replace(/\/\/[^@/]*@/, "//***@")}': use postgres:// or a SQLite file path`);
  }
  return openSqliteRunStore(target);
}
