/** The inbox and the scheduler against a real SQLite store. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInbox, retryDelayMs } from "../../../src/adapters/github/inbox.js";
import { createScheduler, latestTick, nextTick } from "../../../src/adapters/github/scheduler.js";
import { setLiveRelease } from "../../../src/adapters/github/snapshot.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { validateFlow } from "../../../src/core/flow/validate.js";
import type { Delivery, RunStore } from "../../../src/ports/run-store.js";
import { RetryAfterError } from "../../../src/core/errors.js";

const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
const dir = mkdtempSync(join(tmpdir(), "sluice-inbox-"));
let store: RunStore;
beforeAll(() => {
  store = openSqliteRunStore(join(dir, "sluice.db"));
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("inbox", () => {
  it("tries a failing delivery again after its backoff, then finishes it", async () => {
    let now = 1_000_000;
    const seen: number[] = [];
    const inbox = createInbox({
      store,
      logger: quiet,
      owner: "w1",
      clock: () => now,
      handle: async (d) => {
        seen.push(d.attempts);
        if (d.attempts === 1) throw new Error("GitHub answered 502");
      },
    });
    expect(await store.recordDelivery({ id: "retry-1", event: "push", payload: {}, receivedAt: now })).toBe(true);
    expect(await inbox.processOnce()).toBe(1);
    expect(await inbox.processOnce()).toBe(0); // not due yet
    now += retryDelayMs(1);
    expect(await inbox.processOnce()).toBe(1);
    now += 3_600_000;
    expect(await inbox.processOnce()).toBe(0); // done for good
    expect(seen).toEqual([1, 2]);
    expect(await store.recordDelivery({ id: "retry-1", event: "push", payload: {}, receivedAt: now })).toBe(false);
  });

  it("gives a delivery up after its last attempt", async () => {
    let now = 2_000_000;
    let calls = 0;
    const inbox = createInbox({ store, logger: quiet, owner: "w1", clock: () => now, maxAttempts: 2, handle: async () => {
        calls++;
        throw new Error("always");
      },
    });
    await store.recordDelivery({ id: "doomed", event: "push", payload: {}, receivedAt: now });
    for (let i = 0; i < 4; i++) {
      await inbox.processOnce();
      now += 24 * 3_600_000;
    }
    expect(calls).toBe(2);
  });

  it("a delivery that fails while GitHub holds the app is tried again after the hold, even past its last attempt", async () => {
    let now = 2_500_000;
    let calls = 0;
    const holdUntil = now + 3 * 3_600_000;
    const inbox = createInbox({
      store,
      logger: quiet,
      owner: "w1",
      clock: () => now,
      maxAttempts: 1,
      holdOf: async () => (now < holdUntil ? holdUntil : undefined),
      handle: async () => {
        if (++calls === 1) throw new RetryAfterError("GITHUB_RATE_LIMITED", "GitHub's budget lets no request through", holdUntil - now);
      },
    });
    await store.recordDelivery({ id: "held", event: "push", payload: {}, receivedAt: now });
    expect(await inbox.processOnce()).toBe(1);
    now = holdUntil - 1;
    expect(await inbox.processOnce()).toBe(0); // not before the hold ends
    now = holdUntil;
    expect(await inbox.processOnce()).toBe(1);
    expect(calls).toBe(2);
  });

  it("handles the deliveries of one key in order, one at a time, and other keys alongside", async () => {
    const events: string[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const inbox = createInbox({
      store,
      logger: quiet,
      owner: "w2",
      concurrency: 4,
      keyOf: (d: Delivery) => (d.payload as { repo: string }).repo,
      handle: async (d) => {
        events.push(`start ${d.id}`);
        if (d.id === "k-a1") await gate;
        events.push(`end ${d.id}`);
      },
    });
    const t = 3_000_000;
    await store.recordDelivery({ id: "k-a1", event: "x", payload: { repo: "a" }, receivedAt: t });
    await store.recordDelivery({ id: "k-a2", event: "x", payload: { repo: "a" }, receivedAt: t + 1 });
    await store.recordDelivery({ id: "k-b1", event: "x", payload: { repo: "b" }, receivedAt: t + 2 });
    const done = inbox.processOnce();
    while (!events.includes("end k-b1")) await new Promise((r) => setTimeout(r, 5));
    expect(events).toEqual(["start k-a1", "start k-b1", "end k-b1"]);
    release();
    expect(await done).toBe(3);
    expect(events.slice(3)).toEqual(["end k-a1", "start k-a2", "end k-a2"]);
  });
});

describe("schedules", () => {
  it("finds the latest tick in a window, in the schedule's time zone", () => {
    const from = Date.parse("2027-03-27T00:00:00Z");
    // 03:00 in Berlin is 02:00 UTC before the clocks change on 28 March, 01:00 UTC after.
    expect(latestTick("0 3 * * *", "Europe/Berlin", from, Date.parse("2027-03-27T05:00:00Z"))?.toISOString()).toBe("2027-03-27T02:00:00.000Z");
    expect(latestTick("0 3 * * *", "Europe/Berlin", from, Date.parse("2027-03-29T05:00:00Z"))?.toISOString()).toBe("2027-03-29T01:00:00.000Z");
    expect(latestTick("0 3 * * *", "Europe/Berlin", from, Date.parse("2027-03-27T01:59:59Z"))).toBeUndefined();
    expect(latestTick("0 3 * * *", "UTC", Date.parse("2027-03-27T03:00:00Z"), Date.parse("2027-03-27T03:00:30Z"))).toBeUndefined();
    expect(nextTick("*/15 * * * *", "UTC", Date.parse("2027-03-27T03:01:00Z"))).toBe(Date.parse("2027-03-27T03:15:00Z"));
  });

  it("records a due tick once per process and across processes, and counts from the release", async () => {
    const flow = validateFlow(`name: hourly\non:\n  schedule:\n    - cron: "0 * * * *"\nsteps:\n  - id: a\n    sleep: 1s\n`).flow!;
    const released = Date.parse("2031-05-01T10:30:00Z");
    await setLiveRelease(store, "acme/sched", { sha: "c".repeat(40), ref: "main", at: released }, released);
    let ticks = 0;
    const mk = () => createScheduler({ store, logger: quiet, flowsAt: async (repo) => (repo === "acme/sched" ? [flow] : []), onTick: () => ticks++ });
    const [one, two] = [mk(), mk()];
    expect((await one.tickOnce(released + 60_000)).recorded).toBe(0); // 10:31: nothing since the release
    const at11 = Date.parse("2031-05-01T11:00:10Z");
    const r = await one.tickOnce(at11);
    expect(r).toEqual({ recorded: 1, next: Date.parse("2031-05-01T12:00:00Z") });
    expect((await two.tickOnce(at11)).recorded).toBe(0);
    expect((await two.tickOnce(Date.parse("2031-05-01T15:20:00Z"))).recorded).toBe(1); // 12, 13, 14, 15 missed: one run
    expect(ticks).toBe(2);
    const due = await store.claimDeliveries("probe", Date.parse("2031-05-02T00:00:00Z"), 60_000, 10);
    expect(due.filter((d) => d.event === "schedule").map((d) => d.id).sort()).toEqual([
      "schedule:acme/sched:hourly:2031-05-01T11:00:00.000Z",
      "schedule:acme/sched:hourly:2031-05-01T15:00:00.000Z",
    ]);
  });
});
