/**
 * The RunStore on PostgreSQL (`pg` Pool), for several `sluice serve` processes sharing one
 * database: appends are one statement each (compare-and-set on the run's seq, the events, the
 * wake-up, the NOTIFY), `claimDue`, `claimDeliveries` and `claimUnreported` take leases with
 * `FOR UPDATE SKIP LOCKED`, migrations run under an advisory lock so processes may start at once,
 * and every statement is prepared once per connection.
 *
 * The database going away is weather: every client has an 'error' handler (a checked-out one
 * included), and an operation that could not reach the server is tried again with backoff until
 * the operator's deadline (`deadlineMs`) has passed since the database was last reachable. An
 * operation whose statement may have run before the connection broke is tried again only where
 * that is harmless: reads, leases, and appends (a compare-and-set that checks whether the lost
 * attempt was committed).
 */
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { ConflictError, SluiceError } from "../../../core/errors.js";
import type { JournalEvent, Release } from "../../../core/engine/events.js";
import { TERMINAL_STATUSES, type ApiToken, type AppendUpdate, type Delivery, type KvEntry, type KvWrite, type NewRun, type RunFilter, type RunRecord, type RunStore, type StoredEvent } from "../../../ports/run-store.js";
import type { Logger } from "../../../ports/step-executor.js";
import {
  checkDelivery,
  checkHookKeys,
  checkIfVersion,
  checkIncrement,
  checkKey,
  checkKeyName,
  checkKvWrite,
  checkLease,
  checkLimit,
  checkNewToken,
  checkOutcome,
  checkOwner,
  checkReportedSeq,
  checkTime,
  checkTtl,
  deliveryNotFound,
  incremented,
  latestAt,
  toJson,
  type Migration,
} from "../common.js";
import { POSTGRES_MIGRATIONS } from "./migrations.js";

/** The channel of wake-up notifications; the payload is the run id. */
export const WAKE_CHANNEL = "sluice_wake";
/** Key of the advisory lock held while migrating ("sluice" in ASCII). */
const MIGRATION_LOCK = 0x736c75696365;
/** How long the store keeps trying to reach the database before it gives up (SLUICE_DB_DEADLINE). */
export const DEFAULT_DB_DEADLINE_MS = 5 * 60_000;
/** Backoff between attempts to reach the database: from the first to the last, doubling. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 1_000;

interface RunRow {
  ord: string;
  id: string;
  flow: string;
  repo: string;
  status: string;
  release: Release;
  concurrency_group: string | null;
  created_at: string;
  updated_at: string;
  wake_at: string | null;
  seq: number;
}

interface KvRow {
  key: string;
  value: unknown;
  version: number;
  expires_at: string | null;
}

interface DeliveryRow {
  ord: string;
  id: string;
  event: string;
  payload: unknown;
  received_at: string;
  attempts: number;
  last_error: string | null;
}

const RUN_COLUMNS = "ord, id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq";

interface TokenRow {
  id: string;
  login: string;
  repo: string | null;
  kind: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

const TOKEN_COLUMNS = "id, login, repo, kind, created_at, expires_at, revoked_at";

const epoch = (v: string | null): number | null => (v === null ? null : Number(v));

function toToken(row: TokenRow): ApiToken {
  return { id: row.id, login: row.login, repo: row.repo, kind: row.kind === "agent" ? "agent" : "human", createdAt: Number(row.created_at), expiresAt: epoch(row.expires_at), revokedAt: epoch(row.revoked_at) };
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    flow: row.flow,
    repo: row.repo,
    status: row.status as RunRecord["status"],
    release: row.release,
    concurrencyGroup: row.concurrency_group,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    wakeAt: row.wake_at === null ? null : Number(row.wake_at),
    seq: row.seq,
  };
}

function toEntry(row: KvRow): KvEntry {
  return { key: row.key, value: row.value, version: row.version, expiresAt: row.expires_at === null ? null : Number(row.expires_at) };
}

function isLive(row: KvRow | undefined, now: number): row is KvRow {
  return row !== undefined && (row.expires_at === null || Number(row.expires_at) > now);
}

function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Socket errors of a connection that broke or could not be made. */
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN"]);
/** SQLSTATEs of a server that is going away, starting up or full: admin/crash shutdown, cannot connect now, too many connections. */
const UNAVAILABLE_STATES = new Set(["57P01", "57P02", "57P03", "53300"]);
/** What `pg` says when a connection ends under it (it gives these no code). */
const CONNECTION_MESSAGES = /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|Connection ended/i;

/** Whether `err` says the database could not be reached (as opposed to a statement it refused). */
export function isConnectionError(err: unknown): boolean {
  const code = pgCode(err);
  if (code && (SOCKET_CODES.has(code) || UNAVAILABLE_STATES.has(code) || code.startsWith("08"))) return true;
  return err instanceof Error && !(err instanceof SluiceError) && CONNECTION_MESSAGES.test(err.message);
}

function storeError(what: string, err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  const code = pgCode(err);
  return new SluiceError("STORE_ERROR", `PostgreSQL ${what} failed: ${(err as Error).message}`, code ? { pgCode: code } : {});
}

/** A connection could not be had from the pool: nothing was sent, so trying again is always safe. */
class NotSent extends Error {
  constructor(readonly reason: unknown) {
    super(reason instanceof Error ? reason.message : String(reason));
  }
}

/** Thrown inside a kv transaction when a concurrent insert won the key: the caller tries again. */
class KvRaced extends Error {}

/** Thrown inside a hook claim when a key is held: the transaction rolls back, claiming nothing. */
class ClaimHeld extends Error {}

/** Statement names by text: each text is prepared once per connection under its name. */
const statementNames = new Map<string, string>();
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `sluice_${statementNames.size}`;
    statementNames.set(text, name);
  }
  return name;
}

/** A query that is prepared once per connection and run by name after that. */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  return { name: statementName(text), text, values };
}

async function migrateWith(client: pg.ClientBase, migrations: readonly Migration[]): Promise<number> {
  await client.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at BIGINT NOT NULL
    )`);
    const res = await client.query<{ v: number | null }>("SELECT MAX(version) AS v FROM schema_migrations");
    const current = res.rows[0]?.v ?? 0;
    const known = migrations.length === 0 ? 0 : Math.max(...migrations.map((m) => m.version));
    if (current > known) {
      throw new SluiceError("STORE_ERROR", `the database's schema is at version ${current}, newer than this Sluice knows (${known}): upgrade Sluice`, { current, known });
    }
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= current) continue;
      await client.query("BEGIN");
      try {
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [m.version, m.name, Date.now()]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
    }
    return known;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => undefined);
  }
}

/** Applies the pending migrations, holding an advisory lock so concurrent starts apply each once. */
export async function migratePostgres(pool: pg.Pool, migrations: readonly Migration[] = POSTGRES_MIGRATIONS): Promise<number> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw storeError("connection", err);
  }
  try {
    return await migrateWith(client, migrations);
  } catch (err) {
    throw storeError("migration", err);
  } finally {
    client.release();
  }
}

export interface PostgresRunStoreOptions {
  /** Pool size (default 10). */
  max?: number;
  /** How long to keep trying while the database cannot be reached, in ms (default 5 minutes). */
  deadlineMs?: number;
  /** Where outages and recoveries are told (default: nowhere). */
  logger?: Logger;
}

/**
 * The one statement of an append: compare-and-set, events, wake-up, lease release, NOTIFY, and
 * how it commits. Not durable: `synchronous_commit = off` (a crash of the database may undo it,
 * and only together with what followed it: WAL is flushed in order). Durable: the server's own
 * setting, raised to `local` where the server has it off, so a durable append is flushed.
 */
const APPEND_SQL = `WITH cas AS (
    UPDATE runs SET seq = $2 + $9::int, status = $3, wake_at = $4, updated_at = GREATEST(updated_at, $8::bigint),
      lease_owner = CASE WHEN lease_owner = $11::text THEN NULL ELSE lease_owner END,
      lease_until = CASE WHEN lease_owner = $11::text THEN NULL ELSE lease_until END
    WHERE id = $1 AND seq = $2
    RETURNING id
  ), ins AS (
    INSERT INTO events (run_id, seq, type, at, event)
    SELECT cas.id, $2 + x.n, x.type, x.at, x.event::json
    FROM cas, unnest($5::text[], $6::bigint[], $7::text[]) WITH ORDINALITY AS x(type, at, event, n)
    RETURNING 1
  ), woke AS (
    SELECT pg_notify('${WAKE_CHANNEL}', cas.id) FROM cas WHERE $10::boolean
  )
  SELECT (SELECT count(*) FROM cas)::int AS ok,
         (SELECT seq FROM runs WHERE id = $1) AS seq,
         (SELECT count(*) FROM woke)::int AS notified,
         set_config('synchronous_commit', CASE WHEN NOT $12::boolean THEN 'off' WHEN current_setting('synchronous_commit') = 'off' THEN 'local' ELSE current_setting('synchronous_commit') END, true) AS commit_mode`;

export class PostgresRunStore implements RunStore {
  readonly pool: pg.Pool;
  private closed = false;
  private readonly listeners = new Set<() => Promise<void>>();
  private readonly deadlineMs: number;
  private readonly logger: Logger | undefined;
  /** Since when the database could not be reached (epoch ms), or null while it answers. */
  private downSince: number | null = null;

  constructor(pool: pg.Pool, opts: Omit<PostgresRunStoreOptions, "max"> = {}) {
    this.pool = pool;
    this.deadlineMs = opts.deadlineMs ?? DEFAULT_DB_DEADLINE_MS;
    this.logger = opts.logger;
  }

  /**
   * Runs `attempt` until it succeeds, fails for a reason other than the database being out of
   * reach, or the database has been out of reach for longer than the deadline. A connection that
   * broke after the statement was sent is tried again only when `idempotent`.
   */
  private async retrying<T>(what: string, idempotent: boolean, attempt: () => Promise<T>): Promise<T> {
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        const out = await attempt();
        if (this.downSince !== null) {
          this.logger?.info("the database answers again", { down_ms: Date.now() - this.downSince });
          this.downSince = null;
        }
        return out;
      } catch (err) {
        const cause = err instanceof NotSent ? err.reason : err;
        if (cause instanceof KvRaced || cause instanceof ClaimHeld) throw cause;
        if (this.closed || !isConnectionError(cause) || !(idempotent || err instanceof NotSent)) throw storeError(what, cause);
        const now = Date.now();
        if (this.downSince === null) {
          this.downSince = now;
          this.logger?.warn("the database cannot be reached; trying again", { operation: what, error: (cause as Error).message, deadline_ms: this.deadlineMs });
        }
        if (now - this.downSince >= this.deadlineMs) {
          throw new SluiceError("STORE_ERROR", `PostgreSQL ${what} failed: the database has been unreachable for ${Math.round((now - this.downSince) / 1000)} s (the deadline is ${Math.round(this.deadlineMs / 1000)} s): ${(cause as Error).message}`, {
            unavailable: true,
            ...(pgCode(cause) ? { pgCode: pgCode(cause) } : {}),
          });
        }
        await sleep(delay / 2 + Math.random() * (delay / 2));
      }
    }
  }

  /** A client of the pool for `fn`; a client whose connection broke is discarded, not reused. */
  private async withClient<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw new NotSent(err);
    }
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (err) {
      if (isConnectionError(err)) broken = err as Error;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  private q<R extends pg.QueryResultRow>(what: string, sql: string, args: unknown[] = [], idempotent = true): Promise<pg.QueryResult<R>> {
    return this.retrying(what, idempotent, () => this.withClient((c) => c.query<R>(prepared(sql, args))));
  }

  private tx<T>(what: string, fn: (c: pg.PoolClient) => Promise<T>, idempotent = true): Promise<T> {
    return this.retrying(what, idempotent, () =>
      this.withClient(async (c) => {
        await c.query("BEGIN");
        try {
          const out = await fn(c);
          await c.query("COMMIT");
          return out;
        } catch (err) {
          if (!isConnectionError(err)) await c.query("ROLLBACK").catch(() => undefined);
          throw err;
        }
      }),
    );
  }

  /** Applies the pending migrations, waiting for the database as long as the deadline allows. */
  async migrate(migrations: readonly Migration[] = POSTGRES_MIGRATIONS): Promise<number> {
    return this.retrying("migration", true, () => this.withClient((c) => migrateWith(c, migrations)));
  }

  /** The schema version the database is at. */
  async schemaVersion(): Promise<number> {
    const res = await this.q<{ v: number | null }>("read", "SELECT MAX(version) AS v FROM schema_migrations");
    return res.rows[0]?.v ?? 0;
  }

  async createRun(run: NewRun, events: JournalEvent[]): Promise<void> {
    checkTime(run.createdAt, "createdAt");
    if (run.wakeAt !== null) checkTime(run.wakeAt, "wakeAt");
    const release = toJson(run.release, "the run's release");
    const encoded = events.map((e) => toJson(e, `event '${e.type}'`));
    // Run ids are random: a run found with this id after a lost connection is this attempt's.
    let sent = false;
    await this.tx("createRun", async (c) => {
      if (sent && (await c.query(prepared("SELECT 1 FROM runs WHERE id = $1", [run.id]))).rowCount === 1) return;
      sent = true;
      const inserted = await c.query(
        prepared(
          `INSERT INTO runs (id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq)
           VALUES ($1, $2, $3, $4, $5::json, $6, $7, $7, $8, $9)
           ON CONFLICT (id) DO NOTHING`,
          [run.id, run.flow, run.repo, run.status, release, run.concurrencyGroup, run.createdAt, run.wakeAt, events.length],
        ),
      );
      if (inserted.rowCount !== 1) throw new ConflictError(`run '${run.id}' already exists`, { runId: run.id });
      if (events.length > 0) {
        await c.query(
          prepared(
            `INSERT INTO events (run_id, seq, type, at, event)
             SELECT $1, x.n, x.type, x.at, x.event::json
             FROM unnest($2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS x(type, at, event, n)`,
            [run.id, events.map((e) => e.type), events.map((e) => e.at), encoded],
          ),
        );
      }
      for (const t of run.callbackTokens) {
        const res = await c.query(prepared("INSERT INTO callback_tokens (token, run_id, step) VALUES ($1, $2, $3) ON CONFLICT (token) DO NOTHING", [t.token, run.id, t.step]));
        if (res.rowCount !== 1) throw new ConflictError(`callback token for step '${t.step}' is already in use`, { runId: run.id, step: t.step });
      }
      if (run.wakeAt !== null) await c.query(prepared("SELECT pg_notify($1, $2)", [WAKE_CHANNEL, run.id]));
    });
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const res = await this.q<RunRow>("getRun", `SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1`, [id]);
    return res.rows[0] ? toRecord(res.rows[0]) : undefined;
  }

  async loadJournal(id: string): Promise<StoredEvent[]> {
    const res = await this.q<{ seq: number; event: JournalEvent }>("loadJournal", "SELECT seq, event FROM events WHERE run_id = $1 ORDER BY seq", [id]);
    return res.rows.map((r) => ({ seq: r.seq, event: r.event }));
  }

  async append(id: string, expectedSeq: number, events: JournalEvent[], update: AppendUpdate): Promise<number> {
    if (update.wakeAt !== null) checkTime(update.wakeAt, "wakeAt");
    const encoded = events.map((e) => toJson(e, `event '${e.type}'`));
    const kv = update.kv;
    const kvValue = kv ? checkKvWrite(kv).value : null;
    const args = [
      id,
      expectedSeq,
      update.status,
      update.wakeAt,
      events.map((e) => e.type),
      events.map((e) => e.at),
      encoded,
      latestAt(events, Date.now()),
      events.length,
      update.notify ?? update.wakeAt !== null,
      update.release ?? null,
      update.durable !== false,
    ];
    const seq = expectedSeq + events.length;
    // After a connection broke mid-append, the attempt may have committed: if the journal holds
    // exactly these events after `expectedSeq`, it did (and the kv write with it).
    let sent = false;
    const attempt = async (c: pg.PoolClient): Promise<number> => {
      if (sent && events.length > 0 && (await this.appended(c, id, expectedSeq, encoded))) return seq;
      sent = true;
      const res = await c.query<{ ok: number; seq: number | null }>(prepared(APPEND_SQL, args));
      const row = res.rows[0];
      if (!row || row.ok !== 1) {
        if (row?.seq === null || row?.seq === undefined) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { runId: id });
        throw new ConflictError(`run '${id}' moved on: its journal ends at seq ${row.seq}, not ${expectedSeq}`, { runId: id, expectedSeq, actualSeq: row.seq });
      }
      if (kv) await this.applyKvWrite(c, kv, kvValue);
      return seq;
    };
    // One statement, one round trip; a kv write needs its row locked and checked in the same transaction.
    if (!kv) return this.retrying("append", true, () => this.withClient(attempt));
    return this.tx("append", attempt);
  }

  /** Whether the journal of `id` holds exactly `encoded` after `after`. */
  private async appended(c: pg.PoolClient, id: string, after: number, encoded: string[]): Promise<boolean> {
    const res = await c.query<{ event: string }>(prepared("SELECT event::text AS event FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3", [id, after, encoded.length]));
    return res.rows.length === encoded.length && res.rows.every((r, i) => r.event === encoded[i]);
  }

  /** A kv step's write, inside the append's transaction: only if the key is still at the version the step read. */
  private async applyKvWrite(c: pg.PoolClient, w: KvWrite, value: string | null): Promise<void> {
    const res = await c.query<KvRow>(prepared("SELECT key, value, version, expires_at FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [w.namespace, w.key]));
    const row = res.rows[0];
    const live = isLive(row, w.now) ? row.version : 0;
    const moved = (actual: number) =>
      new ConflictError(`kv key '${w.key}' moved from version ${w.expectVersion} to ${actual} while the step ran`, {
        namespace: w.namespace,
        kvKey: w.key,
        expectedVersion: w.expectVersion,
        actualVersion: actual,
      });
    if (live !== w.expectVersion) throw moved(live);
    if (w.next === null || value === null) {
      await c.query(prepared("DELETE FROM kv WHERE namespace = $1 AND key = $2", [w.namespace, w.key]));
    } else if (row) {
      await c.query(prepared("UPDATE kv SET value = $3::json, version = $4, expires_at = $5 WHERE namespace = $1 AND key = $2", [w.namespace, w.key, value, w.next.version, w.next.expiresAt]));
    } else {
      const ins = await c.query(
        prepared("INSERT INTO kv (namespace, key, value, version, expires_at) VALUES ($1, $2, $3::json, $4, $5) ON CONFLICT (namespace, key) DO NOTHING", [
          w.namespace,
          w.key,
          value,
          w.next.version,
          w.next.expiresAt,
        ]),
      );
      // Another transaction created the key since the step read it absent.
      if (ins.rowCount !== 1) throw moved(-1);
    }
  }

  async setWakeAt(id: string, wakeAt: number | null): Promise<void> {
    if (wakeAt !== null) checkTime(wakeAt, "wakeAt");
    const res = await this.q<{ found: boolean }>(
      "setWakeAt",
      `WITH upd AS (UPDATE runs SET wake_at = $2 WHERE id = $1 RETURNING id),
            woke AS (SELECT pg_notify('${WAKE_CHANNEL}', upd.id) FROM upd WHERE $2::bigint IS NOT NULL)
       SELECT EXISTS (SELECT 1 FROM upd) AS found, (SELECT count(*) FROM woke) AS notified`,
      [id, wakeAt],
    );
    if (!res.rows[0]?.found) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { runId: id });
  }

  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    checkLimit(filter.limit, "limit");
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown): string => {
      args.push(v);
      return `$${args.length}`;
    };
    if (filter.flow !== undefined) where.push(`flow = ${arg(filter.flow)}`);
    if (filter.repo !== undefined) where.push(`repo = ${arg(filter.repo)}`);
    if (filter.status !== undefined) {
      if (filter.status.length === 0) return [];
      where.push(`status = ANY(${arg(filter.status)}::text[])`);
    }
    if (filter.concurrencyGroup !== undefined) where.push(`concurrency_group = ${arg(filter.concurrencyGroup)}`);
    let sql = `SELECT ${RUN_COLUMNS} FROM runs`;
    if (where.length > 0) sql += ` WHERE ${where.join(" AND ")}`;
    sql += " ORDER BY created_at DESC, ord DESC";
    if (filter.limit !== undefined) sql += ` LIMIT ${arg(filter.limit)}`;
    const res = await this.q<RunRow>("listRuns", sql, args);
    return res.rows.map(toRecord);
  }

  async claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<RunRecord[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    const res = await this.q<RunRow>(
      "claimDue",
      `WITH due AS (
         SELECT id FROM runs
         WHERE wake_at IS NOT NULL AND wake_at <= $1
           AND (lease_owner IS NULL OR lease_until <= $1)
         ORDER BY wake_at, ord
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE runs SET lease_owner = $3, lease_until = $4
       FROM due WHERE runs.id = due.id
       RETURNING ${RUN_COLUMNS.split(", ").map((c) => `runs.${c}`).join(", ")}`,
      [now, limit, owner, now + leaseMs],
    );
    return res.rows.sort((a, b) => Number(a.wake_at) - Number(b.wake_at) || Number(a.ord) - Number(b.ord)).map(toRecord);
  }

  async acquireLease(id: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    checkTime(now, "now");
    checkLease(owner, leaseMs);
    const res = await this.q(
      "acquireLease",
      `UPDATE runs SET lease_owner = $2, lease_until = $3
       WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until <= $4)`,
      [id, owner, now + leaseMs, now],
    );
    return res.rowCount === 1;
  }

  async renewLeases(leases: readonly { id: string; owner: string }[], now: number, leaseMs: number): Promise<{ id: string; seq: number }[]> {
    checkTime(now, "now");
    for (const l of leases) checkLease(l.owner, leaseMs);
    if (leases.length === 0) return [];
    const res = await this.q<{ id: string; seq: number }>(
      "renewLeases",
      `UPDATE runs SET lease_until = $3
       FROM unnest($1::text[], $2::text[]) AS x(id, owner)
       WHERE runs.id = x.id AND runs.lease_owner = x.owner
       RETURNING runs.id, runs.seq`,
      [leases.map((l) => l.id), leases.map((l) => l.owner), now + leaseMs],
    );
    return res.rows.map((r) => ({ id: r.id, seq: r.seq }));
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    await this.q("releaseLease", "UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2", [id, owner]);
  }

  async nextWakeAt(now: number): Promise<number | null> {
    checkTime(now, "now");
    const res = await this.q<{ w: string | null }>(
      "nextWakeAt",
      `SELECT MIN(CASE WHEN lease_owner IS NULL OR lease_until <= $1 THEN wake_at ELSE GREATEST(wake_at, lease_until) END) AS w
       FROM runs WHERE wake_at IS NOT NULL`,
      [now],
    );
    const w = res.rows[0]?.w ?? null;
    return w === null ? null : Number(w);
  }

  async findCallback(token: string): Promise<{ runId: string; step: string } | undefined> {
    const res = await this.q<{ run_id: string; step: string }>("findCallback", "SELECT run_id, step FROM callback_tokens WHERE token = $1", [token]);
    const row = res.rows[0];
    return row ? { runId: row.run_id, step: row.step } : undefined;
  }

  async recordDelivery(d: { id: string; event: string; payload: unknown; receivedAt: number }): Promise<boolean> {
    const payload = checkDelivery(d);
    const res = await this.q(
      "recordDelivery",
      "INSERT INTO deliveries (id, event, payload, received_at) VALUES ($1, $2, $3::json, $4) ON CONFLICT (id) DO NOTHING",
      [d.id, d.event, payload, d.receivedAt],
    );
    return res.rowCount === 1;
  }

  async claimDeliveries(owner: string, now: number, leaseMs: number, limit: number): Promise<Delivery[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    const res = await this.q<DeliveryRow>(
      "claimDeliveries",
      `WITH due AS (
         SELECT id FROM deliveries
         WHERE processed_at IS NULL
           AND (retry_at IS NULL OR retry_at <= $1)
           AND (lease_owner IS NULL OR lease_until <= $1)
         ORDER BY received_at, ord
         LIMIT $2
         FOR UPDATE SKIP LOCKED
       )
       UPDATE deliveries d SET lease_owner = $3, lease_until = $4, attempts = d.attempts + 1
       FROM due WHERE d.id = due.id
       RETURNING d.ord, d.id, d.event, d.payload, d.received_at, d.attempts, d.last_error`,
      [now, limit, owner, now + leaseMs],
    );
    return res.rows
      .sort((a, b) => Number(a.received_at) - Number(b.received_at) || Number(a.ord) - Number(b.ord))
      .map((r) => ({
        id: r.id,
        event: r.event,
        payload: r.payload,
        receivedAt: Number(r.received_at),
        attempts: r.attempts,
        lastError: r.last_error,
      }));
  }

  async renewDeliveries(owner: string, ids: readonly string[], now: number, leaseMs: number): Promise<string[]> {
    checkTime(now, "now");
    checkLease(owner, leaseMs);
    if (ids.length === 0) return [];
    const res = await this.q<{ id: string }>(
      "renewDeliveries",
      "UPDATE deliveries SET lease_until = $3 WHERE id = ANY($1::text[]) AND lease_owner = $2 AND processed_at IS NULL RETURNING id",
      [ids, owner, now + leaseMs],
    );
    const held = new Set(res.rows.map((r) => r.id));
    return ids.filter((id) => held.has(id));
  }

  async finishDelivery(id: string, outcome: { error?: string; retryAt?: number }): Promise<void> {
    checkOutcome(id, outcome);
    // A delivery processed already stays processed; only an unknown id is an error.
    const res = await this.q<{ found: boolean }>(
      "finishDelivery",
      outcome.retryAt !== undefined
        ? `WITH upd AS (
             UPDATE deliveries SET retry_at = $2, last_error = $3, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND processed_at IS NULL RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1) AS found`
        : `WITH upd AS (
             UPDATE deliveries SET processed_at = $2, retry_at = NULL, last_error = $3, lease_owner = NULL, lease_until = NULL
             WHERE id = $1 AND processed_at IS NULL RETURNING 1
           )
           SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1) AS found`,
      [id, outcome.retryAt ?? Date.now(), outcome.error ?? null],
    );
    if (!res.rows[0]?.found) throw deliveryNotFound(id);
  }

  async claimUnreported(
    owner: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<{ runId: string; repo: string; seq: number; reportedSeq: number; report: unknown }[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    const rows = await this.tx("claimUnreported", async (c) => {
      // Runs never reported get their outbox row first (reported_seq 0), to hold the lease: as
      // many as could be among the `limit` oldest changes, inserted in id order so concurrent
      // claimers wait on each other's new rows in one order (never a deadlock).
      await c.query(
        prepared(
          `WITH missing AS (
             SELECT runs.id FROM runs
             WHERE runs.seq > 0 AND NOT EXISTS (SELECT 1 FROM reports WHERE reports.run_id = runs.id)
             ORDER BY runs.updated_at, runs.ord
             LIMIT $1
           )
           INSERT INTO reports (run_id, reported_seq, report, updated_at)
           SELECT id, 0, 'null'::json, $2 FROM missing ORDER BY id
           ON CONFLICT (run_id) DO NOTHING`,
          [limit, Date.now()],
        ),
      );
      const res = await c.query<{ id: string; repo: string; seq: number; reported_seq: number; report: unknown; updated_at: string; ord: string }>(
        prepared(
          `WITH due AS (
           SELECT reports.run_id FROM reports JOIN runs ON runs.id = reports.run_id
           WHERE runs.seq > reports.reported_seq
             AND (reports.lease_owner IS NULL OR reports.lease_owner = $1 OR reports.lease_until <= $2)
           ORDER BY runs.updated_at, runs.ord
           LIMIT $3
           FOR UPDATE OF reports SKIP LOCKED
         )
         UPDATE reports SET lease_owner = $1, lease_until = $4
         FROM due, runs
         WHERE reports.run_id = due.run_id AND runs.id = due.run_id
         RETURNING runs.id, runs.repo, runs.seq, reports.reported_seq, reports.report, runs.updated_at, runs.ord`,
          [owner, now, limit, now + leaseMs],
        ),
      );
      return res.rows;
    });
    return rows
      .sort((a, b) => Number(a.updated_at) - Number(b.updated_at) || Number(a.ord) - Number(b.ord))
      .map((r) => ({ runId: r.id, repo: r.repo, seq: r.seq, reportedSeq: r.reported_seq, report: r.report ?? null }));
  }

  async releaseReport(runId: string, owner: string): Promise<void> {
    checkOwner(owner);
    await this.q("releaseReport", "UPDATE reports SET lease_owner = NULL, lease_until = NULL WHERE run_id = $1 AND lease_owner = $2", [runId, owner]);
  }

  async getReport(runId: string): Promise<{ reportedSeq: number; report: unknown } | undefined> {
    const res = await this.q<{ reported_seq: number; report: unknown }>("getReport", "SELECT reported_seq, report FROM reports WHERE run_id = $1", [runId]);
    const row = res.rows[0];
    return row ? { reportedSeq: row.reported_seq, report: row.report } : undefined;
  }

  async markReported(runId: string, seq: number, report: unknown, opts: { keepLease?: boolean } = {}): Promise<void> {
    const text = toJson(report, `the report of run '${runId}'`);
    if (!Number.isSafeInteger(seq) || seq < 0) checkReportedSeq(runId, seq, undefined);
    await this.tx("markReported", async (c) => {
      const run = await c.query<{ seq: number }>(prepared("SELECT seq FROM runs WHERE id = $1", [runId]));
      checkReportedSeq(runId, seq, run.rows[0]?.seq);
      // A stale writer (a lower seq) leaves the row as it is.
      await c.query(
        prepared(
          `INSERT INTO reports (run_id, reported_seq, report, updated_at) VALUES ($1, $2, $3::json, $4)
           ON CONFLICT (run_id) DO UPDATE SET reported_seq = EXCLUDED.reported_seq, report = EXCLUDED.report, updated_at = EXCLUDED.updated_at
             ${opts.keepLease === true ? "" : ", lease_owner = NULL, lease_until = NULL"}
           WHERE EXCLUDED.reported_seq >= reports.reported_seq`,
          [runId, seq, text, Date.now()],
        ),
      );
    });
  }

  /**
   * Read-modify-write of one kv key under its row lock. `next` gets the live entry (or undefined)
   * and returns what to write; a key inserted concurrently makes the whole transaction start over.
   * Not tried again after a connection broke mid-write: the write may have been made.
   */
  private async kvUpdate(
    what: string,
    namespace: string,
    key: string,
    now: number,
    next: (live: KvRow | undefined) => { value: string; version: number; expiresAt: number | null },
  ): Promise<KvEntry> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.tx(
          what,
          async (c) => {
            const res = await c.query<KvRow>(prepared("SELECT key, value, version, expires_at FROM kv WHERE namespace = $1 AND key = $2 FOR UPDATE", [namespace, key]));
            const row = res.rows[0];
            const out = next(isLive(row, now) ? row : undefined);
            if (row) {
              await c.query(prepared("UPDATE kv SET value = $3::json, version = $4, expires_at = $5 WHERE namespace = $1 AND key = $2", [namespace, key, out.value, out.version, out.expiresAt]));
            } else {
              const ins = await c.query(
                prepared("INSERT INTO kv (namespace, key, value, version, expires_at) VALUES ($1, $2, $3::json, $4, $5) ON CONFLICT (namespace, key) DO NOTHING", [
                  namespace,
                  key,
                  out.value,
                  out.version,
                  out.expiresAt,
                ]),
              );
              if (ins.rowCount !== 1) throw new KvRaced();
            }
            return { key, value: JSON.parse(out.value) as unknown, version: out.version, expiresAt: out.expiresAt };
          },
          false,
        );
      } catch (err) {
        if (err instanceof KvRaced && attempt < 10) continue;
        if (err instanceof KvRaced) throw new SluiceError("STORE_ERROR", `kv key '${key}' is too contended to write`, { namespace, key });
        throw err;
      }
    }
  }

  async kvGet(namespace: string, key: string, now: number): Promise<KvEntry | undefined> {
    checkKey(namespace, key);
    checkTime(now, "now");
    const res = await this.q<KvRow>("kvGet", "SELECT key, value, version, expires_at FROM kv WHERE namespace = $1 AND key = $2", [namespace, key]);
    const row = res.rows[0];
    return isLive(row, now) ? toEntry(row) : undefined;
  }

  async kvSet(
    namespace: string,
    key: string,
    value: unknown,
    opts: { now: number; ttlMs?: number; ifVersion?: number },
  ): Promise<KvEntry> {
    checkKey(namespace, key);
    checkTime(opts.now, "now");
    checkTtl(opts.ttlMs);
    checkIfVersion(opts.ifVersion);
    const text = toJson(value, `the value of kv key '${key}'`);
    return this.kvUpdate("kvSet", namespace, key, opts.now, (live) => {
      const current = live?.version ?? 0;
      if (opts.ifVersion !== undefined && opts.ifVersion !== current) {
        throw new ConflictError(`kv key '${key}' is at version ${current}, not ${opts.ifVersion}`, {
          namespace,
          key,
          expectedVersion: opts.ifVersion,
          actualVersion: current,
        });
      }
      return { value: text, version: current + 1, expiresAt: opts.ttlMs !== undefined ? opts.now + opts.ttlMs : null };
    });
  }

  async kvDelete(namespace: string, key: string): Promise<boolean> {
    checkKey(namespace, key);
    const res = await this.q("kvDelete", "DELETE FROM kv WHERE namespace = $1 AND key = $2", [namespace, key]);
    return res.rowCount === 1;
  }

  async kvIncr(namespace: string, key: string, by: number, now: number): Promise<KvEntry> {
    checkKey(namespace, key);
    checkTime(now, "now");
    checkIncrement(by);
    return this.kvUpdate("kvIncr", namespace, key, now, (live) => {
      const next = incremented(live?.value, by, namespace, key);
      return {
        value: JSON.stringify(next),
        version: (live?.version ?? 0) + 1,
        expiresAt: live?.expires_at != null ? Number(live.expires_at) : null,
      };
    });
  }

  async kvList(namespace: string, now: number, prefix?: string): Promise<KvEntry[]> {
    checkTime(now, "now");
    const byPrefix = prefix !== undefined && prefix !== "";
    const res = await this.q<KvRow>(
      "kvList",
      `SELECT key, value, version, expires_at FROM kv
       WHERE namespace = $1 AND (expires_at IS NULL OR expires_at > $2) ${byPrefix ? "AND starts_with(key, $3)" : ""}
       ORDER BY key COLLATE "C"`,
      byPrefix ? [namespace, now, prefix] : [namespace, now],
    );
    return res.rows.map(toEntry);
  }

  async createToken(token: ApiToken & { hash: string }): Promise<void> {
    checkNewToken(token);
    const res = await this.q(
      "createToken",
      `INSERT INTO api_tokens (id, hash, login, repo, kind, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [token.id, token.hash, token.login, token.repo, token.kind, token.createdAt, token.expiresAt, token.revokedAt],
      false,
    );
    if (res.rowCount !== 1) throw new ConflictError(`token '${token.id}' already exists`, { id: token.id });
  }

  async findToken(hash: string): Promise<ApiToken | undefined> {
    const res = await this.q<TokenRow>("findToken", `SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE hash = $1`, [hash]);
    return res.rows[0] ? toToken(res.rows[0]) : undefined;
  }

  async listTokens(): Promise<ApiToken[]> {
    const res = await this.q<TokenRow>("listTokens", `SELECT ${TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id COLLATE "C"`);
    return res.rows.map(toToken);
  }

  async revokeToken(id: string, at: number): Promise<ApiToken | undefined> {
    checkTime(at, "at");
    const res = await this.q<TokenRow>(
      "revokeToken",
      `UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING ${TOKEN_COLUMNS}`,
      [id, at],
    );
    return res.rows[0] ? toToken(res.rows[0]) : undefined;
  }

  async serverKey(name: string, candidate: string): Promise<string> {
    checkKeyName(name, candidate);
    // The first insert wins; every later caller (any process) reads the winner's key.
    await this.q("serverKey", "INSERT INTO server_keys (name, key, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", [name, candidate, Date.now()]);
    const res = await this.q<{ key: string }>("serverKey", "SELECT key FROM server_keys WHERE name = $1", [name]);
    return res.rows[0]!.key;
  }

  async pruneRuns(before: number, limit: number): Promise<string[]> {
    checkTime(before, "before");
    checkLimit(limit, "limit");
    return this.tx("pruneRuns", async (c) => {
      // Locked and skipped when another transaction holds the run (a worker finishing it).
      const res = await c.query<{ id: string }>(
        prepared("SELECT id FROM runs WHERE updated_at < $1 AND status = ANY($2::text[]) ORDER BY updated_at, ord LIMIT $3 FOR UPDATE SKIP LOCKED", [before, TERMINAL_STATUSES, limit]),
      );
      const ids = res.rows.map((r) => r.id);
      if (ids.length) {
        await c.query(prepared("DELETE FROM events WHERE run_id = ANY($1::text[])", [ids]));
        await c.query(prepared("DELETE FROM callback_tokens WHERE run_id = ANY($1::text[])", [ids]));
        await c.query(prepared("DELETE FROM reports WHERE run_id = ANY($1::text[])", [ids]));
        await c.query(prepared("DELETE FROM runs WHERE id = ANY($1::text[])", [ids]));
      }
      return ids;
    });
  }

  async pruneDeliveries(before: number): Promise<number> {
    checkTime(before, "before");
    return (await this.q("pruneDeliveries", "UPDATE deliveries SET payload = 'null'::json WHERE received_at < $1 AND processed_at IS NOT NULL AND payload::text <> 'null'", [before])).rowCount ?? 0;
  }

  async pruneExpired(now: number): Promise<number> {
    checkTime(now, "now");
    return this.tx("pruneExpired", async (c) => {
      const kv = await c.query(prepared("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= $1", [now]));
      const claims = await c.query(prepared("DELETE FROM hook_claims WHERE expires_at <= $1", [now]));
      return (kv.rowCount ?? 0) + (claims.rowCount ?? 0);
    });
  }

  async claimHookKeys(keys: readonly string[], now: number, expiresAt: number): Promise<boolean> {
    const sorted = checkHookKeys(keys, now, expiresAt);
    try {
      return await this.tx("claimHookKeys", async (c) => {
        await c.query(prepared("DELETE FROM hook_claims WHERE expires_at <= $1", [now]));
        // Keys go in sorted, so two claims sharing keys wait on each other in one order (never a
        // deadlock); a key another transaction holds makes this insert wait for it, then skip it.
        const res = await c.query(
          prepared("INSERT INTO hook_claims (key, expires_at) SELECT k, $2 FROM unnest($1::text[]) WITH ORDINALITY AS x(k, n) ORDER BY n ON CONFLICT (key) DO NOTHING", [sorted, expiresAt]),
        );
        if (res.rowCount !== sorted.length) throw new ClaimHeld();
        return true;
      }, false);
    } catch (err) {
      if (err instanceof ClaimHeld) return false;
      throw err;
    }
  }

  async onWake(listener: (runId?: string) => void): Promise<() => Promise<void>> {
    const tell = (runId: string | undefined): void => {
      try {
        listener(runId);
      } catch (err) {
        this.logger?.warn("a wake-up listener failed", { error: String(err) });
      }
    };
    let client: pg.Client | undefined;
    let stopped = false;
    let delay = RETRY_FIRST_MS;
    let timer: NodeJS.Timeout | undefined;
    const drop = (c: pg.Client): void => {
      if (client !== c) return;
      client = undefined;
      void c.end().catch(() => undefined);
      schedule();
    };
    const schedule = (): void => {
      if (stopped || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        void listen(true);
      }, delay);
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    };
    const listen = async (again: boolean): Promise<void> => {
      const c = new pg.Client(this.pool.options);
      // A listening client that loses its connection is replaced; it never takes the process down.
      c.on("error", (err) => {
        this.logger?.debug("the wake-up listener lost its connection", { error: err.message });
        drop(c);
      });
      c.on("end", () => drop(c));
      c.on("notification", (msg) => {
        if (msg.channel === WAKE_CHANNEL && msg.payload) tell(msg.payload);
      });
      client = c;
      try {
        await c.connect();
        await c.query(`LISTEN ${WAKE_CHANNEL}`);
      } catch {
        drop(c);
        return;
      }
      if (stopped) {
        await c.end().catch(() => undefined);
        return;
      }
      delay = RETRY_FIRST_MS;
      // Wake-ups sent while nobody listened are lost: the listener looks at the store again.
      if (again) tell(undefined);
    };
    const stop = async (): Promise<void> => {
      stopped = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    };
    this.listeners.add(stop);
    await listen(false);
    return async () => {
      if (this.listeners.delete(stop)) await stop();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of this.listeners) await stop();
    this.listeners.clear();
    await this.pool.end();
  }
}

/**
 * Raises a session's `synchronous_commit` from `off` to `local` (any other setting is kept): what
 * the store commits is flushed before it is acknowledged unless a statement says otherwise (a
 * run's non-durable appends), as on SQLite, whatever the server's default. Without it, on a server
 * set to `off`, a crash of the database could undo a run's creation that a delivery already
 * counted as done, and the retried "done" would then commit on the recovered database: the
 * delivery processed, its run gone.
 */
const DURABLE_SESSION_SQL = "SELECT set_config('synchronous_commit', 'local', false) WHERE current_setting('synchronous_commit') = 'off'";

/** A pool whose every client, idle or checked out, has its 'error' handled: a lost connection never crashes the process. */
export function createPool(url: string, max: number, logger?: Logger): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: 10_000, keepAlive: true });
  pool.on("error", (err) => logger?.debug("an idle database connection was lost", { error: err.message }));
  pool.on("connect", (client) => {
    client.on("error", (err) => logger?.debug("a database connection was lost", { error: err.message }));
    // Queued before the client's first query; if the connection breaks here, that query fails too.
    client.query(DURABLE_SESSION_SQL).catch(() => undefined);
  });
  return pool;
}

/**
 * Connects to `url`, applies pending migrations, and returns the store. A database that cannot
 * be reached yet (starting, restarting) is waited for until the deadline.
 */
export async function openPostgresRunStore(url: string, options: PostgresRunStoreOptions = {}): Promise<PostgresRunStore> {
  const pool = createPool(url, options.max ?? 10, options.logger);
  const store = new PostgresRunStore(pool, options);
  try {
    await store.migrate();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
