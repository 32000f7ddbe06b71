/**
 * The incremental fold: a state folded once and then given the events that follow is the state
 * of the whole journal folded at once, at every split point; the frontier (where decide starts)
 * is the first step the run cannot move past; and an atomic attempt left without a result (a kv
 * write, which commits with its result) runs again, where an old journal's write stays unknown.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { decide } from "../../../src/core/engine/decide.js";
import type { JournalEvent } from "../../../src/core/engine/events.js";
import { fold, foldInto } from "../../../src/core/engine/state.js";
import { T0, approval, created, fail, resume, run } from "./harness.js";

const JOURNALS = resolve(import.meta.dirname, "../../fixtures/journals");

function goldenJournals(): [string, JournalEvent[]][] {
  return readdirSync(JOURNALS)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => [f, (JSON.parse(readFileSync(join(JOURNALS, f), "utf8")) as { events: JournalEvent[] }).events]);
}

/** Every split point: fold the head, then fold the tail into it, one event at a time and all at once. */
function expectIncrementalEqualsWhole(events: JournalEvent[]): void {
  const whole = fold(events);
  for (let k = 1; k <= events.length; k++) {
    const clone = structuredClone(events);
    expect(foldInto(fold(clone.slice(0, k)), clone.slice(k)), `split at ${k}`).toEqual(whole);
  }
  const one = fold(structuredClone(events.slice(0, 1)));
  for (const e of structuredClone(events.slice(1))) foldInto(one, [e]);
  expect(one).toEqual(whole);
}

describe("incremental fold", () => {
  for (const [file, events] of goldenJournals()) {
    it(`gives the whole fold's state for ${file}, whatever the split`, () => expectIncrementalEqualsWhole(events));
  }

  it("gives the whole fold's state through retries, skips, continued failures and a run retried", () => {
    const flow = created(`
on: { manual: {} }
steps:
  - id: a
    retry: { max_attempts: 2, backoff: fixed, initial: 1s }
    function: { code: "return 1" }
  - id: skipped
    if: \${{ false }}
    function: { code: "return 1" }
  - id: tolerated
    on_error: continue
    function: { code: "return 1" }
  - id: last
    function: { code: "return 1" }
`);
    let sim = run([flow], { script: (t) => (t.step.id === "a" && t.attempt === 1 ? fail("FLAKY", true) : t.step.id === "tolerated" ? fail("NO", false) : t.step.id === "last" ? fail("BROKEN", false) : { outputs: { ok: true } }) });
    sim = resume(sim, { at: T0 + 1_000, script: (t) => (t.step.id === "tolerated" ? fail("NO", false) : t.step.id === "last" ? fail("BROKEN", false) : { outputs: {} }) });
    expect(sim.state.completed?.status).toBe("failed");
    sim = resume(sim, { at: T0 + 2_000, signals: [{ type: "run_retry_requested", at: T0 + 2_000, by: "alice" }] });
    expect(sim.state.completed?.status).toBe("succeeded");
    expectIncrementalEqualsWhole(sim.events);
  });
});

describe("the frontier: where decide starts", () => {
  const flow = `
on: { manual: {} }
steps:
  - id: a
    function: { code: "return 1" }
  - id: tolerated
    on_error: continue
    function: { code: "return 1" }
  - id: gate
    wait: { approval: { title: go? } }
  - id: last
    function: { code: "return 1" }
`;

  it("moves past settled steps and continued failures, and stops at the first step still open", () => {
    let sim = run([created(flow)], { script: (t) => (t.step.id === "tolerated" ? fail("NO", false) : { outputs: {} }) });
    expect(sim.state.frontier).toBe(2);
    expect(sim.state.steps.gate?.gate).toBeDefined();
    sim = resume(sim, { signals: [approval("gate", "bob", T0)] });
    expect(sim.state.frontier).toBe(4);
    expect(sim.turn).toEqual({ kind: "done", status: "succeeded" });
  });

  it("stops at a step that failed for good without on_error: continue, and goes back to it on a retry", () => {
    let sim = run([created(flow)], { script: (t) => (t.step.id === "a" ? fail("BROKEN", false) : { outputs: {} }) });
    expect(sim.state.frontier).toBe(0);
    expect(sim.state.completed?.status).toBe("failed");
    sim = resume(sim, { signals: [{ type: "run_retry_requested", at: T0, by: "alice" }], script: (t) => (t.step.id === "tolerated" ? fail("NO", false) : { outputs: {} }) });
    expect(sim.executed).toEqual(["a#1", "a#2", "tolerated#1"]);
    expect(sim.state.frontier).toBe(2);
  });

  it("stays at a step waiting for its retry", () => {
    const sim = run(
      [
        created(`
on: { manual: {} }
steps:
  - id: done
    function: { code: "return 1" }
  - id: flaky
    retry: { max_attempts: 3, backoff: fixed, initial: 5s }
    function: { code: "return 1" }
`),
      ],
      { script: (t) => (t.step.id === "flaky" ? fail("FLAKY", true) : { outputs: {} }) },
    );
    expect(sim.state.frontier).toBe(1);
    expect(sim.turn).toEqual({ kind: "wait", status: "running", wakeAt: T0 + 5_000 });
  });
});

describe("atomic attempts (a kv write commits with its result)", () => {
  const flow = `
on: { manual: {} }
steps:
  - id: count
    kv: { incr: { key: n } }
  - id: after
    function: { code: "return 1" }
`;

  /** The journal of a worker that died after the kv step's start: its start is all there is. */
  function crashedAt(atomic: boolean): JournalEvent[] {
    const sim = run([created(flow)], { script: () => "crash" });
    const started = sim.events.at(-1) as Extract<JournalEvent, { type: "step_started" }>;
    expect(started).toMatchObject({ type: "step_started", step: "count", effect: "write" });
    return [...sim.events.slice(0, -1), atomic ? { ...started, atomic: true } : started];
  }

  it("runs an atomic attempt left without a result again, as the next attempt: it did nothing", () => {
    const state = fold(crashedAt(true));
    expect(state.steps.count?.inFlight).toMatchObject({ attempt: 1, atomic: true });
    expect(decide(state, { now: T0 })).toMatchObject({ kind: "execute", attempt: 2, key: "run1:count:2", effect: "write" });
  });

  it("keeps an old journal's meaning: a write started without `atomic` has an unknown outcome and asks a human", () => {
    const turn = decide(fold(crashedAt(false)), { now: T0 });
    expect(turn).toMatchObject({ kind: "append", events: [{ type: "gate_opened", step: "count", gate: { kind: "unknown_outcome" } }] });
  });
});
