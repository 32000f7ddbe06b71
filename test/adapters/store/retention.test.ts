/**
 * The retention pass on a real store (SQLite, and PostgreSQL where the contract suite covers the
 * store methods) and real resource files: what is deleted (ended runs past retention with their
 * journals and bookkeeping, unreferenced old resources, expired kv of the app's namespaces) and
 * what is kept (runs that have not ended, recent runs, resources a remaining run refers to or that
 * were stored again); one pass at a time across processes; the environment it reads.
 */
import { mkdtempSync, rmSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NOTICES_NAMESPACE } from "../../../src/adapters/github/gate-notices.js";
import { createLogger } from "../../../src/adapters/logger.js";
import { FileResourceStore, parseResourceRef } from "../../../src/adapters/store/file-resource-store.js";
import { createRetention, readRetentionEnv, RETENTION_NAMESPACE } from "../../../src/adapters/store/retention.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import type { JournalEvent } from "../../../src/core/engine/events.js";
import type { RunStore } from "../../../src/ports/run-store.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-retention-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DAY = 86_400_000;
const NOW = Date.now();
const logger = createLogger("silent");

async function runWith(store: RunStore, id: string, at: number, outputs: Record<string, unknown>, ended: boolean): Promise<void> {
  const created = {
    type: "run_created",
    at,
    run_id: id,
    flow: { name: "f", on: { manual: {} }, steps: [] },
    config: {},
    release: { sha: "a".repeat(40), ref: "main", kind: "live" },
    repo: "acme/widgets",
    inputs: {},
    trigger: { type: "manual", actor: "ann" },
    callbacks: {},
  } as unknown as JournalEvent;
  await store.createRun({ id, flow: "f", repo: "acme/widgets", status: "running", release: { sha: "a".repeat(40), ref: "main", kind: "live" }, concurrencyGroup: null, createdAt: at, wakeAt: null, callbackTokens: [{ token: `tok-${id}`, step: "s" }] }, [created]);
  const events: JournalEvent[] = [{ type: "step_succeeded", at: at + 1, step: "s", attempt: 1, outputs }];
  if (ended) events.push({ type: "run_completed", at: at + 2, status: "succeeded", outputs: {} });
  await store.append(id, 1, events, { status: ended ? "succeeded" : "waiting", wakeAt: null });
}

const ageFile = (resources: FileResourceStore, ref: string, at: number) => {
  const hex = parseResourceRef(ref);
  utimesSync(join(resources.dir, "sha256", hex.slice(0, 2), hex.slice(2)), new Date(at), new Date(at));
};

describe("a retention pass", () => {
  it("deletes what is past retention and unreferenced, and keeps everything else", async () => {
    const store = openSqliteRunStore(join(dir, "a.db"));
    const resources = new FileResourceStore(join(dir, "resources"));
    try {
      const old = NOW - 100 * DAY;
      const onlyOld = await resources.put(Buffer.from("only the old run"), "text/plain");
      const shared = await resources.put(Buffer.from("the old and the waiting run"), "text/plain");
      const orphan = await resources.put(Buffer.from("nobody's"), "text/plain");
      const again = await resources.put(Buffer.from("stored again lately"), "text/plain");
      for (const r of [onlyOld, shared, orphan, again]) ageFile(resources, r.$resource, old);
      await resources.put(Buffer.from("stored again lately"), "text/plain");

      await runWith(store, "old-ended", old, { a: onlyOld, b: shared, c: again }, true);
      await runWith(store, "old-waiting", old, { b: shared }, false);
      await runWith(store, "recent-ended", NOW - 10 * DAY, {}, true);
      await store.kvSet(NOTICES_NAMESPACE, "old-ended:review:1:L0", { done: true }, { now: old });
      await store.kvSet(NOTICES_NAMESPACE, "old-waiting:review:1:L0", { done: true }, { now: old });
      await store.kvSet("sluice:deliveries", "d-1", ["intake"], { now: old, ttlMs: 14 * DAY });
      await store.kvSet("sluice:commands", "comment:1", { delivery: "d-1" }, { now: old });

      const retention = createRetention({ store, resources, config: readRetentionEnv({}).config, logger, owner: "p1", runNamespaces: [NOTICES_NAMESPACE], clock: () => NOW });
      const report = await retention.pruneOnce();
      expect(report).toEqual({ runs: 1, deliveries: 0, expired: 1, resources: 2 });

      expect(await store.getRun("old-ended")).toBeUndefined();
      expect(await store.loadJournal("old-ended")).toEqual([]);
      expect(await store.findCallback("tok-old-ended")).toBeUndefined();
      expect((await store.getRun("old-waiting"))?.status).toBe("waiting");
      expect(await store.findCallback("tok-old-waiting")).toEqual({ runId: "old-waiting", step: "s" });
      expect((await store.getRun("recent-ended"))?.status).toBe("succeeded");
      expect((await store.kvList(NOTICES_NAMESPACE, NOW)).map((e) => e.key)).toEqual(["old-waiting:review:1:L0"]);
      expect(await store.kvList("sluice:deliveries", old)).toEqual([]);
      // A command's claim outlives its delivery: a replayed comment is still a replay.
      expect(await store.kvList("sluice:commands", NOW)).toHaveLength(1);

      expect(await resources.get(onlyOld.$resource)).toBeUndefined();
      expect(await resources.get(orphan.$resource)).toBeUndefined();
      expect(await resources.get(shared.$resource)).toBeDefined();
      expect(await resources.get(again.$resource)).toBeDefined();
    } finally {
      await store.close();
    }
  });

  it("is made by one process at a time, at most once an interval", async () => {
    const path = join(dir, "b.db");
    const a = openSqliteRunStore(path);
    const b = openSqliteRunStore(path);
    try {
      let now = NOW;
      const config = readRetentionEnv({ SLUICE_RETENTION_RUNS: "never" }).config;
      const p1 = createRetention({ store: a, config, logger, owner: "p1", clock: () => now });
      const p2 = createRetention({ store: b, config, logger, owner: "p2", clock: () => now });
      expect(await p1.pruneOnce()).toBeDefined();
      expect(await p2.pruneOnce()).toBeUndefined();
      now += 3_600_000;
      expect(await p2.pruneOnce()).toBeDefined();
      // A pass in progress (its claim held) is not doubled, even when forced.
      await a.kvSet(RETENTION_NAMESPACE, "pass", { owner: "p1", until: now + 60_000 }, { now });
      expect(await p2.pruneOnce({ force: true })).toBeUndefined();
      // A dead process's claim lapses.
      now += 120_000;
      expect(await p2.pruneOnce({ force: true })).toBeDefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("stops at once when its server stops, even right after starting", async () => {
    const store = openSqliteRunStore(join(dir, "c.db"));
    try {
      const controller = new AbortController();
      const loop = createRetention({ store, config: readRetentionEnv({}).config, logger, owner: "p1" }).start(controller.signal);
      controller.abort();
      await loop; // before the fix, this waited for the next pass (10 minutes): the test timed out
    } finally {
      await store.close();
    }
  });

  it("reads SLUICE_RETENTION_RUNS and SLUICE_RETENTION_DELIVERIES", () => {
    expect(readRetentionEnv({})).toEqual({ config: { runsMs: 90 * DAY, deliveriesMs: 14 * DAY }, problems: [] });
    expect(readRetentionEnv({ SLUICE_RETENTION_RUNS: "never", SLUICE_RETENTION_DELIVERIES: "36h" }).config).toEqual({ runsMs: null, deliveriesMs: 36 * 3_600_000 });
    expect(readRetentionEnv({ SLUICE_RETENTION_RUNS: "soon", SLUICE_RETENTION_DELIVERIES: "never" }).problems).toEqual([
      "SLUICE_RETENTION_RUNS must be a duration of an hour or more (90d, 36h) or 'never', not 'soon'",
      "SLUICE_RETENTION_DELIVERIES must be a duration of an hour or more (90d, 36h), not 'never'",
    ]);
  });
});
