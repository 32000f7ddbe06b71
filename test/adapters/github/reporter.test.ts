/**
 * The check-run reporter against the GitHub simulator, with a real SQLite store and Runtime:
 * API calls are counted from `sim.requests`, the check run's state is read from the simulator.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBudget } from "../../../src/adapters/github/budget.js";
import { budgetedClient } from "../../../src/adapters/github/client.js";
import { createReporter, type ReportData, type Reporter } from "../../../src/adapters/github/reporter.js";
import { defaultExecutors } from "../../../src/adapters/steps/index.js";
import { FileResourceStore } from "../../../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { decideGate } from "../../../src/app/signals.js";
import { Runtime } from "../../../src/app/runtime.js";
import { DEFAULT_CONFIG, validateFlow } from "../../../src/core/flow/validate.js";
import type { Flow, StepKind } from "../../../src/core/flow/types.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import type { Logger, StepExecutor } from "../../../src/ports/step-executor.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

const PUBLIC_URL = "https://sluice.example.com";
const REPO = "acme/widgets";

/** A flow of `n` steps: kv increments with one approval gate in the middle. */
function gatedFlow(n: number, name = "long"): Flow {
  const steps: string[] = [];
  const gateAt = Math.floor(n / 2);
  for (let i = 0; i < n; i++) {
    if (i === gateAt) steps.push(`  - id: review\n    wait:\n      approval:\n        title: Go on?\n        approvers: { users: [alice], min: 1 }`);
    else steps.push(`  - id: s${i}\n    kv: { incr: { key: counter, by: 1 } }`);
  }
  const v = validateFlow(`name: ${name}\non: { manual: {} }\nsteps:\n${steps.join("\n")}\n`);
  if (!v.flow) throw new Error(JSON.stringify(v.diagnostics));
  return v.flow;
}

interface World {
  dir: string;
  store: RunStore;
  runtime: Runtime;
  logs: { level: string; msg: string; meta?: Record<string, unknown> }[];
  logger: Logger;
  now: { t: number };
  /** Runs before each kv step: lets a test flush the reporter between every two steps. */
  beforeStep: { fn?: () => Promise<unknown> };
}

function makeWorld(): World {
  const dir = mkdtempSync(join(tmpdir(), "sluice-reporter-"));
  const store = openSqliteRunStore(join(dir, "sluice.db"));
  const logs: World["logs"] = [];
  const logger: Logger = {
    debug: () => {},
    info: () => {},
    warn: (msg, meta) => logs.push({ level: "warn", msg, meta }),
    error: (msg, meta) => logs.push({ level: "error", msg, meta }),
  };
  const beforeStep: World["beforeStep"] = {};
  const base = defaultExecutors();
  const kv = base.get("kv")!;
  const executors = new Map<StepKind, StepExecutor>(base);
  executors.set("kv", {
    kind: "kv",
    async execute(params, ctx) {
      await beforeStep.fn?.();
      return kv.execute(params, ctx);
    },
  });
  const now = { t: Date.parse("2025-03-01T09:00:00Z") };
  const runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(dir, "resources")),
    executors,
    secrets: { get: () => undefined, values: () => [] },
    logger,
    mode: "local",
    clock: () => now.t,
    publicUrl: PUBLIC_URL,
  });
  return { dir, store, runtime, logs, logger, now, beforeStep };
}

let gh: GitHubFixture;
let sha: string;
const worlds: World[] = [];
const extraStores: RunStore[] = [];

beforeAll(async () => {
  gh = await startGitHub({ repo: REPO, files: { "README.md": "hello\n" } });
  sha = gh.sim.branchSha(REPO, "main")!;
});

afterAll(async () => {
  await gh.sim.stop();
  for (const s of extraStores) await s.close().catch(() => undefined);
  for (const w of worlds) {
    await w.store.close().catch(() => undefined);
    rmSync(w.dir, { recursive: true, force: true });
  }
});

afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
});

function world(): World {
  const w = makeWorld();
  worlds.push(w);
  return w;
}

function reporterFor(w: World, store: RunStore = w.store): Reporter {
  return createReporter({
    store,
    githubFor: (repo) => (repo === REPO ? gh.githubApi() : undefined),
    publicUrl: PUBLIC_URL,
    logger: w.logger,
    clock: () => w.now.t,
  });
}

async function startRun(w: World, flow: Flow, repo = REPO): Promise<string> {
  return w.runtime.createRun({
    flow,
    config: DEFAULT_CONFIG,
    release: { sha, ref: "refs/heads/main", kind: "live" },
    repo,
    inputs: {},
    trigger: { type: "manual", actor: "bob" },
  });
}

const checkRunCalls = (from: number) => gh.sim.requests.slice(from).filter((r) => r.path.includes("/check-runs"));
const checkRunsOf = (runId: string) => gh.sim.checkRunsOf(REPO, sha).filter((c) => c.externalId === runId);

async function until(what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function caughtUp(store: RunStore, runId: string): Promise<boolean> {
  const [run, report] = await Promise.all([store.getRun(runId), store.getReport(runId)]);
  return !!run && !!report && report.reportedSeq === run.seq;
}

describe("a 20-step run with one gate", () => {
  it("costs at most 6 check-run calls even when the reporter flushes between every two steps", async () => {
    const w = world();
    const reporter = reporterFor(w);
    w.beforeStep.fn = () => reporter.flushOnce();
    const from = gh.sim.requests.length;
    const id = await startRun(w, gatedFlow(20));
    await w.runtime.advance(id);
    expect((await w.store.getRun(id))!.status).toBe("waiting");
    await reporter.flushOnce();

    const [atGate] = checkRunsOf(id);
    expect(atGate).toMatchObject({ name: "sluice: long", status: "in_progress", conclusion: null, detailsUrl: `${PUBLIC_URL}/runs/${id}` });
    expect(atGate!.output.title).toBe("waiting for approval at review (0/1)");
    expect(atGate!.output.summary).toContain("`/approve");
    expect(atGate!.actions.map((a) => a.label)).toEqual(["Approve", "Reject", "Cancel"]);

    // A person looks at it for ten minutes, then approves.
    w.now.t += 10 * 60_000;
    await decideGate(w.runtime, id, { login: "alice", via: "cli", decision: "approve" });
    expect((await w.store.getRun(id))!.status).toBe("succeeded");
    await reporter.flushOnce();
    expect(await caughtUp(w.store, id)).toBe(true);

    const calls = checkRunCalls(from);
    expect(calls.length).toBeLessThanOrEqual(6);
    expect(calls.map((c) => c.method)).toEqual(["POST", ...calls.slice(1).map(() => "PATCH")]);
    const runs = checkRunsOf(id);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: "completed", conclusion: "success", actions: [] });
    expect(runs[0]!.output.title).toMatch(/^succeeded: 20\/20 steps in 10m/);
    expect(runs[0]!.output.summary!.split("\n").filter((l) => /^\| ✅ \|/.test(l))).toHaveLength(20);
    const report = (await w.store.getReport(id))!.report as ReportData;
    expect(report).toMatchObject({ check_run_id: runs[0]!.id, status: "succeeded", calls: calls.length });
  });

  it("with the loop running and notified after every append, reports the gate and the end", async () => {
    const w = world();
    const reporter = reporterFor(w);
    w.runtime.onEvents((runId) => reporter.notify(runId));
    const ac = new AbortController();
    const loop = reporter.start(ac.signal);
    const from = gh.sim.requests.length;
    try {
      const id = await startRun(w, gatedFlow(20, "looped"));
      await w.runtime.advance(id);
      await until("the gate to be reported", async () => (await caughtUp(w.store, id)) && checkRunsOf(id)[0]?.output.title?.startsWith("waiting") === true);
      w.now.t += 60_000;
      await decideGate(w.runtime, id, { login: "alice", via: "cli", decision: "approve" });
      await until("the end to be reported", async () => (await caughtUp(w.store, id)) && checkRunsOf(id)[0]?.status === "completed");
      expect(checkRunCalls(from).length).toBeLessThanOrEqual(6);
      expect(checkRunsOf(id)).toHaveLength(1);
      expect(checkRunsOf(id)[0]!.conclusion).toBe("success");
    } finally {
      ac.abort();
      await loop;
    }
  });
});

describe("durability", () => {
  it("a restarted reporter (a new process on the same store) updates the same check run", async () => {
    const w = world();
    const first = reporterFor(w);
    const id = await startRun(w, gatedFlow(4, "restart"));
    await w.runtime.advance(id);
    await first.flushOnce();
    expect(checkRunsOf(id)).toHaveLength(1);

    // The process goes away; a new one opens the same database.
    await w.store.close();
    const reopened = openSqliteRunStore(join(w.dir, "sluice.db"));
    extraStores.push(reopened);
    const runtime = new Runtime({ ...runtimeOptionsOf(w), store: reopened });
    w.now.t += 5_000;
    await decideGate(runtime, id, { login: "alice", via: "cli", decision: "approve" });
    const from = gh.sim.requests.length;
    await reporterFor(w, reopened).flushOnce();
    expect(checkRunCalls(from).map((c) => c.method)).toEqual(["PATCH"]);
    expect(checkRunsOf(id)).toHaveLength(1);
    expect(checkRunsOf(id)[0]!.conclusion).toBe("success");
  });

  it("a crash between creating the check run and recording it does not create a second one", async () => {
    const w = world();
    const id = await startRun(w, gatedFlow(4, "crashy"));
    await w.runtime.advance(id);
    // The store refuses the write that records the new check run's id, as a dying process would.
    let refused = 0;
    const dying = new Proxy(w.store, {
      get(target, prop, receiver) {
        if (prop === "markReported") {
          return async (runId: string, seq: number, report: ReportData) => {
            if (report.check_run_id !== undefined && refused === 0) {
              refused++;
              throw new Error("the process died");
            }
            return target.markReported(runId, seq, report);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    await reporterFor(w, dying).flushOnce();
    expect(refused).toBe(1);
    expect(checkRunsOf(id)).toHaveLength(1);
    expect(((await w.store.getReport(id))!.report as ReportData).creating).toBe(true);

    // The next process starts after the failed attempt's backoff.
    w.now.t += 5_000;
    const from = gh.sim.requests.length;
    await reporterFor(w).flushOnce();
    expect(checkRunCalls(from).map((c) => c.method)).toEqual(["GET", "PATCH"]);
    expect(checkRunsOf(id)).toHaveLength(1);
    expect(await caughtUp(w.store, id)).toBe(true);
    expect(((await w.store.getReport(id))!.report as ReportData).check_run_id).toBe(checkRunsOf(id)[0]!.id);
  });

  it("after an uncertain create, finds its check run past the first page of the commit's check runs of that name", async () => {
    const w = world();
    const id = await startRun(w, gatedFlow(4, "paged"));
    await w.runtime.advance(id);
    let refused = 0;
    const dying = new Proxy(w.store, {
      get(target, prop, receiver) {
        if (prop === "markReported") {
          return async (runId: string, seq: number, report: ReportData) => {
            if (report.check_run_id !== undefined && refused++ === 0) throw new Error("the process died");
            return target.markReported(runId, seq, report);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    await reporterFor(w, dying).flushOnce();
    expect(checkRunsOf(id)).toHaveLength(1);
    // Meanwhile 120 other runs of the same flow at the same release got their check runs: ours
    // is no longer on the first page (newest first, 100 a page).
    const octokit = gh.octokit();
    for (let i = 0; i < 120; i++) {
      await octokit.request("POST /repos/{owner}/{repo}/check-runs", { owner: "acme", repo: "widgets", name: "sluice: paged", head_sha: sha, external_id: `other-${i}` });
    }
    w.now.t += 5_000;
    const from = gh.sim.requests.length;
    await reporterFor(w).flushOnce();
    expect(checkRunCalls(from).map((c) => c.method)).toEqual(["GET", "GET", "PATCH"]);
    expect(checkRunsOf(id)).toHaveLength(1);
    expect(((await w.store.getReport(id))!.report as ReportData).check_run_id).toBe(checkRunsOf(id)[0]!.id);
  });

  it("a run of a repository with no GitHub installation is marked reported without a call", async () => {
    const w = world();
    const id = await startRun(w, gatedFlow(2, "local"), "local/checkout");
    await w.runtime.advance(id);
    const from = gh.sim.requests.length;
    expect(await reporterFor(w).flushOnce()).toBe(1);
    expect(gh.sim.requests.length).toBe(from);
    expect(await caughtUp(w.store, id)).toBe(true);
    expect((await w.store.getReport(id))!.report).toMatchObject({ skipped: "no GitHub installation for local/checkout" });
  });
});

describe("rate limits and failures", () => {
  it("a 403 secondary rate limit with Retry-After holds the run until then and loses nothing", async () => {
    const w = world();
    const reporter = reporterFor(w);
    const id = await startRun(w, gatedFlow(4, "limited"));
    await w.runtime.advance(id);
    await reporter.flushOnce();
    w.now.t += 60_000;
    await decideGate(w.runtime, id, { login: "alice", via: "cli", decision: "approve" });
    const before = (await w.store.getReport(id))!;

    gh.sim.failNext({ method: "PATCH", path: "/check-runs/", status: 403, headers: { "retry-after": "30" } });
    let from = gh.sim.requests.length;
    expect(await reporter.flushOnce()).toBe(0);
    expect(checkRunCalls(from).map((c) => [c.method, c.status])).toEqual([["PATCH", 403]]);
    const held = (await w.store.getReport(id))!;
    expect(held.reportedSeq).toBe(before.reportedSeq);
    expect((held.report as ReportData).not_before).toBe(w.now.t + 30_000);
    expect(w.logs.some((l) => l.level === "warn" && l.msg.includes("rate limit"))).toBe(true);

    // Not before the time GitHub named, even when asked.
    w.now.t += 29_000;
    from = gh.sim.requests.length;
    expect(await reporter.flushOnce()).toBe(0);
    expect(gh.sim.requests.length).toBe(from);

    w.now.t += 1_000;
    expect(await reporter.flushOnce()).toBe(1);
    expect(checkRunCalls(from).map((c) => [c.method, c.status])).toEqual([["PATCH", 200]]);
    expect(checkRunsOf(id)[0]).toMatchObject({ status: "completed", conclusion: "success" });
    expect(await caughtUp(w.store, id)).toBe(true);
  });

  it("a 429 on the create, with only x-ratelimit-reset, waits for the reset", async () => {
    const w = world();
    const reporter = reporterFor(w);
    const id = await startRun(w, gatedFlow(2, "reset"));
    await w.runtime.advance(id);
    const resetAt = Math.floor(w.now.t / 1000) + 120;
    gh.sim.failNext({ method: "POST", path: "/check-runs", status: 429, headers: { "retry-after": null, "x-ratelimit-reset": String(resetAt) } });
    expect(await reporter.flushOnce()).toBe(0);
    expect(((await w.store.getReport(id))!.report as ReportData).not_before).toBe(resetAt * 1000);
    w.now.t = resetAt * 1000;
    expect(await reporter.flushOnce()).toBe(1);
    expect(checkRunsOf(id)).toHaveLength(1);
  });

  it("other errors are logged and retried with a growing backoff", async () => {
    const w = world();
    const reporter = reporterFor(w);
    const id = await startRun(w, gatedFlow(2, "flaky"));
    await w.runtime.advance(id);
    gh.sim.failNext({ method: "POST", path: "/check-runs", status: 502, times: 2, message: "Bad gateway" });
    expect(await reporter.flushOnce()).toBe(0);
    let data = (await w.store.getReport(id))!.report as ReportData;
    expect(data).toMatchObject({ failures: 1, not_before: w.now.t + 5_000 });
    expect(w.logs.some((l) => l.level === "error" && l.msg === "check run update failed; will retry")).toBe(true);
    w.now.t += 5_000;
    expect(await reporter.flushOnce()).toBe(0);
    data = (await w.store.getReport(id))!.report as ReportData;
    expect(data).toMatchObject({ failures: 2, not_before: w.now.t + 10_000 });
    w.now.t += 10_000;
    expect(await reporter.flushOnce()).toBe(1);
    // The failed creates left nothing behind: one check run, found or created once.
    expect(checkRunsOf(id)).toHaveLength(1);
    expect(((await w.store.getReport(id))!.report as ReportData).failures).toBeUndefined();
  });

  it("a check run the write budget held back is created once it may be, with no lookup first (nothing was sent)", async () => {
    const w = world();
    const budget = createBudget({ store: w.store, pollMs: 20 });
    const api = budgetedClient({ octokit: gh.octokit(), budget, installation: "held" });
    const reporter = createReporter({ store: w.store, githubFor: () => api, publicUrl: PUBLIC_URL, logger: w.logger, clock: () => w.now.t, leaseMs: 400 });
    const id = await startRun(w, gatedFlow(2, "budgeted"));
    await w.runtime.advance(id);
    // Another process was told to hold: longer than the reporter may wait.
    (await budget.acquire("held", { create: false, priority: "gate" })).release({ holdUntil: Date.now() + 500 });
    const from = gh.sim.requests.length;
    expect(await reporter.flushOnce()).toBe(0);
    expect(gh.sim.requests.length).toBe(from);
    const held = (await w.store.getReport(id))!.report as ReportData;
    expect(held.creating).toBeUndefined();
    expect(held.not_before).toBeGreaterThan(w.now.t);
    await new Promise((r) => setTimeout(r, 600));
    w.now.t = held.not_before!;
    expect(await reporter.flushOnce()).toBe(1);
    expect(checkRunCalls(from).map((c) => c.method)).toEqual(["POST"]);
    budget.close();
  });

  it("a check run deleted on GitHub's side is created again", async () => {
    const w = world();
    const reporter = reporterFor(w);
    const id = await startRun(w, gatedFlow(2, "gone"));
    await w.runtime.advance(id);
    await reporter.flushOnce();
    const old = checkRunsOf(id)[0]!;
    gh.sim.checkRuns.delete(old.id);
    w.now.t += 60_000;
    await decideGate(w.runtime, id, { login: "alice", via: "cli", decision: "approve" });
    expect(await reporter.flushOnce()).toBe(1);
    const now = checkRunsOf(id);
    expect(now).toHaveLength(1);
    expect(now[0]!.id).not.toBe(old.id);
    expect(now[0]!.conclusion).toBe("success");
  });
});

/** The options a world's runtime was built with, for a "restarted process". */
function runtimeOptionsOf(w: World): ConstructorParameters<typeof Runtime>[0] {
  return {
    store: w.store,
    resources: w.runtime.resources,
    executors: defaultExecutors(),
    secrets: { get: () => undefined, values: () => [] },
    logger: w.logger,
    mode: "local",
    clock: () => w.now.t,
    publicUrl: PUBLIC_URL,
  };
}
