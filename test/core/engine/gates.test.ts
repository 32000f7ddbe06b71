import { describe, expect, it } from "vitest";
import type { GateInfo } from "../../../src/core/engine/events.js";
import { canonicalJson, digestMatches, eligibility, isValidLogin, quorumOf } from "../../../src/core/engine/gates.js";

const gate = (over: Partial<GateInfo> = {}): GateInfo => ({
  kind: "approval",
  title: "t",
  digest: "abcdef0123456789",
  approvers: { permission: "write", min: 1 },
  allow_self_approval: false,
  deadline: null,
  escalate: [],
  on_timeout: "fail",
  evidence: [],
  ...over,
});

describe("eligibility", () => {
  const cases: [string, GateInfo, Parameters<typeof eligibility>[2], "local" | "github", boolean, RegExp?][] = [
    ["anyone but the actor, locally, for a permission gate", gate(), { login: "bob", via: "cli", decision: "approve" }, "local", true],
    ["not the trigger actor", gate(), { login: "Alice", via: "cli", decision: "approve" }, "local", false, /triggered this run/],
    ["the actor when self-approval is allowed", gate({ allow_self_approval: true }), { login: "alice", via: "cli", decision: "approve" }, "local", true],
    ["never a bot", gate(), { login: "deploy[bot]", via: "comment", decision: "approve" }, "github", false, /bot/],
    ["never a bot flagged by GitHub", gate(), { login: "robo", via: "comment", decision: "approve", is_bot: true, permission: "admin" }, "github", false, /bot/],
    ["a listed user", gate({ approvers: { users: ["Bob"], min: 1 } }), { login: "bob", via: "cli", decision: "approve" }, "local", true],
    ["not an unlisted user", gate({ approvers: { users: ["bob"], min: 1 } }), { login: "carol", via: "cli", decision: "approve" }, "local", false, /not an approver/],
    ["team gates cannot be decided by membership locally", gate({ approvers: { teams: ["acme/platform"], min: 1 } }), { login: "bob", via: "cli", decision: "approve" }, "local", false, /known only on the server/],
    ["a team member on GitHub", gate({ approvers: { teams: ["acme/platform"], min: 1 } }), { login: "bob", via: "review", decision: "approve", teams: ["acme/platform"] }, "github", true],
    ["write permission on GitHub", gate(), { login: "bob", via: "comment", decision: "approve", permission: "maintain" }, "github", true],
    ["read permission is not enough on GitHub", gate(), { login: "bob", via: "comment", decision: "approve", permission: "read" }, "github", false, /has read permission/],
  ];
  for (const [name, g, signal, mode, ok, reason] of cases) {
    it(name, () => {
      const r = eligibility(g, 0, signal, "alice", mode);
      expect(r.ok).toBe(ok);
      if (!r.ok && reason) expect(r.reason).toMatch(reason);
    });
  }

  it("the policy's floor binds a gate's own approvers: they add requirements, never replace them", () => {
    // A draft names its author as approver; the default branch's policy still wants write permission.
    const g = gate({ approvers: { users: ["mallory"], min: 1 }, floor: { permission: "write", min: 1 } });
    const mallory = { login: "mallory", via: "comment" as const, decision: "approve" as const, permission: "read" as const };
    expect(eligibility(g, 0, mallory, "alice", "github")).toMatchObject({ ok: false, refusal: "not_eligible", reason: /has read permission.*policy's approvers/ });
    expect(eligibility(g, 0, { ...mallory, permission: "write" }, "alice", "github").ok).toBe(true);
    // Someone the policy allows but the gate does not list: the gate's requirement holds too.
    expect(eligibility(g, 0, { ...mallory, login: "bob", permission: "admin" }, "alice", "github")).toMatchObject({ ok: false, reason: /not an approver of this gate/ });
    // The floor's quorum is the least quorum.
    expect(quorumOf(gate({ approvers: { users: ["a", "b"], min: 1 }, floor: { permission: "write", min: 2 } }), 0)).toBe(2);
    expect(quorumOf(gate({ approvers: { users: ["a", "b", "c"], min: 3 }, floor: { permission: "write", min: 2 } }), 0)).toBe(3);
  });

  it("logins are trimmed and compared without case; [bot] in any case is a bot; invalid logins are refused", () => {
    const g = gate({ approvers: { users: ["Bob"], min: 1 } });
    expect(eligibility(g, 0, { login: "  bob ", via: "cli", decision: "approve" }, "alice", "local").ok).toBe(true);
    expect(eligibility(gate(), 0, { login: " ALICE", via: "cli", decision: "approve" }, "alice", "local")).toMatchObject({ ok: false, refusal: "self" });
    expect(eligibility(gate(), 0, { login: "Deploy[BOT]", via: "comment", decision: "approve", permission: "admin" }, "alice", "github")).toMatchObject({ ok: false, refusal: "bot" });
    for (const login of ["", "-bob", "bob-", "bo--b", "bob smith", "x".repeat(40), "b\nob", "böb", "bob_1"]) {
      expect(eligibility(gate(), 0, { login, via: "cli", decision: "approve" }, "alice", "local"), login).toMatchObject({ ok: false, refusal: "invalid_login" });
    }
    expect(isValidLogin("a-b-c1")).toBe(true);
  });

  it("escalation adds approvers", () => {
    const g = gate({ approvers: { users: ["bob"], min: 1 }, escalate: [{ after_ms: 1, approvers: { users: ["lead"] } }] });
    expect(eligibility(g, 0, { login: "lead", via: "cli", decision: "approve" }, "alice", "local").ok).toBe(false);
    expect(eligibility(g, 1, { login: "lead", via: "cli", decision: "approve" }, "alice", "local").ok).toBe(true);
  });
});

describe("digests", () => {
  it("match in full or by a prefix of at least 7 characters; an empty digest never matches", () => {
    expect(digestMatches(undefined, "abcdef0123")).toBe(false);
    expect(digestMatches("", "abcdef0123")).toBe(false);
    expect(digestMatches("abcdef0", "")).toBe(false);
    expect(digestMatches("", "")).toBe(false);
    expect(digestMatches("abcdef0123", "abcdef0123")).toBe(true);
    expect(digestMatches("ABCDEF0", "abcdef0123")).toBe(true);
    expect(digestMatches("abcdef", "abcdef0123")).toBe(false);
    expect(digestMatches("abcdef1", "abcdef0123")).toBe(false);
  });

  it("canonical JSON ignores key order", () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: null }] })).toBe(canonicalJson({ a: [{ c: null, d: 2 }], b: 1 }));
  });
});
