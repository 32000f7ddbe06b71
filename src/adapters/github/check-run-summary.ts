/**
 * A run as a GitHub check run (SPEC §5 "Run history"): the build step of find → build →
 * upsert. Pure: a RunView (and a few facts of the run's state) in, the check run's request
 * body out, bounded by GitHub's limits (65,535 bytes of summary and of text, 255 characters of
 * title, 3 buttons with labels and identifiers of 20 characters, descriptions of 40).
 */
import type { GateInfo } from "../../core/engine/events.js";
import { approversAt } from "../../core/engine/gates.js";
import type { RunState } from "../../core/engine/state.js";
import type { RunView, StepView } from "../../app/run-view.js";
import { isTerminal } from "../../ports/run-store.js";

export const CHECK_RUN_LIMITS = {
  summaryBytes: 65_535,
  textBytes: 65_535,
  titleChars: 255,
  actions: 3,
  labelChars: 20,
  identifierChars: 20,
  descriptionChars: 40,
} as const;

export type CheckRunLimits = { -readonly [K in keyof typeof CHECK_RUN_LIMITS]: number };

export type CheckRunStatus = "queued" | "in_progress" | "completed";
export type CheckRunConclusion = "success" | "failure" | "cancelled" | "timed_out";

export interface CheckRunAction {
  label: string;
  description: string;
  identifier: string;
}

/** The body of `POST /repos/{owner}/{repo}/check-runs` (and, without name and head_sha, of the PATCH). */
export interface CheckRunBody {
  name: string;
  head_sha: string;
  external_id: string;
  details_url: string;
  status: CheckRunStatus;
  conclusion?: CheckRunConclusion;
  started_at: string;
  completed_at?: string;
  output: { title: string; summary: string; text?: string };
  actions: CheckRunAction[];
}

/** What a step waits for, beyond what the RunView says (callback, event or sleep, and until when). */
export interface WaitInfo {
  kind: "sleep" | "callback" | "event";
  until: string | null;
}

/** Facts of the run's state the RunView leaves out: what each waiting step waits for, the open gate's summary and evidence. */
export interface RunExtras {
  waits: Record<string, WaitInfo>;
  /** When the run ended (ISO), from its journal. */
  completedAt?: string;
  /**
   * `approvers`: who may decide now, after the escalations so far (`level`); the RunView shows
   * the gate's first approvers only.
   */
  gate?: { summary?: string; evidence: unknown[]; level?: number; approvers?: { users?: string[]; teams?: string[]; permission?: string } };
}

export interface BuildOptions {
  /** The server's public base URL: the run page is `<publicUrl>/runs/<id>`. */
  publicUrl: string;
  /**
   * How the check run links the run's page (its details_url) and large outputs: on a server,
   * signed links (adapters/server/auth.ts), since the page needs credentials. Default: plain URLs.
   */
  links?: RunLinks;
  extras?: RunExtras;
  /** GitHub's limits, smaller in tests. */
  limits?: Partial<CheckRunLimits>;
}

export type RunStatusName = "queued" | "running" | "waiting" | "succeeded" | "failed" | "cancelled" | "timed_out";


/** The pieces of a RunState the check run shows that the RunView does not carry. */
export function extrasOf(state: RunState): RunExtras {
  const waits: Record<string, WaitInfo> = {};
  for (const s of Object.values(state.steps)) {
    if (s.status === "waiting" && s.waitKind) {
      waits[s.id] = { kind: s.waitKind, until: s.until === undefined || s.until === null ? null : new Date(s.until).toISOString() };
    }
  }
  const open = state.completed ? undefined : state.flow.steps.map((d) => state.steps[d.id]).find((s) => !!s?.gate && !s.settled);
  const info = open?.gate?.info;
  return {
    waits,
    ...(state.completed ? { completedAt: new Date(state.completed.at).toISOString() } : {}),
    ...(info ? { gate: { ...(info.summary ? { summary: info.summary } : {}), evidence: info.evidence, ...escalatedApprovers(info, open!.gate!.level) } } : {}),
  };
}

/** The approvers in force after `level` escalations; nothing before the first one (the RunView has them). */
function escalatedApprovers(info: GateInfo, level: number): Pick<NonNullable<RunExtras["gate"]>, "level" | "approvers"> {
  if (level <= 0) return {};
  const { min: _min, ...approvers } = approversAt(info, level);
  return { level, approvers };
}

/**
 * The status the run is in, from its steps: the store records `waiting` a moment after the
 * gate's event is journaled (with no event of its own), so a gate or a wait already counts.
 */
export function effectiveStatus(view: RunView): RunStatusName {
  const status = view.status as RunStatusName;
  if (isTerminal(status)) return status;
  if (view.gate) return "waiting";
  if (view.steps.some((s) => s.status === "waiting") && !view.steps.some((s) => s.status === "running")) return "waiting";
  if (status === "queued" && view.steps.some((s) => s.status !== "pending")) return "running";
  return status;
}

/** What the run waits at, as a stable key: a new key means the run just reached a (new) wait. */
export function waitKey(view: RunView): string | undefined {
  if (effectiveStatus(view) !== "waiting") return undefined;
  if (view.gate) return `gate:${view.gate.step}:${view.gate.digest}`;
  const w = view.steps.find((s) => s.status === "waiting");
  return w ? `wait:${w.id}` : "waiting";
}

export function checkRunName(flow: string, releaseKind: string): string {
  return `sluice: ${flow}${releaseKind === "draft" ? " (draft)" : ""}`;
}

export function runPageUrl(publicUrl: string, runId: string): string {
  return `${publicUrl.replace(/\/+$/, "")}/runs/${encodeURIComponent(runId)}`;
}

/** The URLs of a run's page and of its large outputs. */
export interface RunLinks {
  page(runId: string): string;
  resource(runId: string, hex: string): string;
}

export function plainRunLinks(publicUrl: string): RunLinks {
  return { page: (runId) => runPageUrl(publicUrl, runId), resource: (runId, hex) => resourceUrl(publicUrl, runId, hex) };
}

// ---------------------------------------------------------------- buttons

export type ButtonAction = "approve" | "reject" | "cancel";

/**
 * A button's identifier: `approve:<digest12>` (20 characters), `reject:<digest12>`, `cancel`.
 * The digest binds a click to the evidence the person saw: a stale button is refused.
 */
export function actionIdentifier(action: ButtonAction, digest?: string): string {
  return action === "cancel" || !digest ? action : `${action}:${digest.slice(0, 12)}`;
}

/** Reads a `check_run.requested_action` identifier back; undefined when it is not one of ours. */
export function parseActionIdentifier(identifier: string): { action: ButtonAction; digest?: string } | undefined {
  const m = /^(approve|reject|cancel)(?::([0-9a-f]{7,64}))?$/.exec(identifier);
  if (!m) return undefined;
  const action = m[1] as ButtonAction;
  if (action === "cancel") return m[2] ? undefined : { action };
  return m[2] ? { action, digest: m[2] } : { action };
}

function buttons(view: RunView, status: RunStatusName, limits: CheckRunLimits): CheckRunAction[] {
  const out: CheckRunAction[] = [];
  if (view.gate) {
    const g = view.gate;
    out.push(
      { label: "Approve", identifier: actionIdentifier("approve", g.digest), description: `Approve ${g.step} (${g.approvals.length}/${g.min} so far)` },
      { label: "Reject", identifier: actionIdentifier("reject", g.digest), description: `Reject ${g.step} and stop the run` },
      { label: "Cancel", identifier: "cancel", description: "Cancel the run" },
    );
  } else if (status === "running" || status === "queued" || status === "waiting") {
    out.push({ label: "Cancel", identifier: "cancel", description: "Cancel the run" });
  }
  return out.slice(0, limits.actions).map((a) => ({
    label: clipChars(a.label, limits.labelChars),
    identifier: a.identifier.slice(0, limits.identifierChars),
    description: clipChars(a.description, limits.descriptionChars),
  }));
}

// ---------------------------------------------------------------- text helpers

/** Cuts a string to at most `max` code points, with an ellipsis when it was cut. */
export function clipChars(s: string, max: number): string {
  const cps = Array.from(s);
  if (cps.length <= max) return s;
  return cps.slice(0, Math.max(0, max - 1)).join("") + "…";
}

export function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** The longest prefix of `s` of at most `max` UTF-8 bytes that ends on a character boundary. */
export function prefixBytes(s: string, max: number): string {
  if (max <= 0) return "";
  const buf = Buffer.from(s, "utf8");
  if (buf.length <= max) return s;
  let end = max;
  // Step back over continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((buf[end] ?? 0) & 0xc0) === 0x80) end--;
  return buf.subarray(0, end).toString("utf8");
}

/** The code fence left open at the end of `md` (its backticks and where its line starts), if any. */
function openFence(md: string): { fence: string; index: number } | undefined {
  let open: { fence: string; index: number } | undefined;
  let index = 0;
  for (const line of md.split("\n")) {
    const m = /^(`{3,})(.*)$/.exec(line);
    if (m) {
      if (!open) open = { fence: m[1]!, index };
      else if (m[1]!.length >= open.fence.length && m[2]!.trim() === "") open = undefined;
    }
    index += line.length + 1;
  }
  return open;
}

/** The text up to its last line break (a cut line is dropped whole). */
function wholeLines(s: string): string {
  const nl = s.lastIndexOf("\n");
  return nl > 0 ? s.slice(0, nl) : s;
}

/**
 * Bounds Markdown to `max` bytes: when it is longer, cuts at the last line break that leaves
 * room for `tail` (so no table row or code span is cut in half), closes a code block the cut
 * left open, and appends `tail`.
 */
export function clampMarkdown(md: string, max: number, tail: string): string {
  if (byteLength(md) <= max) return md;
  const room = max - byteLength(tail) - 2;
  let head = wholeLines(prefixBytes(md, Math.max(0, room)));
  for (let guard = 0; guard < 1000; guard++) {
    const open = openFence(head);
    if (!open) break;
    const close = `\n${open.fence}`;
    if (!head.includes("\n", open.index)) {
      // Nothing of the block is left: drop its opening fence.
      head = head.slice(0, open.index).replace(/\n+$/, "");
      continue;
    }
    if (byteLength(head) + byteLength(close) <= room) {
      head += close;
      break;
    }
    head = wholeLines(prefixBytes(head, Math.max(0, room - byteLength(close))));
  }
  const out = `${head}\n\n${tail}`;
  return byteLength(out) <= max ? out : prefixBytes(tail, max);
}

/** Text shown as Markdown, not read as Markdown or HTML: one line, special characters escaped. */
export function mdText(s: string): string {
  return s
    .replace(/[\r\n\t]+/g, " ")
    .replace(/[\\`*_{}[\]()#+!|~>-]/g, (c) => `\\${c}`)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;");
}

/** An inline code span that holds any text, on one line; with `cell`, safe inside a table cell. */
export function mdCode(s: string, cell = false): string {
  const flat = s.replace(/[\r\n\t]+/g, " ");
  const line = cell ? flat.replace(/\|/g, "\\|") : flat;
  if (line === "") return "` `";
  const longest = Math.max(0, ...(line.match(/`+/g) ?? []).map((r) => r.length));
  const fence = "`".repeat(longest + 1);
  const pad = line.startsWith("`") || line.endsWith("`") ? " " : "";
  return `${fence}${pad}${line}${pad}${fence}`;
}

/** A fenced code block that holds any text. */
export function mdBlock(s: string, lang = ""): string {
  const longest = Math.max(2, ...(s.match(/^`+/gm) ?? []).map((r) => r.length));
  const fence = "`".repeat(longest + 1);
  return `${fence}${lang}\n${s}\n${fence}`;
}

/** A duration for people: 850ms, 4.2s, 3m7s, 2h5m, 3d4h. */
export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d${Math.floor((s % 86_400) / 3600)}h`;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const MARK: Record<string, string> = {
  pending: "⚪",
  running: "🔵",
  waiting: "⏸️",
  succeeded: "✅",
  failed: "❌",
  skipped: "⏭️",
  cancelled: "⛔",
};

/** A resource reference in an output: `{"$resource": "res://sha256/<hex>", size, media_type}`. */
export function resourceRefsOf(value: unknown): { ref: string; hex: string; size: number; mediaType: string }[] {
  const out: { ref: string; hex: string; size: number; mediaType: string }[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 4 || v === null || typeof v !== "object") return;
    if (Array.isArray(v)) return v.slice(0, 50).forEach((x) => walk(x, depth + 1));
    const o = v as Record<string, unknown>;
    if (typeof o.$resource === "string") {
      const m = /^res:\/\/sha256\/([0-9a-f]{64})$/.exec(o.$resource);
      if (m) out.push({ ref: o.$resource, hex: m[1]!, size: typeof o.size === "number" ? o.size : 0, mediaType: typeof o.media_type === "string" ? o.media_type : "" });
      return;
    }
    Object.values(o).slice(0, 50).forEach((x) => walk(x, depth + 1));
  };
  walk(value, 0);
  return out;
}

export function resourceUrl(publicUrl: string, runId: string, hex: string): string {
  return `${runPageUrl(publicUrl, runId)}/resources/${hex}`;
}

/** Short JSON for a table cell, at most `max` characters. */
export function shortJson(v: unknown, max: number): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? "null";
  } catch {
    s = String(v);
  }
  return clipChars(s, max);
}

// ---------------------------------------------------------------- the build

const CELL_OUTPUT = 80;
const CELL_ERROR = 160;
const TEXT_BLOCK = 4_000;

function approverText(g: Pick<NonNullable<RunView["gate"]>, "approvers">): string {
  const parts = [
    g.approvers.users?.length ? `users ${g.approvers.users.map((u) => mdCode(u, true)).join(", ")}` : "",
    g.approvers.teams?.length ? `teams ${g.approvers.teams.map((t) => mdCode(t, true)).join(", ")}` : "",
    g.approvers.permission ? `anyone with ${mdCode(g.approvers.permission, true)} permission` : "",
  ].filter(Boolean);
  return parts.join(" or ") || `anyone with ${mdCode("write", true)} permission`;
}

function doneCount(view: RunView): number {
  return view.steps.filter((s) => s.status === "succeeded" || s.status === "skipped" || s.status === "failed").length;
}

export function checkRunTitle(view: RunView, status: RunStatusName, extras?: RunExtras): string {
  const n = view.steps.length;
  const done = doneCount(view);
  const end = extras?.completedAt ?? view.updated_at;
  const total = Date.parse(end) - Date.parse(view.created_at);
  switch (status) {
    case "queued":
      return "queued";
    case "running": {
      const cur = view.steps.find((s) => s.status === "running");
      return cur ? `running ${cur.id} (${done}/${n} steps done)` : `running (${done}/${n} steps done)`;
    }
    case "waiting": {
      const g = view.gate;
      if (g) {
        if (g.kind === "unknown_outcome") return `waiting for a decision at ${g.step}: its outcome is unknown (retry or skip)`;
        const where = g.kind === "implicit" ? `before ${g.step}` : `at ${g.step}`;
        return `waiting for approval ${where} (${g.approvals.length}/${g.min})`;
      }
      const w = view.steps.find((s) => s.status === "waiting");
      if (!w) return "waiting";
      const info = extras?.waits[w.id];
      const until = info?.until ? ` until ${info.until}` : "";
      if (info?.kind === "sleep" || w.kind === "sleep") return `sleeping at ${w.id}${until}`;
      if (info?.kind === "callback") return `waiting for a callback at ${w.id}${until}`;
      if (info?.kind === "event") return `waiting for an event at ${w.id}${until}`;
      return `waiting at ${w.id}${until}`;
    }
    case "succeeded":
      return `succeeded: ${done}/${n} steps in ${formatDuration(total) || "0ms"}`;
    case "failed": {
      const f = view.steps.find((s) => s.status === "failed");
      const code = view.error?.code ?? f?.error?.code;
      return f ? `failed at ${f.id}${code ? `: ${code}` : ""}` : `failed${code ? `: ${code}` : ""}`;
    }
    case "cancelled":
      return `cancelled after ${done}/${n} steps`;
    case "timed_out":
      return `timed out after ${formatDuration(total)}`;
  }
}

function stepRow(view: RunView, s: StepView, links: RunLinks): string {
  const name = s.name ? `${mdCode(s.id, true)} ${mdText(clipChars(s.name, 60))}` : mdCode(s.id, true);
  let detail = "";
  if (s.error) detail = `${mdCode(s.error.code, true)} ${mdText(clipChars(s.error.message, CELL_ERROR))}`;
  else if (s.outputs && Object.keys(s.outputs).length) {
    const refs = resourceRefsOf(s.outputs);
    const linked = refs.slice(0, 3).map((r) => `[${r.hex.slice(0, 12)}… (${formatBytes(r.size)})](${links.resource(view.id, r.hex)})`);
    detail = refs.length ? linked.join(" ") : mdCode(shortJson(s.outputs, CELL_OUTPUT), true);
  }
  const attempts = s.attempts > 1 ? ` (${s.attempts} attempts)` : "";
  return `| ${MARK[s.status] ?? ""} | ${name} | ${s.kind} | ${s.effect} | ${s.status}${attempts} | ${formatDuration(s.duration_ms)} | ${detail} |`;
}

function gateSection(view: RunView, extras: RunExtras | undefined): string[] {
  const g = view.gate;
  if (!g) return [];
  const digest12 = g.digest.slice(0, 12);
  const approved = g.approvals.length ? ` (${g.approvals.map((a) => `${mdCode(a.login, true)} via ${a.via}`).join(", ")})` : "";
  const lines = [
    `### ⏸️ ${g.kind === "unknown_outcome" ? "Waiting for a decision" : "Waiting for approval"}: ${mdText(clipChars(g.title, 200))}`,
    "",
    "| | |",
    "|---|---|",
    `| step | ${mdCode(g.step, true)} |`,
    // After an escalation the approvers are the escalated ones (SPEC §4: each level is announced to its approvers).
    extras?.gate?.approvers
      ? `| approvers | ${approverText({ approvers: extras.gate.approvers })} (escalated, level ${extras.gate.level}) |`
      : `| approvers | ${approverText(g)} |`,
    `| quorum | ${g.approvals.length}/${g.min} approved${approved} |`,
    `| deadline | ${g.deadline ?? "none"} |`,
    `| digest | ${mdCode(digest12, true)} |`,
  ];
  if (extras?.gate?.summary) lines.push(`| summary | ${mdText(clipChars(extras.gate.summary, 300))} |`);
  // A decision that did not count is said here too (the reply that explains it may come later).
  const refused = g.refused.slice(-3).map((r) => `${mdCode(r.login, true)} via ${r.via} (${mdCode(r.reason, true)}): ${mdText(clipChars(r.message, 160))}`);
  if (refused.length) lines.push(`| not counted | ${refused.join("<br>")}${g.refused.length > 3 ? ` (and ${g.refused.length - 3} earlier)` : ""} |`);
  lines.push(
    "",
    `**To approve**, press **Approve** above or comment ${mdCode(`/approve ${view.id} ${digest12}`)}; ` +
      `to reject, press **Reject** or comment ${mdCode(`/reject ${view.id} <reason>`)}. ` +
      "An approval counts only for this digest: if the evidence changes, look again.",
  );
  return lines;
}

function releaseLine(view: RunView): string {
  const r = view.release;
  return `**Release:** ${r.kind === "draft" ? "draft" : "live"} · ${mdCode(r.ref)} @ ${mdCode(r.sha.slice(0, 12))}`;
}

function buildSummary(view: RunView, status: RunStatusName, url: string, links: RunLinks, extras: RunExtras | undefined, max: number): string {
  const tail = `[See the full run on its page](${url})`;
  const head = [
    `Run [${mdCode(view.id)}](${url}) of **${mdText(view.flow)}** · **${status}** · triggered by ${mdCode(view.trigger.actor)} (${mdText(view.trigger.type)})`,
    "",
    releaseLine(view),
    "",
    ...(() => {
      const g = gateSection(view, extras);
      return g.length ? [...g, ""] : [];
    })(),
  ];
  const after: string[] = [];
  if (view.error) after.push("", `**Error** ${mdCode(view.error.code)}: ${mdText(clipChars(view.error.message, 500))}`);
  if (Object.keys(view.outputs).length) after.push("", `**Outputs** ${mdCode(shortJson(view.outputs, 400))}`);
  after.push("", tail);
  const tableHead = ["### Steps", "", "| | step | kind | effect | status | duration | output |", "|---|---|---|---|---|---|---|"];
  const rows = view.steps.map((s) => stepRow(view, s, links));

  const more = (n: number) => `| | … | | | ${n} more step${n === 1 ? "" : "s"} | | [on the run page](${url}) |`;
  const fixed = byteLength([...head, ...tableHead, ...after].join("\n")) + 2;
  let budget = max - fixed;
  const kept: string[] = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const left = rows.length - i - 1;
    // Leave room for the "more steps" line unless this is the last row.
    const reserve = left > 0 ? byteLength(more(left)) + 1 : 0;
    if (byteLength(row) + 1 + reserve > budget) {
      kept.push(more(left + 1));
      break;
    }
    kept.push(row);
    budget -= byteLength(row) + 1;
  }
  const md = [...head, ...tableHead, ...kept, ...after].join("\n");
  return clampMarkdown(md, max, tail);
}

function buildText(view: RunView, url: string, extras: RunExtras | undefined, max: number): string | undefined {
  const parts: string[] = [];
  if (view.gate && extras?.gate) {
    if (extras.gate.summary) parts.push(`### Gate summary`, "", mdBlock(clipChars(extras.gate.summary, TEXT_BLOCK)));
    extras.gate.evidence.forEach((e, i) => {
      const text = typeof e === "string" ? e : JSON.stringify(e, null, 2) ?? "null";
      parts.push("", `### Evidence ${i + 1}`, "", mdBlock(clipChars(text, TEXT_BLOCK)));
    });
  }
  if (Object.keys(view.inputs).length) parts.push("", "### Inputs", "", mdBlock(clipChars(JSON.stringify(view.inputs, null, 2), TEXT_BLOCK), "json"));
  for (const s of view.steps) {
    if (s.error) parts.push("", `### ${mdText(s.id)}: ${mdText(s.error.code)}`, "", mdBlock(clipChars(s.error.message, TEXT_BLOCK)));
  }
  if (!parts.length) return undefined;
  return clampMarkdown(parts.join("\n").replace(/^\n+/, ""), max, `[See the full run on its page](${url})`);
}

/** The check run for a run: POST it the first time, PATCH it (without name and head_sha) after. */
export function buildCheckRun(view: RunView, opts: BuildOptions): CheckRunBody {
  const limits: CheckRunLimits = { ...CHECK_RUN_LIMITS, ...opts.limits };
  const status = effectiveStatus(view);
  const links = opts.links ?? plainRunLinks(opts.publicUrl);
  const url = links.page(view.id);
  const conclusion: CheckRunConclusion | undefined =
    status === "succeeded" ? "success" : status === "failed" ? "failure" : status === "cancelled" ? "cancelled" : status === "timed_out" ? "timed_out" : undefined;
  const text = buildText(view, url, opts.extras, limits.textBytes);
  return {
    name: checkRunName(view.flow, view.release.kind),
    head_sha: view.release.sha,
    external_id: view.id,
    details_url: url,
    // A run waiting at a gate stays in_progress: `action_required` would complete the check run.
    status: conclusion ? "completed" : status === "queued" ? "queued" : "in_progress",
    ...(conclusion ? { conclusion, completed_at: opts.extras?.completedAt ?? view.updated_at } : {}),
    started_at: view.created_at,
    output: {
      title: clipChars(checkRunTitle(view, status, opts.extras), limits.titleChars),
      summary: buildSummary(view, status, url, links, opts.extras, limits.summaryBytes),
      ...(text ? { text } : {}),
    },
    actions: buttons(view, status, limits),
  };
}
