/**
 * The yardsticks every figure is set against, measured in the same run on the same machine:
 * one raw SQLite transaction in WAL mode (better-sqlite3, the driver Sluice uses), one raw
 * PostgreSQL transaction on the benchmark's server (`pg`, the driver Sluice uses), a bare round
 * trip, and the start of a bare Node process.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import type { Workspace } from "./lib/sluice.js";
import { median, ms, perCall, table } from "./lib/measure.js";

export interface Yardsticks {
  /** `BEGIN IMMEDIATE; INSERT; COMMIT` in WAL mode with `synchronous=NORMAL` (no fsync per commit). */
  sqliteNormal: number;
  /** The same with `synchronous=FULL` (an fsync per commit). */
  sqliteFull: number;
  /** One INSERT in its own transaction: one round trip, one durable commit. */
  pgTransaction: number;
  /** `BEGIN; INSERT; COMMIT`: three round trips, one durable commit. */
  pgExplicitTransaction: number;
  /** `SELECT 1`: one round trip. */
  pgRoundTrip: number;
  /** `node -e 0`. */
  nodeStart: number;
  sqliteVersion: string;
  pgVersion: string;
}

function sqliteTxn(path: string, synchronous: "NORMAL" | "FULL", n: number): Promise<number> {
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${synchronous}`);
  db.exec("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
  const begin = db.prepare("BEGIN IMMEDIATE");
  const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
  const commit = db.prepare("COMMIT");
  return perCall(n, (i) => {
    begin.run();
    insert.run(`value ${i}`);
    commit.run();
  }).finally(() => db.close());
}

export async function measureYardsticks(ws: Workspace, pgUrl: string, quick: boolean): Promise<Yardsticks> {
  const n = quick ? 500 : 5_000;
  const sqliteNormal = await sqliteTxn(join(ws.root, "yard-normal.db"), "NORMAL", n);
  const sqliteFull = await sqliteTxn(join(ws.root, "yard-full.db"), "FULL", n / 5);
  const sqliteVersion = (new Database(":memory:").prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;

  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  let pgTransaction: number;
  let pgExplicitTransaction: number;
  let pgRoundTrip: number;
  let pgVersion: string;
  try {
    await client.query("CREATE TABLE IF NOT EXISTS yard (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)");
    const m = quick ? 200 : 1_000;
    pgRoundTrip = await perCall(m, () => client.query({ name: "one", text: "SELECT 1" }));
    pgTransaction = await perCall(m, (i) => client.query({ name: "ins", text: "INSERT INTO yard (v) VALUES ($1)", values: [`value ${i}`] }));
    pgExplicitTransaction = await perCall(m, async (i) => {
      await client.query("BEGIN");
      await client.query({ name: "ins", text: "INSERT INTO yard (v) VALUES ($1)", values: [`value ${i}`] });
      await client.query("COMMIT");
    });
    pgVersion = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  } finally {
    await client.end();
  }

  const starts: number[] = [];
  for (let i = 0; i < (quick ? 3 : 10); i++) {
    const t = performance.now();
    spawnSync(process.execPath, ["-e", "0"]);
    starts.push(performance.now() - t);
  }
  return { sqliteNormal, sqliteFull, pgTransaction, pgExplicitTransaction, pgRoundTrip, nodeStart: median(starts), sqliteVersion, pgVersion };
}

export function yardsticksTable(y: Yardsticks): string {
  return table([
    ["yardstick", "time"],
    ["SQLite: `BEGIN IMMEDIATE; INSERT; COMMIT`, WAL, `synchronous=NORMAL` (**the SQLite yardstick**)", ms(y.sqliteNormal)],
    ["SQLite: the same, `synchronous=FULL` (an fsync per commit)", ms(y.sqliteFull)],
    ["PostgreSQL: one `INSERT` in its own transaction, one round trip (**the PostgreSQL yardstick**)", ms(y.pgTransaction)],
    ["PostgreSQL: `BEGIN; INSERT; COMMIT`, three round trips", ms(y.pgExplicitTransaction)],
    ["PostgreSQL: `SELECT 1`, one round trip", ms(y.pgRoundTrip)],
    ["`node -e 0`", ms(y.nodeStart)],
  ]);
}
