import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kvExecutor } from "../../../src/adapters/steps/kv.js";
import type { StepResult } from "../../../src/ports/step-executor.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { ConflictError, NonRetriableError, SluiceError } from "../../../src/core/errors.js";
import { makeStepContext } from "../../support/step-context.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-kv-step-"));
const store = openSqliteRunStore(join(dir, "kv.db"));
/** The run whose appends carry the steps' kv writes, as the runtime's do. */
const RUN = "run-kv";
beforeAll(async () => {
  await store.createRun(
    { id: RUN, flow: "kv", repo: "acme/widgets", status: "running", release: { sha: "0".repeat(40), ref: "refs/heads/main", kind: "live" }, concurrencyGroup: null, createdAt: clock, wakeAt: null, callbackTokens: [] },
    [],
  );
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

let clock = Date.UTC(2030, 0, 1);
function ctx(repo = "acme/widgets", extra: Parameters<typeof makeStepContext>[0] = {}) {
  return makeStepContext({ store, repo, now: () => clock, ...extra });
}

/**
 * Runs the step as the runtime does: its write (if any) is applied by the store with an append,
 * and a write whose key moved meanwhile is run again.
 */
async function run(params: Record<string, unknown>, repo?: string) {
  for (;;) {
    const result: StepResult = await kvExecutor.execute(params, ctx(repo));
    if (!result.kv) return result.outputs;
    try {
      await store.append(RUN, 0, [], { status: "running", wakeAt: null, kv: result.kv });
      return result.outputs;
    } catch (e) {
      if (!(e instanceof ConflictError) || e.details.kvKey === undefined) throw e;
    }
  }
}

async function failure(params: Record<string, unknown>, repo?: string): Promise<SluiceError> {
  const err = await kvExecutor.execute(params, ctx(repo)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SluiceError);
  return err as SluiceError;
}

describe("kv step", () => {
  it("has kind kv", () => {
    expect(kvExecutor.kind).toBe("kv");
  });

  it("get of an absent key gives value null and version 0", async () => {
    expect(await run({ get: "absent" })).toEqual({ value: null, version: 0 });
  });

  it("set then get round-trips values, with versions counting up from 1", async () => {
    expect(await run({ set: { key: "cfg", value: { replicas: 3, tags: ["a"] } } })).toEqual({
      value: { replicas: 3, tags: ["a"] },
      version: 1,
      expires_at: null,
    });
    expect(await run({ set: { key: "cfg", value: "second" } })).toMatchObject({ value: "second", version: 2 });
    expect(await run({ get: "cfg" })).toEqual({ value: "second", version: 2, expires_at: null });
    expect(await run({ set: { key: "nothing", value: null } })).toMatchObject({ value: null, version: 1 });
  });

  it("keeps each repository's keys apart", async () => {
    await run({ set: { key: "shared-name", value: "mine" } }, "acme/one");
    expect(await run({ get: "shared-name" }, "acme/two")).toEqual({ value: null, version: 0 });
    expect((await store.kvGet("acme/one", "shared-name", clock))?.value).toBe("mine");
  });

  it("if_version guards a set: 0 means absent; a mismatch is KV_VERSION_CONFLICT and never retried", async () => {
    expect(await run({ set: { key: "lock", value: "run-1", if_version: 0 } })).toMatchObject({ version: 1 });
    const err = await failure({ set: { key: "lock", value: "run-2", if_version: 0 } });
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("KV_VERSION_CONFLICT");
    expect(err.details).toMatchObject({ key: "lock", expected_version: 0, actual_version: 1 });
    expect(await run({ set: { key: "lock", value: "run-3", if_version: "1" } })).toMatchObject({ value: "run-3", version: 2 });
    expect(await run({ get: "lock" })).toMatchObject({ value: "run-3", version: 2 });
  });

  it("ttl is a duration: the key expires, then reads as absent and restarts at version 1", async () => {
    const t = clock;
    expect(await run({ set: { key: "session", value: 1, ttl: "10m" } })).toEqual({
      value: 1,
      version: 1,
      expires_at: new Date(t + 600_000).toISOString(),
    });
    await run({ set: { key: "session", value: 2, ttl: "10m" } });
    clock = t + 600_000;
    expect(await run({ get: "session" })).toEqual({ value: null, version: 0 });
    expect(await run({ set: { key: "session", value: 3 } })).toMatchObject({ version: 1 });
    clock = t;
  });

  it("incr adds atomically, from 0 when absent; by defaults to 1", async () => {
    expect(await run({ incr: { key: "hits", by: 5 } })).toMatchObject({ value: 5, version: 1 });
    expect(await run({ incr: { key: "hits" } })).toMatchObject({ value: 6, version: 2 });
    expect(await run({ incr: "hits" })).toMatchObject({ value: 7, version: 3 });
    expect(await run({ incr: { key: "hits", by: "-10" } })).toMatchObject({ value: -3, version: 4 });
    const outs = await Promise.all(Array.from({ length: 10 }, () => run({ incr: { key: "parallel", by: 1 } })));
    expect(outs.map((o) => o.value).sort((a, b) => Number(a) - Number(b))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("makes no write itself: the write comes back with the outputs, for the store to apply with the result", async () => {
    await run({ set: { key: "held", value: 1 } });
    const result: StepResult = await kvExecutor.execute({ incr: { key: "held", by: 2 } }, ctx());
    expect(result.outputs).toMatchObject({ value: 3, version: 2 });
    expect(result.kv).toEqual({ namespace: "acme/widgets", key: "held", expectVersion: 1, now: clock, next: { value: 3, version: 2, expiresAt: null } });
    expect(await store.kvGet("acme/widgets", "held", clock)).toMatchObject({ value: 1, version: 1 });
    // Gets write nothing.
    const get: StepResult = await kvExecutor.execute({ get: "held" }, ctx());
    expect(get.kv).toBeUndefined();
  });

  it("incr on a non-number is KV_NOT_A_NUMBER, never retried", async () => {
    await run({ set: { key: "text", value: "hello" } });
    const err = await failure({ incr: { key: "text", by: 1 } });
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("KV_NOT_A_NUMBER");
  });

  it("delete removes a key and says whether it existed", async () => {
    await run({ set: { key: "gone", value: 1 } });
    expect(await run({ delete: "gone" })).toEqual({ value: null, version: 0, deleted: true });
    expect(await run({ delete: "gone" })).toEqual({ value: null, version: 0, deleted: false });
    expect(await run({ get: "gone" })).toEqual({ value: null, version: 0 });
  });

  it("refuses bad parameters with PARAM_INVALID", async () => {
    for (const params of [
      {},
      { get: "a", delete: "a" },
      { get: { key: "a" } },
      { get: "" },
      { set: "a" },
      { set: { key: "a" } },
      { set: { value: 1 } },
      { set: { key: "a", value: 1, ttl: "soon" } },
      { set: { key: "a", value: 1, if_version: -1 } },
      { set: { key: "a", value: 1, if_version: 1.5 } },
      { set: { key: "a", value: "x".repeat(1024 * 1024 + 1) } },
      { incr: { key: "n", by: "many" } },
      { incr: 42 },
      { incr: ["n"] },
    ]) {
      const err = await failure(params);
      expect(err, JSON.stringify(params).slice(0, 80)).toBeInstanceOf(NonRetriableError);
      expect(err.code, JSON.stringify(params).slice(0, 80)).toBe("PARAM_INVALID");
    }
  });

  it("does nothing once the step is aborted", async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await kvExecutor.execute({ set: { key: "aborted", value: 1 } }, ctx(undefined, { signal: controller.signal })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "STEP_ABORTED" });
    expect(await run({ get: "aborted" })).toEqual({ value: null, version: 0 });
  });
});
