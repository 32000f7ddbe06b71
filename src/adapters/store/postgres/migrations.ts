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
];
