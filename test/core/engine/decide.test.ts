import { describe, expect, it } from "vitest";
import { tally } from "../../../src/core/engine/decide.js";
import { bindHead } from "../../../src/core/engine/gates.js";
import { fold } from "../../../src/core/engine/state.js";
import { T0, approval, created, fail, resume, run } from "./harness.js";

const S = 1000;

describe("sequential steps, outputs and conditions", () => {
  it("runs steps in order and evaluates the run's outputs from theirs", () => {
    const sim = run(
      [
        created(`
on: { manual: { inputs: { who: { type: string } } } }
steps:
  - id: a
    function: { code: "return 1" }
  - id: b
    function: { code: "return 2", input: { x: "\${{ steps.a.outputs.result }}" } }
outputs:
  both: "\${{ steps.a.outputs.result }}-\${{ steps.b.outputs.result }}"
  who: \${{ inputs.who }}
`, { inputs: { who: "ann" } }),
      ],
      { script: (t) => ({ outputs: { result: t.step.id === "a" ? 1 : (t.params.input as { x: number }).x + 1 } }) },
    );
    expect(sim.executed).toEqual(["a#1", "b#1"]);
    expect(sim.turn).toEqual({ kind: "done", status: "succeeded" });
    expect(sim.state.completed?.outputs).toEqual({ both: "1-2", who: "ann" });
  });

  it("skips a step whose if is false, and later steps see outcome skipped", () => {
    const sim = run([
      created(`
on: { manual: { inputs: { go: { type: boolean, default: false } } } }
steps:
  - id: maybe
    if: \${{ inputs.go }}
    function: { code: "return 1" }
  - id: after
    if: steps.maybe.outcome == 'skipped'
    function: { code: "return 2" }
`, { inputs: { go: false } }),
    ]);
    expect(sim.executed).toEqual(["after#1"]);
    expect(sim.state.steps.maybe?.status).toBe("skipped");
  });

  it("passes the step timeout and the idempotency key to the execution", () => {
    const sim = run([created(`
on: { manual: {} }
steps:
  - id: slow
    timeout: 90s
    function: { code: "return 1" }
`)], { script: () => "crash" });
    expect(sim.turn).toMatchObject({ kind: "execute", timeoutMs: 90 * S, key: "run1:slow:1", attempt: 1, effect: "read" });
  });
});

describe("retries", () => {
  const flow = (retry: string) => created(`
on: { manual: {} }
steps:
  - id: flaky
    retry: ${retry}
    function: { code: "return 1" }
`);

  it("retries a retryable failure after the fixed backoff, up to max_attempts", () => {
    let sim = run([flow("{ max_attempts: 3, backoff: fixed, initial: 5s }")], { script: () => fail("BOOM", true) });
    expect(sim.turn).toEqual({ kind: "wait", status: "running", wakeAt: T0 + 5 * S });
    sim = resume(sim, { at: T0 + 4 * S, script: () => fail("BOOM", true) });
    expect(sim.executed).toEqual(["flaky#1"]);
    sim = resume(sim, { at: T0 + 5 * S, script: () => fail("BOOM", true) });
    expect(sim.turn).toEqual({ kind: "wait", status: "running", wakeAt: T0 + 10 * S });
    sim = resume(sim, { at: T0 + 10 * S, script: () => fail("BOOM", true) });
    expect(sim.executed).toEqual(["flaky#1", "flaky#2", "flaky#3"]);
    expect(sim.turn).toEqual({ kind: "done", status: "failed" });
    expect(sim.state.completed?.error?.code).toBe("BOOM");
  });

  it("backs off exponentially, capped by max, and honours Retry-After when longer", () => {
    let sim = run([flow("{ max_attempts: 5, backoff: exponential, initial: 2s, max: 5s }")], { script: () => fail("X", true) });
    expect(sim.turn).toMatchObject({ wakeAt: T0 + 2 * S });
    sim = resume(sim, { at: T0 + 2 * S, script: () => fail("X", true) });
    expect(sim.turn).toMatchObject({ wakeAt: T0 + 2 * S + 4 * S });
    sim = resume(sim, { at: T0 + 6 * S, script: () => fail("X", true, 30 * S) });
    expect(sim.turn).toMatchObject({ wakeAt: T0 + 36 * S });
    sim = resume(sim, { at: T0 + 36 * S, script: () => fail("X", true) });
    expect(sim.turn).toMatchObject({ wakeAt: T0 + 41 * S });
  });

  it("never retries a non-retryable error", () => {
    const sim = run([flow("{ max_attempts: 5 }")], { script: () => fail("BAD_INPUT", false) });
    expect(sim.executed).toEqual(["flaky#1"]);
    expect(sim.turn).toEqual({ kind: "done", status: "failed" });
  });

  it("on_error: continue moves on with outcome failure and failure() true", () => {
    const sim = run(
      [created(`
on: { manual: {} }
steps:
  - id: a
    on_error: continue
    function: { code: "throw 1" }
  - id: cleanup
    if: \${{ failure() && steps.a.outcome == 'failure' }}
    function: { code: "return 1" }
  - id: only-on-success
    if: success()
    function: { code: "return 1" }
`)],
      { script: (t) => (t.step.id === "a" ? fail("E", false) : { outputs: {} }) },
    );
    expect(sim.executed).toEqual(["a#1", "cleanup#1"]);
    expect(sim.turn).toEqual({ kind: "done", status: "succeeded" });
  });
});

describe("timers, callbacks and deadlines", () => {
  it("sleeps durably: a timer, then the step succeeds when it is due", () => {
    let sim = run([created(`
on: { manual: {} }
steps:
  - id: nap
    sleep: 10m
  - id: after
    function: { code: "return 1" }
`)]);
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: T0 + 600 * S });
    sim = resume(sim, { at: T0 + 599 * S });
    expect(sim.executed).toEqual([]);
    sim = resume(sim, { at: T0 + 600 * S });
    expect(sim.executed).toEqual(["after#1"]);
  });

  it("keeps a callback that arrives before the run reaches the wait, and uses it", () => {
    let sim = run([created(`
on: { manual: {} }
steps:
  - id: nap
    sleep: 1h
  - id: result
    wait: { callback: { timeout: 2h } }
outputs: { pr: "\${{ steps.result.outputs.body.pr }}" }
`)]);
    sim = resume(sim, { signals: [{ type: "callback_received", at: T0 + S, step: "result", body: { pr: 7 } }] });
    expect(sim.turn).toMatchObject({ kind: "wait", wakeAt: T0 + 3600 * S });
    sim = resume(sim, { at: T0 + 3600 * S });
    expect(sim.turn).toEqual({ kind: "done", status: "succeeded" });
    expect(sim.state.completed?.outputs).toEqual({ pr: 7 });
  });

  it("the first callback wins; a second one changes nothing", () => {
    const base = run([created(`
on: { manual: {} }
steps:
  - id: result
    wait: { callback: {} }
`)]);
    const sim = resume(base, {
      signals: [
        { type: "callback_received", at: T0, step: "result", body: { n: 1 } },
        { type: "callback_received", at: T0, step: "result", body: { n: 2 } },
      ],
    });
    expect(sim.state.steps.result?.outputs).toEqual({ body: { n: 1 } });
  });

  it("fails a callback wait at its timeout", () => {
    let sim = run([created(`
on: { manual: {} }
steps:
  - id: result
    wait: { callback: { timeout: 1h } }
`)]);
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: T0 + 3600 * S });
    sim = resume(sim, { at: T0 + 3600 * S });
    expect(sim.turn).toEqual({ kind: "done", status: "failed" });
    expect(sim.state.completed?.error?.code).toBe("WAIT_TIMEOUT");
  });

  it("times the whole run out at its timeout, waking in time for it", () => {
    let sim = run([created(`
on: { manual: {} }
timeout: 30m
steps:
  - id: result
    wait: { callback: {} }
`)]);
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: T0 + 1800 * S });
    sim = resume(sim, { at: T0 + 1800 * S });
    expect(sim.turn).toEqual({ kind: "done", status: "timed_out" });
  });

  it("event waits take the payload of the event the shell matched", () => {
    let sim = run([created(`
on: { manual: {} }
steps:
  - id: merged
    wait: { event: { github: { event: pull_request, actions: [closed] } } }
`)]);
    sim = resume(sim, { signals: [{ type: "event_received", at: T0, step: "merged", payload: { number: 3 } }] });
    expect(sim.state.steps.merged?.outputs).toEqual({ payload: { number: 3 } });
  });
});

describe("approval gates", () => {
  const gated = (approvalYaml: string) => created(`
on: { manual: {} }
steps:
  - id: plan
    function: { code: "return 1" }
  - id: review
    wait:
      approval:
${approvalYaml}
  - id: apply
    http: { method: POST, url: "https://example.com/apply" }
`);

  it("needs min distinct approvers; one person twice counts once", () => {
    let sim = run([gated(`        evidence: ["\${{ steps.plan.outputs.result }}"]
        approvers: { users: [bob, carol, dan], min: 2 }`)], { script: (t) => ({ outputs: { result: 42 } }) });
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: null });
    expect(sim.state.steps.review?.gate?.info.evidence).toEqual([42]);
    sim = resume(sim, { signals: [approval("review", "bob", T0), approval("review", "bob", T0 + 1)] });
    expect(tally(sim.state.steps.review!).approvedBy).toEqual(["bob"]);
    expect(sim.executed).toEqual(["plan#1"]);
    sim = resume(sim, { signals: [approval("review", "carol", T0 + 2)] });
    expect(sim.executed).toEqual(["plan#1", "apply#1"]);
    expect(sim.state.steps.review?.outputs?.decision).toBe("approved");
    expect(sim.turn).toEqual({ kind: "done", status: "succeeded" });
  });

  it("the approval covers the write after it: no implicit gate opens", () => {
    const sim = resume(run([gated("        approvers: { users: [bob] }")]), { signals: [approval("review", "bob", T0)] });
    expect(sim.state.steps.apply?.gate).toBeUndefined();
    expect(sim.state.steps.apply?.status).toBe("succeeded");
  });

  it("one rejection rejects", () => {
    const sim = resume(run([gated("        approvers: { users: [bob, carol], min: 2 }")]), {
      signals: [approval("review", "bob", T0), approval("review", "carol", T0, { decision: "reject", comment: "not now" })],
    });
    expect(sim.turn).toEqual({ kind: "done", status: "failed" });
    expect(sim.state.completed?.error).toMatchObject({ code: "APPROVAL_REJECTED", message: "rejected by carol: not now" });
    expect(sim.executed).toEqual(["plan#1"]);
  });

  it("an approval for another digest is stale and does not count", () => {
    const sim = resume(run([gated("        approvers: { users: [bob] }")]), { signals: [approval("review", "bob", T0, { digest: "deadbeefdead" })] });
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: null });
    expect(tally(sim.state.steps.review!)).toMatchObject({ approvedBy: [], stale: 1 });
  });

  it("escalates after its delay, then on_timeout continue records a timed-out decision", () => {
    let sim = run([gated(`        approvers: { users: [bob] }
        timeout: 8h
        escalate: [{ after: 4h, approvers: { users: [lead] } }]
        on_timeout: continue`)]);
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: T0 + 4 * 3600 * S });
    sim = resume(sim, { at: T0 + 4 * 3600 * S });
    expect(sim.state.steps.review?.gate?.level).toBe(1);
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: T0 + 8 * 3600 * S });
    sim = resume(sim, { at: T0 + 8 * 3600 * S });
    expect(sim.state.steps.review?.outputs?.decision).toBe("timed_out");
    // A timed-out decision is not an approval: the write after it still needs one.
    expect(sim.state.steps.apply?.gate?.info.kind).toBe("implicit");
  });

  it("on_timeout cancel cancels the run; fail fails it", () => {
    const cancel = resume(run([gated("        timeout: 1h\n        on_timeout: cancel")]), { at: T0 + 3600 * S });
    expect(cancel.turn).toEqual({ kind: "done", status: "cancelled" });
    const failed = resume(run([gated("        timeout: 1h")]), { at: T0 + 3600 * S });
    expect(failed.turn).toEqual({ kind: "done", status: "failed" });
    expect(failed.state.completed?.error?.code).toBe("APPROVAL_TIMEOUT");
  });

  it("the digest covers release, run, step and evidence", () => {
    const a = run([gated('        evidence: ["x"]')]).state.steps.review!.gate!.info.digest;
    const b = run([created(`
on: { manual: {} }
steps:
  - id: plan
    function: { code: "return 1" }
  - id: review
    wait: { approval: { evidence: ["y"] } }
  - id: apply
    http: { method: POST, url: "https://example.com/apply" }
`)]).state.steps.review!.gate!.info.digest;
    const c = run([created(`
on: { manual: {} }
steps:
  - id: plan
    function: { code: "return 1" }
  - id: review
    wait: { approval: { evidence: ["x"] } }
  - id: apply
    http: { method: POST, url: "https://example.com/apply" }
`, { sha: "b".repeat(40) })]).state.steps.review!.gate!.info.digest;
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set([a, b, c]).size).toBe(3);
  });
});

describe("implicit gates from policy", () => {
  const flow = `
on: { manual: {} }
steps:
  - id: look
    http: { url: "https://example.com/status" }
  - id: note
    kv: { set: { key: k, value: 1 } }
  - id: post
    http: { method: POST, url: "https://example.com/deploy", body: { v: 1 } }
`;

  it("gates a write step, never a read, and not what auto_approve lists", () => {
    let sim = run([created(flow)]);
    expect(sim.executed).toEqual(["look#1", "note#1"]);
    const gate = sim.state.steps.post?.gate?.info;
    expect(gate).toMatchObject({ kind: "implicit", approvers: { permission: "write", min: 1 } });
    expect(gate?.evidence).toEqual([{ step: "post", kind: "http", params: { method: "POST", url: "https://example.com/deploy", body: { v: 1 } } }]);
    sim = resume(sim, { signals: [approval("post", "bob", T0)] });
    expect(sim.executed).toEqual(["look#1", "note#1", "post#1"]);
    expect(sim.state.steps.post?.passedGate?.approvals.map((a) => a.login)).toEqual(["bob"]);
  });

  it("a policy allow rule makes a write a read, and policy approvers apply", () => {
    const sim = run([
      created(flow, {
        config: `
policy:
  allow: { http: ["POST https://example.com/**"] }
`,
      }),
    ]);
    expect(sim.executed).toEqual(["look#1", "note#1", "post#1"]);
  });

  it("require_approval can gate kv too when auto_approve leaves it out", () => {
    const sim = run([created(flow, { config: "policy: { auto_approve: [read], require_approval: [write], approvers: { users: [ops], min: 1 } }" })]);
    expect(sim.executed).toEqual(["look#1"]);
    expect(sim.state.steps.note?.gate?.info.approvers).toEqual({ users: ["ops"], min: 1 });
  });
});

describe("crashes: unknown outcomes", () => {
  const flow = `
on: { manual: {} }
steps:
  - id: fetch
    http: { url: "https://example.com/a" }
  - id: write
    kv: { set: { key: k, value: 1 } }
  - id: after
    function: { code: "return 1" }
`;

  it("re-runs a read whose attempt never finished, as a new attempt", () => {
    let sim = run([created(flow)], { script: () => "crash" });
    expect(sim.executed).toEqual(["fetch#1"]);
    sim = resume(sim);
    expect(sim.executed).toEqual(["fetch#1", "fetch#2", "write#1", "after#1"]);
  });

  it("asks a human before re-running a write whose outcome is unknown: approve retries", () => {
    let sim = run([created(flow)], { script: (t) => (t.step.id === "write" ? "crash" : { outputs: {} }) });
    sim = resume(sim);
    expect(sim.state.steps.write?.gate?.info.kind).toBe("unknown_outcome");
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: null });
    sim = resume(sim, { signals: [approval("write", "alice", T0)] });
    expect(sim.executed).toEqual(["fetch#1", "write#1", "write#2", "after#1"]);
  });

  it("reject skips the write and the run goes on", () => {
    let sim = run([created(flow)], { script: (t) => (t.step.id === "write" ? "crash" : { outputs: {} }) });
    sim = resume(resume(sim), { signals: [approval("write", "bob", T0, { decision: "reject" })] });
    expect(sim.state.steps.write?.status).toBe("skipped");
    expect(sim.executed).toEqual(["fetch#1", "write#1", "after#1"]);
  });
});

describe("control", () => {
  it("cancel ends the run as cancelled", () => {
    const sim = resume(run([created(`
on: { manual: {} }
steps:
  - id: w
    wait: { callback: {} }
`)]), { signals: [{ type: "run_cancel_requested", at: T0, by: "bob" }] });
    expect(sim.turn).toEqual({ kind: "done", status: "cancelled" });
    expect(sim.state.steps.w?.status).toBe("cancelled");
  });

  it("retry of a failed run re-runs from the failed step with the next attempt number", () => {
    let sim = run([created(`
on: { manual: {} }
steps:
  - id: a
    function: { code: "return 1" }
  - id: b
    function: { code: "return 1" }
`)], { script: (t) => (t.step.id === "b" ? fail("E", false) : { outputs: {} }) });
    expect(sim.turn).toEqual({ kind: "done", status: "failed" });
    sim = resume(sim, { signals: [{ type: "run_retry_requested", at: T0, by: "bob" }] });
    expect(sim.executed).toEqual(["a#1", "b#1", "b#2"]);
    expect(sim.turn).toEqual({ kind: "done", status: "succeeded" });
    expect(sim.state.attempt).toBe(2);
  });

  it("a retried run's timeout counts from the retry, and the steps it runs again show fresh times", () => {
    let sim = run([created(`
on: { manual: {} }
timeout: 1h
steps:
  - id: w
    wait: { callback: {} }
`)]);
    sim = resume(sim, { at: T0 + 3600 * S });
    expect(sim.turn).toEqual({ kind: "done", status: "timed_out" });
    const retryAt = T0 + 5 * 3600 * S;
    sim = resume(sim, { at: retryAt, signals: [{ type: "run_retry_requested", at: retryAt, by: "bob" }] });
    expect(sim.turn).toEqual({ kind: "wait", status: "waiting", wakeAt: retryAt + 3600 * S });
    expect(sim.state.steps.w).toMatchObject({ status: "waiting", startedAt: retryAt });
  });

  it("concurrency: a busy group queues a run, or cancels it with cancel_new", () => {
    const flow = (mode: string) => created(`
on: { manual: {} }
concurrency: { group: deploy, on_conflict: ${mode} }
steps:
  - id: a
    function: { code: "return 1" }
`);
    expect(run([flow("queue")], { facts: { groupBusy: true } }).turn).toEqual({ kind: "wait", status: "queued", wakeAt: null });
    expect(run([flow("cancel_new")], { facts: { groupBusy: true } }).turn).toEqual({ kind: "done", status: "cancelled" });
    expect(run([flow("queue")], { facts: { groupBusy: false } }).turn).toEqual({ kind: "done", status: "succeeded" });
  });

  it("an event after the run ended changes nothing", () => {
    const sim = run([created(`
on: { manual: {} }
steps:
  - id: a
    function: { code: "return 1" }
`)]);
    const later = fold([...sim.events, { type: "step_failed", at: T0, step: "a", attempt: 1, error: { code: "X", message: "x", retryable: false } }]);
    expect(later.steps.a?.status).toBe("succeeded");
    expect(later.completed?.status).toBe("succeeded");
  });
});

describe("what an approval covers (SPEC §4)", () => {
  const flow = `
on: { manual: {} }
steps:
  - id: first
    wait: { approval: { title: Go? } }
  - id: w1
    http: { method: POST, url: "https://example.com/one" }
  - id: second
    wait: { approval: { title: Three only?, covers: [w3] } }
  - id: w2
    http: { method: POST, url: "https://example.com/two" }
  - id: w3
    http: { method: POST, url: "https://example.com/three" }
`;

  it("an approval covers the writes after it up to the next approval step, or exactly its covers list", () => {
    let sim = run([created(flow)]);
    sim = resume(sim, { signals: [approval("first", "bob", T0)] });
    expect(sim.executed).toEqual(["w1#1"]);
    sim = resume(sim, { signals: [approval("second", "bob", T0)] });
    // w2 lies after 'second', which covers only w3, and 'first' covers nothing past 'second'.
    expect(sim.executed).toEqual(["w1#1"]);
    expect(sim.state.steps.w2?.gate?.info).toMatchObject({ kind: "implicit", title: expect.stringContaining("w2") });
    sim = resume(sim, { signals: [approval("w2", "bob", T0)] });
    expect(sim.executed).toEqual(["w1#1", "w2#1", "w3#1"]);
    expect(sim.state.steps.w3?.gate).toBeUndefined();
  });

  it("a write before an approval step is not covered by it", () => {
    const sim = run([created(`
on: { manual: {} }
steps:
  - id: early
    http: { method: POST, url: "https://example.com/early" }
  - id: review
    wait: { approval: {} }
`)]);
    expect(sim.executed).toEqual([]);
    expect(sim.state.steps.early?.gate?.info.kind).toBe("implicit");
  });

  it("a skipped or timed-out approval covers nothing", () => {
    const sim = run([created(`
on: { manual: {} }
steps:
  - id: review
    if: \${{ false }}
    wait: { approval: {} }
  - id: w
    http: { method: POST, url: "https://example.com/w" }
`)]);
    expect(sim.executed).toEqual([]);
    expect(sim.state.steps.w?.gate?.info.kind).toBe("implicit");
  });
});

describe("the default branch's policy is the floor of every approval", () => {
  const draft = `
on: { manual: {} }
steps:
  - id: review
    wait: { approval: { approvers: { users: [alice] }, allow_self_approval: true } }
  - id: w
    http: { method: POST, url: "https://example.com/w" }
`;

  it("a flow cannot allow self-approval on its own, nor drop the policy's approvers", () => {
    const info = run([created(draft)]).state.steps.review!.gate!.info;
    expect(info.allow_self_approval).toBe(false);
    expect(info.floor).toEqual({ permission: "write", min: 1 });
    expect(info.approvers).toEqual({ users: ["alice"], min: 1 });
  });

  it("self-approval takes effect only where the policy allows it too", () => {
    const info = run([created(draft, { config: "policy: { allow_self_approval: true }" })]).state.steps.review!.gate!.info;
    expect(info.allow_self_approval).toBe(true);
  });

  it("an unknown-outcome gate follows the same self-approval rule", () => {
    let sim = run([created(`
on: { manual: {} }
steps:
  - id: w
    http: { method: POST, url: "https://example.com/w" }
`, { config: "policy: { auto_approve: [read, write] }" })], { script: () => "crash" });
    sim = resume(sim);
    expect(sim.state.steps.w?.gate?.info).toMatchObject({ kind: "unknown_outcome", allow_self_approval: false, floor: { permission: "write", min: 1 } });
  });
});

describe("a step found to write at run time", () => {
  const flow = `
on: { manual: {} }
steps:
  - id: q
    db: { connection: app, query: "select nextval('s')" }
`;
  const config = "connections: { app: { type: postgres, secret: APP_DB } }";

  it("is gated like any write after its executor refuses to run it as a read", () => {
    let sim = run([created(flow, { config })], { script: () => "crash" });
    expect(sim.turn).toMatchObject({ kind: "execute", effect: "read" });
    sim = resume(sim, { signals: [{ type: "step_reclassified", at: T0, step: "q", attempt: 1, effect: "write", reason: "nextval can change state" }] });
    expect(sim.executed).toEqual(["q#1"]);
    expect(sim.state.steps.q).toMatchObject({ status: "waiting", reclassified: "write", gate: { info: { kind: "implicit" } } });
    sim = resume(sim, { signals: [approval("q", "bob", T0)] });
    expect(sim.executed).toEqual(["q#1", "q#2"]);
    expect(sim.events.filter((e) => e.type === "step_started").map((e) => e.type === "step_started" && e.effect)).toEqual(["read", "write"]);
  });

  it("a late reclassification of an attempt no longer in flight changes nothing", () => {
    const sim = run([created(flow, { config })]);
    expect(sim.state.steps.q?.status).toBe("succeeded");
    const after = fold([...sim.events, { type: "step_reclassified", at: T0, step: "q", attempt: 1, effect: "write", reason: "late" }]);
    expect(after.steps.q).toMatchObject({ status: "succeeded" });
    expect(after.steps.q?.reclassified).toBeUndefined();
  });
});

describe("a merge passes the head its approval reviewed", () => {
  const flow = (number: number) => `
on: { manual: {} }
steps:
  - id: review
    wait: { approval: { pull_request: 7 } }
  - id: merge
    github: { merge_pull_request: { number: ${number}, method: squash } }
`;
  const headed = (sim: ReturnType<typeof run>) => ({
    ...sim,
    events: sim.events.map((e) =>
      e.type === "gate_opened" ? { ...e, gate: bindHead(e.gate, { pull_request: 7, sha: "B".repeat(40) }, { sha: "a".repeat(40), runId: "run1", step: e.step }) } : e,
    ),
  });

  it("the covering gate bound the pull request's head: the merge names that SHA", () => {
    let sim = headed(run([created(flow(7))]));
    expect(fold(sim.events).steps.review?.gate?.info.head).toEqual({ pull_request: 7, sha: "b".repeat(40) });
    const merged: unknown[] = [];
    sim = resume(sim, { signals: [approval("review", "bob", T0)], script: (t) => (merged.push(t.params), { outputs: {} }) });
    expect(merged).toEqual([{ merge_pull_request: { number: 7, method: "squash", sha: "b".repeat(40) } }]);
  });

  it("a merge of another pull request gets no SHA of this one", () => {
    let sim = headed(run([created(flow(8))]));
    const merged: unknown[] = [];
    sim = resume(sim, { signals: [approval("review", "bob", T0)], script: (t) => (merged.push(t.params), { outputs: {} }) });
    expect(merged).toEqual([{ merge_pull_request: { number: 8, method: "squash" } }]);
  });

  it("a binding changes the digest, so an approval of the unbound gate is stale", () => {
    const plain = run([created(flow(7))]);
    const bound = headed(plain);
    expect(fold(bound.events).steps.review?.gate?.info.digest).not.toBe(plain.state.steps.review?.gate?.info.digest);
  });
});
