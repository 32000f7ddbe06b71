/**
 * What a gate's announcement says and when it is due (pure, on journals folded by the real
 * engine): opened, escalated (the level in force only), the reminder an hour before the
 * deadline (never for a gate shorter than that); who is mentioned; where it is announced; the
 * check run naming the escalated approvers; and `policy.notify` in `.github/sluice.yml`.
 */
import { describe, expect, it } from "vitest";
import { runView } from "../../../src/app/run-view.js";
import { announcedIn, mentionsOf, noticeComment, noticesDue, noticeText, REMINDER_BEFORE_MS } from "../../../src/adapters/github/gate-notices.js";
import { buildCheckRun, extrasOf } from "../../../src/adapters/github/check-run-summary.js";
import { validateConfig } from "../../../src/core/flow/validate.js";
import type { RunRecord } from "../../../src/ports/run-store.js";
import { created, resume, run, T0 } from "../../core/engine/harness.js";

const HOUR = 3_600_000;

const flow = (timeout: string) => `name: ship
on: { manual: {} }
steps:
  - id: review
    wait:
      approval:
        title: Ship @everyone?
        evidence: ["one"]
        approvers: { users: [carol], teams: [acme/platform], min: 1 }
        timeout: ${timeout}
        escalate: [{ after: 2h, approvers: { users: [oncall-lead], min: 2 } }]
  - id: done
    function: { code: "return 1;" }
`;

const record = (id: string): RunRecord => ({
  id,
  flow: "ship",
  repo: "acme/widgets",
  status: "waiting",
  release: { sha: "a".repeat(40), ref: "main", kind: "live" },
  concurrencyGroup: null,
  createdAt: T0,
  updatedAt: T0,
  wakeAt: null,
  seq: 1,
});

describe("when a gate is announced", () => {
  it("announces the opening, then only the level in force, then a reminder an hour before the deadline", () => {
    const opened = run([created(flow("8h"), { trigger: { issue: 7 } })]);
    const keys = (now: number) => noticesDue(resume(opened, { at: now }).state, now).map((n) => `${n.kind}:${n.level}`);
    expect(keys(T0)).toEqual(["opened:0"]);
    expect(keys(T0 + 2 * HOUR + 1)).toEqual(["escalated:1"]);
    expect(keys(T0 + 7 * HOUR - 1)).toEqual(["escalated:1"]);
    expect(keys(T0 + 8 * HOUR - REMINDER_BEFORE_MS)).toEqual(["escalated:1", "reminder:1"]);
    // The keys are stable: the same announcement is found again by another process.
    const a = noticesDue(resume(opened, { at: T0 + 3 * HOUR }).state, T0 + 3 * HOUR)[0]!;
    const b = noticesDue(resume(opened, { at: T0 + 5 * HOUR }).state, T0 + 5 * HOUR)[0]!;
    expect(a.key).toBe(b.key);
    expect(a.key).toMatch(/^run1:review:\d+:L1$/);
  });

  it("sends no reminder for a gate shorter than an hour, and nothing once it is decided", () => {
    const short = run([created(flow("50m"))]);
    expect(noticesDue(resume(short, { at: T0 + 20 * 60_000 }).state, T0 + 20 * 60_000).map((n) => n.kind)).toEqual(["opened"]);
    const sim = run([created(flow("8h"))]);
    const decided = resume(sim, { at: T0 + 1000, signals: [{ type: "approval_received", at: T0 + 1000, step: "review", login: "carol", via: "cli", decision: "approve" }] });
    expect(decided.state.completed?.status).toBe("succeeded");
    expect(noticesDue(decided.state, T0 + 1000)).toEqual([]);
  });
});

describe("what an announcement says", () => {
  it("mentions the approvers in force, users and teams, and tells how to decide", () => {
    const sim = resume(run([created(flow("8h"), { trigger: { issue: 7 } })]), { at: T0 + 2 * HOUR + 1 });
    const s = sim.state.steps.review!;
    expect(mentionsOf(s.gate!.info, 0)).toEqual(["@carol", "@acme/platform"]);
    expect(mentionsOf(s.gate!.info, 1)).toEqual(["@carol", "@oncall-lead", "@acme/platform"]);
    expect(announcedIn(sim.state, s.gate!.info)).toBe(7);
    const body = noticeComment(sim.state, s, "escalated", "https://sluice.example/runs/run1?exp=1&sig=x");
    expect(body).toContain("Approval needed (escalated, level 1)");
    expect(body).toContain("@carol @oncall-lead @acme/platform: run `run1`");
    expect(body).toContain("for 2 approvals (0 so far)");
    // The title's own @ mentions nobody.
    expect(body).toContain("Ship @\u200beveryone?");
    expect(body).toContain(`/approve run1 ${s.gate!.info.digest.slice(0, 12)}`);
    expect(body).toContain("[the run's page](https://sluice.example/runs/run1?exp=1&sig=x)");
    // Counted as the engine counts: one person approving twice is one approval of the two.
    const twice = { type: "approval_received" as const, at: T0 + 2 * HOUR + 2, step: "review", login: "carol", via: "cli" as const, decision: "approve" as const };
    const once = resume(sim, { at: T0 + 2 * HOUR + 3, signals: [twice, { ...twice, login: "Carol" }] });
    expect(once.state.completed).toBeUndefined();
    expect(once.state.steps.review!.gate!.approvals).toHaveLength(2);
    expect(noticeComment(once.state, once.state.steps.review!, "escalated", undefined)).toContain("for 2 approvals (1 so far)");
    const text = noticeText(sim.state, s, "reminder", undefined);
    expect(text).toContain("the deadline is in less than an hour");
    expect(text).toContain("Approvers: @carol, @oncall-lead, @acme/platform");
  });

  it("mentions the policy's floor when the gate names nobody, and folds long evidence", () => {
    const yaml = flow("8h").replace("approvers: { users: [carol], teams: [acme/platform], min: 1 }", "approvers: { permission: write }").replace('evidence: ["one"]', 'evidence: ["${{ inputs.big }}"]').replace("on: { manual: {} }", "on: { manual: { inputs: { big: { type: string } } } }");
    const config = "policy:\n  approvers: { teams: [acme/maintainers], min: 1 }\n";
    const sim = run([created(yaml, { config, inputs: { big: Array.from({ length: 40 }, (_, i) => `line ${i}`).join("\n") } })]);
    const s = sim.state.steps.review!;
    expect(mentionsOf(s.gate!.info, 0)).toEqual(["@acme/maintainers"]);
    expect(noticeComment(sim.state, s, "opened", undefined)).toMatch(/<details><summary>Evidence 1 \(40 lines\)<\/summary>\n\n```\nline 0\n/);
    const none = run([created(yaml, { inputs: { big: "short" } })]);
    expect(mentionsOf(none.state.steps.review!.gate!.info, 0)).toEqual([]);
    expect(noticeComment(none.state, none.state.steps.review!, "opened", undefined)).toContain("```\nshort\n```");
  });
});

describe("the check run after an escalation", () => {
  it("names the approvers in force, and only the first ones before", () => {
    const opened = run([created(flow("8h"))]);
    const before = buildCheckRun(runView(record("run1"), opened.state), { publicUrl: "https://s.example", extras: extrasOf(opened.state) }).output.summary;
    expect(before).toContain("| approvers | users `carol` or teams `acme/platform` |");
    const later = resume(opened, { at: T0 + 2 * HOUR + 1 });
    const after = buildCheckRun(runView(record("run1"), later.state), { publicUrl: "https://s.example", extras: extrasOf(later.state) }).output.summary;
    expect(after).toContain("| approvers | users `carol`, `oncall-lead` or teams `acme/platform` (escalated, level 1) |");
  });
});

describe("policy.notify in .github/sluice.yml", () => {
  it("takes a webhook connection, and names what is wrong otherwise", () => {
    const ok = validateConfig("connections:\n  slack: { type: webhook, secret: SLACK }\npolicy:\n  notify: { connection: slack }\n");
    expect(ok.config?.policy.notify).toEqual({ connection: "slack" });
    expect(validateConfig("policy: {}\n").config?.policy.notify).toBeUndefined();
    const unknown = validateConfig("policy:\n  notify: { connection: slack }\n");
    expect(unknown.diagnostics).toMatchObject([{ code: "CONNECTION_UNKNOWN", line: 2, pointer: "/policy/notify/connection" }]);
    const wrong = validateConfig("connections:\n  db: { type: postgres, secret: DB }\npolicy:\n  notify: { connection: db }\n");
    expect(wrong.diagnostics).toMatchObject([{ code: "CONFIG_SCHEMA", message: expect.stringContaining("is a postgres connection") }]);
    const extra = validateConfig("policy:\n  notify: { channel: general }\n");
    expect(extra.diagnostics.map((d) => d.code)).toContain("CONFIG_SCHEMA");
  });
});
