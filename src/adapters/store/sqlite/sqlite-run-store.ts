/**
 * The RunStore on SQLite (better-sqlite3): one file, WAL, a busy timeout, and every write in a
 * `BEGIN IMMEDIATE` transaction, so several store instances (threads or processes) on one file
 * serialise their writes and never both win a compare-and-set, a lease or a delivery.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { ConflictError, SluiceError } from "../../../core/errors.js";
import type { JournalEvent, Release } from "../../../core/engine/events.js";
import type { ApiToken, Delivery, KvEntry, NewRun, RunFilter, RunRecord, RunStatus, RunStore, StoredEvent } from "../../../ports/run-store.js";
import {
  checkDelivery,
  checkHookKeys,
  checkIfVersion,
  checkIncrement,
  checkKey,
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
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

const TOKEN_COLUMNS = "id, login, repo, created_at, expires_at, revoked_at";

function toToken(row: TokenRow): ApiToken {
  return { id: row.id, login: row.login, repo: row.repo, createdAt: row.created_at, expiresAt: row.expires_at, revokedAt: row.revoked_at };
}

function toRecord(row: RunRow): RunRecord {
  return {
    id: row.id,
    flow: row.flow,
    repo: row.repo,
    status: row.status as RunStatus,
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
    return guard("read", () => (this.db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }).v ?? 0);
  }

  private tx<T>(what: string, fn: () => T): T {
    return guard(what, () => this.db.transaction(fn).immediate());
  }

  async createRun(run: NewRun, events: JournalEvent[]): Promise<void> {
    checkTime(run.createdAt, "createdAt");
    if (run.wakeAt !== null) checkTime(run.wakeAt, "wakeAt");
    const release = toJson(run.release, "the run's release");
    const encoded = events.map((e) => toJson(e, `event '${e.type}'`));
    this.tx("createRun", () => {
      const exists = this.db.prepare("SELECT 1 FROM runs WHERE id = ?").get(run.id);
      if (exists) throw new ConflictError(`run '${run.id}' already exists`, { runId: run.id });
      this.db
        .prepare(
          `INSERT INTO runs (id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(run.id, run.flow, run.repo, run.status, release, run.concurrencyGroup, run.createdAt, run.createdAt, run.wakeAt, events.length);
      const insertEvent = this.db.prepare("INSERT INTO events (run_id, seq, type, at, event) VALUES (?, ?, ?, ?, ?)");
      events.forEach((e, i) => insertEvent.run(run.id, i + 1, e.type, e.at, encoded[i]));
      const insertToken = this.db.prepare("INSERT INTO callback_tokens (token, run_id, step) VALUES (?, ?, ?)");
      for (const t of run.callbackTokens) {
        const taken = this.db.prepare("SELECT run_id FROM callback_tokens WHERE token = ?").get(t.token);
        if (taken) throw new ConflictError(`callback token for step '${t.step}' is already in use`, { runId: run.id, step: t.step });
        insertToken.run(t.token, run.id, t.step);
      }
    });
  }

  async getRun(id: string): Promise<RunRecord | undefined> {
    const row = guard("getRun", () => this.db.prepare(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = ?`).get(id) as RunRow | undefined);
    return row ? toRecord(row) : undefined;
  }

  async loadJournal(id: string): Promise<StoredEvent[]> {
    const rows = guard(
      "loadJournal",
      () => this.db.prepare("SELECT seq, event FROM events WHERE run_id = ? ORDER BY seq").all(id) as { seq: number; event: string }[],
    );
    return rows.map((r) => ({ seq: r.seq, event: fromJson(r.event) as JournalEvent }));
  }

  async append(
    id: string,
    expectedSeq: number,
    events: JournalEvent[],
    update: { status: RunStatus; wakeAt: number | null },
  ): Promise<number> {
    if (update.wakeAt !== null) checkTime(update.wakeAt, "wakeAt");
    const encoded = events.map((e) => toJson(e, `event '${e.type}'`));
    return this.tx("append", () => {
      const row = this.db.prepare("SELECT seq, updated_at FROM runs WHERE id = ?").get(id) as
        | { seq: number; updated_at: number }
        | undefined;
      if (!row) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { runId: id });
      if (row.seq !== expectedSeq) {
        throw new ConflictError(`run '${id}' moved on: its journal ends at seq ${row.seq}, not ${expectedSeq}`, {
          runId: id,
          expectedSeq,
          actualSeq: row.seq,
        });
      }
      const insertEvent = this.db.prepare("INSERT INTO events (run_id, seq, type, at, event) VALUES (?, ?, ?, ?, ?)");
      events.forEach((e, i) => insertEvent.run(id, expectedSeq + i + 1, e.type, e.at, encoded[i]));
      const seq = expectedSeq + events.length;
      const updatedAt = Math.max(row.updated_at, latestAt(events, Date.now()));
      this.db
        .prepare("UPDATE runs SET seq = ?, status = ?, wake_at = ?, updated_at = ? WHERE id = ?")
        .run(seq, update.status, update.wakeAt, updatedAt, id);
      return seq;
    });
  }

  async setWakeAt(id: string, wakeAt: number | null): Promise<void> {
    if (wakeAt !== null) checkTime(wakeAt, "wakeAt");
    const changes = guard("setWakeAt", () => this.db.prepare("UPDATE runs SET wake_at = ? WHERE id = ?").run(wakeAt, id).changes);
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
    const rows = guard("listRuns", () => this.db.prepare(sql).all(...args) as RunRow[]);
    return rows.map(toRecord);
  }

  async claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<RunRecord[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    return this.tx("claimDue", () => {
      const rows = this.db
        .prepare(
          `SELECT ${RUN_COLUMNS} FROM runs
           WHERE wake_at IS NOT NULL AND wake_at <= ?
             AND (lease_owner IS NULL OR lease_until <= ?)
           ORDER BY wake_at, ord
           LIMIT ?`,
        )
        .all(now, now, limit) as RunRow[];
      const lease = this.db.prepare("UPDATE runs SET lease_owner = ?, lease_until = ? WHERE id = ?");
      for (const r of rows) lease.run(owner, now + leaseMs, r.id);
      return rows.map(toRecord);
    });
  }

  async acquireLease(id: string, owner: string, now: number, leaseMs: number): Promise<boolean> {
    checkTime(now, "now");
    checkLease(owner, leaseMs);
    return this.tx("acquireLease", () => {
      const res = this.db
        .prepare(
          `UPDATE runs SET lease_owner = ?, lease_until = ?
           WHERE id = ? AND (lease_owner IS NULL OR lease_owner = ? OR lease_until <= ?)`,
        )
        .run(owner, now + leaseMs, id, owner, now);
      return res.changes === 1;
    });
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    guard("releaseLease", () =>
      this.db.prepare("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?").run(id, owner),
    );
  }

  async nextWakeAt(now: number): Promise<number | null> {
    checkTime(now, "now");
    const row = guard(
      "nextWakeAt",
      () =>
        this.db
          .prepare(
            `SELECT MIN(wake_at) AS w FROM runs
             WHERE wake_at IS NOT NULL AND (lease_owner IS NULL OR lease_until <= ?)`,
          )
          .get(now) as { w: number | null },
    );
    return row.w ?? null;
  }

  async findCallback(token: string): Promise<{ runId: string; step: string } | undefined> {
    const row = guard(
      "findCallback",
      () => this.db.prepare("SELECT run_id, step FROM callback_tokens WHERE token = ?").get(token) as { run_id: string; step: string } | undefined,
    );
    return row ? { runId: row.run_id, step: row.step } : undefined;
  }

  async recordDelivery(d: { id: string; event: string; payload: unknown; receivedAt: number }): Promise<boolean> {
    const payload = checkDelivery(d);
    return guard(
      "recordDelivery",
      () =>
        this.db
          .prepare("INSERT INTO deliveries (id, event, payload, received_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING")
          .run(d.id, d.event, payload, d.receivedAt).changes === 1,
    );
  }

  async claimDeliveries(owner: string, now: number, leaseMs: number, limit: number): Promise<Delivery[]> {
    checkTime(now, "now");
    checkLimit(limit, "limit");
    checkLease(owner, leaseMs);
    if (limit === 0) return [];
    return this.tx("claimDeliveries", () => {
      const rows = this.db
        .prepare(
          `SELECT id, event, payload, received_at, attempts, last_error FROM deliveries
           WHERE processed_at IS NULL
             AND (retry_at IS NULL OR retry_at <= ?)
             AND (lease_owner IS NULL OR lease_until <= ?)
           ORDER BY received_at, ord
           LIMIT ?`,
        )
        .all(now, now, limit) as DeliveryRow[];
      const lease = this.db.prepare("UPDATE deliveries SET lease_owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?");
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

  async finishDelivery(id: string, outcome: { error?: string; retryAt?: number }): Promise<void> {
    checkOutcome(id, outcome);
    this.tx("finishDelivery", () => {
      const row = this.db.prepare("SELECT processed_at FROM deliveries WHERE id = ?").get(id) as { processed_at: number | null } | undefined;
      if (!row) throw deliveryNotFound(id);
      if (row.processed_at !== null) return; // processed already: it stays processed
      if (outcome.retryAt !== undefined) {
        this.db
          .prepare("UPDATE deliveries SET retry_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?")
          .run(outcome.retryAt, outcome.error ?? null, id);
      } else {
        this.db
          .prepare(
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
      const due = this.db
        .prepare(
          `SELECT runs.id, runs.repo, runs.seq, COALESCE(reports.reported_seq, 0) AS reported_seq, reports.report
           FROM runs LEFT JOIN reports ON reports.run_id = runs.id
           WHERE runs.seq > COALESCE(reports.reported_seq, 0)
             AND (reports.lease_owner IS NULL OR reports.lease_owner = ? OR reports.lease_until <= ?)
           ORDER BY runs.updated_at, runs.ord
           LIMIT ?`,
        )
        .all(owner, now, limit) as { id: string; repo: string; seq: number; reported_seq: number; report: string | null }[];
      // A run never reported gets its outbox row now, to hold the lease.
      const lease = this.db.prepare(
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
      this.db.prepare("UPDATE reports SET lease_owner = NULL, lease_until = NULL WHERE run_id = ? AND lease_owner = ?").run(runId, owner),
    );
  }

  async getReport(runId: string): Promise<{ reportedSeq: number; report: unknown } | undefined> {
    const row = guard(
      "getReport",
      () => this.db.prepare("SELECT reported_seq, report FROM reports WHERE run_id = ?").get(runId) as { reported_seq: number; report: string } | undefined,
    );
    return row ? { reportedSeq: row.reported_seq, report: fromJson(row.report) } : undefined;
  }

  async markReported(runId: string, seq: number, report: unknown, opts: { keepLease?: boolean } = {}): Promise<void> {
    const text = toJson(report, `the report of run '${runId}'`);
    if (!Number.isSafeInteger(seq) || seq < 0) checkReportedSeq(runId, seq, undefined);
    this.tx("markReported", () => {
      const run = this.db.prepare("SELECT seq FROM runs WHERE id = ?").get(runId) as { seq: number } | undefined;
      checkReportedSeq(runId, seq, run?.seq);
      // A stale writer (a lower seq) leaves the row as it is.
      this.db
        .prepare(
          `INSERT INTO reports (run_id, reported_seq, report, updated_at) VALUES (?, ?, ?, ?)
           ON CONFLICT (run_id) DO UPDATE SET reported_seq = excluded.reported_seq, report = excluded.report, updated_at = excluded.updated_at
             ${opts.keepLease === true ? "" : ", lease_owner = NULL, lease_until = NULL"}
           WHERE excluded.reported_seq >= reports.reported_seq`,
        )
        .run(runId, seq, text, Date.now());
    });
  }

  private kvRow(namespace: string, key: string): KvRow | undefined {
    return this.db.prepare("SELECT key, value, version, expires_at FROM kv WHERE namespace = ? AND key = ?").get(namespace, key) as
      | KvRow
      | undefined;
  }

  private kvWrite(namespace: string, key: string, value: string, version: number, expiresAt: number | null): void {
    this.db
      .prepare(
        `INSERT INTO kv (namespace, key, value, version, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version, expires_at = excluded.expires_at`,
      )
      .run(namespace, key, value, version, expiresAt);
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
    return guard("kvDelete", () => this.db.prepare("DELETE FROM kv WHERE namespace = ? AND key = ?").run(namespace, key).changes === 1);
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
        return this.db
          .prepare(
            `SELECT key, value, version, expires_at FROM kv
             WHERE namespace = ? AND substr(key, 1, length(?)) = ? AND (expires_at IS NULL OR expires_at > ?)
             ORDER BY key`,
          )
          .all(namespace, prefix, prefix, now) as KvRow[];
      }
      return this.db
        .prepare(
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
      const taken = this.db.prepare("SELECT 1 FROM api_tokens WHERE id = ? OR hash = ?").get(token.id, token.hash);
      if (taken) throw new ConflictError(`token '${token.id}' already exists`, { id: token.id });
      this.db
        .prepare(`INSERT INTO api_tokens (id, hash, login, repo, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
        .run(token.id, token.hash, token.login, token.repo, token.createdAt, token.expiresAt, token.revokedAt);
    });
  }

  async findToken(hash: string): Promise<ApiToken | undefined> {
    const row = guard("findToken", () => this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?`).get(hash) as TokenRow | undefined);
    return row ? toToken(row) : undefined;
  }

  async listTokens(): Promise<ApiToken[]> {
    const rows = guard("listTokens", () => this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id`).all() as TokenRow[]);
    return rows.map(toToken);
  }

  async revokeToken(id: string, at: number): Promise<ApiToken | undefined> {
    checkTime(at, "at");
    const row = guard(
      "revokeToken",
      () =>
        this.db.prepare(`UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING ${TOKEN_COLUMNS}`).get(at, id) as
          | TokenRow
          | undefined,
    );
    return row ? toToken(row) : undefined;
  }

  async serverKey(name: string, candidate: string): Promise<string> {
    checkKeyName(name, candidate);
    return this.tx("serverKey", () => {
      this.db.prepare("INSERT INTO server_keys (name, key, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING").run(name, candidate, Date.now());
      return (this.db.prepare("SELECT key FROM server_keys WHERE name = ?").get(name) as { key: string }).key;
    });
  }

  async claimHookKeys(keys: readonly string[], now: number, expiresAt: number): Promise<boolean> {
    const sorted = checkHookKeys(keys, now, expiresAt);
    return this.tx("claimHookKeys", () => {
      this.db.prepare("DELETE FROM hook_claims WHERE expires_at <= ?").run(now);
      const held = this.db.prepare("SELECT 1 FROM hook_claims WHERE key = ?");
      if (sorted.some((k) => held.get(k))) return false;
      const claim = this.db.prepare("INSERT INTO hook_claims (key, expires_at) VALUES (?, ?)");
      for (const k of sorted) claim.run(k, expiresAt);
      return true;
    });
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

export function openSqliteRunStore(path: string): SqliteRunStore {
  return new SqliteRunStore(path);
}
