/**
 * The RunStore on SQLite (better-sqlite3): one file, WAL, a busy timeout, and every write in a
 * `BEGIN IMMEDIATE` transaction, so several store instances (threads or processes) on one file
 * serialise their writes and never both win a compare-and-set, a lease or a delivery.
 *
 * Statements are prepared once per store. Writes are fsynced (`synchronous = FULL`) except where
 * losing the last ones to a power loss costs nothing but re-running reads: the engine's appends
 * that say so, leases and wake-ups commit with `synchronous = NORMAL` (still atomic and crash-safe
 * for the process; WAL order makes the next fsynced commit cover them). Another process's commits
 * are noticed within milliseconds: a watch on the WAL file, checked with `PRAGMA data_version`.
 */
import { mkdirSync, watch, type FSWatcher } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { ConflictError, SluiceError } from "../../../core/errors.js";
import type { JournalEvent, Release } from "../../../core/engine/events.js";
import { TERMINAL_STATUSES, type ApiToken, type AppendUpdate, type Delivery, type KvEntry, type KvWrite, type NewRun, type RunFilter, type RunRecord, type RunStore, type StoredEvent } from "../../../ports/run-store.js";
import {
  checkDelivery,
  checkHookKeys,
  checkIfVersion,
  checkIncrement,
  checkKey,
  checkKvWrite,
  checkKeyName,
  checkLease,
  checkLimit,
  checkNewToken,
  checkOutcome,
  checkOwner,
  checkReportedSeq,
  checkTime,
  checkTtl,
  deliveryNotFound,
  fromJson,
  incremented,
  latestAt,
  toJson,
  type Migration,
} from "../common.js";
import { SQLITE_MIGRATIONS } from "./migrations.js";

type Db = Database.Database;
type Statement = Database.Statement;

/**
 * How often a listening store asks `PRAGMA data_version` whether another process committed: when
 * the WAL file is watched (a commit writes it, and the watch calls at once), only as a fallback;
 * when it cannot be, often enough to notice within milliseconds.
 */
const POLL_WATCHED_MS = 100;
const POLL_UNWATCHED_MS = 5;

interface RunRow {
  id: string;
  flow: string;
  repo: string;
  status: string;
  release: string;
  concurrency_group: string | null;
  created_at: number;
  updated_at: number;
  wake_at: number | null;
  seq: number;
}

interface KvRow {
  key: string;
  value: string;
  version: number;
  expires_at: number | null;
}

interface DeliveryRow {
  id: string;
  event: string;
  payload: string;
  received_at: number;
  attempts: number;
  last_error: string | null;
}

const RUN_COLUMNS = "id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq";

interface TokenRow {
  id: string;
  login: string;
  repo: string | null;
  kind: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

const TOKEN_COLUMNS = "id, login, repo, kind, created_at, expires_at, revoked_at";

function toToken(row: TokenRow): ApiToken {
  return { id: row.id, login: row.login, repo: row.repo, kind: row.kind === "agent" ? "agent" : "human", createdAt: row.created_at, expiresAt: row.expires_at, revokedAt: row.revoked_at };
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    flow: row.flow,
    repo: row.repo,
    status: row.status as RunRecord["status"],
    release: fromJson(row.release) as Release,
    concurrencyGroup: row.concurrency_group,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    wakeAt: row.wake_at,
    seq: row.seq,
  };
}

function toEntry(row: KvRow): KvEntry {
  return { key: row.key, value: fromJson(row.value), version: row.version, expiresAt: row.expires_at };
}

function isLive(row: KvRow | undefined, now: number): row is KvRow {
  return row !== undefined && (row.expires_at === null || row.expires_at > now);
}

/** Runs `fn`, turning driver errors into STORE_ERROR (SluiceErrors pass through). */
function guard<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SluiceError) throw err;
    const e = err as Error & { code?: unknown };
    throw new SluiceError("STORE_ERROR", `SQLite ${what} failed: ${e.message}`, {
      ...(typeof e.code === "string" ? { sqliteCode: e.code } : {}),
    });
  }
}

/** Applies the pending migrations in one immediate transaction (safe when several processes open at once). */
export function migrateSqlite(db: Db, migrations: readonly Migration[] = SQLITE_MIGRATIONS): number {
  const apply = db.transaction(() => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT NOT NULL,
      applied_at INTEGER NOT NULL
    )`);
    const row = db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null };
    const current = row.v ?? 0;
    const known = migrations.length === 0 ? 0 : Math.max(...migrations.map((m) => m.version));
    if (current > known) {
      throw new SluiceError(
        "STORE_ERROR",
        `the database's schema is at version ${current}, newer than this Sluice knows (${known}): upgrade Sluice`,
        { current, known },
      );
    }
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, Date.now());
    }
    return known;
  });
  return apply.immediate();
}

export class SqliteRunStore implements RunStore {
  readonly path: string;
  private readonly db: Db;
  private readonly statements = new Map<string, Statement>();
  private readonly watchers = new Set<() => void>();

  constructor(path: string) {
    this.path = path;
    if (path !== ":memory:" && path !== "") mkdirSync(dirname(path), { recursive: true });
    this.db = guard("open", () => {
      const db = new Database(path);
      try {
        db.pragma("busy_timeout = 10000");
        db.pragma("journal_mode = WAL");
        db.pragma("synchronous = FULL");
        migrateSqlite(db);
      } catch (err) {
        db.close();
        throw err;
      }
      return db;
    });
  }

  /** The schema version the file is at. */
  schemaVersion(): number {
    return guard("read", () => (this.stmt("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }).v ?? 0);
  }

  /** The statement for `sql`, prepared the first time it is asked for. */
  private stmt(sql: string): Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /**
   * Runs `fn` in a `BEGIN IMMEDIATE` transaction. Not `durable`: the commit is not fsynced
   * (`synchronous = NORMAL` for this transaction only).
   */
  private tx<T>(what: string, fn: () => T, durable = true): T {
    return guard(what, () => {
      if (!durable) this.stmt("PRAGMA synchronous = NORMAL").run();
      try {
        this.stmt("BEGIN IMMEDIATE").run();
        try {
          const out = fn();
          this.stmt("COMMIT").run();
          return out;
        } catch (err) {
          if (this.db.inTransaction) this.stmt("ROLLBACK").run();
          throw err;
        }
      } finally {
        if (!durable) this.stmt("PRAGMA synchronous = FULL").run();
      }
    });
  }

  async createRun(run: NewRun, events: JournalEvent[]): Promise<void> {
    checkTime(run.createdAt, "createdAt");
    if (run.wakeAt !== null) checkTime(run.wakeAt, "wakeAt");
    const release = toJson(run.release, "the run's release");
    const encoded = events.map((e) => toJson(e, `event '${e.type}'`));
    this.tx("createRun", () => {
      const exists = this.stmt("SELECT 1 FROM runs WHERE id = ?").get(run.id);
      if (exists) throw new ConflictError(`run '${run.id}' already exists`, { runId: run.id });
      this.stmt(
        `INSERT INTO runs (id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(run.id, run.flow, run.repo, run.status, release, run.concurrencyGroup, run.createdAt, run.createdAt, run.wakeAt, events.length);
      const insertEvent = this.stmt("INSERT INTO events (run_id, seq, type, at, event) VALUES (?, ?, ?, ?, ?)");
      events.forEach((e, i) => insertEvent.run(run.id, i + 1, e.type, e.at, encoded[i]));
      const insertToken = this.stmt("INSERT INTO callback_tokens (token, run_id, step) VALUES (?, ?, ?)");
      for (const t of run.callbackTokens) {
        const taken = this.stmt("SELECT run_id FROM callback_tokens WHERE token = ?").get(t.token);
        if (taken) throw new ConflictError(`callback token for step '${t.step}' is already in use`, { runId: run.id, step: t.step });
        insertToken.run(t.token, run.id, t.step);
      }
    });
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const row = guard("getRun", () => this.stmt(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = ?`).get(id) as RunRow | undefined);
    return row ? toRecord(row) : undefined;
  }

  async loadJournal(id: string): Promise<StoredEvent[]> {
    const rows = guard("loadJournal", () => this.stmt("SELECT seq, event FROM events WHERE run_id = ? ORDER BY seq").all(id) as { seq: number; event: string }[]);
    return rows.map((r) => ({ seq: r.seq, event: fromJson(r.event) as JournalEvent }));
  }

  async append(id: string, expectedSeq: number, events: JournalEvent[], update: AppendUpdate): Promise<number> {
    if (update.wakeAt !== null) checkTime(update.wakeAt, "wakeAt");
    const encoded = events.map((e) => toJson(e, `event '${e.type}'`));
    const kvValue = update.kv ? checkKvWrite(update.kv).value : null;
    return this.tx(
      "append",
      () => {
        const row = this.stmt("SELECT seq, updated_at FROM runs WHERE id = ?").get(id) as { seq: number; updated_at: number } | undefined;
        if (!row) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { runId: id });
        if (row.seq !== expectedSeq) {
          throw new ConflictError(`run '${id}' moved on: its journal ends at seq ${row.seq}, not ${expectedSeq}`, {
            runId: id,
            expectedSeq,
            actualSeq: row.seq,
          });
        }
        if (update.kv) this.applyKvWrite(update.kv, kvValue);
        const insertEvent = this.stmt("INSERT INTO events (run_id, seq, type, at, event) VALUES (?, ?, ?, ?, ?)");
        for (let i = 0; i < events.length; i++) {
          const e = events[i] as JournalEvent;
          insertEvent.run(id, expectedSeq + i + 1, e.type, e.at, encoded[i]);
        }
        const seq = expectedSeq + events.length;
        const updatedAt = Math.max(row.updated_at, latestAt(events, Date.now()));
        this.stmt("UPDATE runs SET seq = ?, status = ?, wake_at = ?, updated_at = ? WHERE id = ?").run(seq, update.status, update.wakeAt, updatedAt, id);
        if (update.release !== undefined) this.stmt("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?").run(id, update.release);
        return seq;
      },
      update.durable !== false,
    );
  }

  /** A kv step's write, inside the append's transaction: only if the key is still at the version the step read. */
  private applyKvWrite(w: KvWrite, value: string | null): void {
    const row = this.kvRow(w.namespace, w.key);
    const live = isLive(row, w.now) ? row.version : 0;
    if (live !== w.expectVersion) {
      throw new ConflictError(`kv key '${w.key}' moved from version ${w.expectVersion} to ${live} while the step ran`, {
        namespace: w.namespace,
        kvKey: w.key,
        expectedVersion: w.expectVersion,
        actualVersion: live,
      });
    }
    if (w.next === null || value === null) this.stmt("DELETE FROM kv WHERE namespace = ? AND key = ?").run(w.namespace, w.key);
    else this.kvWrite(w.namespace, w.key, value, w.next.version, w.next.expiresAt);
  }

  async setWakeAt(id: string, wakeAt: number | null): Promise<void> {
    if (wakeAt !== null) checkTime(wakeAt, "wakeAt");
    const changes = this.tx("setWakeAt", () => this.stmt("UPDATE runs SET wake_at = ? WHERE id = ?").run(wakeAt, id).changes, false);
    if (changes === 0) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { runId: id });
  }

  async listRuns(filter: RunFilter = {}): Promise<RunRecord[]> {
    checkLimit(filter.limit, "limit");
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.flow !== undefined) {
      where.push("flow = ?");
      args.push(filter.flow);
    }
    if (filter.repo !== undefined) {
      where.push("repo = ?");
      args.push(filter.repo);
    }
    if (filter.status !== undefined) {
      if (filter.status.length === 0) return [];
      where.push(`status IN (${filter.status.map(() => "?").join(", ")})`);
      args.push(...filter.status);
    }
    if (filter.concurrencyGroup !== undefined) {
      where.push("concurrency_group = ?");
      args.push(filter.concurrencyGroup);
    }
    let sql = `SELECT ${RUN_COLUMNS} FROM runs`;
    if (where.length > 0) sql += ` WHERE ${where.join(" AND ")}`;
    sql += " ORDER BY created_at DESC, ord DESC";
    if (filter.limit !== undefined) {
      sql += " LIMIT ?";
      args.push(filter.limit);
    }
    const rows = guard("listRuns", () => this.stmt(sql).all(...args) as RunRow[]);
    return rows.map(toRecord);
  }

  async claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<RunRecord[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    const due = `SELECT ${RUN_COLUMNS} FROM runs
       WHERE wake_at IS NOT NULL AND wake_at <= ?
         AND (lease_owner IS NULL OR lease_until <= ?)
       ORDER BY wake_at, ord
       LIMIT ?`;
    // A look without a write lock first: a worker woken by another process's commit most often
    // finds nothing due, and must not queue behind every writer to learn it.
    if (!guard("claimDue", () => this.stmt(due).get(now, now, 1))) return [];
    return this.tx(
      "claimDue",
      () => {
        const rows = this.stmt(due).all(now, now, limit) as RunRow[];
        const lease = this.stmt("UPDATE runs SET lease_owner = ?, lease_until = ? WHERE id = ?");
        for (const r of rows) lease.run(owner, now + leaseMs, r.id);
        return rows.map(toRecord);
      },
      false,
    );
  }

  async acquireLease(id: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    checkTime(now, "now");
    checkLease(owner, leaseMs);
    return this.tx(
      "acquireLease",
      () =>
        this.stmt(
          `UPDATE runs SET lease_owner = ?, lease_until = ?
           WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until <= ?)`,
        ).run(owner, now + leaseMs, id, owner, now).changes === 1,
      false,
    );
  }

  async renewLeases(leases: readonly { id: string; owner: string }[], now: number, leaseMs: number): Promise<{ id: string; seq: number }[]> {
    checkTime(now, "now");
    for (const l of leases) checkLease(l.owner, leaseMs);
    if (leases.length === 0) return [];
    return this.tx(
      "renewLeases",
      () => {
        const renew = this.stmt("UPDATE runs SET lease_until = ? WHERE id = ? AND lease_owner = ? RETURNING seq");
        const held: { id: string; seq: number }[] = [];
        for (const l of leases) {
          const row = renew.get(now + leaseMs, l.id, l.owner) as { seq: number } | undefined;
          if (row) held.push({ id: l.id, seq: row.seq });
        }
        return held;
      },
      false,
    );
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    this.tx("releaseLease", () => this.stmt("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?").run(id, owner), false);
  }

  async nextWakeAt(now: number): Promise<number | null> {
    checkTime(now, "now");
    const row = guard(
      "nextWakeAt",
      () =>
        this.stmt(
          `SELECT MIN(CASE WHEN lease_owner IS NULL OR lease_until <= ? THEN wake_at ELSE MAX(wake_at, lease_until) END) AS w
           FROM runs WHERE wake_at IS NOT NULL`,
        ).get(now) as { w: number | null },
    );
    return row.w ?? null;
  }

  async onWake(listener: (runId?: string) => void): Promise<() => Promise<void>> {
    // `data_version` changes when another connection (another process) commits to the file; this
    // store's own commits leave it as it is.
    const version = () => guard("onWake", () => this.stmt("PRAGMA data_version").pluck().get() as number);
    let seen = version();
    /** Whether another process committed since the last look (then the listener is told). */
    const look = (): boolean => {
      if (!this.db.open) return false;
      try {
        const now = version();
        if (now === seen) return false;
        seen = now;
      } catch {
        return false;
      }
      listener();
      return true;
    };
    // A commit writes its frames to the WAL file before it shows in `data_version` (the WAL index
    // is shared memory, which no watch sees): after a write, look again a few times, briefly.
    const burst = [1, 3, 10, 30];
    const written = (): void => {
      if (look()) return;
      for (const ms of burst) setTimeout(look, ms).unref();
    };
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(`${this.path}-wal`, { persistent: false }, written);
      watcher.on("error", () => undefined);
    } catch {
      watcher = undefined; // no WAL file to watch (an in-memory database): polling alone
    }
    const timer = setInterval(() => void look(), watcher ? POLL_WATCHED_MS : POLL_UNWATCHED_MS);
    timer.unref();
    const stop = () => {
      clearInterval(timer);
      watcher?.close();
    };
    this.watchers.add(stop);
    return async () => {
      if (this.watchers.delete(stop)) stop();
    };
  }

  async findCallback(token: string): Promise<{ runId: string; step: string } | undefined> {
    const row = guard(
      "findCallback",
      () => this.stmt("SELECT run_id, step FROM callback_tokens WHERE token = ?").get(token) as { run_id: string; step: string } | undefined,
    );
    return row ? { runId: row.run_id, step: row.step } : undefined;
  }

  async recordDelivery(d: { id: string; event: string; payload: unknown; receivedAt: number }): Promise<boolean> {
    const payload = checkDelivery(d);
    return guard(
      "recordDelivery",
      () =>
        this.stmt("INSERT INTO deliveries (id, event, payload, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
          .run(d.id, d.event, payload, d.receivedAt).changes === 1,
    );
  }

  async claimDeliveries(owner: string, now: number, leaseMs: number, limit: number): Promise<Delivery[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    return this.tx("claimDeliveries", () => {
      const rows = this.stmt(
          `SELECT id, event, payload, received_at, attempts, last_error FROM deliveries
           WHERE processed_at IS NULL
             AND (retry_at IS NULL OR retry_at <= ?)
             AND (lease_owner IS NULL OR lease_until <= ?)
           ORDER BY received_at, ord
           LIMIT ?`,
        )
        .all(now, now, limit) as DeliveryRow[];
      const lease = this.stmt("UPDATE deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?");
      for (const r of rows) lease.run(owner, now + leaseMs, r.id);
      return rows.map((r) => ({
        id: r.id,
        event: r.event,
        payload: fromJson(r.payload),
        receivedAt: r.received_at,
        attempts: r.attempts + 1,
        lastError: r.last_error,
      }));
    });
  }

  async renewDeliveries(owner: string, ids: readonly string[], now: number, leaseMs: number): Promise<string[]> {
    checkTime(now, "now");
    checkLease(owner, leaseMs);
    if (ids.length === 0) return [];
    return this.tx(
      "renewDeliveries",
      () => {
        const renew = this.stmt("UPDATE deliveries SET lease_until = ? WHERE id = ? AND lease_owner = ? AND processed_at IS NULL");
        return ids.filter((id) => renew.run(now + leaseMs, id, owner).changes === 1);
      },
      false,
    );
  }

  async finishDelivery(id: string, outcome: { error?: string; retryAt?: number }): Promise<void> {
    checkOutcome(id, outcome);
    this.tx("finishDelivery", () => {
      const row = this.stmt("SELECT processed_at FROM deliveries WHERE id = ?").get(id) as { processed_at: number | null } | undefined;
      if (!row) throw deliveryNotFound(id);
      if (row.processed_at !== null) return; // processed already: it stays processed
      if (outcome.retryAt !== undefined) {
        this.stmt("UPDATE deliveries SET retry_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
          .run(outcome.retryAt, outcome.error ?? null, id);
      } else {
        this.stmt(
            "UPDATE deliveries SET processed_at = ?, retry_at = NULL, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
          )
          .run(Date.now(), outcome.error ?? null, id);
      }
    });
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
    const rows = this.tx("claimUnreported", () => {
      const due = this.stmt(
          `SELECT runs.id, runs.repo, runs.seq, COALESCE(reports.reported_seq, 0) AS reported_seq, reports.report
           FROM runs LEFT JOIN reports ON reports.run_id = runs.id
           WHERE runs.seq > COALESCE(reports.reported_seq, 0)
             AND (reports.lease_owner IS NULL OR reports.lease_owner = ? OR reports.lease_until <= ?)
           ORDER BY runs.updated_at, runs.ord
           LIMIT ?`,
        )
        .all(owner, now, limit) as { id: string; repo: string; seq: number; reported_seq: number; report: string | null }[];
      // A run never reported gets its outbox row now, to hold the lease.
      const lease = this.stmt(
        `INSERT INTO reports (run_id, reported_seq, report, updated_at, lease_owner, lease_until) VALUES (?, 0, 'null', ?, ?, ?)
         ON CONFLICT (run_id) DO UPDATE SET lease_owner = excluded.lease_owner, lease_until = excluded.lease_until`,
      );
      for (const r of due) lease.run(r.id, Date.now(), owner, now + leaseMs);
      return due;
    });
    return rows.map((r) => ({
      runId: r.id,
      repo: r.repo,
      seq: r.seq,
      reportedSeq: r.reported_seq,
      report: r.report === null ? null : fromJson(r.report),
    }));
  }

  async releaseReport(runId: string, owner: string): Promise<void> {
    checkOwner(owner);
    guard("releaseReport", () =>
      this.stmt("UPDATE reports SET lease_owner = NULL, lease_until = NULL WHERE run_id = ? AND lease_owner = ?").run(runId, owner),
    );
  }

  async getReport(runId: string): Promise<{ reportedSeq: number; report: unknown } | undefined> {
    const row = guard(
      "getReport",
      () => this.stmt("SELECT reported_seq, report FROM reports WHERE run_id = ?").get(runId) as { reported_seq: number; report: string } | undefined,
    );
    return row ? { reportedSeq: row.reported_seq, report: fromJson(row.report) } : undefined;
  }

  async markReported(runId: string, seq: number, report: unknown, opts: { keepLease?: boolean } = {}): Promise<void> {
    const text = toJson(report, `the report of run '${runId}'`);
    if (!Number.isSafeInteger(seq) || seq < 0) checkReportedSeq(runId, seq, undefined);
    this.tx("markReported", () => {
      const run = this.stmt("SELECT seq FROM runs WHERE id = ?").get(runId) as { seq: number } | undefined;
      checkReportedSeq(runId, seq, run?.seq);
      // A stale writer (a lower seq) leaves the row as it is.
      this.stmt(
          `INSERT INTO reports (run_id, reported_seq, report, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (run_id) DO UPDATE SET reported_seq = excluded.reported_seq, report = excluded.report, updated_at = excluded.updated_at
             ${opts.keepLease === true ? "" : ", lease_owner = NULL, lease_until = NULL"}
           WHERE excluded.reported_seq >= reports.reported_seq`,
        )
        .run(runId, seq, text, Date.now());
    });
  }

  private kvRow(namespace: string, key: string): KvRow | undefined {
    return this.stmt("SELECT key, value, version, expires_at FROM kv WHERE namespace = ? AND key = ?").get(namespace, key) as
      | KvRow
      | undefined;
  }

  private kvWrite(namespace: string, key: string, value: string, version: number, expiresAt: number | null): void {
    this.stmt(
      `INSERT INTO kv (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`,
    ).run(namespace, key, value, version, expiresAt);
  }

  async kvGet(namespace: string, key: string, now: number): Promise<KvEntry | undefined> {
    checkKey(namespace, key);
    checkTime(now, "now");
    const row = guard("kvGet", () => this.kvRow(namespace, key));
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
    return this.tx("kvSet", () => {
      const row = this.kvRow(namespace, key);
      const current = isLive(row, opts.now) ? row.version : 0;
      if (opts.ifVersion !== undefined && opts.ifVersion !== current) {
        throw new ConflictError(`kv key '${key}' is at version ${current}, not ${opts.ifVersion}`, {
          namespace,
          key,
          expectedVersion: opts.ifVersion,
          actualVersion: current,
        });
      }
      const expiresAt = opts.ttlMs !== undefined ? opts.now + opts.ttlMs : null;
      this.kvWrite(namespace, key, text, current + 1, expiresAt);
      return { key, value: fromJson(text), version: current + 1, expiresAt };
    });
  }

  async kvDelete(namespace: string, key: string): Promise<boolean> {
    checkKey(namespace, key);
    return guard("kvDelete", () => this.stmt("DELETE FROM kv WHERE namespace = ? AND key = ?").run(namespace, key).changes === 1);
  }

  async kvIncr(namespace: string, key: string, by: number, now: number): Promise<KvEntry> {
    checkKey(namespace, key);
    checkTime(now, "now");
    checkIncrement(by);
    return this.tx("kvIncr", () => {
      const row = this.kvRow(namespace, key);
      const live = isLive(row, now) ? row : undefined;
      const next = incremented(live ? fromJson(live.value) : undefined, by, namespace, key);
      const version = (live?.version ?? 0) + 1;
      const expiresAt = live?.expires_at ?? null;
      this.kvWrite(namespace, key, JSON.stringify(next), version, expiresAt);
      return { key, value: next, version, expiresAt };
    });
  }

  async kvList(namespace: string, now: number, prefix?: string): Promise<KvEntry[]> {
    checkTime(now, "now");
    const rows = guard("kvList", () => {
      if (prefix !== undefined && prefix !== "") {
        return this.stmt(
            `SELECT key, value, version, expires_at FROM kv
             WHERE namespace = ? AND substr(key, 1, length(?)) = ? AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY key`,
          )
          .all(namespace, prefix, prefix, now) as KvRow[];
      }
      return this.stmt(
          `SELECT key, value, version, expires_at FROM kv
           WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)
           ORDER BY key`,
        )
        .all(namespace, now) as KvRow[];
    });
    return rows.map(toEntry);
  }

  async createToken(token: ApiToken & { hash: string }): Promise<void> {
    checkNewToken(token);
    this.tx("createToken", () => {
      const taken = this.stmt("SELECT 1 FROM api_tokens WHERE id = ? OR hash = ?").get(token.id, token.hash);
      if (taken) throw new ConflictError(`token '${token.id}' already exists`, { id: token.id });
      this.stmt(`INSERT INTO api_tokens (id, hash, login, repo, kind, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(token.id, token.hash, token.login, token.repo, token.kind, token.createdAt, token.expiresAt, token.revokedAt);
    });
  }

  async findToken(hash: string): Promise<ApiToken | undefined> {
    const row = guard("findToken", () => this.stmt(`SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?`).get(hash) as TokenRow | undefined);
    return row ? toToken(row) : undefined;
  }

  async listTokens(): Promise<ApiToken[]> {
    const rows = guard("listTokens", () => this.stmt(`SELECT ${TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id`).all() as TokenRow[]);
    return rows.map(toToken);
  }

  async revokeToken(id: string, at: number): Promise<ApiToken | undefined> {
    checkTime(at, "at");
    const row = guard(
      "revokeToken",
      () =>
        this.stmt(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ${TOKEN_COLUMNS}`).get(at, id) as
          | TokenRow
          | undefined,
    );
    return row ? toToken(row) : undefined;
  }

  async serverKey(name: string, candidate: string): Promise<string> {
    checkKeyName(name, candidate);
    return this.tx("serverKey", () => {
      this.stmt("INSERT INTO server_keys (name, key, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING").run(name, candidate, Date.now());
      return (this.stmt("SELECT key FROM server_keys WHERE name = ?").get(name) as { key: string }).key;
    });
  }

  async claimHookKeys(keys: readonly string[], now: number, expiresAt: number): Promise<boolean> {
    const sorted = checkHookKeys(keys, now, expiresAt);
    return this.tx("claimHookKeys", () => {
      this.stmt("DELETE FROM hook_claims WHERE expires_at <= ?").run(now);
      const held = this.stmt("SELECT 1 FROM hook_claims WHERE key = ?");
      if (sorted.some((k) => held.get(k))) return false;
      const claim = this.stmt("INSERT INTO hook_claims (key, expires_at) VALUES (?, ?)");
      for (const k of sorted) claim.run(k, expiresAt);
      return true;
    });
  }

  async pruneRuns(before: number, limit: number): Promise<string[]> {
    checkTime(before, "before");
    checkLimit(limit, "limit");
    return this.tx("pruneRuns", () => {
      const ids = (
        this.stmt(`SELECT id FROM runs WHERE updated_at < ? AND status IN (${TERMINAL_STATUSES.map(() => "?").join(", ")}) ORDER BY updated_at, ord LIMIT ?`).all(before, ...TERMINAL_STATUSES, limit) as { id: string }[]
      ).map((r) => r.id);
      for (const id of ids) {
        this.stmt("DELETE FROM events WHERE run_id = ?").run(id);
        this.stmt("DELETE FROM callback_tokens WHERE run_id = ?").run(id);
        this.stmt("DELETE FROM reports WHERE run_id = ?").run(id);
        this.stmt("DELETE FROM runs WHERE id = ?").run(id);
      }
      return ids;
    });
  }

  async pruneDeliveries(before: number): Promise<number> {
    checkTime(before, "before");
    return this.tx("pruneDeliveries", () => this.stmt("UPDATE deliveries SET payload = 'null' WHERE received_at < ? AND processed_at IS NOT NULL AND payload <> 'null'").run(before).changes);
  }

  async pruneExpired(now: number): Promise<number> {
    checkTime(now, "now");
    return this.tx("pruneExpired", () => {
      const kv = this.stmt("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?").run(now).changes;
      return kv + this.stmt("DELETE FROM hook_claims WHERE expires_at <= ?").run(now).changes;
    });
  }

  async close(): Promise<void> {
    for (const stop of this.watchers) stop();
    this.watchers.clear();
    if (this.db.open) this.db.close();
  }
}

export function openSqliteRunStore(path: string): SqliteRunStore {
  return new SqliteRunStore(path);
}
