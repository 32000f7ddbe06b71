/**
 * The PostgreSQL store when the database is weather: restarted, killed under a connection,
 * unreachable at start, or cutting a connection right after a commit. Against a real server
 * (restarted for real) and, where a connection must break at a chosen moment, through a TCP
 * proxy that reads the wire protocol (pg-proxy.ts). Also: one round trip per append, and NOTIFY
 * only when a run yields or is due.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPool, openPostgresRunStore, type PostgresRunStore } from "../../../src/adapters/store/postgres/postgres-run-store.js";
import type { JournalEvent } from "../../../src/core/engine/events.js";
import type { NewRun } from "../../../src/ports/run-store.js";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";
import { startPgProxy, type PgProxy } from "./pg-proxy.js";

let server: TestPostgres;
beforeAll(async () => {
  server = await startPostgres();
}, 60_000);
afterAll(async () => {
  await server?.stop();
});

const T0 = Date.UTC(2030, 0, 1);
let n = 0;
function newRun(over: Partial<NewRun> = {}): NewRun {
  return {
    id: `outage-${process.pid}-${n++}`,
    flow: "f",
    repo: "acme/outage",
    status: "running",
    release: { sha: "b".repeat(40), ref: "refs/heads/main", kind: "live" },
    concurrencyGroup: null,
    createdAt: T0,
    wakeAt: null,
    callbackTokens: [],
    ...over,
  };
}
const event = (i: number): JournalEvent => ({ type: "step_started", at: T0 + i, step: `s${i}`, attempt: 1, key: `k${i}`, effect: "read" });

/** What the stores told of outages and recoveries. */
const told: string[] = [];
const logger = { debug: () => undefined, info: (m: string) => void told.push(m), warn: (m: string) => void told.push(m), error: (m: string) => void told.push(m) };

async function open(url = server.url): Promise<PostgresRunStore> {
  return openPostgresRunStore(url, { max: 4, deadlineMs: 60_000, logger });
}

describe("a PostgreSQL restart is weather", () => {
  it("appends under way wait through fast and immediate restarts, and none is lost or doubled", async () => {
    const store = await open();
    try {
      const run = newRun();
      await store.createRun(run, []);
      let seq = 0;
      // Before the crash, only durable commits: a database that crashes loses the commits it
      // was not asked to make durable (what the engine commits so costs at most re-running reads).
      let crashing = false;
      const writer = (async () => {
        for (let i = 1; i <= 300; i++) {
          seq = await store.append(run.id, seq, [event(i)], { status: "running", wakeAt: null, durable: crashing || i % 2 === 0 });
          if (i % 50 === 0) await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await new Promise((r) => setTimeout(r, 100));
      await server.restart({ mode: "fast" });
      crashing = true;
      const durableFrom = seq + 1;
      while (seq <= durableFrom) await new Promise((r) => setTimeout(r, 5));
      told.length = 0;
      await server.restart({ mode: "immediate", downMs: 500 });
      await writer;
      // The writer did meet the outage, and waited it out.
      expect(told).toEqual(expect.arrayContaining(["the database cannot be reached; trying again", "the database answers again"]));
      const journal = await store.loadJournal(run.id);
      expect(journal.map((e) => e.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      expect(journal.map((e) => (e.event as { step: string }).step)).toEqual(Array.from({ length: 300 }, (_, i) => `s${i + 1}`));
    } finally {
      await store.close();
    }
  }, 60_000);

  it("a checked-out client whose connection is killed does not take the process down", async () => {
    const pool = createPool(server.url, 2);
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      const client = await pool.connect();
      const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
      const ended = new Promise<void>((resolve) => client.once("end", () => resolve()));
      await admin.query("SELECT pg_terminate_backend($1)", [pid]);
      await ended;
      await expect(client.query("SELECT 1")).rejects.toThrow();
      client.release(true);
      expect((await pool.query<{ one: number }>("SELECT 1 AS one")).rows[0]?.one).toBe(1);
    } finally {
      await admin.end();
      await pool.end();
    }
  });

  it("a store opened while the server is down waits for it", async () => {
    const restarting = server.restart({ mode: "fast", downMs: 1_500 });
    const store = await open();
    try {
      await restarting;
      const run = newRun();
      await store.createRun(run, [event(1)]);
      expect((await store.getRun(run.id))?.seq).toBe(1);
    } finally {
      await store.close();
    }
  }, 60_000);

  it("gives up only after the deadline, with STORE_ERROR marked unavailable", async () => {
    const store = await openPostgresRunStore(server.url, { max: 2, deadlineMs: 400 });
    try {
      const restarting = server.restart({ mode: "fast", downMs: 2_000 });
      await expect(store.getRun("anything")).rejects.toMatchObject({ code: "STORE_ERROR", details: { unavailable: true } });
      await restarting;
      // The database is back: so is the store.
      expect(await store.getRun("anything")).toBeUndefined();
    } finally {
      await store.close();
    }
  }, 60_000);

  it("a wake-up listener comes back after a restart, and says it may have missed some", async () => {
    const [writer, reader] = [await open(), await open()];
    const heard: (string | undefined)[] = [];
    let waiting: { id: string; resolve: () => void } | undefined;
    const stop = await reader.onWake((id) => {
      heard.push(id);
      if (waiting && id === waiting.id) waiting.resolve();
    });
    const hear = (id: string) => new Promise<void>((resolve) => (waiting = { id, resolve }));
    try {
      await server.restart({ mode: "fast", downMs: 300 });
      const run = newRun({ status: "waiting" });
      await writer.createRun(run, []);
      // Sent until the listener is back: a wake-up sent while nobody listens is lost.
      const heardIt = hear(run.id);
      for (let i = 0; ; i++) {
        await writer.setWakeAt(run.id, T0 + i);
        const got = await Promise.race([heardIt.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
        if (got) break;
      }
      expect(heard).toContain(undefined);
    } finally {
      await stop();
      await writer.close();
      await reader.close();
    }
  }, 60_000);
});

describe("a connection cut right after a commit", () => {
  let proxy: PgProxy;
  beforeAll(async () => {
    proxy = await startPgProxy(server.url);
  });
  afterAll(async () => {
    await proxy.stop();
  });

  it("an append whose answer was lost is found committed when tried again: appended once, no conflict", async () => {
    const store = await openPostgresRunStore(proxy.url, { max: 1, deadlineMs: 30_000 });
    try {
      const run = newRun();
      await store.createRun(run, []);
      const cut = proxy.cutAfter("WITH cas AS");
      const seq = await store.append(run.id, 0, [event(1), event(2)], { status: "running", wakeAt: null });
      await cut;
      expect(seq).toBe(2);
      expect((await store.loadJournal(run.id)).map((e) => e.seq)).toEqual([1, 2]);
    } finally {
      await store.close();
    }
  });

  it("a kv write whose commit's answer was lost is applied once, with its result", async () => {
    const store = await openPostgresRunStore(proxy.url, { max: 1, deadlineMs: 30_000 });
    try {
      const run = newRun();
      await store.createRun(run, []);
      const ns = `acme/cut-${process.pid}`;
      await store.kvSet(ns, "n", 41, { now: T0 });
      const cut = proxy.cutAfter("COMMIT");
      const result: JournalEvent = { type: "step_succeeded", at: T0, step: "incr", attempt: 1, outputs: { value: 42, version: 2 } };
      await store.append(run.id, 0, [result], { status: "running", wakeAt: null, kv: { namespace: ns, key: "n", expectVersion: 1, now: T0, next: { value: 42, version: 2, expiresAt: null } } });
      await cut;
      expect(await store.kvGet(ns, "n", T0)).toMatchObject({ value: 42, version: 2 });
      expect(await store.loadJournal(run.id)).toHaveLength(1);
    } finally {
      await store.close();
    }
  });

  it("an append is one round trip (a kv write's, with its row locked, a few more)", async () => {
    const store = await openPostgresRunStore(proxy.url, { max: 1, deadlineMs: 30_000 });
    try {
      const run = newRun();
      await store.createRun(run, []);
      let seq = await store.append(run.id, 0, [event(1)], { status: "running", wakeAt: null });
      const before = proxy.roundTrips();
      seq = await store.append(run.id, seq, [event(2), event(3)], { status: "running", wakeAt: T0, durable: false, notify: false });
      seq = await store.append(run.id, seq, [event(4)], { status: "waiting", wakeAt: null, release: "w/1" });
      expect(proxy.roundTrips() - before).toBe(2);
      expect(seq).toBe(4);
    } finally {
      await store.close();
    }
  });
});

describe("NOTIFY only when a run yields or is due", () => {
  it("an append that says notify: false wakes nobody; the next that yields does", async () => {
    const [writer, reader] = [await open(), await open()];
    const heard: (string | undefined)[] = [];
    let yielded!: () => void;
    const yields = new Promise<void>((resolve) => (yielded = resolve));
    const [busy, waits] = [newRun(), newRun()];
    const stop = await reader.onWake((id) => {
      heard.push(id);
      if (id === waits.id) yielded();
    });
    try {
      await writer.createRun(busy, []);
      await writer.createRun(waits, []);
      await writer.append(busy.id, 0, [event(1)], { status: "running", wakeAt: T0, notify: false });
      await writer.append(waits.id, 0, [event(1)], { status: "waiting", wakeAt: T0 + 60_000 });
      await yields;
      // Notifications arrive in commit order: the first append's would have come first.
      expect(heard.filter((id) => id !== undefined)).toEqual([waits.id]);
    } finally {
      await stop();
      await writer.close();
      await reader.close();
    }
  });
});
