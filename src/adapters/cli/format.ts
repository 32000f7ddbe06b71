/** Text for people: a run with its steps, its gate with the evidence, and what to do next. */
import type { RunView, StepView } from "../../app/run-view.js";
import type { explainGate } from "../../app/signals.js";
import { paint, table, type Paint } from "./output.js";

export const MARK: Record<string, string> = {
  pending: "·",
  running: "…",
  waiting: "⏸",
  succeeded: "✓",
  failed: "✗",
  skipped: "-",
  cancelled: "⊘",
};

/** A status in its colour: green done, red failed, yellow waiting. */
export function statusText(status: string, p: Paint): string {
  if (status === "succeeded") return p.green(status);
  if (status === "failed" || status === "timed_out") return p.red(status);
  if (status === "waiting" || status === "queued" || status === "running") return p.yellow(status);
  return p.dim(status);
}

function mark(status: string, p: Paint): string {
  const m = MARK[status] ?? "?";
  return status === "succeeded" ? p.green(m) : status === "failed" ? p.red(m) : status === "waiting" ? p.yellow(m) : m;
}

export function duration(ms: number | undefined): string {
  if (ms === undefined) return "";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Formatters are costly to make (a worker prints a line per step): one per time zone, kept. */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(key: string, make: () => Intl.DateTimeFormat): Intl.DateTimeFormat {
  let f = formatters.get(key);
  if (!f) formatters.set(key, (f = make()));
  return f;
}

/** A moment as the reader's local time: `2025-11-29 21:04:05 CET` (an ISO string or epoch ms). */
export function localTime(at: string | number | null | undefined, timeZone?: string): string {
  if (at === null || at === undefined) return "none";
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return String(at);
  if (timeZone) {
    const parts = Object.fromEntries(
      formatter(timeZone, () => new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short" }))
        .formatToParts(d)
        .map((x) => [x.type, x.value]),
    );
    return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
  }
  const zone = formatter("", () => new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })).formatToParts(d).find((x) => x.type === "timeZoneName")?.value ?? "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${zone ? ` ${zone}` : ""}`;
}

export function stepLine(s: StepView, p: Paint): string[] {
  const detail = s.error ? p.red(`${s.error.code}: ${s.error.message}`) : s.covered_by && s.status === "pending" ? p.dim(s.covered_by) : "";
  return [`${mark(s.status, p)} ${s.id}`, s.kind, s.effect === "write" ? p.magenta(s.effect) : s.effect, statusText(s.status, p), duration(s.duration_ms), detail];
}

/** What a gate shows beyond the run view: its summary and evidence (from `explainGate`). */
export interface GateDetail {
  kind: string;
  summary?: string;
  evidence: unknown[];
  deadline: string | null;
}

/** Evidence longer than this many lines is folded: its first lines, and how to see the rest. */
export const FOLD_LINES = 24;

const isDiff = (text: string) => /^(diff --git |--- \S|@@ -\d)/m.test(text) && /^[+-]/m.test(text);

function colourDiff(text: string, p: Paint): string {
  return text
    .split("\n")
    .map((l) => (l.startsWith("+++") || l.startsWith("---") ? p.bold(l) : l.startsWith("+") ? p.green(l) : l.startsWith("-") ? p.red(l) : l.startsWith("@@") ? p.cyan(l) : l))
    .join("\n");
}

function fold(text: string, more: string): string[] {
  const lines = text.split("\n");
  if (lines.length <= FOLD_LINES) return lines;
  return [...lines.slice(0, FOLD_LINES), `… ${lines.length - FOLD_LINES} more lines (${more})`];
}

/** An implicit gate's evidence is the step's evaluated parameters: the request it guards. */
function requestLines(item: { step?: unknown; kind?: unknown; params?: unknown }, p: Paint): string[] | undefined {
  const params = item.params as Record<string, unknown> | undefined;
  if (!params || typeof params !== "object") return undefined;
  const body = (v: unknown) => (v === undefined ? [] : (typeof v === "string" ? v : JSON.stringify(v, null, 2)).split("\n"));
  switch (item.kind) {
    case "http": {
      const method = String(params.method ?? "GET").toUpperCase();
      const via = typeof params.connection === "string" ? ` (connection ${params.connection})` : "";
      return [`${p.bold(method)} ${params.url}${via}`, ...body(params.body)];
    }
    case "db":
      return [`${p.bold("query")} on ${params.connection}: ${params.query}`, ...(params.params ? [`params: ${JSON.stringify(params.params)}`] : [])];
    case "ssh":
      return [`${p.bold("ssh")} ${params.connection}: ${params.run}`, ...(params.env ? [`env: ${JSON.stringify(params.env)}`] : [])];
    default:
      return [`${p.bold(String(item.kind))} ${JSON.stringify(params, null, 2)}`];
  }
}

/** A gate's summary and evidence, long items folded, diffs coloured. */
export function evidenceLines(runId: string, gate: GateDetail, p: Paint, indent = "  "): string[] {
  const more = `sluice gates explain ${runId} --json shows all of it`;
  const out: string[] = [];
  if (gate.summary) out.push(`${indent}${p.bold("summary:")} ${gate.summary}`);
  gate.evidence.forEach((item, i) => {
    const label = gate.evidence.length > 1 ? `evidence ${i + 1}:` : "evidence:";
    let lines: string[];
    if (gate.kind === "implicit" && item && typeof item === "object" && "params" in item) {
      out.push(`${indent}${p.bold("request it guards:")}`);
      lines = fold((requestLines(item as { kind?: unknown; params?: unknown }, p) ?? []).join("\n"), more);
    } else {
      out.push(`${indent}${p.bold(label)}`);
      const text = typeof item === "string" ? item : JSON.stringify(item, null, 2);
      lines = fold(isDiff(text) ? colourDiff(text, p) : text, more);
    }
    out.push(...lines.map((l) => `${indent}  ${l}`));
  });
  return out;
}

/** A gate as `gates explain` shows it (`explainGate`'s answer). */
export type GateExplanation = ReturnType<typeof explainGate>;

/** `gates explain` of one gate: evidence, who may approve, quorum, deadline, digest, stale and refused decisions. */
export function gateLines(id: string, g: GateExplanation, p: Paint, as: string): string[] {
  const who = [g.approvers.users.length ? g.approvers.users.join(", ") : "", g.approvers.teams.length ? `members of ${g.approvers.teams.join(", ")}` : "", g.approvers.permission ? `anyone with ${g.approvers.permission} permission` : ""].filter(Boolean).join(" or ");
  return [
    p.yellow(`gate at ${g.step} (${g.kind}): ${g.title}`),
    ...evidenceLines(id, g, p),
    `  who may approve: ${who}`,
    `  quorum: ${g.quorum}${g.approvals.length ? ` (${g.approvals.map((a) => `${a.login} via ${a.via}`).join(", ")})` : ""}`,
    `  deadline: ${g.deadline ? localTime(g.deadline) : "none"}`,
    `  digest: ${g.digest}`,
    ...(g.stale_approvals.length ? [`  stale approvals (the evidence changed since): ${g.stale_approvals.map((a) => a.login).join(", ")}`] : []),
    ...g.refused.map((r) => `  refused: ${r.decision} by ${r.login} via ${r.via} (${r.reason}): ${r.message}`),
    ...g.notes.map((n) => `  note: ${n}`),
    `  approve: sluice approve ${id} ${as}--digest ${g.digest}`,
  ];
}

export function formatRun(run: RunView, opts: { colour?: boolean; gate?: GateDetail } = {}): string {
  const p = paint(opts.colour);
  const lines = [
    `run ${p.bold(run.id)}  ${run.flow}  ${statusText(run.status, p)}`,
    `release ${run.release.kind} ${run.release.ref} @ ${run.release.sha.slice(0, 7)}  triggered by ${run.trigger.actor}  ${p.dim(localTime(run.created_at))}`,
    "",
    table([["step", "kind", "effect", "status", "time", ""].map((h) => p.dim(h)), ...run.steps.map((s) => stepLine(s, p))]),
  ];
  if (run.gate) {
    const g = run.gate;
    const who = [g.approvers.users?.join(", "), g.approvers.teams?.map((t) => `team ${t}`).join(", "), g.approvers.permission && `${g.approvers.permission} permission`]
      .filter(Boolean)
      .join(" or ");
    lines.push(
      "",
      p.yellow(`gate at ${g.step}: ${g.title}`),
      ...(opts.gate ? evidenceLines(run.id, opts.gate, p) : []),
      `  approvers: ${who || "anyone with write permission"}; ${g.approvals.length}/${g.min} approved${g.approvals.length ? ` (${g.approvals.map((a) => a.login).join(", ")})` : ""}`,
      `  digest ${g.digest.slice(0, 12)}${g.deadline ? `  deadline ${localTime(g.deadline)}` : ""}`,
      ...g.refused.map((r) => `  refused: ${r.decision} by ${r.login} via ${r.via} (${r.reason})`),
      `  approve: sluice approve ${run.id} --as <login>    reject: sluice reject ${run.id} --as <login>`,
    );
  }
  if (run.error) lines.push("", p.red(`error ${run.error.code}: ${run.error.message}`));
  if (Object.keys(run.outputs).length) lines.push("", `outputs: ${JSON.stringify(run.outputs)}`);
  const waitingOn = run.steps.find((s) => s.status === "waiting" && s.kind === "wait" && !run.gate);
  if (run.status === "waiting" && waitingOn) lines.push("", `waiting at ${waitingOn.id}: complete it with sluice callback ${run.id} ${waitingOn.id} --body '{...}' (or POST its callback URL while sluice worker runs)`);
  return lines.join("\n");
}
