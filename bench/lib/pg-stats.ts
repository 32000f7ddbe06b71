/**
 * What a piece of work costs PostgreSQL: the statements the server executed for some databases
 * (`pg_stat_statements`, loaded by the benchmark's server; BEGIN and COMMIT count, so with the
 * `pg` driver's one statement per round trip this is the number of round trips), and the write
 * transactions (transaction ids assigned: each is one commit that writes, so one WAL flush on a
 * durable server).
 */
import { adminQuery } from "./sluice.js";

export interface PgCost {
  statements: number;
  writeTransactions: number;
}

export async function enableStatements(serverUrl: string): Promise<void> {
  await adminQuery(serverUrl, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
}

async function snapshot(serverUrl: string, databases: readonly string[]): Promise<PgCost> {
  const [row] = await adminQuery<{ statements: string | null; xmax: string }>(
    serverUrl,
    `SELECT (SELECT sum(calls) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = ANY($1)) AS statements,
            pg_snapshot_xmax(pg_current_snapshot())::text AS xmax`,
    [databases],
  );
  return { statements: Number(row?.statements ?? 0), writeTransactions: Number(row?.xmax) };
}

/** The cost of `work` in `databases` (names), divided by `per`. */
export async function costOf(serverUrl: string, databases: readonly string[], per: number, work: () => Promise<unknown>): Promise<PgCost> {
  const before = await snapshot(serverUrl, databases);
  await work();
  const after = await snapshot(serverUrl, databases);
  return { statements: (after.statements - before.statements) / per, writeTransactions: (after.writeTransactions - before.writeTransactions) / per };
}

/** The database name in a postgres:// URL. */
export function databaseOf(url: string): string {
  return new URL(url).pathname.slice(1);
}
