/**
 * The engine's commits, in process, on a real SQLite store and real executors against a peer on
 * loopback. The store is observed (its appends recorded as they are made), never replaced:
 *   - one commit per step: a step's result and the next step's start are one append;
 *   - a write's start is committed durably before the write reaches the peer, and so is its
 *     result; reads commit without an fsync;
 *   - a kv write commits with its result, and a key another run moved meanwhile makes the step
 *     run again (the same attempt), so no increment is lost or repeated;
 *   - the heartbeat keeps a run's lease through an advance that outlasts the lease, so another
 *     worker never takes over a run whose worker is alive.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createLogger } from "../../src/adapters/logger.js";
import { defaultExecutors } from "../../src/adapters/steps/index.js";
import { FileResourceStore } from "../../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore, type SqliteRunStore } from "../../src/adapters/store/sqlite/sqlite-run-store.js";
import { Runtime } from "../../src/app/runtime.js";
import type { JournalEvent } from "../../src/core/engine/events.js";
import { ConflictError } from "../../src/core/errors.js";
import type { Config } from "../../src/core/flow/types.js";
import { normaliseConfig, validateFlow } from "../../src/core/flow/validate.js";
import type { AppendUpdate, RunStore } from "../../src/ports/run-store.js";
import { startHttpPeer, type HttpPeer } from "../support/http-peer.js";

interface Append {
  run: string;
  types: string[];
  durable: boolean;
  kv: boolean;
  /** The journal as the store held it when the append returned. */
  journalAfter: number;
}

/** kv writes refused because their key moved (another run wrote it first). */
let kvConflicts = 0;

/** The real store, with every append it is asked for recorded (arguments and outcome). */
function observed(store: SqliteRunStore, log: Append[]): RunStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop !== "append") {
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      }
      return async (id: string, seq: number, events: JournalEvent[], update: AppendUpdate) => {
        const out = await target.append(id, seq, events, update).catch((e: unknown) => {
          if (e instanceof ConflictError && e.details.kvKey !== undefined) kvConflicts++;
          throw e;
        });
        log.push({ run: id, types: events.map((e) => e.type), durable: update.durable !== false, kv: update.kv !== undefined, journalAfter: out });
        return out;
      };
    },
  });
}

let dir: string;
let peer: HttpPeer;
/** Per request the peer got: the types of the run's journal at that moment, as the store had them. */
const seenAtRequest: string[][] = [];
let file: string;
let inspect: SqliteRunStore;
let config: Config;
const release = { sha: "a".repeat(40), ref: "main", kind: "live" as const };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-engine-"));
  file = join(dir, "sluice.db");
  inspect = openSqliteRunStore(file);
  peer = await startHttpPeer(async (req, res) => {
    const run = req.url.searchParams.get("run");
    if (run) seenAtRequest.push((await inspect.loadJournal(run)).map((s) => s.event.type));
    const delay = Number(req.url.searchParams.get("delay") ?? 0);
    if (delay) await new Promise((r) => setTimeout(r, delay));
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}');
  });
  config = normaliseConfig(parse(`connections:\n  peer: { type: http, base_url: "${peer.origin}" }\npolicy:\n  auto_approve: [read, write]\n`) as Record<string, unknown>);
});

afterAll(async () => {
  await inspect.close();
  await peer.stop();
  rmSync(dir, { recursive: true, force: true });
});

function runtimeOn(store: RunStore, opts: { leaseMs?: number; workerId?: string } = {}): Runtime {
  return new Runtime({
    store,
    resources: new FileResourceStore(join(dir, "resources")),
    executors: defaultExecutors(),
    secrets: { get: () => undefined, values: () => [] },
    logger: createLogger("silent"),
    mode: "local",
    ...opts,
  });
}

function flow(yaml: string) {
  const v = validateFlow(`on: { manual: {} }\n${yaml}`, { config });
  if (!v.flow) throw new Error(JSON.stringify(v.diagnostics));
  return v.flow;
}

async function start(rt: Runtime, yaml: string, repo = "acme/engine"): Promise<string> {
  return rt.createRun({ flow: flow(yaml), config, release, repo, inputs: {}, trigger: { type: "manual", actor: "alice" } });
}

describe("one commit per step", () => {
  it("commits each step's result with the next step's start; reads are not fsynced", async () => {
    const log: Append[] = [];
    const store = openSqliteRunStore(file);
    const rt = runtimeOn(observed(store, log));
    const id = await start(rt, `steps:\n${[1, 2, 3, 4, 5].map((i) => `  - id: s${i}\n    kv: { get: k${i} }\n`).join("")}`);
    await rt.advance(id);
    await store.close();
    const mine = log.filter((a) => a.run === id);
    expect(mine.map((a) => a.types)).toEqual([
      ["run_started", "step_started"],
      ["step_succeeded", "step_started"],
      ["step_succeeded", "step_started"],
      ["step_succeeded", "step_started"],
      ["step_succeeded", "step_started"],
      ["step_succeeded", "run_completed"],
    ]);
    expect(mine.map((a) => a.durable)).toEqual([false, false, false, false, false, false]);
    expect((await inspect.getRun(id))?.status).toBe("succeeded");
  });
});

describe("durability where it matters", () => {
  it("a write's start is durable and in the journal before the write runs, and so is its result", async () => {
    const log: Append[] = [];
    const store = openSqliteRunStore(file);
    const rt = runtimeOn(observed(store, log));
    seenAtRequest.length = 0;
    const id = await start(
      rt,
      `steps:
  - id: look
    http: { connection: peer, url: "/look?run=\${{ run.id }}" }
  - id: post
    http: { method: POST, connection: peer, url: "/post?run=\${{ run.id }}", body: { x: 1 } }
  - id: after
    kv: { get: k }
`,
    );
    await rt.advance(id);
    await store.close();
    // When each request reached the peer, its step's start was already in the store.
    expect(seenAtRequest).toEqual([
      ["run_created", "run_started", "step_started"],
      ["run_created", "run_started", "step_started", "step_succeeded", "step_started"],
    ]);
    const mine = log.filter((a) => a.run === id);
    expect(mine.map((a) => [a.types, a.durable])).toEqual([
      [["run_started", "step_started"], false], // a read's start
      [["step_succeeded", "step_started"], true], // the write's start
      [["step_succeeded", "step_started"], true], // the write's result
      [["step_succeeded", "run_completed"], false],
    ]);
    expect((await inspect.getRun(id))?.status).toBe("succeeded");
  });
});

describe("kv exactly once", () => {
  it("commits each kv write with its result; runs racing on one key lose no increment and repeat none", async () => {
    const log: Append[] = [];
    const stores = [openSqliteRunStore(file), openSqliteRunStore(file)];
    const runtimes = stores.map((s, i) => runtimeOn(observed(s, log), { workerId: `w${i}` }));
    const repo = `acme/kv-${Date.now()}`;
    const steps = `steps:\n${[1, 2, 3, 4].map((i) => `  - id: i${i}\n    kv: { incr: { key: shared } }\n`).join("")}`;
    const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => start(runtimes[i % 2]!, steps, repo)));
    await Promise.all(ids.map((id, i) => runtimes[i % 2]!.advance(id)));
    for (const s of stores) await s.close();

    expect((await inspect.kvGet(repo, "shared", Date.now()))?.value).toBe(24);
    // The runs did race: some writes found their key moved, and ran again.
    expect(kvConflicts).toBeGreaterThan(0);
    const values: number[] = [];
    for (const id of ids) {
      const events = (await inspect.loadJournal(id)).map((s) => s.event);
      expect(events.at(-1)).toMatchObject({ type: "run_completed", status: "succeeded" });
      for (const e of events) {
        // A write that lost its key to another run ran again as the same attempt: the journal
        // holds one start per step however hot the key.
        if (e.type === "step_started") expect([e.atomic, e.attempt]).toEqual([true, 1]);
        if (e.type === "step_succeeded") values.push((e.outputs as { value: number }).value);
      }
    }
    // Every increment's result is one of 1..24, each exactly once: none lost, none repeated.
    expect(values.sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    // Each write rode in the append of its result; none needed an fsync.
    const kvAppends = log.filter((a) => ids.includes(a.run) && a.kv);
    expect(kvAppends).toHaveLength(24);
    for (const a of kvAppends) expect(a.types[0]).toBe("step_succeeded");
    expect(log.filter((a) => ids.includes(a.run)).every((a) => !a.durable)).toBe(true);
  });
});

describe("leases", () => {
  it("the heartbeat holds a run through an advance longer than its lease: another worker never takes it over", async () => {
    const [a, b] = [openSqliteRunStore(file), openSqliteRunStore(file)];
    const holder = runtimeOn(a, { leaseMs: 300, workerId: "holder" });
    const other = runtimeOn(b, { leaseMs: 300, workerId: "other" });
    peer.requests.length = 0;
    // Ten reads of 120 ms each: the advance lasts four times the lease.
    const id = await start(holder, `steps:\n${Array.from({ length: 10 }, (_, i) => `  - id: r${i}\n    http: { connection: peer, url: "/slow?delay=120&step=r${i}" }\n`).join("")}`);
    let done = false;
    const advancing = holder.advance(id).finally(() => (done = true));
    let taken = 0;
    while (!done) {
      taken += await other.workOnce();
      await new Promise((r) => setTimeout(r, 40));
    }
    await advancing;
    await a.close();
    await b.close();
    expect(taken).toBe(0);
    // Each read ran once: no second worker ran one again.
    expect(peer.requests.map((r) => r.url.searchParams.get("step"))).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    const started = (await inspect.loadJournal(id)).filter((s) => s.event.type === "step_started");
    expect(started.map((s) => (s.event as { attempt: number }).attempt)).toEqual(Array.from({ length: 10 }, () => 1));
    expect((await inspect.getRun(id))?.status).toBe("succeeded");
  });
});
