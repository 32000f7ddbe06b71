/**
 * Approvals from GitHub (SPEC §5): `/approve` and `/reject` comments, pull-request reviews and
 * the check run's buttons all end in `decideGate`, with the sender's facts resolved from
 * GitHub first (bot, repository permission, membership of the gate's teams) and the place the
 * decision was made (the issue or pull request, the commit a review looked at), so every path
 * checks the same eligibility, digest and place rules. Also: which runs a comment or review is about.
 */
import { runView } from "../../app/run-view.js";
import { decideGate, openGates } from "../../app/signals.js";
import { tally } from "../../core/engine/decide.js";
import type { ApprovalSignal, GateInfo } from "../../core/engine/events.js";
import { teamsAsked } from "../../core/engine/gates.js";
import type { RunState } from "../../core/engine/state.js";
import { SluiceError } from "../../core/errors.js";
import type { RunRecord, RunStatus } from "../../ports/run-store.js";
import type { GitHubApi } from "../../ports/step-executor.js";
import { runUrl, type GitHubDeps } from "./deps.js";
import { personOf, type Sender } from "./people.js";

export interface LoadedRun {
  record: RunRecord;
  state: RunState;
}

export const ACTIVE: RunStatus[] = ["queued", "running", "waiting"];

/** Whether a gate names an issue or pull request: the one it announces, or the one whose head it binds. */
function names(info: GateInfo, issue: number): boolean {
  return info.pull_request === issue || info.head?.pull_request === issue;
}

/**
 * Whether a decision made in an issue or pull request may be about a run: the run was started
 * there, or one of its open gates names it (SPEC §5: a decision counts only there).
 */
export function concerns(state: RunState, issue: number): boolean {
  return state.trigger.issue === issue || openGates(state).some((g) => !!g.gate && names(g.gate.info, issue));
}

/**
 * Whether a run belongs to an issue or pull request, for `/cancel` and `/retry`: started there,
 * or any of its gates (open or settled) named it.
 */
export function belongsTo(state: RunState, issue: number): boolean {
  return state.trigger.issue === issue || Object.values(state.steps).some((s) => !!s.gate && names(s.gate.info, issue));
}

/** The runs of a repository with these statuses (newest first), loaded. */
export async function loadRuns(deps: GitHubDeps, repo: string, status: readonly RunStatus[], limit = 200): Promise<LoadedRun[]> {
  const records = await deps.store.listRuns({ repo, status, limit });
  const out: LoadedRun[] = [];
  for (const record of records) out.push({ record, state: (await deps.runtime.load(record.id)).state });
  return out.sort((a, b) => b.record.createdAt - a.record.createdAt);
}

/** A run named in a command, checked to belong to the repository. */
export async function namedRun(deps: GitHubDeps, repo: string, id: string): Promise<LoadedRun | undefined> {
  const record = await deps.store.getRun(id);
  if (!record || record.repo.toLowerCase() !== repo.toLowerCase()) return undefined;
  return { record, state: (await deps.runtime.load(id)).state };
}

export type Target = { ok: true; runs: LoadedRun[] } | { ok: false; message: string };

export function hasGate(r: LoadedRun): boolean {
  return openGates(r.state).length > 0;
}

/**
 * The one run with an open gate a decision is about: the run named, or the only waiting run of
 * this issue or pull request (never one of elsewhere); a clear message when there is none or several.
 */
export async function gateTarget(deps: GitHubDeps, repo: string, issue: number, explicit?: string): Promise<Target> {
  if (explicit) {
    const run = await namedRun(deps, repo, explicit);
    return run ? { ok: true, runs: [run] } : { ok: false, message: `there is no run \`${explicit}\` in ${repo}` };
  }
  const runs = (await loadRuns(deps, repo, ["waiting"])).filter((r) => hasGate(r) && concerns(r.state, issue));
  if (runs.length === 1) return { ok: true, runs };
  if (runs.length === 0) return { ok: false, message: "no run of this issue or pull request is waiting for approval: a decision counts only where its run was started or in the pull request its gate names" };
  return { ok: false, message: `several runs wait for approval here (${runs.map((r) => `\`${r.record.id}\``).join(", ")}): name one, e.g. \`/approve ${runs[0]?.record.id}\`` };
}

export interface DecisionRequest {
  runId: string;
  decision: "approve" | "reject";
  via: ApprovalSignal["via"];
  sender: Sender;
  /** Where the decision was made; none for the run's own check run (found by its external_id). */
  place?: ApprovalSignal["place"];
  digest?: string;
  comment?: string;
}

export type Outcome = { ok: true; message: string } | { ok: false; code: string; message: string };

const REFUSALS = new Set(["APPROVAL_NOT_ELIGIBLE", "APPROVAL_STALE", "APPROVAL_WRONG_PLACE", "NOT_WAITING", "RUN_NOT_FOUND", "NOT_FOUND"]);

/**
 * Resolves the sender's facts and records the decision; a refusal says why. `decideGate`
 * advances the run itself, so nothing here kicks it again.
 */
export async function decideFromGitHub(deps: GitHubDeps, api: GitHubApi, repo: string, req: DecisionRequest): Promise<Outcome> {
  const { state } = await deps.runtime.load(req.runId);
  const open = openGates(state)[0];
  const teams = open?.gate ? teamsAsked(open.gate.info, open.gate.level) : [];
  const person = await personOf(api, repo, req.sender, teams);
  try {
    const r = await decideGate(deps.runtime, req.runId, {
      login: person.login,
      via: req.via,
      decision: req.decision,
      is_bot: person.is_bot,
      permission: person.permission,
      teams: person.teams,
      ...(req.place ? { place: req.place } : {}),
      ...(req.digest ? { digest: req.digest } : {}),
      ...(req.comment ? { comment: req.comment } : {}),
    });
    return { ok: true, message: await afterDecision(deps, req, r.step) };
  } catch (e) {
    if (e instanceof SluiceError && REFUSALS.has(e.code)) {
      return { ok: false, code: e.code, message: `${req.decision === "approve" ? "the approval" : "the rejection"} of run \`${req.runId}\` did not count: ${e.message}` };
    }
    throw e;
  }
}

/** What the decision did, from the gate's tally (the run itself may still be advancing). */
async function afterDecision(deps: GitHubDeps, req: DecisionRequest, step: string): Promise<string> {
  const { state } = await deps.runtime.load(req.runId);
  const link = `[\`${req.runId}\`](${runUrl(deps, req.runId)})`;
  const what = `gate \`${step}\` of run ${link} (${state.flow.name})`;
  if (req.decision === "reject") return `rejected ${what}: the run stops there`;
  const s = state.steps[step];
  if (!s?.gate) return `approved ${what}`;
  const t = tally(s);
  if (t.approvedBy.length >= t.min) return `approved ${what} (${t.approvedBy.length}/${t.min}): the run continues`;
  return `approval of ${what} counted: ${t.approvedBy.length}/${t.min}, waiting for ${t.min - t.approvedBy.length} more`;
}

/** One line per run for `/status`. */
export function statusLine(deps: GitHubDeps, r: LoadedRun): string {
  const v = runView(r.record, r.state);
  const gate = v.gate ? ` · gate \`${v.gate.step}\` ${v.gate.approvals.length}/${v.gate.min}, digest \`${v.gate.digest.slice(0, 12)}\`` : "";
  const current = v.steps.find((s) => s.status === "running" || s.status === "waiting");
  return `| [\`${v.id}\`](${runUrl(deps, v.id)}) | ${v.flow} | ${v.status}${gate} | ${current ? `\`${current.id}\`` : "—"} | ${v.release.kind} \`${v.release.sha.slice(0, 7)}\` | ${v.trigger.actor} |`;
}
