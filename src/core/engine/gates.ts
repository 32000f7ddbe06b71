/**
 * Gates: the digest an approval is bound to, who may approve, and the tally of a quorum.
 * Pure; the shell resolves facts about a person (bot, permission, teams) before asking.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import type { ApprovalSignal, GateInfo } from "./events.js";

/** JSON with sorted keys, so a digest does not depend on key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/** The digest of a gate: release SHA, run, step and the evidence values (SPEC §4). */
export function gateDigest(parts: { sha: string; runId: string; step: string; evidence: unknown[] }): string {
  return bytesToHex(sha256(utf8ToBytes(canonicalJson([parts.sha, parts.runId, parts.step, parts.evidence]))));
}

/** A digest given by a person matches when it is the full digest or a prefix of 7+ characters. */
export function digestMatches(given: string | undefined, digest: string): boolean {
  if (given === undefined || given === "") return true;
  const g = given.toLowerCase();
  return g.length >= 7 && digest.startsWith(g);
}

const PERMISSION_RANK = { none: 0, read: 1, triage: 2, write: 3, maintain: 4, admin: 5 } as const;
type Permission = keyof typeof PERMISSION_RANK;

export type Approvers = GateInfo["approvers"];

/** The approvers in force at an escalation level (each level adds its people and teams). */
export function approversAt(gate: GateInfo, level: number): Approvers {
  let current: Approvers = { ...gate.approvers };
  for (const step of gate.escalate.slice(0, level)) {
    const a = step.approvers;
    current = {
      ...current,
      ...(a.users ? { users: [...(current.users ?? []), ...a.users] } : {}),
      ...(a.teams ? { teams: [...(current.teams ?? []), ...a.teams] } : {}),
      ...(a.permission ? { permission: a.permission } : {}),
      min: a.min ?? current.min,
    };
  }
  return current;
}

export type Eligibility = { ok: true } | { ok: false; code: "APPROVAL_NOT_ELIGIBLE"; reason: string; needs?: string };

/**
 * Whether a person may decide a gate. `local` mode knows no GitHub permissions: anyone other
 * than the trigger actor counts as having write permission, and a gate that names teams says
 * it cannot be decided locally by team membership.
 */
export function eligibility(
  gate: GateInfo,
  level: number,
  signal: ApprovalSignal,
  triggerActor: string,
  mode: "local" | "github",
): Eligibility {
  const approvers = approversAt(gate, level);
  if (signal.is_bot || /\[bot\]$/.test(signal.login)) {
    return { ok: false, code: "APPROVAL_NOT_ELIGIBLE", reason: `${signal.login} is a bot; only humans approve` };
  }
  if (!gate.allow_self_approval && signal.login.toLowerCase() === triggerActor.toLowerCase()) {
    return {
      ok: false,
      code: "APPROVAL_NOT_ELIGIBLE",
      reason: `${signal.login} triggered this run and the gate does not allow self-approval`,
    };
  }
  const users = (approvers.users ?? []).map((u) => u.toLowerCase());
  if (users.includes(signal.login.toLowerCase())) return { ok: true };
  const teams = approvers.teams ?? [];
  if (teams.length > 0) {
    if (mode === "local") {
      if (users.length === 0 && !approvers.permission) {
        return {
          ok: false,
          code: "APPROVAL_NOT_ELIGIBLE",
          reason: `this gate needs a member of ${teams.join(", ")}; team membership is known only on the server`,
          needs: `team ${teams.join(" or ")}`,
        };
      }
    } else if ((signal.teams ?? []).some((t) => teams.map((x) => x.toLowerCase()).includes(t.toLowerCase()))) {
      return { ok: true };
    }
  }
  if (approvers.permission) {
    const have: Permission = mode === "local" ? "write" : (signal.permission ?? "none");
    const need = approvers.permission as Permission;
    if (PERMISSION_RANK[have] >= (PERMISSION_RANK[need] ?? PERMISSION_RANK.write)) return { ok: true };
    return {
      ok: false,
      code: "APPROVAL_NOT_ELIGIBLE",
      reason: `${signal.login} has ${have} permission; this gate needs ${need}`,
      needs: `${need} permission`,
    };
  }
  const needs = [users.length ? `one of ${users.join(", ")}` : "", teams.length ? `a member of ${teams.join(", ")}` : ""]
    .filter(Boolean)
    .join(" or ");
  return { ok: false, code: "APPROVAL_NOT_ELIGIBLE", reason: `${signal.login} is not an approver of this gate (needs ${needs || "nobody listed"})`, needs };
}
