/**
 * Whether a human decision on a gate counts (SPEC §4, §5): who (a valid human login, eligible
 * under the policy's floor and the gate's approvers, not the trigger actor unless self-approval
 * is allowed twice over), where (a comment in the issue or pull request the run belongs to; a
 * review on the pull request the gate binds, of the head it binds) and what (the gate's current
 * digest). Pure: the shell resolves the person's facts and the place before asking, journals
 * the verdict either way, and answers with its message.
 */
import type { ErrorCode } from "../errors.js";
import type { ApprovalSignal, RefusalReason } from "./events.js";
import { digestMatches, eligibility, normaliseLogin } from "./gates.js";
import type { RunState, StepState } from "./state.js";

export type Judgement = { ok: true; login: string } | { ok: false; login: string; code: ErrorCode; reason: RefusalReason; message: string };

/** The issues and pull requests a run's decisions count in: where it started, and the pull request its gate names or binds. */
export function homesOf(state: RunState, s: StepState): number[] {
  const info = s.gate?.info;
  const homes = [state.trigger.issue, info?.pull_request, info?.head?.pull_request].filter((n): n is number => typeof n === "number");
  return [...new Set(homes)];
}

function placeProblem(state: RunState, s: StepState, signal: ApprovalSignal): { reason: RefusalReason; message: string } | undefined {
  if (signal.via !== "comment" && signal.via !== "review") return undefined;
  const info = s.gate!.info;
  const homes = homesOf(state, s);
  const where = homes.map((n) => `#${n}`).join(" or ");
  const issue = signal.place?.issue;
  if (signal.via === "comment") {
    if (issue !== undefined && homes.includes(issue)) return undefined;
    return {
      reason: "wrong_place",
      message: homes.length
        ? `a decision on run ${state.id} counts only in ${where}, where the run belongs, not in ${issue === undefined ? "an unknown place" : `#${issue}`}`
        : `run ${state.id} belongs to no issue or pull request, so a comment cannot decide it: use the check run's buttons`,
    };
  }
  const head = info.head;
  if (!head) {
    return { reason: "wrong_place", message: `gate '${s.id}' of run ${state.id} binds no pull request head, so a review cannot decide it${homes.length ? `: comment /approve in ${where}` : ""}` };
  }
  if (issue !== head.pull_request) {
    return { reason: "wrong_place", message: `a review counts for gate '${s.id}' of run ${state.id} only on #${head.pull_request}, not on ${issue === undefined ? "an unknown pull request" : `#${issue}`}` };
  }
  if (!signal.place?.commit || signal.place.commit.toLowerCase() !== head.sha) {
    return {
      reason: "stale_digest",
      message: `the review is of ${signal.place?.commit ? `commit ${signal.place.commit.slice(0, 7)}` : "an unknown commit"}, but gate '${s.id}' binds #${head.pull_request} at ${head.sha.slice(0, 7)}: review that head, or start a new run`,
    };
  }
  return undefined;
}

/** The verdict on one decision for an open gate. */
export function judgeDecision(state: RunState, s: StepState, signal: ApprovalSignal, mode: "local" | "github"): Judgement {
  const gate = s.gate;
  const login = normaliseLogin(signal.login);
  if (!gate) return { ok: false, login, code: "NOT_WAITING", reason: "not_eligible", message: `step '${s.id}' is not waiting for a decision` };
  const verdict = eligibility(gate.info, gate.level, { ...signal, login }, state.trigger.actor, mode);
  if (!verdict.ok) return { ok: false, login, code: verdict.code, reason: verdict.refusal, message: verdict.reason };
  const place = placeProblem(state, s, signal);
  if (place) return { ok: false, login, code: place.reason === "wrong_place" ? "APPROVAL_WRONG_PLACE" : "APPROVAL_STALE", ...place };
  if (signal.digest !== undefined && !digestMatches(signal.digest, gate.info.digest)) {
    return {
      ok: false,
      login,
      code: "APPROVAL_STALE",
      reason: "stale_digest",
      message: `digest ${signal.digest} does not match the gate's current digest ${gate.info.digest.slice(0, 12)}: the evidence changed, look again`,
    };
  }
  return { ok: true, login };
}
