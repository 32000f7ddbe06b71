import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRunStore } from "../../../src/adapters/store/index.js";
import { migratePostgres, openPostgresRunStore, PostgresRunStore } from "../../../src/adapters/store/postgres/postgres-run-store.js";
import { POSTGRES_MIGRATIONS } from "../../../src/adapters/store/postgres/migrations.js";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";
import { runStoreContract } from "./contract.js";

let server: TestPostgres | undefined;
// One server for the whole file, started before any test and stopped after the last one.
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

async function ready(): Promise<TestPostgres> {
  if (!server) throw new Error("the PostgreSQL server did not start");
  return server;
}

runStoreContract("postgres", async () => openPostgresRunStore((await ready()).url));

describe("PostgresRunStore", () => {
  it("applies every migration once even when several processes open at the same time", async () => {
    const { url } = await ready();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query("CREATE DATABASE sluice_race");
    } finally {
      await admin.end();
    }
    const raceUrl = url.replace(/\/sluice_test$/, "/sluice_race");
    const stores = await Promise.all(Array.from({ length: 6 }, () => openPostgresRunStore(raceUrl, { max: 2 })));
    try {
      for (const s of stores) expect(await s.schemaVersion()).toBe(POSTGRES_MIGRATIONS.at(-1)!.version);
      const res = await stores[0]!.pool.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
      expect(res.rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
      expect(await migratePostgres(stores[1]!.pool)).toBe(POSTGRES_MIGRATIONS.length);
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it("upgrades a version-1 database: deliveries recorded before count as processed, runs are unreported", async () => {
    const { url } = await ready();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query("CREATE DATABASE sluice_v1");
    } finally {
      await admin.end();
    }
    const v1Url = url.replace(/\/sluice_test$/, "/sluice_v1");
    const pool = new pg.Pool({ connectionString: v1Url, max: 1 });
    try {
      expect(await migratePostgres(pool, POSTGRES_MIGRATIONS.filter((m) => m.version === 1))).toBe(1);
      await pool.query("INSERT INTO deliveries (id, received_at) VALUES ('old-1', 1000), ('old-2', 2000)");
      await pool.query(
        `INSERT INTO runs (id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq)
         VALUES ('old-run', 'f', 'acme/old', 'succeeded', '{"sha":"x","ref":"refs/heads/main","kind":"live"}', NULL, 5, 5, NULL, 2)`,
      );
    } finally {
      await pool.end();
    }

    const store = await openPostgresRunStore(v1Url, { max: 2 });
    try {
      expect(await store.schemaVersion()).toBe(POSTGRES_MIGRATIONS.at(-1)!.version);
      expect(await store.claimDeliveries("w", 10_000, 1_000, 10)).toEqual([]);
      expect(await store.recordDelivery({ id: "old-1", event: "push", payload: {}, receivedAt: 3_000 })).toBe(false);
      expect(await store.recordDelivery({ id: "new-1", event: "push", payload: { ref: "main" }, receivedAt: 3_000 })).toBe(true);
      expect(await store.claimDeliveries("w", 10_000, 1_000, 10)).toEqual([
        { id: "new-1", event: "push", payload: { ref: "main" }, receivedAt: 3_000, attempts: 1, lastError: null },
      ]);
      expect(await store.claimUnreported("w", 10_000, 1_000, 10)).toEqual([{ runId: "old-run", repo: "acme/old", seq: 2, reportedSeq: 0, report: null }]);
    } finally {
      await store.close();
    }
  });

  it("refuses a database whose schema is newer than it knows", async () => {
    const { url } = await ready();
    const store = await openPostgresRunStore(url, { max: 1 });
    try {
      await store.pool.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)");
      await expect(openPostgresRunStore(url, { max: 1 })).rejects.toMatchObject({ code: "STORE_ERROR", message: expect.stringMatching(/version 999/) });
    } finally {
      await store.pool.query("DELETE FROM schema_migrations WHERE version = 999");
      await store.close();
    }
  });

  it("reports a server still unreachable at the deadline as STORE_ERROR, unavailable", async () => {
    await expect(openPostgresRunStore("postgres://postgres@127.0.0.1:1/nowhere", { max: 1, deadlineMs: 300 })).rejects.toMatchObject({
      code: "STORE_ERROR",
      details: { unavailable: true },
    });
  });

  it("notifies listeners in other instances when a run gets a wake-up", async () => {
    const { url } = await ready();
    const [writer, reader] = [await openPostgresRunStore(url, { max: 2 }), await openPostgresRunStore(url, { max: 2 })];
    const woken: string[] = [];
    let resolveSecond: () => void = () => undefined;
    const second = new Promise<void>((r) => (resolveSecond = r));
    const stop = await reader.onWake((id) => {
      if (id === undefined) return;
      woken.push(id);
      if (woken.length === 2) resolveSecond();
    });
    try {
      const base = { flow: "f", repo: "acme/notify", status: "queued" as const, release: { sha: "c".repeat(40), ref: "refs/heads/main", kind: "live" as const }, concurrencyGroup: null, createdAt: 1, callbackTokens: [] };
      await writer.createRun({ ...base, id: "notify-none", wakeAt: null }, []);
      await writer.createRun({ ...base, id: "notify-1", wakeAt: 5 }, []);
      await writer.append("notify-none", 0, [{ type: "run_started", at: 2 }], { status: "running", wakeAt: 10 });
      await second;
      expect(woken).toEqual(["notify-1", "notify-none"]);
      await writer.setWakeAt("notify-1", null);
      await writer.setWakeAt("notify-none", null);
    } finally {
      await stop();
      await writer.close();
      await reader.close();
    }
  });

  it("openRunStore picks PostgreSQL for postgres:// and postgresql:// URLs", async () => {
    const { url } = await ready();
    for (const u of [url, url.replace(/^postgres:/, "postgresql:")]) {
      const store = await openRunStore(u);
      expect(store).toBeInstanceOf(PostgresRunStore);
      await store.close();
    }
  });
});
