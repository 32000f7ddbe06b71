/**
 * The PostgreSQL schema, as an ordered list of migrations. Append new ones; never edit an applied
 * one. Times are epoch milliseconds (BIGINT); JSON is `json` (kept as written, key order included).
 */
import type { Migration } from "../common.js";

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "runs, events, callback tokens, deliveries, kv",
    sql: `
      CREATE TABLE runs (
        ord               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id                TEXT PRIMARY KEY,
        flow              TEXT NOT NULL,
        repo              TEXT NOT NULL,
        status            TEXT NOT NULL,
        release           JSON NOT NULL,
        concurrency_group TEXT,
        created_at        BIGINT NOT NULL,
        updated_at        BIGINT NOT NULL,
        wake_at           BIGINT,
        seq               INTEGER NOT NULL,
        lease_owner       TEXT,
        lease_until       BIGINT
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
        at     BIGINT NOT NULL,
        event  JSON NOT NULL,
        PRIMARY KEY (run_id, seq)
      );

      CREATE TABLE callback_tokens (
        token  TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        step   TEXT NOT NULL
      );
      CREATE INDEX callback_tokens_run ON callback_tokens (run_id);

      CREATE TABLE deliveries (
        id          TEXT PRIMARY KEY,
        received_at BIGINT NOT NULL
      );

      CREATE TABLE kv (
        namespace  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      JSON NOT NULL,
        version    INTEGER NOT NULL,
        expires_at BIGINT,
        PRIMARY KEY (namespace, key)
      );
    `,
  },
  {
    version: 2,
    name: "delivery inbox, report outbox",
    // Deliveries recorded before this migration count as processed.
    sql: `
      ALTER TABLE deliveries
        ADD COLUMN ord          BIGINT GENERATED ALWAYS AS IDENTITY,
        ADD COLUMN event        TEXT NOT NULL DEFAULT '',
        ADD COLUMN payload      JSON NOT NULL DEFAULT 'null',
        ADD COLUMN attempts     INTEGER NOT NULL DEFAULT 0,
        ADD COLUMN last_error   TEXT,
        ADD COLUMN processed_at BIGINT,
        ADD COLUMN retry_at     BIGINT,
        ADD COLUMN lease_owner  TEXT,
        ADD COLUMN lease_until  BIGINT;
      UPDATE deliveries SET processed_at = received_at;
      ALTER TABLE deliveries ALTER COLUMN event DROP DEFAULT, ALTER COLUMN payload DROP DEFAULT;
      CREATE INDEX deliveries_pending ON deliveries (received_at, ord) WHERE processed_at IS NULL;

      CREATE TABLE reports (
        run_id       TEXT PRIMARY KEY,
        reported_seq INTEGER NOT NULL,
        report       JSON NOT NULL,
        updated_at   BIGINT NOT NULL
      );
      CREATE INDEX runs_updated ON runs (updated_at, ord);
    `,
  },
  {
    version: 3,
    name: "report leases",
    // One reporter per run across processes: the outbox row holds a lease like a delivery's.
    sql: `
      ALTER TABLE reports
        ADD COLUMN lease_owner TEXT,
        ADD COLUMN lease_until BIGINT;
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
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT
      );
      CREATE TABLE server_keys (
        name       TEXT PRIMARY KEY,
        key        TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );
      CREATE TABLE hook_claims (
        key        TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
      );
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
