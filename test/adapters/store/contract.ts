/**
 * The RunStore contract: every adapter (SQLite, PostgreSQL) runs this one suite.
 *
 * `open()` returns a NEW store instance on the suite's ONE database each time it is called (two
 * instances stand for two worker processes). The suite isolates its tests through the port alone:
 * unique run ids, flows, repos and kv namespaces per test, and after each test every run's wake-up
 * is cleared, every pending delivery processed and every run reported, so the global queries
 * (claimDue, nextWakeAt, claimDeliveries, claimUnreported) start from an idle database.
 * Every instance is closed (close() may be called twice: it must be idempotent); `cleanup()` runs
 * after all tests, once the last store is closed.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { ConflictError, SluiceError } from "../../../src/core/errors.js";
import type { JournalEvent, Release } from "../../../src/core/engine/events.js";
import type { KvWrite, NewRun, RunStatus, RunStore } from "../../../src/ports/run-store.js";

/** A fixed, plausible clock: 2030-01-01T00:00:00Z. */
const T0 = Date.UTC(2030, 0, 1);
const RELEASE: Release = { sha: "a".repeat(40), ref: "refs/heads/main", kind: "live" };

function uid(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

function newRun(over: Partial<NewRun> = {}): NewRun {
  return {
    id: uid("run"),
    flow: "deploy",
    repo: "acme/widgets",
    status: "queued",
    release: RELEASE,
    concurrencyGroup: null,
    createdAt: T0,
    wakeAt: null,
    callbackTokens: [],
    ...over,
  };
}

function created(runId: string, at = T0): JournalEvent {
  return {
    type: "run_created",
    at,
    run_id: runId,
    flow: { name: "deploy", on: { manual: {} }, steps: [] } as unknown as Extract<JournalEvent, { type: "run_created" }>["flow"],
    config: {} as Extract<JournalEvent, { type: "run_created" }>["config"],
    release: RELEASE,
    repo: "acme/widgets",
    inputs: { test: "ünïcode ✓ 🚀", n: 3, nested: { list: [1, "two", null, true] } },
    trigger: { type: "manual", actor: "octocat" },
    callbacks: {},
  };
}

function started(step: string, at: number, attempt = 1): JournalEvent {
  return { type: "step_started", at, step, attempt, key: `r:${step}:${attempt}`, effect: "read" };
}

function succeeded(step: string, at: number, outputs: Record<string, unknown> = {}): JournalEvent {
  return { type: "step_succeeded", at, step, attempt: 1, outputs };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SluiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected an error with code ${code}`).toBeInstanceOf(SluiceError);
  expect((err as SluiceError).code).toBe(code);
  return err as SluiceError;
}

/** Far enough ahead that every lease and retry of the suite has come due. */
const FAR = T0 + 100 * 365 * 86_400_000;

/** Processes every pending delivery and reports every run, through the port alone. */
async function drain(s: RunStore): Promise<void> {
  for (let i = 0; ; i++) {
    if (i > 100) throw new Error("the inbox does not drain");
    const got = await s.claimDeliveries("drain", FAR, 1_000, 500);
    if (got.length === 0) break;
    for (const d of got) await s.finishDelivery(d.id, {});
  }
  for (let i = 0; ; i++) {
    if (i > 100) throw new Error("the outbox does not drain");
    const runs = await s.claimUnreported("drain", FAR, 1_000, 500);
    if (runs.length === 0) break;
    for (const r of runs) await s.markReported(r.runId, r.seq, r.report);
  }
}

export function runStoreContract(name: string, open: () => Promise<RunStore>, cleanup?: () => Promise<void>): void {
  describe(`RunStore contract: ${name}`, () => {
    let main: RunStore | undefined;
    /** Instances a test opened besides the main one: closed after that test. */
    const extras: RunStore[] = [];

    async function store(): Promise<RunStore> {
      main ??= await open();
      return main;
    }

    async function another(): Promise<RunStore> {
      const s = await open();
      extras.push(s);
      return s;
    }

    afterEach(async () => {
      for (const s of extras.splice(0)) await s.close();
      // Leave no run due or waking, so the next test's claimDue/nextWakeAt see only its own runs.
      const s = await store();
      for (const r of await s.listRuns()) if (r.wakeAt !== null) await s.setWakeAt(r.id, null);
      // …and leave the inbox and the outbox empty, for claimDeliveries and claimUnreported.
      await drain(s);
    });

    afterAll(async () => {
      await main?.close();
      await cleanup?.();
    });

    describe("journals", () => {
      it("creates a run with its first events and loads them back in order", async () => {
        const s = await store();
        const run = newRun({ status: "running", concurrencyGroup: "g-1", wakeAt: null });
        const events: JournalEvent[] = [created(run.id), { type: "run_started", at: T0 + 1 }, started("a", T0 + 2)];
        await s.createRun(run, events);

        const rec = await s.getRun(run.id);
        expect(rec).toEqual({
          id: run.id,
          flow: "deploy",
          repo: "acme/widgets",
          status: "running",
          release: RELEASE,
          concurrencyGroup: "g-1",
          createdAt: T0,
          updatedAt: T0,
          wakeAt: null,
          seq: 3,
        });
        const journal = await s.loadJournal(run.id);
        expect(journal.map((e) => e.seq)).toEqual([1, 2, 3]);
        expect(journal.map((e) => e.event)).toEqual(events);
      });

      it("keeps event JSON exactly, including unicode and nested values", async () => {
        const s = await store();
        const run = newRun();
        const outputs = { body: { emoji: "🚀", quote: 'a "b" \\ c', big: 2 ** 53 - 1, neg: -0.5, arr: [[], {}] } };
        await s.createRun(run, [created(run.id)]);
        await s.append(run.id, 1, [succeeded("x", T0 + 5, outputs)], { status: "running", wakeAt: null });
        const journal = await s.loadJournal(run.id);
        expect(journal[1]).toEqual({ seq: 2, event: succeeded("x", T0 + 5, outputs) });
      });

      it("answers undefined and an empty journal for an unknown run", async () => {
        const s = await store();
        expect(await s.getRun("no-such-run")).toBeUndefined();
        expect(await s.loadJournal("no-such-run")).toEqual([]);
      });

      it("refuses a duplicate run id and leaves the first run untouched", async () => {
        const s = await store();
        const run = newRun();
        await s.createRun(run, [created(run.id)]);
        const err = await expectCode(s.createRun({ ...run, flow: "other" }, [created(run.id), started("a", T0)]), "STATE_CONFLICT");
        expect(err).toBeInstanceOf(ConflictError);
        expect((await s.getRun(run.id))?.flow).toBe("deploy");
        expect(await s.loadJournal(run.id)).toHaveLength(1);
      });

      it("refuses a duplicate run id from another store instance", async () => {
        const [a, b] = [await store(), await another()];
        const run = newRun();
        await a.createRun(run, [created(run.id)]);
        await expectCode(b.createRun(run, [created(run.id)]), "STATE_CONFLICT");
      });

      it("appends after the expected seq and returns the new last seq", async () => {
        const s = await store();
        const run = newRun();
        await s.createRun(run, [created(run.id), { type: "run_started", at: T0 + 1 }]);
        expect(await s.append(run.id, 2, [started("a", T0 + 2), succeeded("a", T0 + 3)], { status: "running", wakeAt: null })).toBe(4);
        expect(await s.append(run.id, 4, [started("b", T0 + 4)], { status: "running", wakeAt: null })).toBe(5);
        const journal = await s.loadJournal(run.id);
        expect(journal.map((e) => [e.seq, e.event.type])).toEqual([
          [1, "run_created"],
          [2, "run_started"],
          [3, "step_started"],
          [4, "step_succeeded"],
          [5, "step_started"],
        ]);
        expect((await s.getRun(run.id))?.seq).toBe(5);
      });

      it("throws ConflictError on a stale or future expected seq and changes nothing", async () => {
        const s = await store();
        const run = newRun({ wakeAt: T0 + 100 });
        await s.createRun(run, [created(run.id), { type: "run_started", at: T0 + 1 }]);
        for (const stale of [0, 1, 3, 99]) {
          const err = await expectCode(s.append(run.id, stale, [started("a", T0 + 2)], { status: "failed", wakeAt: null }), "STATE_CONFLICT");
          expect(err).toBeInstanceOf(ConflictError);
        }
        const rec = await s.getRun(run.id);
        expect(rec?.seq).toBe(2);
        expect(rec?.status).toBe("queued");
        expect(rec?.wakeAt).toBe(T0 + 100);
        expect(await s.loadJournal(run.id)).toHaveLength(2);
      });

      it("lets exactly one of two racing appends on the same seq win", async () => {
        const [a, b] = [await store(), await another()];
        const run = newRun();
        await a.createRun(run, [created(run.id)]);
        const results = await Promise.allSettled([
          a.append(run.id, 1, [started("from-a", T0 + 1)], { status: "running", wakeAt: null }),
          b.append(run.id, 1, [started("from-b", T0 + 1)], { status: "running", wakeAt: null }),
        ]);
        const won = results.filter((r) => r.status === "fulfilled");
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0]?.reason).toBeInstanceOf(ConflictError);
        const journal = await b.loadJournal(run.id);
        expect(journal).toHaveLength(2);
      });

      it("appends from many concurrent writers never lose or duplicate an event", async () => {
        const stores = [await store(), await another(), await another()];
        const run = newRun();
        await stores[0]!.createRun(run, [created(run.id)]);
        // Each writer retries its CAS until it has appended 5 events of its own.
        await Promise.all(
          stores.map(async (s, w) => {
            for (let i = 0; i < 5; ) {
              const seq = (await s.getRun(run.id))!.seq;
              try {
                await s.append(run.id, seq, [started(`w${w}-${i}`, T0 + seq)], { status: "running", wakeAt: null });
                i++;
              } catch (err) {
                if (!(err instanceof ConflictError)) throw err;
              }
            }
          }),
        );
        const journal = await stores[0]!.loadJournal(run.id);
        expect(journal.map((e) => e.seq)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
        const steps = journal.slice(1).map((e) => (e.event as { step: string }).step);
        expect(new Set(steps).size).toBe(15);
      });

      it("rejects an append to an unknown run with RUN_NOT_FOUND", async () => {
        const s = await store();
        await expectCode(s.append("no-such-run", 0, [started("a", T0)], { status: "running", wakeAt: null }), "RUN_NOT_FOUND");
      });

      it("updates status, wakeAt and updatedAt in the same append", async () => {
        const s = await store();
        const run = newRun({ status: "queued", wakeAt: T0 });
        await s.createRun(run, [created(run.id)]);
        await s.append(run.id, 1, [{ type: "timer_started", at: T0 + 10, step: "nap", until: T0 + 60_000 }], {
          status: "waiting",
          wakeAt: T0 + 60_000,
        });
        let rec = await s.getRun(run.id);
        expect(rec).toMatchObject({ status: "waiting", wakeAt: T0 + 60_000, seq: 2, updatedAt: T0 + 10, createdAt: T0 });

        await s.append(run.id, 2, [{ type: "run_completed", at: T0 + 70_000, status: "succeeded", outputs: {} }], {
          status: "succeeded",
          wakeAt: null,
        });
        rec = await s.getRun(run.id);
        expect(rec).toMatchObject({ status: "succeeded", wakeAt: null, seq: 3, updatedAt: T0 + 70_000 });
      });

      it("an append frees its owner's lease in the same transaction, and never another owner's", async () => {
        const [a, b] = [await store(), await another()];
        const run = newRun({ wakeAt: T0 });
        await a.createRun(run, [created(run.id)]);
        expect(await a.acquireLease(run.id, "a", T0, 60_000)).toBe(true);
        // Not the holder: the lease stays.
        await b.append(run.id, 1, [{ type: "run_started", at: T0 + 1 }], { status: "running", wakeAt: T0, release: "b", durable: false });
        expect(await b.claimDue("b", T0 + 2, 60_000, 5)).toEqual([]);
        // The holder's last commit of an advance frees the run for anyone at once.
        await a.append(run.id, 2, [started("a", T0 + 3)], { status: "running", wakeAt: T0 + 3, release: "a", durable: false, notify: false });
        expect((await b.claimDue("b", T0 + 4, 60_000, 5)).map((r) => r.id)).toEqual([run.id]);
        expect((await b.loadJournal(run.id)).map((e) => e.event.type)).toEqual(["run_created", "run_started", "step_started"]);
      });

      it("setWakeAt changes only the wake-up", async () => {
        const s = await store();
        const run = newRun({ status: "waiting", wakeAt: null });
        await s.createRun(run, [created(run.id)]);
        await s.setWakeAt(run.id, T0 + 5);
        expect(await s.getRun(run.id)).toMatchObject({ wakeAt: T0 + 5, status: "waiting", seq: 1 });
        await s.setWakeAt(run.id, null);
        expect((await s.getRun(run.id))?.wakeAt).toBeNull();
        await expectCode(s.setWakeAt("no-such-run", T0), "RUN_NOT_FOUND");
      });
    });

    describe("listRuns", () => {
      it("filters by flow, repo, status set and concurrency group, newest first, with a limit", async () => {
        const s = await store();
        const repo = uid("acme/list");
        const make = async (flow: string, status: RunStatus, group: string | null, createdAt: number): Promise<string> => {
          const run = newRun({ flow, repo, status, concurrencyGroup: group, createdAt });
          await s.createRun(run, [created(run.id, createdAt)]);
          return run.id;
        };
        const r1 = await make("build", "succeeded", null, T0 + 1);
        const r2 = await make("deploy", "running", "prod", T0 + 2);
        const r3 = await make("deploy", "waiting", "prod", T0 + 3);
        const r4 = await make("deploy", "failed", "staging", T0 + 4);
        const r5 = await make("build", "queued", "prod", T0 + 5);

        const ids = async (f: Parameters<RunStore["listRuns"]>[0]): Promise<string[]> => (await s.listRuns({ repo, ...f })).map((r) => r.id);
        expect(await ids({})).toEqual([r5, r4, r3, r2, r1]);
        expect(await ids({ flow: "deploy" })).toEqual([r4, r3, r2]);
        expect(await ids({ status: ["running", "waiting", "queued"] })).toEqual([r5, r3, r2]);
        expect(await ids({ status: [] })).toEqual([]);
        expect(await ids({ concurrencyGroup: "prod" })).toEqual([r5, r3, r2]);
        expect(await ids({ concurrencyGroup: "prod", flow: "deploy", status: ["running"] })).toEqual([r2]);
        expect(await ids({ limit: 2 })).toEqual([r5, r4]);
        expect(await ids({ flow: "deploy", limit: 1 })).toEqual([r4]);
        expect(await ids({ limit: 0 })).toEqual([]);
        expect(await ids({ flow: "nope" })).toEqual([]);
        expect((await s.listRuns({ repo: uid("acme/none") })).length).toBe(0);
      });

      it("orders runs created in the same millisecond by creation order", async () => {
        const s = await store();
        const repo = uid("acme/same-ms");
        const ids: string[] = [];
        for (let i = 0; i < 4; i++) {
          const run = newRun({ repo, createdAt: T0 });
          await s.createRun(run, [created(run.id)]);
          ids.push(run.id);
        }
        expect((await s.listRuns({ repo })).map((r) => r.id)).toEqual(ids.reverse());
      });

      it("reflects appends in the listed status", async () => {
        const s = await store();
        const repo = uid("acme/status");
        const run = newRun({ repo, status: "queued" });
        await s.createRun(run, [created(run.id)]);
        await s.append(run.id, 1, [{ type: "run_started", at: T0 + 1 }], { status: "running", wakeAt: null });
        expect((await s.listRuns({ repo, status: ["queued"] })).length).toBe(0);
        expect((await s.listRuns({ repo, status: ["running"] })).map((r) => r.id)).toEqual([run.id]);
      });
    });

    describe("claimDue and leases", () => {
      async function due(s: RunStore, wakeAt: number | null, createdAt = T0): Promise<string> {
        const run = newRun({ wakeAt, createdAt, status: "queued" });
        await s.createRun(run, [created(run.id)]);
        return run.id;
      }

      it("claims only runs whose wakeAt has come, oldest wake-up first, up to the limit", async () => {
        const s = await store();
        const late = await due(s, T0 + 30);
        const early = await due(s, T0 + 10);
        const middle = await due(s, T0 + 20);
        await due(s, T0 + 1_000); // not due yet
        await due(s, null); // waits for a signal

        const first = await s.claimDue("w1", T0 + 30, 60_000, 2);
        expect(first.map((r) => r.id)).toEqual([early, middle]);
        expect(first[0]).toMatchObject({ id: early, wakeAt: T0 + 10, status: "queued", seq: 1 });
        const second = await s.claimDue("w1", T0 + 30, 60_000, 10);
        expect(second.map((r) => r.id)).toEqual([late]);
        expect(await s.claimDue("w1", T0 + 30, 60_000, 10)).toEqual([]);
        expect(await s.claimDue("w2", T0 + 999, 60_000, 10)).toEqual([]);
        expect(await s.claimDue("w1", T0 + 30, 60_000, 0)).toEqual([]);
      });

      it("claims a run wakeAt exactly equal to now", async () => {
        const s = await store();
        const id = await due(s, T0 + 50);
        expect((await s.claimDue("w", T0 + 49, 1_000, 5)).map((r) => r.id)).toEqual([]);
        expect((await s.claimDue("w", T0 + 50, 1_000, 5)).map((r) => r.id)).toEqual([id]);
      });

      it("never gives a leased run to another owner until the lease expires", async () => {
        const [a, b] = [await store(), await another()];
        const id = await due(a, T0);
        expect((await a.claimDue("worker-a", T0 + 1, 10_000, 5)).map((r) => r.id)).toEqual([id]);
        expect(await b.claimDue("worker-b", T0 + 2, 10_000, 5)).toEqual([]);
        expect(await b.claimDue("worker-b", T0 + 10_000, 10_000, 5)).toEqual([]);
        expect(await b.acquireLease(id, "worker-b", T0 + 10_000, 10_000)).toBe(false);
        // The lease ran from T0+1 for 10 s: at T0+10_001 it has expired.
        expect((await b.claimDue("worker-b", T0 + 10_001, 10_000, 5)).map((r) => r.id)).toEqual([id]);
        expect(await a.claimDue("worker-a", T0 + 10_002, 10_000, 5)).toEqual([]);
      });

      it("does not hand a run back to its own owner through claimDue while the lease holds", async () => {
        const s = await store();
        const id = await due(s, T0);
        expect((await s.claimDue("w", T0, 10_000, 5)).map((r) => r.id)).toEqual([id]);
        expect(await s.claimDue("w", T0 + 1, 10_000, 5)).toEqual([]);
      });

      it("frees the run at once when the owner releases the lease, and only then", async () => {
        const [a, b] = [await store(), await another()];
        const id = await due(a, T0);
        expect(await a.claimDue("worker-a", T0, 60_000, 5)).toHaveLength(1);
        await b.releaseLease(id, "worker-b"); // not the owner: no effect
        expect(await b.claimDue("worker-b", T0 + 1, 60_000, 5)).toEqual([]);
        await a.releaseLease(id, "worker-a");
        expect((await b.claimDue("worker-b", T0 + 2, 60_000, 5)).map((r) => r.id)).toEqual([id]);
      });

      it("splits due runs between two store instances racing for them, never both getting one", async () => {
        const [a, b] = [await store(), await another()];
        const ids = new Set<string>();
        for (let i = 0; i < 40; i++) ids.add(await due(a, T0 + i));
        const claimedBy = new Map<string, string>();
        const worker = async (s: RunStore, owner: string): Promise<void> => {
          for (;;) {
            const got = await s.claimDue(owner, T0 + 100, 60_000, 3);
            if (got.length === 0) return;
            for (const r of got) {
              expect(claimedBy.has(r.id), `run ${r.id} claimed by ${claimedBy.get(r.id)} and ${owner}`).toBe(false);
              claimedBy.set(r.id, owner);
            }
          }
        };
        await Promise.all([worker(a, "a1"), worker(b, "b1"), worker(a, "a2"), worker(b, "b2")]);
        expect(new Set(claimedBy.keys())).toEqual(ids);
      });

      it("acquireLease takes a free lease, renews its own, refuses another's until it expires", async () => {
        const [a, b] = [await store(), await another()];
        const id = await due(a, null);
        expect(await a.acquireLease(id, "a", T0, 1_000)).toBe(true);
        expect(await b.acquireLease(id, "b", T0 + 500, 1_000)).toBe(false);
        expect(await a.acquireLease(id, "a", T0 + 900, 1_000)).toBe(true); // renewed to T0+1900
        expect(await b.acquireLease(id, "b", T0 + 1_500, 1_000)).toBe(false);
        expect(await b.acquireLease(id, "b", T0 + 1_900, 1_000)).toBe(true);
        expect(await a.acquireLease(id, "a", T0 + 2_000, 1_000)).toBe(false);
        await b.releaseLease(id, "b");
        expect(await a.acquireLease(id, "a", T0 + 2_001, 1_000)).toBe(true);
        expect(await a.acquireLease("no-such-run", "a", T0, 1_000)).toBe(false);
      });

      it("a lease taken by acquireLease keeps the run from claimDue", async () => {
        const [a, b] = [await store(), await another()];
        const id = await due(a, T0);
        expect(await a.acquireLease(id, "a", T0, 5_000)).toBe(true);
        expect(await b.claimDue("b", T0 + 1, 5_000, 5)).toEqual([]);
        expect((await b.claimDue("b", T0 + 5_000, 5_000, 5)).map((r) => r.id)).toEqual([id]);
      });

      it("nextWakeAt is the earliest wake-up among runs not leased now", async () => {
        const s = await store();
        expect(await s.nextWakeAt(T0)).toBeNull();
        const soon = await due(s, T0 + 100);
        await due(s, T0 + 300);
        await due(s, null);
        expect(await s.nextWakeAt(T0)).toBe(T0 + 100);
        expect(await s.acquireLease(soon, "w", T0, 1_000)).toBe(true);
        expect(await s.nextWakeAt(T0)).toBe(T0 + 300);
        expect(await s.nextWakeAt(T0 + 1_000)).toBe(T0 + 100); // the lease has expired
        await s.setWakeAt(soon, T0 + 50);
        await s.releaseLease(soon, "w");
        expect(await s.nextWakeAt(T0)).toBe(T0 + 50);
      });

      it("nextWakeAt counts a leased run from when its lease expires (a dead worker's runs come back)", async () => {
        const s = await store();
        const held = await due(s, T0 + 10);
        await due(s, T0 + 900);
        expect(await s.acquireLease(held, "w", T0, 200)).toBe(true);
        expect(await s.nextWakeAt(T0)).toBe(T0 + 200);
        expect(await s.acquireLease(held, "w", T0 + 100, 5_000)).toBe(true);
        expect(await s.nextWakeAt(T0 + 100)).toBe(T0 + 900);
      });

      it("renewLeases extends the leases their owners still hold, in one call, with each run's seq", async () => {
        const [a, b] = [await store(), await another()];
        const mine = await due(a, T0);
        const lost = await due(a, T0);
        const never = await due(a, T0);
        expect(await a.acquireLease(mine, "a/1", T0, 1_000)).toBe(true);
        expect(await a.acquireLease(lost, "a/2", T0, 1_000)).toBe(true);
        await a.append(mine, 1, [{ type: "run_started", at: T0 }], { status: "running", wakeAt: T0 });
        // a/2's lease lapsed and b took the run over.
        expect(await b.acquireLease(lost, "b", T0 + 1_000, 60_000)).toBe(true);
        const renewed = await a.renewLeases(
          [
            { id: mine, owner: "a/1" },
            { id: lost, owner: "a/2" },
            { id: never, owner: "a/3" },
            { id: "no-such-run", owner: "a/4" },
          ],
          T0 + 900,
          1_000,
        );
        expect(renewed).toEqual([{ id: mine, seq: 2 }]);
        // Renewed until T0+1900: nobody else gets it before then.
        expect((await b.claimDue("b", T0 + 1_800, 1_000, 10)).map((r) => r.id)).toEqual([never]);
        expect((await b.claimDue("b", T0 + 1_900, 1_000, 10)).map((r) => r.id)).toEqual([mine]);
        expect(await a.renewLeases([], T0, 1_000)).toEqual([]);
        await expectCode(a.renewLeases([{ id: mine, owner: "" }], T0, 1_000), "INPUT_INVALID");
      });

      it("rejects a bad lease owner or duration", async () => {
        const s = await store();
        await expectCode(s.claimDue("", T0, 1_000, 1), "INPUT_INVALID");
        await expectCode(s.claimDue("w", T0, 0, 1), "INPUT_INVALID");
        await expectCode(s.acquireLease("x", "w", T0, -5), "INPUT_INVALID");
      });
    });

    describe("callback tokens", () => {
      it("finds the run and step of a callback token", async () => {
        const [a, b] = [await store(), await another()];
        const run = newRun({
          callbackTokens: [
            { token: uid("tok"), step: "result" },
            { token: uid("tok"), step: "second" },
          ],
        });
        await a.createRun(run, [created(run.id)]);
        expect(await b.findCallback(run.callbackTokens[0]!.token)).toEqual({ runId: run.id, step: "result" });
        expect(await b.findCallback(run.callbackTokens[1]!.token)).toEqual({ runId: run.id, step: "second" });
        expect(await b.findCallback("no-such-token")).toBeUndefined();
      });

      it("refuses a token already used by another run, creating nothing", async () => {
        const s = await store();
        const token = uid("tok");
        const first = newRun({ callbackTokens: [{ token, step: "a" }] });
        await s.createRun(first, [created(first.id)]);
        const second = newRun({ callbackTokens: [{ token, step: "b" }] });
        await expectCode(s.createRun(second, [created(second.id)]), "STATE_CONFLICT");
        expect(await s.getRun(second.id)).toBeUndefined();
        expect(await s.loadJournal(second.id)).toEqual([]);
        expect(await s.findCallback(token)).toEqual({ runId: first.id, step: "a" });
      });
    });

    describe("inbox: deliveries", () => {
      function delivery(over: Partial<{ id: string; event: string; payload: unknown; receivedAt: number }> = {}) {
        return { id: uid("delivery"), event: "issue_comment", payload: { action: "created", comment: { body: "/deploy ✓ 🚀" } }, receivedAt: T0, ...over };
      }

      it("records a delivery id once: a redelivery answers false, from any instance, and keeps the first payload", async () => {
        const [a, b] = [await store(), await another()];
        const d = delivery();
        expect(await a.recordDelivery(d)).toBe(true);
        expect(await a.recordDelivery({ ...d, payload: { changed: true }, receivedAt: T0 + 1 })).toBe(false);
        expect(await b.recordDelivery({ ...d, event: "push", receivedAt: T0 + 2 })).toBe(false);
        const other = delivery({ receivedAt: T0 + 5 });
        expect(await b.recordDelivery(other)).toBe(true);
        const got = await b.claimDeliveries("w", T0 + 10, 60_000, 10);
        expect(got).toEqual([
          { id: d.id, event: "issue_comment", payload: d.payload, receivedAt: T0, attempts: 1, lastError: null },
          { id: other.id, event: "issue_comment", payload: other.payload, receivedAt: T0 + 5, attempts: 1, lastError: null },
        ]);
      });

      it("records a delivery id for exactly one of many concurrent recorders", async () => {
        const stores = [await store(), await another()];
        const id = uid("delivery");
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => stores[i % 2]!.recordDelivery(delivery({ id, payload: i }))));
        expect(results.filter(Boolean)).toHaveLength(1);
        const got = await stores[0]!.claimDeliveries("w", T0, 60_000, 10);
        expect(got.map((d) => d.id)).toEqual([id]);
        expect(got[0]!.payload).toBe(results.indexOf(true));
      });

      it("claims due deliveries oldest first (same millisecond: recording order), up to the limit", async () => {
        const s = await store();
        const second = delivery({ receivedAt: T0 + 2, event: "push", payload: null });
        const first = delivery({ receivedAt: T0 + 1, event: "schedule", payload: { cron: "*/5 * * * *", nested: [1, "two", null, true] } });
        // Recorded in this order, in the same millisecond, with ids that sort the other way.
        const sameA = delivery({ id: uid("zz-delivery"), receivedAt: T0 + 3 });
        const sameB = delivery({ id: uid("aa-delivery"), receivedAt: T0 + 3 });
        const later = delivery({ receivedAt: T0 + 100 });
        for (const d of [second, first, sameA, sameB, later]) expect(await s.recordDelivery(d)).toBe(true);

        const batch1 = await s.claimDeliveries("w", T0 + 50, 60_000, 2);
        expect(batch1).toEqual([
          { id: first.id, event: "schedule", payload: first.payload, receivedAt: T0 + 1, attempts: 1, lastError: null },
          { id: second.id, event: "push", payload: null, receivedAt: T0 + 2, attempts: 1, lastError: null },
        ]);
        expect((await s.claimDeliveries("w", T0 + 50, 60_000, 2)).map((d) => d.id)).toEqual([sameA.id, sameB.id]);
        expect(await s.claimDeliveries("w", T0 + 50, 60_000, 0)).toEqual([]);
        // A delivery received "after now" is claimed all the same: only retryAt makes one wait.
        expect((await s.claimDeliveries("w", T0 + 50, 60_000, 10)).map((d) => d.id)).toEqual([later.id]);
        expect(await s.claimDeliveries("w", T0 + 50, 60_000, 10)).toEqual([]);
      });

      it("never gives a leased delivery to another instance until the lease expires, counting attempts", async () => {
        const [a, b] = [await store(), await another()];
        const d = delivery();
        await a.recordDelivery(d);
        expect((await a.claimDeliveries("worker-a", T0, 10_000, 5)).map((x) => [x.id, x.attempts])).toEqual([[d.id, 1]]);
        expect(await b.claimDeliveries("worker-b", T0 + 9_999, 10_000, 5)).toEqual([]);
        expect(await a.claimDeliveries("worker-a", T0 + 9_999, 10_000, 5)).toEqual([]); // not even to its owner
        expect((await b.claimDeliveries("worker-b", T0 + 10_000, 10_000, 5)).map((x) => [x.id, x.attempts])).toEqual([[d.id, 2]]);
        expect(await a.claimDeliveries("worker-a", T0 + 10_001, 10_000, 5)).toEqual([]);
      });

      it("finishDelivery without retryAt marks it processed: never claimed again, even with an error", async () => {
        const [a, b] = [await store(), await another()];
        const ok = delivery();
        const failed = delivery({ receivedAt: T0 + 1 });
        await a.recordDelivery(ok);
        await a.recordDelivery(failed);
        expect(await a.claimDeliveries("w", T0, 1_000, 5)).toHaveLength(2);
        await a.finishDelivery(ok.id, {});
        await b.finishDelivery(failed.id, { error: "flow not found: gave up" });
        expect(await b.claimDeliveries("w2", T0 + 1_000_000, 1_000, 5)).toEqual([]);
        expect(await a.recordDelivery(ok)).toBe(false);
        // Finishing again, even asking for a retry, leaves a processed delivery processed.
        await a.finishDelivery(ok.id, { error: "late", retryAt: T0 });
        await a.finishDelivery(ok.id, {});
        expect(await b.claimDeliveries("w2", T0 + 2_000_000, 1_000, 5)).toEqual([]);
      });

      it("finishDelivery with retryAt records the error and frees the lease, due again at retryAt", async () => {
        const [a, b] = [await store(), await another()];
        const d = delivery();
        await a.recordDelivery(d);
        expect(await a.claimDeliveries("worker-a", T0, 60_000, 5)).toHaveLength(1);
        await a.finishDelivery(d.id, { error: "GitHub answered 502", retryAt: T0 + 500 });
        expect(await b.claimDeliveries("worker-b", T0 + 499, 60_000, 5)).toEqual([]);
        expect(await b.claimDeliveries("worker-b", T0 + 500, 60_000, 5)).toEqual([
          { id: d.id, event: d.event, payload: d.payload, receivedAt: T0, attempts: 2, lastError: "GitHub answered 502" },
        ]);
        // A retryAt already past is due at once; a retry without an error clears the last one.
        await b.finishDelivery(d.id, { retryAt: T0 });
        expect(await a.claimDeliveries("worker-a", T0 + 501, 60_000, 5)).toEqual([
          { id: d.id, event: d.event, payload: d.payload, receivedAt: T0, attempts: 3, lastError: null },
        ]);
        await a.finishDelivery(d.id, {});
        expect(await b.claimDeliveries("worker-b", T0 + 1_000_000, 60_000, 5)).toEqual([]);
      });

      it("renewDeliveries extends the leases their owner holds on unprocessed deliveries, and no others", async () => {
        const [a, b] = [await store(), await another()];
        const [d1, d2, d3] = [uid("renew"), uid("renew"), uid("renew")];
        for (const id of [d1, d2, d3]) await a.recordDelivery({ id, event: "push", payload: {}, receivedAt: T0 });
        expect((await a.claimDeliveries("a", T0, 1_000, 10)).map((d) => d.id)).toEqual([d1, d2, d3]);
        await a.finishDelivery(d2, {});
        // d3's lease lapsed and b took it.
        expect((await b.claimDeliveries("b", T0 + 1_000, 60_000, 10)).map((d) => d.id)).toEqual([d1, d3]);
        await b.finishDelivery(d1, { retryAt: T0 + 1_000 });
        expect((await a.claimDeliveries("a", T0 + 1_000, 1_000, 10)).map((d) => d.id)).toEqual([d1]);
        expect(await a.renewDeliveries("a", [d1, d2, d3, "never-recorded"], T0 + 1_900, 1_000)).toEqual([d1]);
        // Held until T0+2900 now.
        expect(await b.claimDeliveries("b", T0 + 2_800, 1_000, 10)).toEqual([]);
        expect((await b.claimDeliveries("b", T0 + 2_900, 1_000, 10)).map((d) => d.id)).toEqual([d1]);
        expect(await a.renewDeliveries("a", [], T0, 1_000)).toEqual([]);
        await expectCode(a.renewDeliveries("", [d1], T0, 1_000), "INPUT_INVALID");
      });

      it("splits deliveries between two store instances racing for them, never both getting one", async () => {
        const [a, b] = [await store(), await another()];
        const ids = new Set<string>();
        for (let i = 0; i < 40; i++) {
          const d = delivery({ receivedAt: T0 + i });
          await (i % 2 ? a : b).recordDelivery(d);
          ids.add(d.id);
        }
        const claimedBy = new Map<string, string>();
        const worker = async (s: RunStore, owner: string): Promise<void> => {
          for (;;) {
            const got = await s.claimDeliveries(owner, T0 + 100, 60_000, 3);
            if (got.length === 0) return;
            for (const d of got) {
              expect(claimedBy.has(d.id), `delivery ${d.id} claimed by ${claimedBy.get(d.id)} and ${owner}`).toBe(false);
              expect(d.attempts).toBe(1);
              claimedBy.set(d.id, owner);
            }
          }
        };
        await Promise.all([worker(a, "a1"), worker(b, "b1"), worker(a, "a2"), worker(b, "b2")]);
        expect(new Set(claimedBy.keys())).toEqual(ids);
      });

      it("answers NOT_FOUND when finishing a delivery never recorded", async () => {
        const s = await store();
        await expectCode(s.finishDelivery("no-such-delivery", {}), "NOT_FOUND");
        await expectCode(s.finishDelivery("no-such-delivery", { retryAt: T0 }), "NOT_FOUND");
      });

      it("rejects bad deliveries and arguments with INPUT_INVALID, recording nothing", async () => {
        const s = await store();
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await expectCode(s.recordDelivery(delivery({ id: "" })), "INPUT_INVALID");
        await expectCode(s.recordDelivery(delivery({ event: "" })), "INPUT_INVALID");
        await expectCode(s.recordDelivery(delivery({ receivedAt: 1.5 })), "INPUT_INVALID");
        await expectCode(s.recordDelivery(delivery({ payload: cyclic })), "INPUT_INVALID");
        await expectCode(s.recordDelivery(delivery({ payload: { n: 10n } })), "INPUT_INVALID");
        await expectCode(s.claimDeliveries("", T0, 1_000, 1), "INPUT_INVALID");
        await expectCode(s.claimDeliveries("w", T0, 0, 1), "INPUT_INVALID");
        await expectCode(s.claimDeliveries("w", T0, 1_000, -1), "INPUT_INVALID");
        await expectCode(s.claimDeliveries("w", Number.NaN, 1_000, 1), "INPUT_INVALID");
        const d = delivery();
        await s.recordDelivery(d);
        await expectCode(s.finishDelivery(d.id, { retryAt: 1.5 }), "INPUT_INVALID");
        await expectCode(s.finishDelivery(d.id, { error: 5 as unknown as string }), "INPUT_INVALID");
        expect((await s.claimDeliveries("w", T0, 1_000, 10)).map((x) => x.id)).toEqual([d.id]);
      });
    });

    describe("outbox: reports", () => {
      async function runAt(s: RunStore, createdAt: number, events = 1, repo = "acme/widgets"): Promise<string> {
        const run = newRun({ createdAt, repo });
        const evs: JournalEvent[] = [created(run.id, createdAt)];
        for (let i = 1; i < events; i++) evs.push(started(`s${i}`, createdAt));
        await s.createRun(run, evs);
        return run.id;
      }

      it("claims runs whose journal moved past their report, oldest change first, with repo and stored report", async () => {
        const [a, b] = [await store(), await another()];
        const older = await runAt(a, T0 + 5, 2, "acme/older");
        const newer = await runAt(a, T0 + 10, 1, "acme/newer");
        await a.createRun(newRun({ createdAt: T0 + 1 }), []); // an empty journal has nothing to report
        expect(await b.getReport(older)).toBeUndefined();
        expect(await b.claimUnreported("w", T0, 1_000, 0)).toEqual([]);
        expect((await b.claimUnreported("w", T0, 1_000, 1)).map((r) => r.runId)).toEqual([older]);
        // The lease is the claimer's: the same owner gets its runs again, with the next ones.
        expect(await b.claimUnreported("w", T0, 1_000, 10)).toEqual([
          { runId: older, repo: "acme/older", seq: 2, reportedSeq: 0, report: null },
          { runId: newer, repo: "acme/newer", seq: 1, reportedSeq: 0, report: null },
        ]);
        // A claimed run never reported has its outbox row (reportedSeq 0, report null).
        expect(await b.getReport(older)).toEqual({ reportedSeq: 0, report: null });

        await a.markReported(older, 2, { checkRunId: 42, title: "deploy ✓" });
        expect(await b.getReport(older)).toEqual({ reportedSeq: 2, report: { checkRunId: 42, title: "deploy ✓" } });
        expect((await b.claimUnreported("w", T0, 1_000, 10)).map((r) => r.runId)).toEqual([newer]);

        // The journal moves on: the run is unreported again, now the most recent change.
        await a.append(older, 2, [succeeded("s1", T0 + 20)], { status: "running", wakeAt: null });
        expect(await b.claimUnreported("w", T0, 1_000, 10)).toEqual([
          { runId: newer, repo: "acme/newer", seq: 1, reportedSeq: 0, report: null },
          { runId: older, repo: "acme/older", seq: 3, reportedSeq: 2, report: { checkRunId: 42, title: "deploy ✓" } },
        ]);
        await b.markReported(newer, 1, null);
        await b.markReported(older, 3, "done");
        expect(await a.claimUnreported("w", T0, 1_000, 10)).toEqual([]);
        expect(await a.claimUnreported("other", T0, 1_000, 10)).toEqual([]);
        expect(await a.getReport(newer)).toEqual({ reportedSeq: 1, report: null });
        expect(await a.getReport(older)).toEqual({ reportedSeq: 3, report: "done" });
      });

      it("a report part-way claims the run until it catches up with the journal", async () => {
        const s = await store();
        const id = await runAt(s, T0, 4);
        await s.markReported(id, 2, { at: 2 });
        expect(await s.claimUnreported("w", T0, 1_000, 10)).toEqual([{ runId: id, repo: "acme/widgets", seq: 4, reportedSeq: 2, report: { at: 2 } }]);
        await s.markReported(id, 4, { at: 4 });
        expect(await s.claimUnreported("w", T0, 1_000, 10)).toEqual([]);
      });

      it("never gives a run claimed by one instance to another while the lease holds", async () => {
        const [a, b] = [await store(), await another()];
        const id = await runAt(a, T0, 2);
        expect((await a.claimUnreported("reporter-a", T0, 10_000, 10)).map((r) => r.runId)).toEqual([id]);
        expect(await b.claimUnreported("reporter-b", T0, 10_000, 10)).toEqual([]);
        expect(await b.claimUnreported("reporter-b", T0 + 9_999, 10_000, 10)).toEqual([]);
        // The holder may claim it again (renewing the lease), before or after it ends.
        expect((await b.claimUnreported("reporter-a", T0 + 5_000, 10_000, 10)).map((r) => r.runId)).toEqual([id]);
        expect(await b.claimUnreported("reporter-b", T0 + 14_999, 10_000, 10)).toEqual([]);
        // Another instance's releaseReport with the wrong owner frees nothing.
        await b.releaseReport(id, "reporter-b");
        expect(await b.claimUnreported("reporter-b", T0 + 14_999, 10_000, 10)).toEqual([]);
        expect(await b.getReport(id)).toEqual({ reportedSeq: 0, report: null });
      });

      it("lets another owner claim a run whose lease expired", async () => {
        const [a, b] = [await store(), await another()];
        const id = await runAt(a, T0, 2);
        await a.markReported(id, 1, { check_run_id: 7 });
        expect(await a.claimUnreported("reporter-a", T0, 10_000, 10)).toHaveLength(1);
        expect(await b.claimUnreported("reporter-b", T0 + 10_000, 10_000, 10)).toEqual([
          { runId: id, repo: "acme/widgets", seq: 2, reportedSeq: 1, report: { check_run_id: 7 } },
        ]);
        // Now b holds it: a, whose lease ended, gets nothing.
        expect(await a.claimUnreported("reporter-a", T0 + 10_001, 10_000, 10)).toEqual([]);
      });

      it("markReported frees the lease, even with a report still behind the journal; keepLease keeps it", async () => {
        const [a, b] = [await store(), await another()];
        const id = await runAt(a, T0, 3);
        expect(await a.claimUnreported("reporter-a", T0, 60_000, 10)).toHaveLength(1);
        await a.markReported(id, 1, { creating: true }, { keepLease: true });
        expect(await b.claimUnreported("reporter-b", T0 + 1, 60_000, 10)).toEqual([]);
        await a.markReported(id, 2, { check_run_id: 9 });
        expect(await b.claimUnreported("reporter-b", T0 + 1, 60_000, 10)).toEqual([
          { runId: id, repo: "acme/widgets", seq: 3, reportedSeq: 2, report: { check_run_id: 9 } },
        ]);
        expect(await a.claimUnreported("reporter-a", T0 + 2, 60_000, 10)).toEqual([]);
        // A stale writer (a lower seq) changes nothing, the lease included.
        await a.markReported(id, 1, { stale: true });
        expect(await a.claimUnreported("reporter-a", T0 + 2, 60_000, 10)).toEqual([]);
        expect(await a.getReport(id)).toEqual({ reportedSeq: 2, report: { check_run_id: 9 } });
      });

      it("releaseReport frees the lease for another owner, without reporting", async () => {
        const [a, b] = [await store(), await another()];
        const id = await runAt(a, T0, 2);
        expect(await a.claimUnreported("reporter-a", T0, 60_000, 10)).toHaveLength(1);
        expect(await b.claimUnreported("reporter-b", T0 + 1, 60_000, 10)).toEqual([]);
        await a.releaseReport(id, "reporter-a");
        await a.releaseReport(id, "reporter-a"); // freeing a free lease is harmless
        await a.releaseReport("no-such-run", "reporter-a");
        expect(await b.claimUnreported("reporter-b", T0 + 1, 60_000, 10)).toEqual([
          { runId: id, repo: "acme/widgets", seq: 2, reportedSeq: 0, report: null },
        ]);
        expect(await a.getReport(id)).toEqual({ reportedSeq: 0, report: null });
      });

      it("partitions the runs between concurrent claimers on two instances, never both getting one", async () => {
        const [a, b] = [await store(), await another()];
        const ids = new Set<string>();
        for (let i = 0; i < 60; i++) ids.add(await runAt(i % 2 ? a : b, T0 + i, 1 + (i % 3)));
        const claimedBy = new Map<string, string>();
        const worker = async (s: RunStore, owner: string): Promise<void> => {
          for (;;) {
            const got = await s.claimUnreported(owner, T0 + 100, 60_000, 2);
            if (got.length === 0) return;
            for (const r of got) {
              expect(claimedBy.has(r.runId), `run ${r.runId} claimed by ${claimedBy.get(r.runId)} and ${owner}`).toBe(false);
              claimedBy.set(r.runId, owner);
            }
            // Reported (which frees the lease): never claimable again, by anyone.
            for (const r of got) await s.markReported(r.runId, r.seq, { by: owner });
          }
        };
        await Promise.all(["1", "2", "3", "4"].flatMap((n) => [worker(a, `a${n}`), worker(b, `b${n}`)]));
        expect(new Set(claimedBy.keys())).toEqual(ids);
      });

      it("markReported never moves backwards: a stale writer leaves the row as it is", async () => {
        const s = await store();
        const id = await runAt(s, T0, 3);
        await s.markReported(id, 3, { v: 3 });
        await s.markReported(id, 2, { v: 2 }); // stale: no error, no effect
        await s.markReported(id, 0, { v: 0 });
        expect(await s.getReport(id)).toEqual({ reportedSeq: 3, report: { v: 3 } });
        await s.markReported(id, 3, { v: "3b" }); // the same seq may update the reporter's data
        expect(await s.getReport(id)).toEqual({ reportedSeq: 3, report: { v: "3b" } });
      });

      it("keeps the highest seq under concurrent writers from two instances", async () => {
        const stores = [await store(), await another()];
        const id = await runAt(stores[0]!, T0, 12);
        const order = [7, 2, 12, 5, 1, 11, 3, 9, 4, 10, 6, 8];
        await Promise.all(order.map((seq, i) => stores[i % 2]!.markReported(id, seq, { seq })));
        expect(await stores[1]!.getReport(id)).toEqual({ reportedSeq: 12, report: { seq: 12 } });
        expect(await stores[0]!.claimUnreported("w", T0, 1_000, 10)).toEqual([]);
      });

      it("rejects an unknown run, a seq past the journal and bad arguments", async () => {
        const s = await store();
        const id = await runAt(s, T0, 2);
        await expectCode(s.markReported("no-such-run", 1, {}), "RUN_NOT_FOUND");
        await expectCode(s.markReported(id, 3, {}), "INPUT_INVALID");
        await expectCode(s.markReported(id, -1, {}), "INPUT_INVALID");
        await expectCode(s.markReported(id, 1.5, {}), "INPUT_INVALID");
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await expectCode(s.markReported(id, 1, cyclic), "INPUT_INVALID");
        await expectCode(s.claimUnreported("w", T0, 1_000, -1), "INPUT_INVALID");
        await expectCode(s.claimUnreported("", T0, 1_000, 1), "INPUT_INVALID");
        await expectCode(s.claimUnreported("w", T0, 0, 1), "INPUT_INVALID");
        await expectCode(s.claimUnreported("w", Number.NaN, 1_000, 1), "INPUT_INVALID");
        await expectCode(s.releaseReport(id, ""), "INPUT_INVALID");
        expect(await s.getReport(id)).toBeUndefined();
        expect(await s.getReport("no-such-run")).toBeUndefined();
      });
    });

    describe("kv", () => {
      it("sets and gets values with versions starting at 1", async () => {
        const s = await store();
        const ns = uid("acme/kv");
        expect(await s.kvGet(ns, "k", T0)).toBeUndefined();
        expect(await s.kvSet(ns, "k", { a: [1, "x"] }, { now: T0 })).toEqual({ key: "k", value: { a: [1, "x"] }, version: 1, expiresAt: null });
        expect(await s.kvSet(ns, "k", "two", { now: T0 })).toMatchObject({ value: "two", version: 2 });
        expect(await s.kvGet(ns, "k", T0)).toEqual({ key: "k", value: "two", version: 2, expiresAt: null });
        for (const v of [null, 0, false, "", [], { deep: { x: "🚀" } }, 1.5]) {
          const e = await s.kvSet(ns, "shapes", v, { now: T0 });
          expect((await s.kvGet(ns, "shapes", T0))?.value).toEqual(v);
          expect(e.value).toEqual(v);
        }
      });

      it("keeps namespaces apart", async () => {
        const s = await store();
        const [n1, n2] = [uid("acme/a"), uid("acme/b")];
        await s.kvSet(n1, "k", 1, { now: T0 });
        expect(await s.kvGet(n2, "k", T0)).toBeUndefined();
        await s.kvSet(n2, "k", 2, { now: T0 });
        expect((await s.kvGet(n1, "k", T0))?.value).toBe(1);
        expect(await s.kvList(n2, T0)).toEqual([{ key: "k", value: 2, version: 1, expiresAt: null }]);
      });

      it("sets only on a matching ifVersion (0: absent), else throws ConflictError and keeps the value", async () => {
        const [a, b] = [await store(), await another()];
        const ns = uid("acme/cas");
        await expectCode(a.kvSet(ns, "k", "x", { now: T0, ifVersion: 1 }), "STATE_CONFLICT");
        expect(await a.kvGet(ns, "k", T0)).toBeUndefined();
        expect((await a.kvSet(ns, "k", "v1", { now: T0, ifVersion: 0 })).version).toBe(1);
        const err = await expectCode(b.kvSet(ns, "k", "again", { now: T0, ifVersion: 0 }), "STATE_CONFLICT");
        expect(err).toBeInstanceOf(ConflictError);
        expect((await b.kvSet(ns, "k", "v2", { now: T0, ifVersion: 1 })).version).toBe(2);
        await expectCode(a.kvSet(ns, "k", "stale", { now: T0, ifVersion: 1 }), "STATE_CONFLICT");
        expect(await a.kvGet(ns, "k", T0)).toMatchObject({ value: "v2", version: 2 });
      });

      it("lets one of several racing ifVersion writers win", async () => {
        const stores = [await store(), await another()];
        const ns = uid("acme/race");
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) => stores[i % 2]!.kvSet(ns, "lock", `holder-${i}`, { now: T0, ifVersion: 0 })),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(ConflictError);
        expect((await stores[0]!.kvGet(ns, "lock", T0))?.version).toBe(1);
      });

      it("expires a key at its TTL: it reads as absent and its next set starts at version 1", async () => {
        const s = await store();
        const ns = uid("acme/ttl");
        await s.kvSet(ns, "k", "a", { now: T0 });
        const e = await s.kvSet(ns, "k", "b", { now: T0, ttlMs: 1_000 });
        expect(e).toEqual({ key: "k", value: "b", version: 2, expiresAt: T0 + 1_000 });
        expect(await s.kvGet(ns, "k", T0 + 999)).toMatchObject({ value: "b", version: 2, expiresAt: T0 + 1_000 });
        expect(await s.kvGet(ns, "k", T0 + 1_000)).toBeUndefined();
        expect(await s.kvList(ns, T0 + 1_000)).toEqual([]);
        expect((await s.kvList(ns, T0 + 999)).map((x) => x.key)).toEqual(["k"]);
        await expectCode(s.kvSet(ns, "k", "c", { now: T0 + 2_000, ifVersion: 2 }), "STATE_CONFLICT");
        expect(await s.kvSet(ns, "k", "c", { now: T0 + 2_000, ifVersion: 0 })).toEqual({ key: "k", value: "c", version: 1, expiresAt: null });
        expect(await s.kvGet(ns, "k", T0 + 10_000_000)).toMatchObject({ value: "c", version: 1, expiresAt: null });
      });

      it("a set without ttl clears an earlier ttl", async () => {
        const s = await store();
        const ns = uid("acme/ttl2");
        await s.kvSet(ns, "k", 1, { now: T0, ttlMs: 10 });
        expect((await s.kvSet(ns, "k", 2, { now: T0 + 5 })).expiresAt).toBeNull();
        expect((await s.kvGet(ns, "k", T0 + 100))?.value).toBe(2);
      });

      it("increments atomically, from 0 when absent or expired, keeping a live TTL", async () => {
        const s = await store();
        const ns = uid("acme/incr");
        expect(await s.kvIncr(ns, "n", 1, T0)).toEqual({ key: "n", value: 1, version: 1, expiresAt: null });
        expect(await s.kvIncr(ns, "n", 5, T0)).toEqual({ key: "n", value: 6, version: 2, expiresAt: null });
        expect(await s.kvIncr(ns, "n", -2.5, T0)).toMatchObject({ value: 3.5, version: 3 });
        await s.kvSet(ns, "t", 10, { now: T0, ttlMs: 100 });
        expect(await s.kvIncr(ns, "t", 1, T0 + 50)).toEqual({ key: "t", value: 11, version: 2, expiresAt: T0 + 100 });
        expect(await s.kvIncr(ns, "t", 1, T0 + 100)).toEqual({ key: "t", value: 1, version: 1, expiresAt: null });
      });

      it("loses no increment under concurrency from two instances", async () => {
        const stores = [await store(), await another()];
        const ns = uid("acme/counter");
        const results = await Promise.all(Array.from({ length: 30 }, (_, i) => stores[i % 2]!.kvIncr(ns, "hits", 1, T0)));
        expect(results.map((r) => r.value).sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
        expect(await stores[1]!.kvGet(ns, "hits", T0)).toMatchObject({ value: 30, version: 30 });
      });

      it("refuses to increment a non-number with KV_NOT_A_NUMBER", async () => {
        const s = await store();
        const ns = uid("acme/nan");
        await s.kvSet(ns, "s", "text", { now: T0 });
        await expectCode(s.kvIncr(ns, "s", 1, T0), "KV_NOT_A_NUMBER");
        expect(await s.kvGet(ns, "s", T0)).toMatchObject({ value: "text", version: 1 });
        await expectCode(s.kvIncr(ns, "s", Number.NaN, T0), "INPUT_INVALID");
      });

      it("lists live keys in key order, optionally by prefix (case-sensitive, literal)", async () => {
        const s = await store();
        const ns = uid("acme/list");
        for (const k of ["b/2", "a", "b/1", "B/3", "b%x", "b_y", "c"]) await s.kvSet(ns, k, k, { now: T0 });
        await s.kvSet(ns, "b/gone", 0, { now: T0, ttlMs: 1 });
        expect((await s.kvList(ns, T0 + 1)).map((e) => e.key)).toEqual(["B/3", "a", "b%x", "b/1", "b/2", "b_y", "c"]);
        expect((await s.kvList(ns, T0 + 1, "b/")).map((e) => e.key)).toEqual(["b/1", "b/2"]);
        expect((await s.kvList(ns, T0, "b/")).map((e) => e.key)).toEqual(["b/1", "b/2", "b/gone"]);
        expect((await s.kvList(ns, T0 + 1, "b%")).map((e) => e.key)).toEqual(["b%x"]);
        expect((await s.kvList(ns, T0 + 1, "b_")).map((e) => e.key)).toEqual(["b_y"]);
        expect((await s.kvList(ns, T0 + 1, "zzz")).map((e) => e.key)).toEqual([]);
        expect((await s.kvList(ns, T0 + 1, "b/1"))[0]).toEqual({ key: "b/1", value: "b/1", version: 1, expiresAt: null });
      });

      it("deletes a key: true when it existed, false otherwise; a later set starts at version 1", async () => {
        const s = await store();
        const ns = uid("acme/del");
        await s.kvSet(ns, "k", 1, { now: T0 });
        await s.kvSet(ns, "k", 2, { now: T0 });
        expect(await s.kvDelete(ns, "k")).toBe(true);
        expect(await s.kvDelete(ns, "k")).toBe(false);
        expect(await s.kvGet(ns, "k", T0)).toBeUndefined();
        expect((await s.kvSet(ns, "k", 3, { now: T0 })).version).toBe(1);
      });

      it("rejects bad keys, ttl, if_version and unserialisable values with INPUT_INVALID", async () => {
        const s = await store();
        const ns = uid("acme/bad");
        await expectCode(s.kvSet(ns, "", 1, { now: T0 }), "INPUT_INVALID");
        await expectCode(s.kvSet("", "k", 1, { now: T0 }), "INPUT_INVALID");
        await expectCode(s.kvSet(ns, "k", 1, { now: T0, ttlMs: 0 }), "INPUT_INVALID");
        await expectCode(s.kvSet(ns, "k", 1, { now: T0, ifVersion: -1 }), "INPUT_INVALID");
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await expectCode(s.kvSet(ns, "k", cyclic, { now: T0 }), "INPUT_INVALID");
        await expectCode(s.kvSet(ns, "k", 10n, { now: T0 }), "INPUT_INVALID");
        expect(await s.kvGet(ns, "k", T0)).toBeUndefined();
      });
    });

    describe("server credentials: API tokens", () => {
      const hashOf = () => randomUUID().replace(/-/g, "").padEnd(64, "0");

      it("keeps a token under its hash; finds, lists and revokes it, from any instance", async () => {
        const s = await store();
        const id = uid("tok");
        const hash = hashOf();
        await s.createToken({ id, hash, login: "ann", repo: "acme/widgets", kind: "human", createdAt: T0, expiresAt: T0 + 1_000, revokedAt: null });
        const token = { id, login: "ann", repo: "acme/widgets", kind: "human", createdAt: T0, expiresAt: T0 + 1_000, revokedAt: null };
        expect(await (await another()).findToken(hash)).toEqual(token);
        expect(await s.findToken(hashOf())).toBeUndefined();
        const later = uid("tok");
        await s.createToken({ id: later, hash: hashOf(), login: "bob", repo: null, kind: "agent", createdAt: T0 + 5, expiresAt: null, revokedAt: null });
        const listed = (await s.listTokens()).filter((t) => t.id === id || t.id === later);
        expect(listed.map((t) => t.id)).toEqual([later, id]);
        expect(listed[0]!.kind).toBe("agent");
        expect(listed[1]).toEqual(token);
        expect(await s.revokeToken(id, T0 + 10)).toEqual({ ...token, revokedAt: T0 + 10 });
        // A second revocation keeps the first time.
        expect(await s.revokeToken(id, T0 + 20)).toEqual({ ...token, revokedAt: T0 + 10 });
        expect((await s.findToken(hash))?.revokedAt).toBe(T0 + 10);
        expect(await s.revokeToken(uid("tok"), T0)).toBeUndefined();
      });

      it("refuses a duplicate id or hash with a conflict, and a malformed token with INPUT_INVALID", async () => {
        const s = await store();
        const id = uid("tok");
        const hash = hashOf();
        const base = { id, hash, login: "ann", repo: null, kind: "human" as const, createdAt: T0, expiresAt: null, revokedAt: null };
        await s.createToken(base);
        await expect(s.createToken({ ...base, hash: hashOf() })).rejects.toBeInstanceOf(ConflictError);
        await expect(s.createToken({ ...base, id: uid("tok") })).rejects.toBeInstanceOf(ConflictError);
        await expectCode(s.createToken({ ...base, id: uid("tok"), hash: "not-hex" }), "INPUT_INVALID");
        await expectCode(s.createToken({ ...base, id: uid("tok"), hash: hashOf(), login: "" }), "INPUT_INVALID");
        await expectCode(s.createToken({ ...base, id: uid("tok"), hash: hashOf(), repo: "widgets" }), "INPUT_INVALID");
        await expectCode(s.createToken({ ...base, id: "has space", hash: hashOf() }), "INPUT_INVALID");
        await expectCode(s.createToken({ ...base, id: uid("tok"), hash: hashOf(), kind: "robot" as "agent" }), "INPUT_INVALID");
      });
    });

    describe("server credentials: keys", () => {
      it("stores the first key of a name; every later caller, on any instance, gets that one", async () => {
        const s = await store();
        const name = uid("link-key");
        const first = "k".repeat(32);
        expect(await s.serverKey(name, first)).toBe(first);
        expect(await (await another()).serverKey(name, "x".repeat(32))).toBe(first);
        await expectCode(s.serverKey(name, "short"), "INPUT_INVALID");
      });

      it("two instances creating one key at once agree on it", async () => {
        const name = uid("link-key");
        const stores = [await another(), await another(), await another()];
        const keys = await Promise.all(stores.map((x, i) => x.serverKey(name, String(i).repeat(32))));
        expect(new Set(keys).size).toBe(1);
      });
    });

    describe("server credentials: hook claims", () => {
      it("claims keys once until they expire; all or none", async () => {
        const s = await store();
        const [a, b, c] = [uid("sig"), uid("delivery"), uid("delivery")];
        expect(await s.claimHookKeys([a, b], T0, T0 + 600_000)).toBe(true);
        expect(await s.claimHookKeys([a, b], T0 + 1, T0 + 600_000)).toBe(false);
        expect(await (await another()).claimHookKeys([b], T0 + 1, T0 + 600_000)).toBe(false);
        // One key held: nothing is claimed, so `c` is still free afterwards.
        expect(await s.claimHookKeys([c, a], T0 + 1, T0 + 600_000)).toBe(false);
        expect(await s.claimHookKeys([c, c], T0 + 1, T0 + 600_000)).toBe(true);
        // Expired claims no longer hold.
        expect(await s.claimHookKeys([a, b], T0 + 600_000, T0 + 1_200_000)).toBe(true);
      });

      it("of many instances claiming one key at once, exactly one wins", async () => {
        const key = uid("sig");
        const stores = [await another(), await another(), await another(), await another()];
        const won = await Promise.all(stores.flatMap((x) => [x.claimHookKeys([key, uid("d")], T0, T0 + 600_000), x.claimHookKeys([uid("d"), key], T0, T0 + 600_000)]));
        expect(won.filter(Boolean)).toHaveLength(1);
      });

      it("rejects empty or oversized keys and an expiry not after now", async () => {
        const s = await store();
        await expectCode(s.claimHookKeys([], T0, T0 + 1), "INPUT_INVALID");
        await expectCode(s.claimHookKeys([""], T0, T0 + 1), "INPUT_INVALID");
        await expectCode(s.claimHookKeys(["k".repeat(513)], T0, T0 + 1), "INPUT_INVALID");
        await expectCode(s.claimHookKeys([uid("sig")], T0, T0), "INPUT_INVALID");
      });
    });

    describe("kv writes with an append", () => {
      async function running(s: RunStore): Promise<string> {
        const run = newRun({ status: "running" });
        await s.createRun(run, [created(run.id)]);
        return run.id;
      }
      const write = (namespace: string, key: string, expectVersion: number, next: KvWrite["next"], now = T0): KvWrite => ({ namespace, key, expectVersion, now, next });

      it("commits the write with the events: both or neither", async () => {
        const [a, b] = [await store(), await another()];
        const ns = uid("acme/kvtx");
        const id = await running(a);
        await a.append(id, 1, [succeeded("incr", T0 + 1, { value: 1, version: 1 })], {
          status: "running",
          wakeAt: null,
          kv: write(ns, "n", 0, { value: 1, version: 1, expiresAt: null }),
        });
        expect(await b.kvGet(ns, "n", T0)).toEqual({ key: "n", value: 1, version: 1, expiresAt: null });
        expect(await b.loadJournal(id)).toHaveLength(2);
        // A journal that moved on: nothing is appended and the key is left as it was.
        await expectCode(
          b.append(id, 1, [succeeded("again", T0 + 2)], { status: "running", wakeAt: null, kv: write(ns, "n", 1, { value: 2, version: 2, expiresAt: null }) }),
          "STATE_CONFLICT",
        );
        expect(await a.kvGet(ns, "n", T0)).toMatchObject({ value: 1, version: 1 });
        expect(await a.loadJournal(id)).toHaveLength(2);
      });

      it("refuses a write whose key moved since it was read: ConflictError naming the key, nothing appended", async () => {
        const s = await store();
        const ns = uid("acme/kvmoved");
        const id = await running(s);
        await s.kvSet(ns, "k", "first", { now: T0 });
        await s.kvSet(ns, "k", "second", { now: T0 });
        const err = await expectCode(
          s.append(id, 1, [succeeded("set", T0 + 1)], { status: "running", wakeAt: null, kv: write(ns, "k", 1, { value: "mine", version: 2, expiresAt: null }) }),
          "STATE_CONFLICT",
        );
        expect(err.details).toMatchObject({ kvKey: "k", expectedVersion: 1, actualVersion: 2 });
        expect(await s.kvGet(ns, "k", T0)).toMatchObject({ value: "second", version: 2 });
        expect((await s.getRun(id))?.seq).toBe(1);
        // A key read absent that someone created meanwhile has moved too.
        await expectCode(
          s.append(id, 1, [succeeded("set", T0 + 1)], { status: "running", wakeAt: null, kv: write(ns, "k", 0, { value: "new", version: 1, expiresAt: null }) }),
          "STATE_CONFLICT",
        );
        expect((await s.getRun(id))?.seq).toBe(1);
      });

      it("judges what is live at the step's time: an expired key was absent; deletes and expiries are written", async () => {
        const s = await store();
        const ns = uid("acme/kvttl");
        const id = await running(s);
        await s.kvSet(ns, "t", "old", { now: T0, ttlMs: 100 });
        let seq = await s.append(id, 1, [succeeded("a", T0 + 200)], {
          status: "running",
          wakeAt: null,
          kv: write(ns, "t", 0, { value: "fresh", version: 1, expiresAt: T0 + 10_000 }, T0 + 200),
        });
        expect(await s.kvGet(ns, "t", T0 + 200)).toEqual({ key: "t", value: "fresh", version: 1, expiresAt: T0 + 10_000 });
        seq = await s.append(id, seq, [succeeded("b", T0 + 300)], { status: "running", wakeAt: null, kv: write(ns, "t", 1, null, T0 + 300) });
        expect(seq).toBe(3);
        expect(await s.kvGet(ns, "t", T0 + 300)).toBeUndefined();
        expect(await s.kvList(ns, T0)).toEqual([]);
      });

      it("of two runs writing one key from the version they both read, exactly one commits", async () => {
        const [a, b] = [await store(), await another()];
        const ns = uid("acme/kvrace");
        const [r1, r2] = [await running(a), await running(a)];
        const results = await Promise.allSettled([
          a.append(r1, 1, [succeeded("incr", T0 + 1)], { status: "running", wakeAt: null, kv: write(ns, "c", 0, { value: 1, version: 1, expiresAt: null }) }),
          b.append(r2, 1, [succeeded("incr", T0 + 1)], { status: "running", wakeAt: null, kv: write(ns, "c", 0, { value: 1, version: 1, expiresAt: null }) }),
        ]);
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        const lost = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        expect(lost?.reason).toBeInstanceOf(ConflictError);
        expect((lost?.reason as ConflictError).details.kvKey).toBe("c");
        const seqs = [(await a.getRun(r1))?.seq, (await a.getRun(r2))?.seq].sort();
        expect(seqs).toEqual([1, 2]);
        expect(await a.kvGet(ns, "c", T0)).toMatchObject({ value: 1, version: 1 });
      });

      it("rejects a malformed kv write with INPUT_INVALID, appending nothing", async () => {
        const s = await store();
        const id = await running(s);
        const ns = uid("acme/kvbad");
        await expectCode(s.append(id, 1, [], { status: "running", wakeAt: null, kv: write(ns, "", 0, null) }), "INPUT_INVALID");
        await expectCode(s.append(id, 1, [], { status: "running", wakeAt: null, kv: write(ns, "k", -1, null) }), "INPUT_INVALID");
        await expectCode(s.append(id, 1, [], { status: "running", wakeAt: null, kv: write(ns, "k", 0, { value: 1, version: 0, expiresAt: null }) }), "INPUT_INVALID");
        expect((await s.getRun(id))?.seq).toBe(1);
      });
    });

    describe("wake-ups", () => {
      it("onWake hears another instance give a run a wake-up; stopping it stops it", async () => {
        const [a, b] = [await store(), await another()];
        let heard!: () => void;
        const woken = new Promise<void>((resolve) => (heard = resolve));
        const stop = await a.onWake(() => heard());
        try {
          const run = newRun({ wakeAt: null, status: "waiting" });
          await b.createRun(run, [created(run.id)]);
          await b.append(run.id, 1, [{ type: "callback_received", at: T0, step: "cb", body: {} }], { status: "waiting", wakeAt: T0 });
          await woken;
        } finally {
          await stop();
        }
        await stop(); // twice: a no-op
      });
    });

    describe("retention", () => {
      const DAY = 86_400_000;
      // Far before every other test's times: the prune calls are global.
      const OLD = T0 - 1_000 * DAY;

      async function endedRun(s: RunStore, at: number, status: RunStatus, tokens: { token: string; step: string }[] = []): Promise<string> {
        const run = newRun({ createdAt: at, callbackTokens: tokens });
        await s.createRun(run, [created(run.id, at)]);
        const end: JournalEvent[] =
          status === "succeeded" || status === "failed" || status === "cancelled" || status === "timed_out"
            ? [{ type: "run_completed", at: at + 1, status, outputs: {} }]
            : [{ type: "run_started", at: at + 1 }];
        await s.append(run.id, 1, end, { status, wakeAt: null });
        return run.id;
      }

      it("deletes ended runs older than the cutoff with their journals, callback tokens and reports, and keeps the rest", async () => {
        const s = await store();
        const token = uid("tok");
        const old = await endedRun(s, OLD, "succeeded", [{ token, step: "wait" }]);
        const oldFailed = await endedRun(s, OLD + 10, "failed");
        await s.markReported(old, 2, { check_run: 1 });
        const waiting = await endedRun(s, OLD, "waiting");
        const recent = await endedRun(s, T0 - 500 * DAY, "succeeded");

        // The limit bounds one transaction; the oldest go first.
        expect(await s.pruneRuns(OLD + 900 * DAY / 2, 1)).toEqual([old]);
        expect(await s.getRun(old)).toBeUndefined();
        expect(await s.loadJournal(old)).toEqual([]);
        expect(await s.findCallback(token)).toBeUndefined();
        expect(await s.getReport(old)).toBeUndefined();
        expect(await s.pruneRuns(OLD + 900 * DAY / 2, 100)).toEqual([oldFailed]);

        // A run that has not ended stays, however old; a recent one stays.
        expect((await s.getRun(waiting))?.status).toBe("waiting");
        expect(await s.loadJournal(waiting)).toHaveLength(2);
        expect((await s.getRun(recent))?.status).toBe("succeeded");
        expect(await s.pruneRuns(OLD + 900 * DAY / 2, 100)).toEqual([]);
        await expect(s.pruneRuns(Number.NaN, 1)).rejects.toBeInstanceOf(SluiceError);
        // Leave nothing of this test for the others' global queries.
        await s.append(waiting, 2, [{ type: "run_completed", at: OLD + 2, status: "cancelled", outputs: {} }], { status: "cancelled", wakeAt: null });
        expect(await s.pruneRuns(OLD + 900 * DAY / 2, 100)).toEqual([waiting]);
      });

      it("drops the payloads of processed deliveries older than the cutoff, never of one still to process, and keeps their ids", async () => {
        const s = await store();
        const done = { id: uid("d"), event: "push", payload: { big: "x".repeat(1000) }, receivedAt: OLD };
        const pending = { id: uid("d"), event: "push", payload: { big: "y" }, receivedAt: OLD };
        const young = { id: uid("d"), event: "push", payload: { big: "z" }, receivedAt: T0 };
        for (const d of [done, pending, young]) await s.recordDelivery(d);
        const claimed = await s.claimDeliveries("w", T0, 60_000, 100);
        expect(claimed.map((d) => d.id)).toEqual(expect.arrayContaining([done.id, pending.id, young.id]));
        await s.finishDelivery(done.id, {});
        await s.finishDelivery(young.id, {});
        await s.finishDelivery(pending.id, { retryAt: T0 + 1 });
        expect(await s.pruneDeliveries(OLD + 1)).toBe(1);
        expect(await s.pruneDeliveries(OLD + 1)).toBe(0);
        // Every id is still known: a replay is refused, however old.
        for (const d of [done, pending, young]) expect(await s.recordDelivery(d)).toBe(false);
        // The pending delivery keeps its payload for its next attempt.
        const again = await s.claimDeliveries("w", T0 + 2, 60_000, 100);
        expect(again.find((d) => d.id === pending.id)?.payload).toEqual({ big: "y" });
        await s.finishDelivery(pending.id, {});
      });

      it("deletes expired kv entries and hook claims, and keeps live ones", async () => {
        const s = await store();
        const ns = uid("acme/retention");
        await s.kvSet(ns, "gone", 1, { now: OLD, ttlMs: 1_000 });
        await s.kvSet(ns, "live", 2, { now: OLD, ttlMs: 10_000 });
        await s.kvSet(ns, "forever", 3, { now: OLD });
        const claim = uid("hook");
        expect(await s.claimHookKeys([claim], OLD, OLD + 1_000)).toBe(true);
        expect(await s.pruneExpired(OLD + 5_000)).toBeGreaterThanOrEqual(2);
        const left = (await s.kvList(ns, OLD)).map((e) => e.key).sort();
        expect(left).toEqual(["forever", "live"]);
        // The claim is gone: the same key may be claimed again (at a time it would have been held).
        expect(await s.claimHookKeys([claim], OLD + 500, OLD + 2_000)).toBe(true);
      });
    });

    describe("durability across instances", () => {
      it("a new instance on the same database sees everything an earlier one wrote", async () => {
        const a = await another();
        const run = newRun({ wakeAt: null });
        const ns = uid("acme/durable");
        await a.createRun(run, [created(run.id)]);
        await a.append(run.id, 1, [{ type: "run_started", at: T0 + 1 }], { status: "running", wakeAt: null });
        await a.kvSet(ns, "k", { v: 1 }, { now: T0 });
        await a.close();
        const b = await another();
        expect((await b.getRun(run.id))?.status).toBe("running");
        expect(await b.loadJournal(run.id)).toHaveLength(2);
        expect((await b.kvGet(ns, "k", T0))?.value).toEqual({ v: 1 });
      });
    });
  });
}
