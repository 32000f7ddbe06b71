/**
 * The SQLite schema, as an ordered list of migrations. Append new ones; never edit an applied one.
 * Times are epoch milliseconds (INTEGER); JSON is TEXT.
 */
import type { Migration } from "../common.js";

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "runs, events, callback tokens, deliveries, kv",
    sql: `
      CREATE TABLE runs (
        ord               INTEGER PRIMARY KEY AUTOINCREMENT,
        id                TEXT NOT NULL UNIQUE,
        flow              TEXT NOT NULL,
        repo              TEXT NOT NULL,
        status            TEXT NOT NULL,
        release           TEXT NOT NULL,
        concurrency_group TEXT,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        wake_at           INTEGER,
        seq               INTEGER NOT NULL,
        lease_owner       TEXT,
        lease_until       INTEGER
      );
      CREATE INDEX runs_wake ON runs (wake_at, ord) WHERE wake_at IS NOT NULL;
      CREATE INDEX runs_created ON runs (created_at DESC, ord DESC);
      CREATE INDEX runs_flow ON runs (flow, created_at DESC);
      CREATE INDEX runs_repo ON runs (repo, created_at DESC);
      CREATE INDEX runs_status ON runs (status);
      CREATE INDEX runs_group ON runs (concurrency_group) WHERE concurrency_group IS NOT NULL;

      CREATE TABLE events (
        run_id TEXT NOT NULL,
        seq    INTEGER NOT NULL,
        type   TEXT NOT NULL,
        at     INTEGER NOT NULL,
        event  TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
      ) WITHOUT ROWID;

      CREATE TABLE callback_tokens (
        token  TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        step   TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX callback_tokens_run ON callback_tokens (run_id);

      CREATE TABLE deliveries (
        id          TEXT PRIMARY KEY,
        received_at INTEGER NOT NULL
      ) WITHOUT ROWID;

      CREATE TABLE kv (
        namespace  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        version    INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (namespace, key)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: "delivery inbox, report outbox",
    // The deliveries table is rebuilt (SQLite cannot add an autoincrementing column) with an
    // insertion order; deliveries recorded before this migration count as processed.
    sql: `
      CREATE TABLE deliveries_v2 (
        ord          INTEGER PRIMARY KEY AUTOINCREMENT,
        id           TEXT NOT NULL UNIQUE,
        event        TEXT NOT NULL,
        payload      TEXT NOT NULL,
        received_at  INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        processed_at INTEGER,
        retry_at     INTEGER,
        lease_owner  TEXT,
        lease_until  INTEGER
      );
      INSERT INTO deliveries_v2 (id, event, payload, received_at, processed_at)
        SELECT id, '', 'null', received_at, received_at FROM deliveries ORDER BY received_at, id;
      DROP TABLE deliveries;
      ALTER TABLE deliveries_v2 RENAME TO deliveries;
      CREATE INDEX deliveries_pending ON deliveries (received_at, ord) WHERE processed_at IS NULL;

      CREATE TABLE reports (
        run_id       TEXT PRIMARY KEY,
        reported_seq INTEGER NOT NULL,
        report       TEXT NOT NULL,
        updated_at   INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX runs_updated ON runs (updated_at, ord);
    `,
  },
  {
    version: 3,
    name: "report leases",
    // One reporter per run across processes: the outbox row holds a lease like a delivery's.
    sql: `
      ALTER TABLE reports ADD COLUMN lease_owner TEXT;
      ALTER TABLE reports ADD COLUMN lease_until INTEGER;
    `,
  },
  {
    version: 4,
    name: "api tokens, server keys, hook claims",
    // Tokens are kept as the SHA-256 of their secret; a server key is written once and shared by
    // every process on the database; a hook claim holds a signature or delivery id until it expires.
    sql: `
      CREATE TABLE api_tokens (
        id         TEXT PRIMARY KEY,
        hash       TEXT NOT NULL UNIQUE,
        login      TEXT NOT NULL,
        repo       TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
      ) WITHOUT ROWID;
      CREATE TABLE server_keys (
        name       TEXT PRIMARY KEY,
        key        TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE hook_claims (
        key        TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX hook_claims_expiry ON hook_claims (expires_at);
    `,
  },
  {
    version: 5,
    name: "api token kinds",
    // A person's token decides gates; an agent's starts runs and reads. Tokens made before are people's.
    sql: `
      ALTER TABLE api_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'human' CHECK (kind IN ('human', 'agent'));
    `,
  },
];
