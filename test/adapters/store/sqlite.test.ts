import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { openRunStore } from "../../../src/adapters/store/index.js";
import { migrateSqlite, openSqliteRunStore, SqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { SQLITE_MIGRATIONS } from "../../../src/adapters/store/sqlite/migrations.js";
import { runStoreContract } from "./contract.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const contractFile = join(dir, "contract", "sluice.db");
runStoreContract("sqlite", async () => openSqliteRunStore(contractFile));

describe("SqliteRunStore", () => {
  it("creates the file and its directory, in WAL mode, with every migration recorded", async () => {
    const file = join(dir, "fresh", "nested", "state.db");
    const store = openSqliteRunStore(file);
    expect(store).toBeInstanceOf(SqliteRunStore);
    expect(store.schemaVersion()).toBe(SQLITE_MIGRATIONS.at(-1)!.version);
    await store.close();

    const db = new Database(file, { readonly: true });
    try {
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      const rows = db.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all();
      expect(rows).toEqual(SQLITE_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
      for (const t of ["runs", "events", "callback_tokens", "deliveries", "reports", "kv", "schema_migrations"]) expect(tables).toContain(t);
    } finally {
      db.close();
    }
  });

  it("re-opening applies no migration twice", async () => {
    const file = join(dir, "reopen.db");
    await openSqliteRunStore(file).close();
    const again = openSqliteRunStore(file);
    expect(again.schemaVersion()).toBe(SQLITE_MIGRATIONS.at(-1)!.version);
    await again.close();
    const db = new Database(file, { readonly: true });
    expect((db.prepare("SELECT COUNT(*) AS n FROM schema_migrations").get() as { n: number }).n).toBe(SQLITE_MIGRATIONS.length);
    db.close();
  });

  it("upgrades a version-1 file: deliveries recorded before count as processed, runs are unreported", async () => {
    const file = join(dir, "v1.db");
    const db = new Database(file);
    expect(migrateSqlite(db, SQLITE_MIGRATIONS.filter((m) => m.version === 1))).toBe(1);
    db.prepare("INSERT INTO deliveries (id, received_at) VALUES (?, ?), (?, ?)").run("old-1", 1_000, "old-2", 2_000);
    db.prepare(
      `INSERT INTO runs (id, flow, repo, status, release, concurrency_group, created_at, updated_at, wake_at, seq)
       VALUES ('old-run', 'f', 'acme/old', 'succeeded', '{"sha":"x","ref":"refs/heads/main","kind":"live"}', NULL, 5, 5, NULL, 2)`,
    ).run();
    db.close();

    const store = openSqliteRunStore(file);
    try {
      expect(store.schemaVersion()).toBe(SQLITE_MIGRATIONS.at(-1)!.version);
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
    const file = join(dir, "newer.db");
    await openSqliteRunStore(file).close();
    const db = new Database(file);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)").run();
    db.close();
    let err: unknown;
    try {
      openSqliteRunStore(file);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "STORE_ERROR" });
    expect(String((err as Error).message)).toMatch(/version 999/);
  });

  it("reports a file it cannot open as STORE_ERROR", () => {
    const bogus = join(dir, "garbage.db");
    writeFileSync(bogus, "this is not a database, just text that is long enough to have a header".repeat(20));
    expect(() => openSqliteRunStore(bogus)).toThrow(expect.objectContaining({ code: "STORE_ERROR" }));
  });
});

describe("openRunStore", () => {
  it("opens a SQLite file for a path", async () => {
    const store = await openRunStore(join(dir, "chosen", "by-path.db"));
    expect(store).toBeInstanceOf(SqliteRunStore);
    await store.close();
  });

  it("refuses an empty target and an unknown URL scheme, hiding credentials", async () => {
    await expect(openRunStore("")).rejects.toMatchObject({ code: "USAGE" });
    const err = await openRunStore("mysql://root:hunter2@db/x").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "USAGE" });
    expect(String((err as Error).message)).not.toContain("hunter2");
  });
});

describe("SqliteRunStore across OS processes", () => {
  const here = dirname(fileURLToPath(import.meta.url));
  // Bundled next to node_modules so that the child resolves better-sqlite3 from the project.
  const outDir = join(here, "../../../node_modules/.cache/sluice-test");
  const bundle = join(outDir, `claim-worker-${process.pid}.mjs`);
  afterAll(() => rmSync(bundle, { force: true }));

  it("three processes claiming from one file never get the same run", async () => {
    // esbuild is vitest's own transpiler (through vite): it turns the TypeScript worker into plain JS.
    const { build } = await import("esbuild");
    mkdirSync(outDir, { recursive: true });
    await build({
      entryPoints: [join(here, "claim-worker.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: bundle,
      external: ["better-sqlite3"],
      logLevel: "silent",
    });

    const file = join(dir, "multi-process.db");
    const store = openSqliteRunStore(file);
    const now = Date.UTC(2030, 0, 1);
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const id = `mp-${String(i).padStart(3, "0")}`;
      ids.push(id);
      await store.createRun(
        { id, flow: "f", repo: "acme/mp", status: "queued", release: { sha: "b".repeat(40), ref: "refs/heads/main", kind: "live" }, concurrencyGroup: null, createdAt: now, wakeAt: now - 1000 + i, callbackTokens: [] },
        [{ type: "run_started", at: now }],
      );
    }

    const children = ["p1", "p2", "p3"].map((owner) => {
      const child = spawn(process.execPath, [bundle, file, owner, String(now), String(ids.length)], { stdio: ["pipe", "pipe", "inherit"] });
      const lines = createInterface({ input: child.stdout });
      const ready = new Promise<void>((resolve) => lines.once("line", () => resolve()));
      const result = new Promise<{ owner: string; claimed: string[]; conflicts: number }>((resolve, reject) => {
        lines.on("line", (line) => {
          if (line.startsWith("{")) resolve(JSON.parse(line) as { owner: string; claimed: string[]; conflicts: number });
        });
        child.once("exit", (code) => (code === 0 ? undefined : reject(new Error(`worker ${owner} exited with ${code}`))));
      });
      return { child, ready, result };
    });
    try {
      await Promise.all(children.map((c) => c.ready));
      for (const c of children) c.child.stdin.write("go\n");
      const results = await Promise.all(children.map((c) => c.result));

      const all = results.flatMap((r) => r.claimed);
      expect(results.map((r) => r.conflicts)).toEqual([0, 0, 0]);
      expect(all.length).toBe(ids.length); // no run claimed twice…
      expect(new Set(all)).toEqual(new Set(ids)); // …and none left behind
      for (const id of ids) {
        const journal = await store.loadJournal(id);
        expect(journal.map((e) => e.seq)).toEqual([1, 2]); // appended exactly once
      }
      expect((await store.listRuns({ repo: "acme/mp", status: ["running"] })).length).toBe(ids.length);
    } finally {
      for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGKILL");
      await store.close();
    }
  });
});
