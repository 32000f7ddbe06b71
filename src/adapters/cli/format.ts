/** Text for people: a run with its steps, its gate and what to do next. */
import type { RunView, StepView } from "../../app/run-view.js";
import { table } from "./output.js";

export const MARK: Record<string, string> = {
  pending: "·",
  running: "…",
  waiting: "⏸",
  succeeded: "✓",
  failed: "✗",
  skipped: "-",
  cancelled: "⊘",
};

export function duration(ms: number | undefined): string {
  if (ms === undefined) return "";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function stepLine(s: StepView): string[] {
  const detail = s.error ? `${s.error.code}: ${s.error.message}` : s.covered_by && s.status === "pending" ? s.covered_by : "";
  return [`${MARK[s.status] ?? "?"} ${s.id}`, s.kind, s.effect, s.status, duration(s.duration_ms), detail];
}

export function formatRun(run: RunView): string {
  const lines = [
    `run ${run.id}  ${run.flow}  ${run.status}`,
    `release ${run.release.kind} ${run.release.ref} @ ${run.release.sha.slice(0, 7)}  triggered by ${run.trigger.actor}`,
    "",
    table([["step", "kind", "effect", "status", "time", ""], ...run.steps.map(stepLine)]),
  ];
  if (run.gate) {
    const g = run.gate;
    const who = [g.approvers.users?.join(", "), g.approvers.teams?.map((t) => `team ${t}`).join(", "), g.approvers.permission && `${g.approvers.permission} permission`]
      .filter(Boolean)
      .join(" or ");
    lines.push(
      "",
      `gate at ${g.step}: ${g.title}`,
      `  approvers: ${who || "anyone with write permission"}; ${g.approvals.length}/${g.min} approved${g.approvals.length ? ` (${g.approvals.map((a) => a.login).join(", ")})` : ""}`,
      `  digest ${g.digest.slice(0, 12)}${g.deadline ? `  deadline ${g.deadline}` : ""}`,
      ...g.refused.map((r) => `  refused: ${r.decision} by ${r.login} via ${r.via} (${r.reason})`),
      `  approve: sluice approve ${run.id} --as <login>    reject: sluice reject ${run.id} --as <login>`,
    );
  }
  if (run.error) lines.push("", `error ${run.error.code}: ${run.error.message}`);
  if (Object.keys(run.outputs).length) lines.push("", `outputs: ${JSON.stringify(run.outputs)}`);
  const waitingOn = run.steps.find((s) => s.status === "waiting" && s.kind === "wait" && !run.gate);
  if (run.status === "waiting" && waitingOn) lines.push("", `waiting at ${waitingOn.id}: complete it with sluice callback ${run.id} ${waitingOn.id} --body '{...}'`);
  return lines.join("\n");
}
