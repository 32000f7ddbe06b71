/**
 * A delivery's lease (src/adapters/github/delivery-lease.ts) on a real SQLite store: while one
 * process renews it, another is told to come back later (and is never given up for it); once the
 * holder stops renewing (it died), the lease lapses and the other takes the delivery over.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { leaseDelivery } from "../../../src/adapters/github/delivery-lease.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { RetryAfterError } from "../../../src/core/errors.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-lease-"));
const store = openSqliteRunStore(join(dir, "sluice.db"));
const quiet = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const lease = (owner: string) => leaseDelivery(store, "d-1", { owner, clock: Date.now, logger: quiet, leaseMs: 300 });

describe("a delivery's lease", () => {
  it("keeps another process out while its holder renews it, and lets it in once the holder stops", async () => {
    const a = await lease("process-a");
    await expect(lease("process-b")).rejects.toBeInstanceOf(RetryAfterError);
    // Past the lease's length: still held, because it is renewed.
    await new Promise((r) => setTimeout(r, 700));
    const refused = await lease("process-b").catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "STATE_CONFLICT" });
    // The holder dies (stops renewing): the lease lapses and b takes the delivery over.
    a.end();
    await new Promise((r) => setTimeout(r, 400));
    const b = await lease("process-b");
    expect(b.lost()).toBe(false);
    // A holder may take its own lease again (its next attempt).
    const again = await lease("process-b");
    b.end();
    again.end();
  });
});
