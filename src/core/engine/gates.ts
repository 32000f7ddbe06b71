/**
 * Gates: the digest an approval is bound to, who may approve, and the tally of a quorum.
 * Pure; the shell resolves facts about a person (bot, permission, teams) before asking.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import type { ApprovalSignal, GateInfo, RefusalReason } from "./events.js";

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

/**
 * The digest of a gate: release SHA, run, step and the evidence values (SPEC §4), and the head
 * SHA of the pull request the gate binds, when it binds one.
 */
export function gateDigest(parts: { sha: string; runId: string; step: string; evidence: unknown[]; head?: GateInfo["head"] }): string {
  const fields: unknown[] = [parts.sha, parts.runId, parts.step, parts.evidence];
  if (parts.head) fields.push({ pull_request: parts.head.pull_request, head: parts.head.sha });
  return bytesToHex(sha256(utf8ToBytes(canonicalJson(fields))));
}

/** The gate bound to a pull request's head: reviews then count on that head only, and the digest covers it. */
export function bindHead(gate: GateInfo, head: NonNullable<GateInfo["head"]>, at: { sha: string; runId: string; step: string }): GateInfo {
  const bound = { pull_request: head.pull_request, sha: head.sha.toLowerCase() };
  return { ...gate, head: bound, digest: gateDigest({ ...at, evidence: gate.evidence, head: bound }) };
}

/**
 * Whether a recorded or given digest names the gate's current digest: in full or by a prefix of
 * 7+ characters. An empty digest never matches, on either side.
 */
export function digestMatches(given: string | undefined, digest: string): boolean {
  if (!given || !digest) return false;
  const g = given.toLowerCase();
  return g.length >= 7 && digest.startsWith(g);
}

/** A login as compared everywhere: trimmed; comparisons ignore case. */
export function normaliseLogin(login: string): string {
  return login.trim();
}

export function sameLogin(a: string, b: string): boolean {
  return normaliseLogin(a).toLowerCase() === normaliseLogin(b).toLowerCase();
}

/** `[bot]` at the end of a login, in any case, marks an app's bot account. */
export function isBotLogin(login: string): boolean {
  return /\[bot\]$/i.test(normaliseLogin(login));
}

/** A GitHub login: 1-39 alphanumerics or single hyphens, not starting or ending with a hyphen. */
export function isValidLogin(login: string): boolean {
  return /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/.test(normaliseLogin(login));
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

export type Eligibility =
  | { ok: true }
  | { ok: false; code: "APPROVAL_NOT_ELIGIBLE"; refusal: Extract<RefusalReason, "self" | "bot" | "invalid_login" | "not_eligible">; reason: string; needs?: string };

/**
 * The teams whose membership decides who may approve: the gate's in force and the policy
 * floor's (every approver meets both). What a decision path asks GitHub about a person.
 */
export function teamsAsked(gate: GateInfo, level: number): string[] {
  return [...new Set([...(approversAt(gate, level).teams ?? []), ...(gate.floor?.teams ?? [])])];
}

/** The quorum in force: the gate's (after escalations), never below the policy's floor. */
export function quorumOf(gate: GateInfo, level: number): number {
  return Math.max(approversAt(gate, level).min, gate.floor?.min ?? 0);
}

/**
 * Whether a person may decide a gate: a human (not a bot, a valid login), not the trigger actor
 * unless the gate allows self-approval, meeting the policy's floor and the gate's own approvers
 * (SPEC §4: a gate's approvers add requirements to the policy's, never replace them). `local`
 * mode knows no GitHub permissions: anyone other than the trigger actor counts as having write
 * permission, and a gate that names teams says it cannot be decided locally by team membership.
 */
export function eligibility(
  gate: GateInfo,
  level: number,
  signal: ApprovalSignal,
  triggerActor: string,
  mode: "local" | "github",
): Eligibility {
  const login = normaliseLogin(signal.login);
  const refuse = (refusal: Extract<Eligibility, { ok: false }>["refusal"], reason: string, needs?: string): Eligibility => ({
    ok: false,
    code: "APPROVAL_NOT_ELIGIBLE",
    refusal,
    reason,
    ...(needs ? { needs } : {}),
  });
  if (signal.is_bot || isBotLogin(login)) return refuse("bot", `${login} is a bot; only humans approve`);
  if (!isValidLogin(login)) return refuse("invalid_login", `'${login}' is not a valid GitHub login`);
  if (!gate.allow_self_approval && sameLogin(login, triggerActor)) {
    return refuse("self", `${login} triggered this run and may not approve it (self-approval needs the gate's allow_self_approval and the default branch's policy.allow_self_approval)`);
  }
  for (const [approvers, what] of [
    [gate.floor, "the policy's approvers"],
    [approversAt(gate, level), "this gate's approvers"],
  ] as const) {
    if (!approvers) continue;
    const miss = unmet(approvers, { ...signal, login }, mode);
    if (miss) return refuse("not_eligible", `${miss.reason}${gate.floor ? ` (${what})` : ""}`, miss.needs);
  }
  return { ok: true };
}

/** Why a person does not meet a set of approvers, or undefined when they do. */
function unmet(approvers: Approvers, signal: ApprovalSignal, mode: "local" | "github"): { reason: string; needs?: string } | undefined {
  const users = (approvers.users ?? []).map((u) => normaliseLogin(u).toLowerCase());
  if (users.includes(signal.login.toLowerCase())) return undefined;
  const teams = approvers.teams ?? [];
  if (teams.length > 0) {
    if (mode === "local") {
      if (users.length === 0 && !approvers.permission) {
        return { reason: `this gate needs a member of ${teams.join(", ")}; team membership is known only on the server`, needs: `team ${teams.join(" or ")}` };
      }
    } else if ((signal.teams ?? []).some((t) => teams.map((x) => x.toLowerCase()).includes(t.toLowerCase()))) {
      return undefined;
    }
  }
  if (approvers.permission) {
    const have: Permission = mode === "local" ? "write" : (signal.permission ?? "none");
    const need = approvers.permission as Permission;
    if (PERMISSION_RANK[have] >= (PERMISSION_RANK[need] ?? PERMISSION_RANK.write)) return undefined;
    return { reason: `${signal.login} has ${have} permission; this needs ${need}`, needs: `${need} permission` };
  }
  const needs = [users.length ? `one of ${users.join(", ")}` : "", teams.length ? `a member of ${teams.join(", ")}` : ""].filter(Boolean).join(" or ");
  return { reason: `${signal.login} is not an approver of this gate (needs ${needs || "nobody listed"})`, ...(needs ? { needs } : {}) };
}
