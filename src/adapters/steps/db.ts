/**
 * The `db` step: one SQL statement on PostgreSQL (`pg`; the connection's secret is the URL) or
 * SQLite (`better-sqlite3`; the connection's `path`, relative to the working directory).
 *
 * - Values are bound to `$1, $2, …` placeholders, never interpolated (SQLite gets `?1, ?2, …`).
 * - A step the engine runs as a read (`ctx.effect`, from `isReadQuery`) is first put to the
 *   database itself: PostgreSQL's function volatility (./pg-effect.ts) or SQLite's
 *   `Statement#readonly`. If the query can change state, nothing runs and the step fails with
 *   EffectIsWriteError, which makes the engine gate it as a write. A read then runs in a READ
 *   ONLY transaction (PostgreSQL) or on a read-only handle (SQLite), as a second line of
 *   defence. A write (approved) runs in an ordinary transaction.
 * - At most `max_rows` rows (default 1000) are returned; more set `truncated: true`. PostgreSQL
 *   rows are fetched from a portal with a row limit, so a huge result is never read in full.
 * - The step's timeout is the statement timeout; a timeout or an abort cancels the statement on
 *   the server (PostgreSQL) or kills the child process that runs it (SQLite).
 * Outputs `rows`, `row_count` (rows returned, or rows changed by a write) and `truncated`.
 */
import { createRequire } from "node:module";
import { isAbsolute, resolve as resolvePath } from "node:path";
import { spawn } from "node:child_process";
import pg from "pg";
import { EffectIsWriteError, NonRetriableError, SluiceError } from "../../core/errors.js";
import type { ResolvedConnection, StepExecutor } from "../../ports/step-executor.js";
import { timeoutError, withDeadline, type Deadline } from "./deadline.js";
import { optNumber, paramError, reqString, typeName } from "./params.js";
import { postgresVerdict } from "./pg-effect.js";

const KIND = "db";
export const DEFAULT_MAX_ROWS = 1000;
const CONNECT_TIMEOUT_MS = 10_000;
const CANCEL_GRACE_MS = 5_000;

interface QueryOutcome {
  rows: Record<string, unknown>[];
  rowCount: number;
  truncated: boolean;
}

export const dbExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const conn = ctx.connection(reqString(KIND, params, "connection"));
    const sql = reqString(KIND, params, "query");
    const values = params.params ?? [];
    if (!Array.isArray(values)) throw paramError(KIND, "params", `must be a list of values for $1, $2, …, not ${typeName(values)}`);
    const maxRows = optNumber(KIND, params, "max_rows", { min: 1, integer: true }) ?? DEFAULT_MAX_ROWS;
    const readOnly = ctx.effect === "read";
    return withDeadline(ctx, async (deadline) => {
      let out: QueryOutcome;
      if (conn.type === "postgres") out = await runPostgres(conn, sql, values, readOnly, maxRows, deadline);
      else if (conn.type === "sqlite") out = await runSqlite(conn, sql, values, readOnly, maxRows, deadline);
      else throw paramError(KIND, "connection", `names '${conn.name}' of type ${conn.type}; a db step needs postgres or sqlite`);
      return { outputs: { rows: out.rows.map(jsonRow), row_count: out.rowCount, truncated: out.truncated } };
    });
  },
};

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** A Query whose portal stops at a row limit instead of fetching the rest page by page. */
type LimitedQuery = pg.Query & { handlePortalSuspended(connection: { sync(): void }): void };

async function runPostgres(
  conn: ResolvedConnection,
  sql: string,
  values: unknown[],
  readOnly: boolean,
  maxRows: number,
  deadline: Deadline,
): Promise<QueryOutcome> {
  const url = conn.secretValue;
  if (!url) throw paramError(KIND, "connection", `'${conn.name}' has no secret holding the database URL`);
  const config: pg.ClientConfig = {
    connectionString: url,
    connectionTimeoutMillis: Math.min(CONNECT_TIMEOUT_MS, deadline.timeoutMs ?? CONNECT_TIMEOUT_MS),
    application_name: "sluice",
    ...(deadline.timeoutMs !== undefined ? { statement_timeout: deadline.timeoutMs } : {}),
  };
  let client: pg.Client;
  try {
    client = new pg.Client(config);
  } catch (err) {
    throw new NonRetriableError("CONNECTION_FAILED", `db ${conn.name}: the connection's URL is not usable: ${(err as Error).message}`, {
      connection: conn.name,
    });
  }
  client.on("error", () => {
    // A dropped connection also fails the query in flight, which is where it is reported.
  });
  try {
    await abortable(client.connect(), deadline);
  } catch (err) {
    await client.end().catch(() => undefined);
    if (deadline.signal.aborted) throw deadline.error();
    throw connectError(conn.name, err);
  }
  try {
    if (readOnly) {
      const verdict = await abortable(postgresVerdict(client, sql), deadline);
      if (verdict.write) {
        throw new EffectIsWriteError(`db ${conn.name}: this query can change state: ${verdict.reason}; it runs only as an approved write`, {
          connection: conn.name,
          functions: verdict.functions,
        });
      }
    }
    await client.query(readOnly ? "BEGIN READ ONLY" : "BEGIN");
    const out = await limitedQuery(client, config, sql, values, maxRows, deadline);
    await client.query("COMMIT");
    return out;
  } catch (err) {
    if (deadline.signal.aborted) throw deadline.error();
    throw queryError(conn.name, err, readOnly, deadline);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function limitedQuery(
  client: pg.Client,
  config: pg.ClientConfig,
  sql: string,
  values: unknown[],
  maxRows: number,
  deadline: Deadline,
): Promise<QueryOutcome> {
  return new Promise<QueryOutcome>((resolve, reject) => {
    let suspended = false;
    // `rows` (an Execute row limit) is part of pg's Query, though not of its type declarations.
    const queryConfig: pg.QueryConfig = { text: sql, values };
    const query = new pg.Query(Object.assign(queryConfig, { rows: maxRows + 1 })) as LimitedQuery;
    query.handlePortalSuspended = (connection) => {
      suspended = true;
      connection.sync();
    };
    let grace: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      // Cancel the statement on the server (a CancelRequest on a second connection); if the
      // server does not confirm in time, drop the connection.
      const canceller = new pg.Client(config);
      canceller.on("error", () => undefined);
      (canceller as unknown as { connection: { on(e: string, f: () => void): void } }).connection.on("error", () => undefined);
      (canceller as unknown as { cancel(c: pg.Client, q: pg.Query): void }).cancel(client, query);
      grace = setTimeout(() => {
        (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
      }, CANCEL_GRACE_MS);
    };
    const done = (): void => {
      if (grace) clearTimeout(grace);
      deadline.signal.removeEventListener("abort", onAbort);
    };
    query.on("error", (err: Error) => {
      done();
      reject(err);
    });
    query.on("end", (result: pg.QueryResult) => {
      done();
      const rows = result.rows as Record<string, unknown>[];
      const truncated = suspended || rows.length > maxRows;
      const returned = rows.slice(0, maxRows);
      const isRowQuery = result.command === "SELECT" || result.command === "EXPLAIN" || result.command === "SHOW" || suspended;
      resolve({ rows: returned, rowCount: isRowQuery ? returned.length : (result.rowCount ?? returned.length), truncated });
    });
    if (deadline.signal.aborted) onAbort();
    else deadline.signal.addEventListener("abort", onAbort, { once: true });
    client.query(query);
  });
}

function abortable<T>(p: Promise<T>, deadline: Deadline): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(deadline.error());
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        deadline.signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        deadline.signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

interface PgError {
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  position?: string;
}

function connectError(name: string, err: unknown): SluiceError {
  const e = err as PgError;
  const sqlstate = typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const message = `db ${name}: could not connect: ${e.message ?? String(err)}`;
  // Bad credentials, a database that does not exist, a URL that does not parse: retrying will not help.
  if ((sqlstate && /^(28|3D)/.test(sqlstate)) || err instanceof TypeError) {
    return new NonRetriableError("CONNECTION_FAILED", message, { connection: name, sqlstate });
  }
  return new SluiceError("CONNECTION_FAILED", message, { connection: name, sqlstate, cause: e.code });
}

function queryError(name: string, err: unknown, readOnly: boolean, deadline: Deadline): SluiceError {
  if (err instanceof SluiceError) return err;
  const e = err as PgError;
  const sqlstate = typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const details: Record<string, unknown> = { connection: name };
  if (sqlstate) details.sqlstate = sqlstate;
  for (const k of ["detail", "hint", "position"] as const) if (e[k]) details[k] = e[k];
  const message = e.message ?? String(err);
  if (sqlstate === "57014" && deadline.timeoutMs !== undefined && /statement timeout/.test(message)) {
    return timeoutError(deadline.timeoutMs);
  }
  if (sqlstate === "25006") {
    const why = readOnly
      ? "it ran as a read, in a read-only transaction: something PostgreSQL does not mark VOLATILE tried to write"
      : "the database or role only allows reads";
    return new NonRetriableError("DB_READ_ONLY", `db ${name}: ${message} (${why})`, details);
  }
  // A connection lost during a write may have lost it after the commit: the write may or may not
  // have happened, so it is not tried again blindly (a read is).
  const lost = !sqlstate || /^(08|57P)/.test(sqlstate);
  if (lost && !readOnly) return new NonRetriableError(sqlstate ? "DB_ERROR" : "CONNECTION_FAILED", `db ${name}: the connection failed during a write, which may or may not have happened: ${message}`, details);
  if (!sqlstate) return new SluiceError("CONNECTION_FAILED", `db ${name}: the connection failed: ${message}`, details);
  if (sqlstate === "08P01") return new NonRetriableError("DB_ERROR", `db ${name}: ${message}`, details);
  if (/^(08|53|57P|40001|40P01|55P03)/.test(sqlstate)) return new SluiceError("DB_ERROR", `db ${name}: ${message}`, details);
  return new NonRetriableError("DB_ERROR", `db ${name}: ${message}`, details);
}

// ---------------------------------------------------------------------------------------------
// SQLite

/**
 * Rewrites `$1, $2, …` into SQLite's `?1, ?2, …`, leaving string literals, quoted identifiers
 * and comments alone, and refuses other placeholder styles. Returns the highest index used.
 */
export function toSqlitePlaceholders(sql: string): { sql: string; count: number } {
  let out = "";
  let count = 0;
  let i = 0;
  const n = sql.length;
  const copyUntil = (end: number): void => {
    out += sql.slice(i, end);
    i = end;
  };
  while (i < n) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === "'" || c === '"' || c === "`") {
      let j = i + 1;
      while (j < n) {
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      copyUntil(Math.min(j + 1, n));
    } else if (c === "[") {
      const j = sql.indexOf("]", i + 1);
      copyUntil(j < 0 ? n : j + 1);
    } else if (c === "-" && next === "-") {
      const j = sql.indexOf("\n", i);
      copyUntil(j < 0 ? n : j + 1);
    } else if (c === "/" && next === "*") {
      const j = sql.indexOf("*/", i + 2);
      copyUntil(j < 0 ? n : j + 2);
    } else if (c === "$" && next !== undefined && /[0-9]/.test(next)) {
      let j = i + 1;
      while (j < n && /[0-9]/.test(sql[j]!)) j++;
      const index = Number(sql.slice(i + 1, j));
      if (index < 1) throw paramError(KIND, "query", "uses $0; placeholders start at $1");
      count = Math.max(count, index);
      out += `?${index}`;
      i = j;
    } else if (c === "?" || ((c === ":" || c === "@" || c === "$") && next !== undefined && /[A-Za-z_]/.test(next))) {
      throw paramError(KIND, "query", `uses a '${c}' placeholder; use $1, $2, … with 'params'`);
    } else {
      out += c;
      i++;
    }
  }
  return { sql: out, count };
}

const require = createRequire(import.meta.url);

/**
 * SQLite statements run in a child process: better-sqlite3 is synchronous and cannot be
 * interrupted, and only a process can be stopped in the middle of a native call (a runaway
 * query is killed with it, and its file locks go with it).
 */
const SQLITE_CHILD = `
const Database = require(process.argv[1]);
process.once("message", (job) => {
  let db;
  let answer;
  try {
    db = new Database(job.path, { readonly: job.readOnly, fileMustExist: job.readOnly, timeout: job.busyMs });
    if (job.readOnly) db.pragma("query_only = ON");
    const stmt = db.prepare(job.sql);
    // better-sqlite3 binds ?NNN parameters by name: { "1": …, "2": … }.
    const args = job.params.length === 0 ? [] : [Object.fromEntries(job.params.map((v, i) => [String(i + 1), v]))];
    if (job.readOnly && !stmt.readonly) {
      // SQLite's own verdict: this statement may write. Nothing ran; the engine gates it.
      answer = { write: true };
    } else if (stmt.reader) {
      const rows = [];
      let truncated = false;
      for (const row of stmt.iterate(...args)) {
        if (rows.length >= job.maxRows) { truncated = true; break; }
        rows.push(row);
      }
      answer = { ok: { rows, rowCount: rows.length, truncated } };
    } else {
      const info = stmt.run(...args);
      answer = { ok: { rows: [], rowCount: info.changes, truncated: false } };
    }
  } catch (e) {
    answer = { error: { code: e && e.code, name: e && e.name, message: String((e && e.message) || e) } };
  } finally {
    try { if (db) db.close(); } catch {}
  }
  process.send(answer, () => process.exit(0));
});
`;

interface SqliteAnswer {
  ok?: QueryOutcome;
  write?: true;
  error?: { code?: string; name?: string; message: string };
}

/**
 * Runs one SQLite statement (exported for tests of the read-only handle). A `readOnly` run opens
 * the file read-only and refuses, before running it, a statement SQLite says is not read-only.
 */
export async function runSqlite(
  conn: Pick<ResolvedConnection, "name" | "path">,
  rawSql: string,
  values: unknown[],
  readOnly: boolean,
  maxRows: number,
  deadline: Deadline,
): Promise<QueryOutcome> {
  if (!conn.path) throw paramError(KIND, "connection", `'${conn.name}' has no path`);
  const path = isAbsolute(conn.path) ? conn.path : resolvePath(process.cwd(), conn.path);
  const { sql, count } = toSqlitePlaceholders(rawSql);
  if (values.length !== count) {
    throw paramError(KIND, "params", `has ${values.length} value(s), but the query uses ${count === 0 ? "no placeholders" : `$1…$${count}`}`);
  }
  const job = {
    path,
    readOnly,
    sql,
    params: values.map(sqliteValue),
    maxRows,
    busyMs: Math.min(5_000, deadline.timeoutMs ?? 5_000),
  };
  deadline.check();
  const child = spawn(process.execPath, ["-e", SQLITE_CHILD, require.resolve("better-sqlite3")], {
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    serialization: "advanced",
    env: {},
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    if (stderr.length < 4000) stderr += chunk;
  });
  const answer = await new Promise<SqliteAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (f: () => void): void => {
      if (settled) return;
      settled = true;
      deadline.signal.removeEventListener("abort", onAbort);
      f();
    };
    const onAbort = (): void => {
      child.kill("SIGKILL");
      finish(() => reject(deadline.error()));
    };
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    child.once("message", (m: SqliteAnswer) => finish(() => resolve(m)));
    child.once("error", (err) => finish(() => reject(new SluiceError("DB_ERROR", `db ${conn.name}: could not start SQLite: ${err.message}`))));
    // "close", not "exit": the answer can still be on its way when the process has exited.
    child.once("close", (code, signal) =>
      finish(() => {
        const message = `db ${conn.name}: SQLite ended without an answer (${signal ?? `exit ${code}`}): ${stderr.trim()}`;
        // A write may have committed before the child died: trying it again could do it twice.
        reject(readOnly ? new SluiceError("DB_ERROR", message) : new NonRetriableError("DB_ERROR", `${message}; the write may or may not have happened`));
      }),
    );
    child.send(job);
  });
  if (answer.ok) return answer.ok;
  if (answer.write) {
    throw new EffectIsWriteError(`db ${conn.name}: SQLite says this statement can change the database; it runs only as an approved write`, {
      connection: conn.name,
    });
  }
  const e = answer.error ?? { message: "unknown error" };
  const details = { connection: conn.name, sqlite_code: e.code };
  const code = e.code ?? "";
  if (code.startsWith("SQLITE_READONLY")) {
    throw new NonRetriableError("DB_READ_ONLY", `db ${conn.name}: ${e.message} (a query that reads as a read runs on a read-only handle)`, details);
  }
  if (code.startsWith("SQLITE_CANTOPEN") || code.startsWith("SQLITE_NOTADB")) {
    throw new NonRetriableError("CONNECTION_FAILED", `db ${conn.name}: could not open ${conn.path}: ${e.message}`, details);
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) throw new SluiceError("DB_ERROR", `db ${conn.name}: ${e.message}`, details);
  if (e.name === "RangeError") throw new NonRetriableError("PARAM_INVALID", `db ${conn.name}: ${e.message}`, details);
  throw new NonRetriableError("DB_ERROR", `db ${conn.name}: ${e.message}`, details);
}

function sqliteValue(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === "boolean") return v ? 1 : 0;
  if (v !== null && typeof v === "object") return JSON.stringify(v);
  return v;
}

// ---------------------------------------------------------------------------------------------

/** Rows as JSON: dates as ISO strings, bytes as base64, big integers as strings. */
function jsonRow(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = jsonValue(v);
  return out;
}

function jsonValue(v: unknown): unknown {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v !== null && typeof v === "object") return jsonRow(v as Record<string, unknown>);
  return v;
}
