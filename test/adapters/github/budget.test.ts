/**
 * GitHub's write budget (src/adapters/github/budget.ts) against real stores, SQLite and
 * PostgreSQL: two budgets on one store stand for two processes. What is checked is the budget's
 * promise, from the grants and releases each caller records: never more content-creating
 * requests in a window than its limit (a request counts from its grant until one window after
 * its answer), never more in flight than the cap, no grant during a hold, more important writes
 * first and acknowledgements skipped under pressure.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBudget, readBudgetEnv, WriteSkipped, type BudgetConfig, type GitHubBudget, type Grant, type WritePriority } from "../../../src/adapters/github/budget.js";
import { openPostgresRunStore } from "../../../src/adapters/store/postgres/postgres-run-store.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { RetryAfterError } from "../../../src/core/errors.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-budget-"));
let pg: TestPostgres;
const stores: Record<string, RunStore> = {};

beforeAll(async () => {
  pg = await startPostgres();
  stores.sqlite = openSqliteRunStore(join(dir, "sluice.db"));
  stores.postgres = await openPostgresRunStore(pg.url);
}, 60_000);
afterAll(async () => {
  for (const s of Object.values(stores)) await s.close();
  await pg?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const config = (over: Partial<BudgetConfig> = {}): BudgetConfig => ({ windows: [{ limit: 3, ms: 400 }], maxInFlight: 10, ackReserve: 0.25, ...over });

interface Use {
  granted: number;
  released: number;
  create: boolean;
}

/** Acquires, records the grant, holds the place `holdMs`, records the release and releases. */
async function use(budget: GitHubBudget, installation: string, log: Use[], o: { create?: boolean; holdMs?: number; priority?: WritePriority } = {}): Promise<void> {
  const grant = await budget.acquire(installation, { create: o.create ?? true, priority: o.priority ?? "reply" });
  const u: Use = { granted: Date.now(), released: Number.POSITIVE_INFINITY, create: o.create ?? true };
  log.push(u);
  await new Promise((r) => setTimeout(r, o.holdMs ?? 5));
  u.released = Date.now();
  grant.release();
}

/** The most content-creating requests counted at any grant: each occupies [grant, release + ms). */
function mostInWindow(log: Use[], ms: number): number {
  const creates = log.filter((u) => u.create);
  return Math.max(0, ...creates.map((n) => creates.filter((i) => i.granted <= n.granted && n.granted < i.released + ms).length));
}

/** The most requests in flight at any grant. */
function mostInFlight(log: Use[]): number {
  return Math.max(0, ...log.map((n) => log.filter((i) => i.granted <= n.granted && n.granted < i.released).length));
}

let installations = 0;
const fresh = () => `inst-${++installations}`;

describe.each(["sqlite", "postgres"])("the GitHub budget on %s", (kind) => {
  const store = () => stores[kind] as RunStore;

  it("grants content-creating requests up to each window's limit, the next ones as tokens come back", async () => {
    const budget = createBudget({ store: store(), config: config(), pollMs: 20 });
    const inst = fresh();
    const log: Use[] = [];
    await Promise.all(Array.from({ length: 8 }, () => use(budget, inst, log)));
    expect(log).toHaveLength(8);
    expect(mostInWindow(log, 400)).toBeLessThanOrEqual(3);
    budget.close();
  });

  it("two processes on one store spend one budget together", async () => {
    const a = createBudget({ store: store(), config: config({ windows: [{ limit: 4, ms: 500 }], maxInFlight: 3 }), pollMs: 20 });
    const b = createBudget({ store: store(), config: config({ windows: [{ limit: 4, ms: 500 }], maxInFlight: 3 }), pollMs: 20 });
    const inst = fresh();
    const log: Use[] = [];
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => use(i % 2 ? a : b, inst, log, { create: i % 3 !== 0, holdMs: 10 + (i % 4) * 5 })),
    );
    expect(log).toHaveLength(12);
    expect(mostInWindow(log, 500)).toBeLessThanOrEqual(4);
    expect(mostInFlight(log)).toBeLessThanOrEqual(3);
    a.close();
    b.close();
  });

  it("a hold recorded by one process stops every request of the other until it passes", async () => {
    const a = createBudget({ store: store(), config: config(), pollMs: 20 });
    const b = createBudget({ store: store(), config: config(), pollMs: 20 });
    const inst = fresh();
    const grant = await a.acquire(inst, { create: false, priority: "gate" });
    const holdUntil = Date.now() + 300;
    grant.release({ holdUntil });
    // The hold is in the store once the release is recorded.
    await expect.poll(async () => (await b.view(inst)).hold, { interval: 10 }).toBe(holdUntil);
    const next = await b.acquire(inst, { create: false, priority: "gate" });
    expect(Date.now()).toBeGreaterThanOrEqual(holdUntil);
    next.release();
    a.close();
    b.close();
  });

  it("caps the requests in flight across processes, and frees a dead process's places when their lease lapses", async () => {
    const a = createBudget({ store: store(), config: config({ maxInFlight: 2 }), pollMs: 20, leaseMs: 400 });
    const b = createBudget({ store: store(), config: config({ maxInFlight: 2 }), pollMs: 20 });
    const inst = fresh();
    const held: Grant[] = [await a.acquire(inst, { create: false, priority: "reply" }), await a.acquire(inst, { create: false, priority: "reply" })];
    let got: Grant | undefined;
    const waiting = b.acquire(inst, { create: false, priority: "reply" }).then((g) => (got = g));
    await new Promise((r) => setTimeout(r, 100));
    expect(got).toBeUndefined();
    expect((await b.view(inst)).inFlight).toBe(2);
    held[0]!.release();
    await waiting;
    expect(got).toBeDefined();
    got!.release();
    // Process a dies holding its second place: it is freed when its lease lapses.
    a.close();
    const after = await b.acquire(inst, { create: false, priority: "reply" });
    const again = await b.acquire(inst, { create: false, priority: "reply" });
    expect((await b.view(inst)).inFlight).toBe(2);
    after.release();
    again.release();
    b.close();
  });

  it("serves gates before progress, and skips an acknowledgement when tokens are short", async () => {
    const budget = createBudget({ store: store(), config: config({ windows: [{ limit: 2, ms: 300 }] }), pollMs: 20 });
    const inst = fresh();
    const log: Use[] = [];
    await Promise.all([use(budget, inst, log), use(budget, inst, log)]);
    const order: string[] = [];
    const take = (priority: WritePriority) =>
      budget.acquire(inst, { create: true, priority }).then(
        (g) => {
          order.push(priority);
          g.release();
        },
        (e: unknown) => order.push(e instanceof WriteSkipped ? `${priority} skipped` : `${priority} failed`),
      );
    await Promise.all([take("progress"), take("ack"), take("gate")]);
    expect(order).toEqual(["ack skipped", "gate", "progress"]);
    budget.close();
  });

  it("refuses at once a caller that would wait longer than it may, saying when to come back", async () => {
    const budget = createBudget({ store: store(), config: config(), pollMs: 20 });
    const inst = fresh();
    (await budget.acquire(inst, { create: false, priority: "gate" })).release({ holdUntil: Date.now() + 5_000 });
    const refused = await budget.acquire(inst, { create: true, priority: "reply", maxWaitMs: 100 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RetryAfterError);
    expect(refused).toMatchObject({ code: "GITHUB_RATE_LIMITED" });
    expect((refused as RetryAfterError).retryAfterMs).toBeGreaterThan(4_000);
    budget.close();
  });
});

describe("the budget's configuration", () => {
  it("reads windows and the cap from the environment, and names what is wrong", () => {
    expect(readBudgetEnv({}).config.windows).toEqual([
      { limit: 80, ms: 60_000 },
      { limit: 500, ms: 3_600_000 },
    ]);
    const ghes = readBudgetEnv({ SLUICE_GITHUB_WRITES: "200/1m, 2000/1h", SLUICE_GITHUB_IN_FLIGHT: "50" });
    expect(ghes).toEqual({ config: expect.objectContaining({ windows: [{ limit: 200, ms: 60_000 }, { limit: 2000, ms: 3_600_000 }], maxInFlight: 50 }), problems: [] });
    const bad = readBudgetEnv({ SLUICE_GITHUB_WRITES: "80 a minute", SLUICE_GITHUB_IN_FLIGHT: "500" });
    expect(bad.problems).toEqual([expect.stringContaining("'80 a minute' is not one"), expect.stringContaining("from 1 to 100")]);
  });
});
