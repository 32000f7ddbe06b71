/**
 * Engine benchmarks (vitest bench): the pure core's cost per turn, and a whole local run on
 * the embedded SQLite store. Results are written down in bench/README.md.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, bench, describe } from "vitest";
import { Runtime } from "../src/app/runtime.js";
import { decide } from "../src/core/engine/decide.js";
import type { JournalEvent } from "../src/core/engine/events.js";
import { fold } from "../src/core/engine/state.js";
import { DEFAULT_CONFIG, validateFlow } from "../src/core/flow/validate.js";
import { createLogger } from "../src/adapters/logger.js";
import { defaultExecutors } from "../src/adapters/steps/index.js";
import { FileResourceStore, openSqliteRunStore } from "../src/adapters/store/index.js";

const STEPS = 50;
const flowYaml = `on: { manual: {} }\nsteps:\n${Array.from({ length: STEPS }, (_, i) => `  - id: s${i}\n    kv: { incr: { key: k, by: 1 } }\n`).join("")}`;
const flow = validateFlow(flowYaml).flow!;
const created: JournalEvent = {
  type: "run_created",
  at: 0,
  run_id: "r",
  flow,
  config: DEFAULT_CONFIG,
  release: { sha: "a".repeat(40), ref: "main", kind: "live" },
  repo: "bench",
  inputs: {},
  trigger: { type: "manual", actor: "bench" },
  callbacks: {},
};
// A journal with every step done: the worst case of a fold before the run completes.
const journal: JournalEvent[] = [created, { type: "run_started", at: 1 }];
for (let i = 0; i < STEPS; i++) {
  journal.push({ type: "step_started", at: 2, step: `s${i}`, attempt: 1, key: `r:s${i}:1`, effect: "write" });
  journal.push({ type: "step_succeeded", at: 3, step: `s${i}`, attempt: 1, outputs: { value: i, version: i } });
}

describe("pure core", () => {
  bench(`fold + decide, ${STEPS}-step journal (${journal.length} events)`, () => {
    decide(fold(journal), { now: 4 });
  });
  bench("validate a 50-step flow", () => {
    validateFlow(flowYaml);
  });
});

const dir = mkdtempSync(join(tmpdir(), "sluice-bench-"));
const store = openSqliteRunStore(join(dir, "bench.db"));
const runtime = new Runtime({
  store,
  resources: new FileResourceStore(join(dir, "resources")),
  executors: defaultExecutors(),
  secrets: { get: () => undefined, values: () => [] },
  logger: createLogger("silent"),
  mode: "local",
});
const small = validateFlow(`on: { manual: {} }\nsteps:\n${Array.from({ length: 20 }, (_, i) => `  - id: s${i}\n    kv: { incr: { key: k, by: 1 } }\n`).join("")}`).flow!;

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("local runs on SQLite", () => {
  bench("a 20-step kv run, created and run to the end", async () => {
    const id = await runtime.createRun({ flow: small, config: DEFAULT_CONFIG, release: { sha: "a".repeat(40), ref: "main", kind: "live" }, repo: "bench", inputs: {}, trigger: { type: "manual", actor: "bench" } });
    await runtime.advance(id);
  }, { iterations: 30 });
});
