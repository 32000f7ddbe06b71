import { describe, expect, it } from "vitest";
import { draftsAllowed, isFork } from "../../../src/adapters/github/drafts.js";
import { signHook, verifyHook } from "../../../src/adapters/github/hooks-route.js";
import { isFlowPath, pushTouchesFlows } from "../../../src/adapters/github/release-check.js";
import { flowsTriggeredBy, githubContextOf, waitingEventSteps } from "../../../src/adapters/github/triggers.js";
import { fold } from "../../../src/core/engine/state.js";
import { DEFAULT_CONFIG, validateFlow } from "../../../src/core/flow/validate.js";
import type { Flow } from "../../../src/core/flow/types.js";

function flow(text: string): Flow {
  const v = validateFlow(text);
  if (!v.flow) throw new Error(JSON.stringify(v.diagnostics));
  return v.flow;
}

const LABELED = flow(`name: labeled
on:
  github:
    - event: issues
      actions: [labeled]
      if: \${{ github.event.label.name == 'flaky' && github.actor != 'mallory' }}
steps:
  - id: a
    sleep: 1s
`);
const ANY_PUSH = flow(`name: pushed
on:
  github:
    - event: push
steps:
  - id: a
    sleep: 1s
`);
const BROKEN_IF = flow(`name: broken-if
on:
  github:
    - event: issues
      if: \${{ fromJSON(github.event.issue.title).x }}
steps:
  - id: a
    sleep: 1s
`);

const labeled = (label: string, actor = "ann") => ({ action: "labeled", label: { name: label }, issue: { number: 3, title: "t" }, sender: { login: actor } });

describe("on.github", () => {
  it("matches the event name, the listed actions and the `if`, evaluated with github.event = the payload", () => {
    const flows = [LABELED, ANY_PUSH];
    expect(flowsTriggeredBy(flows, "issues", labeled("flaky"), "acme/w").triggered.map((t) => t.flow.name)).toEqual(["labeled"]);
    expect(flowsTriggeredBy(flows, "issues", labeled("bug"), "acme/w").triggered).toEqual([]);
    expect(flowsTriggeredBy(flows, "issues", labeled("flaky", "mallory"), "acme/w").triggered).toEqual([]);
    expect(flowsTriggeredBy(flows, "issues", { ...labeled("flaky"), action: "opened" }, "acme/w").triggered).toEqual([]);
    expect(flowsTriggeredBy(flows, "push", { ref: "refs/heads/main", after: "a".repeat(40) }, "acme/w").triggered.map((t) => t.flow.name)).toEqual(["pushed"]);
  });

  it("reports an `if` that fails to evaluate instead of starting the flow", () => {
    const r = flowsTriggeredBy([BROKEN_IF], "issues", labeled("x"), "acme/w");
    expect(r.triggered).toEqual([]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ flow: "broken-if", index: 0 });
  });

  it("builds the github context as a workflow sees it", () => {
    expect(githubContextOf("push", { ref: "refs/heads/main", after: "abc", sender: { login: "ann" } }, "acme/w")).toMatchObject({
      event_name: "push",
      actor: "ann",
      repository: "acme/w",
      repository_owner: "acme",
      repository_name: "w",
      sha: "abc",
      ref: "refs/heads/main",
    });
  });
});

describe("wait.event", () => {
  const WAITER = flow(`name: waiter
on:
  manual:
steps:
  - id: first
    sleep: 1s
  - id: go
    wait:
      event:
        github:
          event: issues
          actions: [labeled]
          if: \${{ github.event.label.name == 'go' }}
  - id: done
    sleep: 1s
`);
  const created = (extra: object[] = []) =>
    fold([
      { type: "run_created", at: 0, run_id: "r1", flow: WAITER, config: DEFAULT_CONFIG, release: { sha: "a".repeat(40), ref: "main", kind: "live" }, repo: "acme/w", inputs: {}, trigger: { type: "manual", actor: "ann" }, callbacks: {} },
      ...(extra as never[]),
    ]);

  it("matches a waiting step, and one not reached yet (an early event is kept)", () => {
    expect(waitingEventSteps(created(), "issues", labeled("go"))).toEqual(["go"]);
    expect(waitingEventSteps(created(), "issues", labeled("stop"))).toEqual([]);
    expect(waitingEventSteps(created(), "issue_comment", labeled("go"))).toEqual([]);
  });

  it("does not match once a payload arrived or the run ended", () => {
    expect(waitingEventSteps(created([{ type: "event_received", at: 1, step: "go", payload: {} }]), "issues", labeled("go"))).toEqual([]);
    expect(waitingEventSteps(created([{ type: "run_completed", at: 1, status: "cancelled", outputs: {} }]), "issues", labeled("go"))).toEqual([]);
  });
});

describe("releases, drafts and hooks", () => {
  it("knows which paths change a release, and when a push touched one", () => {
    expect(isFlowPath(".github/flows/a.yml")).toBe(true);
    expect(isFlowPath(".github/flows/a.yaml")).toBe(true);
    expect(isFlowPath(".github/sluice.yml")).toBe(true);
    expect(isFlowPath(".github/flows/lib/a.yml")).toBe(false);
    expect(isFlowPath(".github/flows/readme.md")).toBe(false);
    expect(isFlowPath(".github/workflows/ci.yml")).toBe(false);
    expect(pushTouchesFlows({ commits: [{ added: ["src/a.ts"], removed: [".github/flows/old.yml"], modified: [] }] })).toBe(true);
    expect(pushTouchesFlows({ commits: [{ added: ["src/a.ts"], modified: ["README.md"] }] })).toBe(false);
    expect(pushTouchesFlows({ commits: Array.from({ length: 20 }, () => ({ added: ["x"] })) })).toBe(true);
  });

  it("never runs drafts from forks unless the policy says always", () => {
    const own = { head: { repo: { full_name: "acme/w" } }, base: { repo: { full_name: "acme/w" } } };
    const fork = { head: { repo: { full_name: "eve/w" } }, base: { repo: { full_name: "acme/w" } } };
    const gone = { head: { repo: null }, base: { repo: { full_name: "acme/w" } } };
    expect([isFork(own), isFork(fork), isFork(gone)]).toEqual([false, true, true]);
    expect(draftsAllowed(own, DEFAULT_CONFIG)).toBe(true);
    expect(draftsAllowed(fork, DEFAULT_CONFIG)).toBe(false);
    expect(draftsAllowed(fork, { ...DEFAULT_CONFIG, policy: { ...DEFAULT_CONFIG.policy, drafts: { forks: "always" } } })).toBe(true);
  });

  it("verifies X-Sluice-Signature-256 in constant time, refusing anything else", () => {
    const body = Buffer.from('{"a":1}');
    const sig = signHook("k", body);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifyHook("k", body, sig)).toBe(true);
    expect(verifyHook("k", body, sig.toUpperCase().replace("SHA256", "sha256"))).toBe(true);
    expect(verifyHook("other", body, sig)).toBe(false);
    expect(verifyHook("k", Buffer.from('{"a":2}'), sig)).toBe(false);
    expect(verifyHook("k", body, undefined)).toBe(false);
    expect(verifyHook("k", body, sig.slice(7))).toBe(false);
    expect(verifyHook("k", body, "sha256=zz")).toBe(false);
  });
});
