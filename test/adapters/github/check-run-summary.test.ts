/** The check run built from a RunView: table tests, GitHub's limits, escaping. */
import { describe, expect, it } from "vitest";
import type { GateView, RunView, StepView } from "../../../src/app/run-view.js";
import {
  CHECK_RUN_LIMITS,
  actionIdentifier,
  buildCheckRun,
  byteLength,
  clampMarkdown,
  effectiveStatus,
  mdCode,
  parseActionIdentifier,
  prefixBytes,
  waitKey,
  type RunExtras,
} from "../../../src/adapters/github/check-run-summary.js";

const SHA = "a".repeat(40);
const DIGEST = "0123456789abcdef".repeat(4);
const URL_BASE = "https://sluice.example.com/";

function step(id: string, over: Partial<StepView> = {}): StepView {
  return { id, kind: "http", effect: "read", status: "pending", attempts: 0, ...over };
}

function view(over: Partial<RunView> = {}): RunView {
  return {
    id: "0lz9abcde1f2a3b",
    flow: "deploy",
    repo: "acme/widgets",
    status: "running",
    release: { sha: SHA, ref: "refs/heads/main", kind: "live" },
    trigger: { type: "manual", actor: "bob" },
    inputs: {},
    outputs: {},
    created_at: "2025-01-01T10:00:00.000Z",
    updated_at: "2025-01-01T10:01:05.000Z",
    steps: [
      step("fetch", { status: "succeeded", attempts: 1, duration_ms: 1200, outputs: { status: 200, body: { ok: true } } }),
      step("review", { kind: "wait", effect: "none", status: "pending" }),
      step("apply", { effect: "write" }),
    ],
    ...over,
  };
}

function gate(over: Partial<GateView> = {}): GateView {
  return {
    step: "review",
    kind: "approval",
    title: "Ship it?",
    digest: DIGEST,
    approvers: { users: ["carol", "dave"], teams: ["acme/platform"] },
    min: 2,
    approvals: [{ login: "carol", via: "comment", at: "2025-01-01T10:00:30.000Z" }],
    deadline: "2025-01-01T18:00:00.000Z",
    refused: [],
    ...over,
  };
}

const waiting = (over: Partial<RunView> = {}) =>
  view({
    status: "waiting",
    gate: gate(),
    steps: [
      step("fetch", { status: "succeeded", attempts: 1, duration_ms: 1200, outputs: { status: 200 } }),
      step("review", { kind: "wait", effect: "none", status: "waiting" }),
      step("apply", { effect: "write" }),
    ],
    ...over,
  });

describe("identity of the check run", () => {
  it.each([
    ["live", "sluice: deploy"],
    ["draft", "sluice: deploy (draft)"],
  ])("a %s run is named %j, on its pinned SHA, with the run id and page", (kind, name) => {
    const body = buildCheckRun(view({ release: { sha: SHA, ref: "refs/heads/x", kind } }), { publicUrl: URL_BASE });
    expect(body).toMatchObject({
      name,
      head_sha: SHA,
      external_id: "0lz9abcde1f2a3b",
      details_url: "https://sluice.example.com/runs/0lz9abcde1f2a3b",
      started_at: "2025-01-01T10:00:00.000Z",
    });
  });
});

describe("status and conclusion", () => {
  const cases: [string, Partial<RunView>, string, string | undefined, RegExp][] = [
    ["queued", { status: "queued", steps: [step("a")] }, "queued", undefined, /^queued$/],
    ["running", { status: "running", steps: [step("a", { status: "succeeded" }), step("b", { status: "running" }), step("c")] }, "in_progress", undefined, /^running b \(1\/3 steps done\)$/],
    ["waiting at a gate", {}, "in_progress", undefined, /^waiting for approval at review \(1\/2\)$/],
    ["succeeded", { status: "succeeded", steps: [step("a", { status: "succeeded" }), step("b", { status: "skipped" })] }, "completed", "success", /^succeeded: 2\/2 steps in 1m5s$/],
    ["failed", { status: "failed", steps: [step("a", { status: "failed", error: { code: "HTTP_STATUS", message: "500" } })], error: { code: "HTTP_STATUS", message: "500" } }, "completed", "failure", /^failed at a: HTTP_STATUS$/],
    ["cancelled", { status: "cancelled" }, "completed", "cancelled", /^cancelled after 1\/3 steps$/],
    ["timed_out", { status: "timed_out" }, "completed", "timed_out", /^timed out after 1m5s$/],
  ];
  it.each(cases)("%s", (name, over, status, conclusion, title) => {
    const v = name === "waiting at a gate" ? waiting() : view(over);
    const body = buildCheckRun(v, { publicUrl: URL_BASE });
    expect(body.status).toBe(status);
    expect(body.conclusion).toBe(conclusion);
    expect(body.output.title).toMatch(title);
    if (conclusion) expect(body.completed_at).toBe("2025-01-01T10:01:05.000Z");
    else expect(body.completed_at).toBeUndefined();
  });

  it("a run whose gate just opened counts as waiting before the store says so", () => {
    const v = waiting({ status: "running" });
    expect(effectiveStatus(v)).toBe("waiting");
    expect(waitKey(v)).toBe(`gate:review:${DIGEST}`);
    expect(buildCheckRun(v, { publicUrl: URL_BASE }).status).toBe("in_progress");
  });

  it.each([
    ["implicit", "waiting for approval before review (1/2)"],
    ["unknown_outcome", "waiting for a decision at review: its outcome is unknown (retry or skip)"],
  ])("a %s gate's title", (kind, title) => {
    expect(buildCheckRun(waiting({ gate: gate({ kind }) }), { publicUrl: URL_BASE }).output.title).toBe(title);
  });

  it.each([
    ["callback", "waiting for a callback at result until 2025-01-02T00:00:00.000Z"],
    ["event", "waiting for an event at result until 2025-01-02T00:00:00.000Z"],
    ["sleep", "sleeping at result until 2025-01-02T00:00:00.000Z"],
  ] as const)("a %s wait's title", (kind, title) => {
    const extras: RunExtras = { waits: { result: { kind, until: "2025-01-02T00:00:00.000Z" } } };
    const v = view({ status: "waiting", steps: [step("a", { status: "succeeded" }), step("result", { kind: "wait", effect: "none", status: "waiting" })] });
    expect(buildCheckRun(v, { publicUrl: URL_BASE, extras }).output.title).toBe(title);
    expect(waitKey(v)).toBe("wait:result");
  });
});

describe("the summary", () => {
  it("has a table of steps with kind, effect, status, duration and output", () => {
    const s = buildCheckRun(view(), { publicUrl: URL_BASE }).output.summary;
    expect(s).toContain("| | step | kind | effect | status | duration | output |");
    expect(s).toContain('| ✅ | `fetch` | http | read | succeeded | 1.2s | `{"status":200,"body":{"ok":true}}` |');
    expect(s).toContain("| ⚪ | `apply` | http | write | pending |  |  |");
    expect(s).toContain("**Release:** live · `refs/heads/main` @ `aaaaaaaaaaaa`");
    expect(s).toContain("[See the full run on its page](https://sluice.example.com/runs/0lz9abcde1f2a3b)");
  });

  it("shows the open gate: approvers, quorum, deadline, digest and how to approve", () => {
    const s = buildCheckRun(waiting(), { publicUrl: URL_BASE, extras: { waits: {}, gate: { summary: "PR #4: fix", evidence: ["diff"] } } }).output.summary;
    expect(s).toContain("### ⏸️ Waiting for approval: Ship it?");
    expect(s).toContain("| approvers | users `carol`, `dave` or teams `acme/platform` |");
    expect(s).toContain("| quorum | 1/2 approved (`carol` via comment) |");
    expect(s).toContain("| deadline | 2025-01-01T18:00:00.000Z |");
    expect(s).toContain("| digest | `0123456789ab` |");
    expect(s).toContain("| summary | PR \\#4: fix |");
    expect(s).toContain("`/approve 0lz9abcde1f2a3b 0123456789ab`");
  });

  it("links resources instead of inlining them, and shows errors", () => {
    const hex = "f".repeat(64);
    const s = buildCheckRun(
      view({
        steps: [
          step("big", { status: "succeeded", outputs: { body: { $resource: `res://sha256/${hex}`, size: 70_000, media_type: "application/json" } } }),
          step("bad", { status: "failed", attempts: 3, error: { code: "HTTP_STATUS", message: "GitHub answered 502" } }),
        ],
      }),
      { publicUrl: URL_BASE },
    ).output.summary;
    expect(s).toContain(`[ffffffffffff… (68.4 KiB)](https://sluice.example.com/runs/0lz9abcde1f2a3b/resources/${hex})`);
    expect(s).toContain("| ❌ | `bad` | http | read | failed (3 attempts) |  | `HTTP_STATUS` GitHub answered 502 |");
  });

  it("truncates long outputs per cell", () => {
    const s = buildCheckRun(view({ steps: [step("a", { status: "succeeded", outputs: { text: "x".repeat(5000) } })] }), { publicUrl: URL_BASE }).output.summary;
    const row = s.split("\n").find((l) => l.includes("`a`"))!;
    expect(row.length).toBeLessThan(200);
    expect(row).toContain("…");
  });

  it("escapes what would break the table or inject markup", () => {
    const v = view({
      steps: [
        step("a", { name: "x | y <img src=x onerror=alert(1)>\n| forged | row |", status: "failed", error: { code: "E", message: "a|b\nc`d`" } }),
        step("b", { status: "succeeded", outputs: { v: "p|q ``` r" } }),
      ],
    });
    const s = buildCheckRun(v, { publicUrl: URL_BASE }).output.summary;
    const rows = s.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| |"));
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.replace(/\\\|/g, "").split("|")).toHaveLength(9);
    expect(s).not.toContain("<img");
    expect(s).toContain("&lt;img");
    expect(rows[1]).toContain('````{"v":"p\\|q ``` r"}````');
  });
});

describe("GitHub's limits", () => {
  it("keeps a 3000-step summary under 65,535 bytes, ending with a link to the run page", () => {
    const steps = Array.from({ length: 3000 }, (_, i) =>
      step(`step-${i}`, { name: "ステップ ✓ ".repeat(10), status: "succeeded", attempts: 1, duration_ms: 10, outputs: { text: "é😀".repeat(100) } }),
    );
    const body = buildCheckRun(view({ steps, status: "succeeded" }), { publicUrl: URL_BASE });
    const s = body.output.summary;
    expect(byteLength(s)).toBeLessThanOrEqual(CHECK_RUN_LIMITS.summaryBytes);
    expect(byteLength(s)).toBeGreaterThan(CHECK_RUN_LIMITS.summaryBytes - 2000);
    expect(s).not.toContain("\uFFFD");
    expect(s).toMatch(/\| \| … \| \| \| \d+ more steps \| \| \[on the run page\]\(https:\/\/sluice\.example\.com\/runs\/0lz9abcde1f2a3b\) \|/);
    expect(s.trimEnd().endsWith("[See the full run on its page](https://sluice.example.com/runs/0lz9abcde1f2a3b)")).toBe(true);
  });

  it("bounds the text (evidence) and the title", () => {
    const body = buildCheckRun(waiting({ gate: gate({ title: "T".repeat(1000) }) }), {
      publicUrl: URL_BASE,
      extras: { waits: {}, gate: { summary: "s", evidence: Array.from({ length: 40 }, (_, i) => `evidence ${i} ` + "😀".repeat(3000)) } },
    });
    expect(body.output.title.length).toBeLessThanOrEqual(255);
    expect(byteLength(body.output.text!)).toBeLessThanOrEqual(CHECK_RUN_LIMITS.textBytes);
    expect(body.output.text).not.toContain("\uFFFD");
    expect(body.output.text!.trimEnd().endsWith("[See the full run on its page](https://sluice.example.com/runs/0lz9abcde1f2a3b)")).toBe(true);
    // Code fences stay balanced after the cut.
    expect((body.output.text!.match(/^```+/gm) ?? []).length % 2).toBe(0);
  });

  it("honours smaller limits given for tests", () => {
    const body = buildCheckRun(view(), { publicUrl: URL_BASE, limits: { summaryBytes: 300, titleChars: 10 } });
    expect(byteLength(body.output.summary)).toBeLessThanOrEqual(300);
    expect(Array.from(body.output.title).length).toBeLessThanOrEqual(10);
  });

  it("prefixBytes never splits a character; clampMarkdown cuts at a line", () => {
    expect(prefixBytes("a😀b", 3)).toBe("a");
    expect(prefixBytes("a😀b", 5)).toBe("a😀");
    expect(prefixBytes("ééé", 5)).toBe("éé");
    const md = ["line one", "line two", "line three"].join("\n");
    expect(clampMarkdown(md, 25, "[more](u)")).toBe("line one\n\n[more](u)");
    expect(clampMarkdown(md, 100, "[more](u)")).toBe(md);
  });

  it("clampMarkdown closes a code block the cut left open, or drops it when nothing of it fits", () => {
    const block = ["intro", "", "````", "```js", "code line one", "code line two", "```", "more code", "````", "", "after"].join("\n");
    const cut = clampMarkdown(block, 60, "[more](u)");
    expect(byteLength(cut)).toBeLessThanOrEqual(60);
    expect(cut).toBe("intro\n\n````\n```js\ncode line one\n````\n\n[more](u)");
    expect(clampMarkdown(block, 27, "[more](u)")).toBe("intro\n\n[more](u)");
  });
});

describe("buttons", () => {
  it("offers Approve, Reject and Cancel at a gate, bound to the digest, within GitHub's limits", () => {
    const actions = buildCheckRun(waiting(), { publicUrl: URL_BASE }).actions;
    expect(actions.map((a) => a.identifier)).toEqual(["approve:0123456789ab", "reject:0123456789ab", "cancel"]);
    expect(actions.map((a) => a.label)).toEqual(["Approve", "Reject", "Cancel"]);
    for (const a of actions) {
      expect(a.label.length).toBeLessThanOrEqual(20);
      expect(a.identifier.length).toBeLessThanOrEqual(20);
      expect(a.description.length).toBeLessThanOrEqual(40);
    }
    const long = buildCheckRun(waiting({ gate: gate({ step: "a-very-long-step-identifier-for-review" }) }), { publicUrl: URL_BASE }).actions;
    for (const a of long) expect(a.description.length).toBeLessThanOrEqual(40);
  });

  it.each([
    ["running", ["cancel"]],
    ["queued", ["cancel"]],
    ["succeeded", []],
    ["failed", []],
  ])("a %s run offers %j", (status, ids) => {
    expect(buildCheckRun(view({ status }), { publicUrl: URL_BASE }).actions.map((a) => a.identifier)).toEqual(ids);
  });

  it.each([
    ["approve:0123456789ab", { action: "approve", digest: "0123456789ab" }],
    ["reject:0123456789ab", { action: "reject", digest: "0123456789ab" }],
    ["cancel", { action: "cancel" }],
    ["approve", { action: "approve" }],
    ["cancel:0123456789ab", undefined],
    ["approve:XYZ", undefined],
    ["merge", undefined],
  ])("parses %j", (id, parsed) => {
    expect(parseActionIdentifier(id)).toEqual(parsed);
  });

  it("round-trips identifiers", () => {
    expect(parseActionIdentifier(actionIdentifier("approve", DIGEST))).toEqual({ action: "approve", digest: DIGEST.slice(0, 12) });
  });
});

describe("mdCode", () => {
  it.each([
    ["plain", false, "`plain`"],
    ["a`b", false, "``a`b``"],
    ["`x`", false, "`` `x` ``"],
    ["a|b", true, "`a\\|b`"],
    ["a|b", false, "`a|b`"],
    ["two\nlines", false, "`two lines`"],
  ])("%j (cell: %s) → %j", (text, cell, out) => {
    expect(mdCode(text, cell)).toBe(out);
  });
});
