/**
 * How many GitHub API calls a run costs as a check run: a 20-step and a 100-step run, each with
 * one approval gate, reported by the check-run reporter against the GitHub simulator.
 *
 * Two ways of driving the reporter, both real code paths:
 *  - "flush per step": the reporter flushes before every step executes (the worst case for
 *    coalescing: it sees every intermediate state);
 *  - "loop": the reporter's own loop, woken by `notify` after every journal append, as the
 *    server runs it.
 * The clock the reporter and the runtime read is fixed while the steps run (they run within
 * the coalescing interval) and moves ten minutes while a person looks at the gate. A third
 * way, "loop, 50 ms/step", uses the real clock with steps that take 50 ms each, so the run
 * outlasts the 2 s coalescing interval and shows what it costs then.
 *
 * Run: npx vite-node bench/check-run-calls.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createReporter, type Reporter } from "../src/adapters/github/reporter.js";
import { defaultExecutors } from "../src/adapters/steps/index.js";
import { FileResourceStore } from "../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore } from "../src/adapters/store/sqlite/sqlite-run-store.js";
import { Runtime } from "../src/app/runtime.js";
import { decideGate } from "../src/app/signals.js";
import { DEFAULT_CONFIG, validateFlow } from "../src/core/flow/validate.js";
import type { Flow, StepKind } from "../src/core/flow/types.js";
import type { Logger, StepExecutor } from "../src/ports/step-executor.js";
import { startGitHub } from "../test/github/fixtures.js";

const REPO = "acme/widgets";
const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: (m, meta) => console.error(m, meta) };

function gatedFlow(n: number): Flow {
  const steps: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i === Math.floor(n / 2)) steps.push(`  - id: review\n    wait:\n      approval:\n        title: Go on?\n        approvers: { users: [alice], min: 1 }`);
    else steps.push(`  - id: s${i}\n    kv: { incr: { key: counter, by: 1 } }`);
  }
  const v = validateFlow(`name: bench-${n}\non: { manual: {} }\nsteps:\n${steps.join("\n")}\n`);
  if (!v.flow) throw new Error(JSON.stringify(v.diagnostics));
  return v.flow;
}

type Mode = "flush per step" | "loop" | "loop, 50 ms/step";

async function measure(n: number, mode: Mode): Promise<{ calls: number; methods: string; events: number; ms: number }> {
  const gh = await startGitHub({ repo: REPO, files: { "README.md": "bench\n" } });
  const dir = mkdtempSync(join(tmpdir(), "sluice-bench-"));
  const store = openSqliteRunStore(join(dir, "sluice.db"));
  const now = { t: Date.parse("2025-03-01T09:00:00Z") };
  const realClock = mode === "loop, 50 ms/step";
  const clock = realClock ? Date.now : () => now.t;
  let reporter: Reporter | undefined;
  const base = defaultExecutors();
  const kv = base.get("kv")!;
  const executors = new Map<StepKind, StepExecutor>(base);
  if (realClock) {
    executors.set("kv", {
      kind: "kv",
      async execute(params, ctx) {
        await new Promise((r) => setTimeout(r, 50));
        return kv.execute(params, ctx);
      },
    });
  }
  if (mode === "flush per step") {
    executors.set("kv", {
      kind: "kv",
      async execute(params, ctx) {
        await reporter!.flushOnce();
        return kv.execute(params, ctx);
      },
    });
  }
  const runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(dir, "resources")),
    executors,
    secrets: { get: () => undefined, values: () => [] },
    logger: quiet,
    mode: "local",
    clock,
    publicUrl: "https://sluice.example.com",
  });
  reporter = createReporter({ store, githubFor: (r) => (r === REPO ? gh.githubApi() : undefined), publicUrl: "https://sluice.example.com", logger: quiet, clock });
  const ac = new AbortController();
  let loop: Promise<void> | undefined;
  if (mode !== "flush per step") {
    runtime.onEvents((id) => reporter!.notify(id));
    loop = reporter.start(ac.signal);
  }
  const started = performance.now();
  const caughtUp = async (id: string) => {
    for (;;) {
      const [run, rep] = await Promise.all([store.getRun(id), store.getReport(id)]);
      if (run && rep && rep.reportedSeq === run.seq) return;
      if (mode === "flush per step") await reporter!.flushOnce();
      else await new Promise((r) => setTimeout(r, 5));
    }
  };
  const id = await runtime.createRun({
    flow: gatedFlow(n),
    config: DEFAULT_CONFIG,
    release: { sha: gh.sim.branchSha(REPO, "main")!, ref: "refs/heads/main", kind: "live" },
    repo: REPO,
    inputs: {},
    trigger: { type: "manual", actor: "bob" },
  });
  await runtime.advance(id);
  await caughtUp(id);
  now.t += 10 * 60_000;
  await decideGate(runtime, id, { login: "alice", via: "cli", decision: "approve" });
  await caughtUp(id);
  const ms = performance.now() - started;
  ac.abort();
  await loop;
  const calls = gh.sim.requests.filter((r) => r.path.includes("/check-runs"));
  const events = (await store.loadJournal(id)).length;
  const status = (await store.getRun(id))!.status;
  if (status !== "succeeded") throw new Error(`the run ended ${status}`);
  if (gh.sim.violations.length) throw new Error(JSON.stringify(gh.sim.violations));
  await store.close();
  await gh.sim.stop();
  rmSync(dir, { recursive: true, force: true });
  return { calls: calls.length, methods: calls.map((c) => c.method).join(" "), events, ms };
}

const rows: string[][] = [["steps", "reporter", "journal events", "check-run API calls", "calls", "wall time"]];
for (const n of [20, 100]) {
  for (const mode of ["flush per step", "loop", "loop, 50 ms/step"] as const) {
    const r = await measure(n, mode);
    rows.push([String(n), mode, String(r.events), String(r.calls), r.methods, `${Math.round(r.ms)} ms`]);
  }
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join("  "));
