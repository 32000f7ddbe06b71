/**
 * What a crash of the database may undo, on a server whose `synchronous_commit` is `off` (the test
 * server's setting, and some production servers'): only a run's appends made without `durable`.
 * A run's creation and a delivery's intake are acknowledged to someone (a delivery marked done, a
 * 2xx to GitHub): they must survive it. The WAL writer is slowed to 10 s so that an unflushed
 * commit is surely lost by the crash; a raw session's commit shows that it is.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresRunStore, type PostgresRunStore } from "../../../src/adapters/store/postgres/postgres-run-store.js";
import type { JournalEvent } from "../../../src/core/engine/events.js";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";

let server: TestPostgres;

beforeAll(async () => {
  server = await startPostgres({ settings: { wal_writer_delay: "10s" } });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const created = (id: string): JournalEvent =>
  ({ type: "run_created", at: 1, run_id: id, flow: { name: "f", on: {}, steps: [] }, config: {}, release: { kind: "live", sha: "a".repeat(40), ref: "main" }, repo: "acme/widgets", inputs: {}, trigger: { type: "manual", actor: "alice" }, callbacks: {} }) as unknown as JournalEvent;

async function rawCount(sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: server.url });
  await c.connect();
  try {
    return Number((await c.query<{ n: string }>(sql)).rows[0]!.n);
  } finally {
    await c.end();
  }
}

describe("a crash of a PostgreSQL server set to synchronous_commit = off", () => {
  it("keeps a run's creation and a delivery's intake; loses an unflushed commit", async () => {
    const raw = new pg.Client({ connectionString: server.url });
    await raw.connect();
    await raw.query("CREATE TABLE IF NOT EXISTS control (n int)");
    expect((await raw.query<{ s: string }>("SELECT current_setting('synchronous_commit') AS s")).rows[0]!.s).toBe("off");

    let store: PostgresRunStore | undefined = await openPostgresRunStore(server.url);
    await store.createRun(
      { id: "run-kept", flow: "f", repo: "acme/widgets", status: "queued", release: { kind: "live", sha: "a".repeat(40), ref: "main" }, concurrencyGroup: null, createdAt: 1, wakeAt: 1, callbackTokens: [] },
      [created("run-kept")],
    );
    expect(await store.recordDelivery({ id: "delivery-kept", event: "issues", payload: { action: "labeled" }, receivedAt: 2 })).toBe(true);
    // A non-durable append (a read's start, say) is the engine's choice: a crash may take it.
    await store.append("run-kept", 1, [{ type: "run_started", at: 3 }], { status: "queued", wakeAt: null, durable: false });
    // The control: committed last, by a session that keeps the server's setting.
    await raw.query("INSERT INTO control VALUES (1)");
    await raw.end();

    await server.restart({ mode: "immediate" });
    await store.close();
    store = await openPostgresRunStore(server.url);
    try {
      expect(await rawCount("SELECT count(*) AS n FROM control"), "the crash lost nothing: it cannot show what survives it").toBe(0);
      expect(await store.getRun("run-kept")).toBeDefined();
      expect((await store.loadJournal("run-kept")).map((e) => e.event.type)).toEqual(["run_created"]);
      expect(await rawCount("SELECT count(*) AS n FROM deliveries WHERE id = 'delivery-kept'")).toBe(1);
    } finally {
      await store.close();
    }
  }, 60_000);
});
