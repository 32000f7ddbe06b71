/**
 * The run page (GET /runs/<id>, the check run's details_url): a timeline of the steps drawn to
 * scale (inline SVG), the open gate with its approvers, evidence (a unified diff shown as one) and,
 * for a signed-in person who may decide, Approve / Reject buttons; the steps with their params and
 * outputs, and the journal, refused decisions included. Every value from the run is HTML-escaped;
 * callback URLs (their tokens complete waits) are never shown (`publicEvent`). Links to the run's
 * outputs are the signed ones the route gives (`links`). The page is cut into sections that a
 * live page replaces as the server sends them (web/handler.ts, server-sent events).
 */
import { publicEvent, type RunView } from "../../app/run-view.js";
import { isTerminal, type StoredEvent } from "../../ports/run-store.js";
import { LINK_TTL_MS } from "./auth.js";
import {
  effectiveStatus,
  formatBytes,
  formatDuration,
  resourceRefsOf,
  type RunExtras,
  type RunLinks,
} from "../github/check-run-summary.js";

const LINK_DAYS = Math.round(LINK_TTL_MS / 86_400_000);

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length - max} more characters)`;
}

function json(v: unknown, max: number, pretty = true): string {
  let s: string;
  try {
    s = (pretty ? JSON.stringify(v, null, 2) : JSON.stringify(v)) ?? "null";
  } catch {
    s = String(v);
  }
  return clip(s, max);
}

/** One line of the journal for people; never the callback URLs, the whole flow or the config. */
export function describeEvent(e: StoredEvent["event"]): string {
  switch (e.type) {
    case "run_created":
      return `flow ${e.flow.name} at ${e.release.kind} ${e.release.ref} @ ${e.release.sha.slice(0, 12)}, triggered by ${e.trigger.actor} (${e.trigger.type}); inputs ${json(e.inputs, 300, false)}`;
    case "step_started":
      return `${e.step} attempt ${e.attempt} (${e.effect})`;
    case "step_succeeded":
      return `${e.step} attempt ${e.attempt}: ${json(e.outputs, 300, false)}`;
    case "step_failed":
      return `${e.step} attempt ${e.attempt}: ${e.error.code}: ${clip(e.error.message, 300)}${e.error.retryable ? " (retryable)" : ""}`;
    case "gate_opened":
      return `${e.step}: ${e.gate.kind} gate "${clip(e.gate.title, 200)}", digest ${e.gate.digest.slice(0, 12)}, min ${e.gate.approvers.min}`;
    case "approval_received":
      return `${e.step}: ${e.decision} by ${e.login} via ${e.via}${e.digest ? ` (digest ${e.digest.slice(0, 12)})` : ""}${e.comment ? `: ${clip(e.comment, 200)}` : ""}`;
    case "callback_received":
      return `${e.step}: ${json(e.body, 300, false)}`;
    case "event_received":
      return `${e.step}: ${json(e.payload, 200, false)}`;
    case "run_completed":
      return `${e.status}${e.error ? `: ${e.error.code}: ${clip(e.error.message, 300)}` : ""}`;
    default: {
      const { type: _t, at: _a, ...rest } = e as Record<string, unknown>;
      return json(rest, 300, false);
    }
  }
}

export const STYLE = `
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:1rem auto 2rem;max-width:72rem;padding:0 1rem;color:#1f2328}
nav{display:flex;flex-wrap:wrap;gap:1rem;align-items:center;border-bottom:1px solid #d0d7de;padding-bottom:.5rem;margin-bottom:1rem}nav form{margin-left:auto}
h1{font-size:1.4rem;margin:0 0 .3rem;word-break:break-word}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.scroll{overflow-x:auto}.scroll td pre{min-width:14rem}table{border-collapse:collapse;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}pre{white-space:pre-wrap;word-break:break-word;margin:0;max-height:24rem;overflow:auto}
.s{display:inline-block;padding:0 .5rem;border-radius:1rem;font-weight:600}.succeeded{background:#dafbe1}.failed,.timed_out{background:#ffebe9}
.waiting{background:#fff8c5}.running,.queued{background:#ddf4ff}.cancelled,.skipped,.pending{background:#eaeef2}
.gate{border:2px solid #d4a72c;border-radius:6px;padding:.5rem 1rem;background:#fffbdd}.muted{color:#59636e}
.diff .add{background:#dafbe1}.diff .del{background:#ffebe9}.diff .hunk{color:#0550ae}.diff span{display:block}
button{font:inherit;padding:.4rem 1rem;border-radius:6px;border:1px solid #1f232826;cursor:pointer}.approve{background:#1f883d;color:#fff}.reject{background:#cf222e;color:#fff}
.decide{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-start;margin:.5rem 0}textarea{width:100%;max-width:30rem;font:inherit}
.notice{border:1px solid #d0d7de;border-radius:6px;padding:.5rem 1rem;background:#f6f8fa}
svg.timeline{max-width:48rem}svg text{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
@media (max-width:40rem){body{padding:0 .5rem}th,td{padding:.2rem .3rem}}`;

/** The person looking at a page, as far as the page's buttons care. */
export type Viewer =
  | { kind: "session"; login: string; csrf: string; /** Whether they may decide the open gate, and why not. */ decide?: { ok: true } | { ok: false; why: string } }
  | { kind: "token" | "link"; /** The server has GitHub sign-in: offer it. */ signIn?: boolean };

/** The open gate as the page shows it: its approvers at the current escalation level (`explainGate`). */
export interface GateDisplay {
  step: string;
  kind: string;
  title: string;
  summary?: string;
  digest: string;
  approvers: { users: string[]; teams: string[]; permission: string | null };
  min: number;
  quorum: string;
  approvals: { login: string; via: string; at: string; decision: string }[];
  refused: { login: string; via: string; decision: string; reason: string; message: string; at: string }[];
  escalation_level: number;
  /** The default branch's policy approvers every approver must also meet. */
  floor?: { users: string[]; teams: string[]; permission: string | null } | null;
  deadline: string | null;
  evidence: unknown[];
}

export interface RunPageInput {
  view: RunView;
  extras: RunExtras;
  journal: StoredEvent[];
  publicUrl: string;
  links: RunLinks;
  /** The open gate at its current level; default: the RunView's gate. */
  gate?: GateDisplay;
  viewer?: Viewer;
  /** Each step's params as the flow writes them. */
  params?: Record<string, unknown>;
  /** When the page is drawn (the timeline's right edge while the run is active). */
  now?: number;
  /** The page's live updates (server-sent events) and the nonce of its script (the sections sent live need neither). */
  live?: { eventsUrl: string; nonce: string };
}

const WAIT_KINDS = new Set(["waiting"]);

function gateFromView(view: RunView, extras: RunExtras): GateDisplay | undefined {
  const g = view.gate;
  if (!g) return undefined;
  return {
    step: g.step,
    kind: g.kind,
    title: g.title,
    ...(extras.gate?.summary ? { summary: extras.gate.summary } : {}),
    digest: g.digest,
    approvers: { users: g.approvers.users ?? [], teams: g.approvers.teams ?? [], permission: g.approvers.permission ?? null },
    min: g.min,
    quorum: `${g.approvals.length}/${g.min}`,
    approvals: g.approvals.map((a) => ({ ...a, decision: "approve" })),
    refused: g.refused,
    escalation_level: 0,
    deadline: g.deadline,
    evidence: extras.gate?.evidence ?? [],
  };
}

/** A unified diff shown as one: added, removed and hunk lines marked. */
function looksLikeDiff(s: string): boolean {
  return /^(--- |\+\+\+ |@@ )/m.test(s) && /^@@ /m.test(s);
}

function renderEvidence(ev: unknown): string {
  const e = escapeHtml;
  if (typeof ev === "string" && looksLikeDiff(ev)) {
    const lines = clip(ev, 50_000).split("\n").map((l) => {
      const cls = l.startsWith("@@") ? "hunk" : l.startsWith("+") && !l.startsWith("+++") ? "add" : l.startsWith("-") && !l.startsWith("---") ? "del" : "";
      return `<span${cls ? ` class="${cls}"` : ""}>${e(l) || " "}</span>`;
    });
    return `<pre class="diff">${lines.join("")}</pre>`;
  }
  return `<pre>${e(typeof ev === "string" ? clip(ev, 20_000) : json(ev, 20_000))}</pre>`;
}

/** The steps on one time axis: a bar from each step's start to its end (or now), waits and gates in their own colour. */
function renderTimeline(view: RunView, extras: RunExtras, now: number): string {
  const t0 = Date.parse(view.created_at);
  const ended = extras.completedAt ? Date.parse(extras.completedAt) : undefined;
  const t1 = Math.max(ended ?? now, t0 + 1, ...view.steps.map((s) => (s.finished_at ? Date.parse(s.finished_at) : 0)));
  // A narrow drawing: legible on a phone (scaled down) and on a wide screen (capped by CSS).
  const W = 600;
  const L = 110;
  const R = 6;
  const row = 22;
  const x = (t: number) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const e = escapeHtml;
  const bars = view.steps.map((s, i) => {
    const y = 20 + i * row;
    const label = `<text x="4" y="${y + 15}">${e(clip(s.id, 14))}</text>`;
    if (!s.started_at) return `${label}<text x="${L}" y="${y + 15}" fill="#59636e">${e(s.status)}</text>`;
    const a = Date.parse(s.started_at);
    const b = s.finished_at ? Date.parse(s.finished_at) : WAIT_KINDS.has(s.status) || s.status === "running" ? t1 : a;
    const gated = view.gate?.step === s.id || extras.waits[s.id] !== undefined;
    const fill = s.status === "succeeded" ? "#1f883d" : s.status === "failed" || s.status === "timed_out" ? "#cf222e" : gated || s.status === "waiting" ? "#d4a72c" : s.status === "running" ? "#0969da" : "#8c959f";
    const w = Math.max(2, x(b) - x(a));
    const what = `${s.id}: ${s.status}, ${s.started_at} → ${s.finished_at ?? "now"}${s.duration_ms !== undefined ? ` (${formatDuration(s.duration_ms)})` : ""}`;
    return `${label}<rect class="bar ${e(s.status)}" x="${x(a).toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${row - 6}" rx="3" fill="${fill}"${gated && !s.finished_at ? ' fill-opacity="0.6"' : ""}><title>${e(what)}</title></rect>`;
  });
  const h = 30 + view.steps.length * row;
  return `<svg class="timeline" role="img" aria-label="timeline" viewBox="0 0 ${W} ${h}" width="100%" preserveAspectRatio="xMinYMin meet">
<text x="${L}" y="12" fill="#59636e">0s</text><text x="${W - R}" y="12" text-anchor="end" fill="#59636e">${e(formatDuration(t1 - t0))}${ended ? "" : " (so far)"}</text>
<line x1="${L}" y1="16" x2="${W - R}" y2="16" stroke="#d0d7de"/>${bars.join("")}</svg>`;
}

function renderGate(view: RunView, g: GateDisplay, viewer: Viewer | undefined, publicUrl: string): string {
  const e = escapeHtml;
  const digest12 = g.digest.slice(0, 12);
  const whoOf = (a: GateDisplay["approvers"]) =>
    [
      a.users.length ? `users ${a.users.map((u) => `<code>${e(u)}</code>`).join(", ")}` : "",
      a.teams.length ? `teams ${a.teams.map((t) => `<code>${e(t)}</code>`).join(", ")}` : "",
      a.permission ? `anyone with <code>${e(a.permission)}</code> permission` : "",
    ].filter(Boolean).join(" or ") || "anyone with <code>write</code> permission";
  const who = whoOf(g.approvers);
  const evidence = g.evidence.map((ev, i) => `<h3>Evidence ${i + 1}</h3>${renderEvidence(ev)}`).join("\n");
  const refused = g.refused.length
    ? `<tr><th>refused</th><td>${g.refused.map((r) => `<code>${e(r.login)}</code> (${e(r.decision)} via ${e(r.via)}): ${e(r.reason)}`).join("<br>")}</td></tr>`
    : "";
  let decide = "";
  if (viewer?.kind === "session") {
    if (viewer.decide?.ok) {
      const hidden = `<input type="hidden" name="csrf" value="${e(viewer.csrf)}"><input type="hidden" name="digest" value="${e(g.digest)}"><input type="hidden" name="step" value="${e(g.step)}">`;
      const action = `${publicUrl}/runs/${encodeURIComponent(view.id)}/decision`;
      decide = `<div class="decide"><form method="post" action="${e(action)}">${hidden}<input type="hidden" name="decision" value="approve"><button class="approve" type="submit">Approve</button></form>
<form method="post" action="${e(action)}">${hidden}<input type="hidden" name="decision" value="reject"><textarea name="comment" rows="2" placeholder="why (optional)" aria-label="reason"></textarea><button class="reject" type="submit">Reject</button></form></div>
<p class="muted">You decide as <code>${e(viewer.login)}</code> on digest <code>${e(digest12)}</code>: if the evidence changes first, the decision does not count.</p>`;
    } else if (viewer.decide) {
      decide = `<p class="notice">You (<code>${e(viewer.login)}</code>) cannot decide this gate: ${e(viewer.decide.why)}</p>`;
    }
  } else if (viewer?.signIn) {
    decide = `<p class="muted"><a href="${e(`${publicUrl}/login?next=${encodeURIComponent(`/runs/${view.id}`)}`)}">Sign in</a> to approve or reject here.</p>`;
  }
  return `<div class="gate">
<p><strong>${e(g.title)}</strong> at step <code>${e(g.step)}</code> (${e(g.kind)})</p>
${g.summary ? `<pre>${e(clip(g.summary, 20_000))}</pre>` : ""}
<div class="scroll"><table><tr><th>approvers</th><td>${who}${g.escalation_level ? ` <span class="muted">(escalated, level ${g.escalation_level})</span>` : ""}</td></tr>
${g.floor ? `<tr><th>and the policy's</th><td>${whoOf(g.floor)}</td></tr>` : ""}
<tr><th>quorum</th><td>${e(g.quorum)} approved${g.approvals.length ? `: ${g.approvals.map((a) => `<code>${e(a.login)}</code> via ${e(a.via)} at ${e(a.at)}`).join(", ")}` : ""}</td></tr>
<tr><th>deadline</th><td>${e(g.deadline ?? "none")}</td></tr>
<tr><th>digest</th><td><code>${e(g.digest)}</code></td></tr>${refused}</table></div>
${decide}
<p class="muted">Or comment <code>/approve ${e(view.id)} ${e(digest12)}</code> (or <code>/reject ${e(view.id)} &lt;reason&gt;</code>) on the pull request or issue, or use the check run's buttons.</p>
${evidence}
</div>`;
}

/** The page's parts that change as the run goes on, by element id: a live page replaces each one it is sent. */
export function runSections(input: RunPageInput): Record<string, string> {
  const { view, extras, journal, links } = input;
  const publicUrl = input.publicUrl.replace(/\/+$/, "");
  const status = effectiveStatus(view);
  const e = escapeHtml;
  const rows = view.steps
    .map((s) => {
      let detail = "";
      if (s.error) detail = `<code>${e(s.error.code)}</code> ${e(clip(s.error.message, 2000))}`;
      else if (s.outputs && Object.keys(s.outputs).length) {
        const refs = resourceRefsOf(s.outputs);
        const linked = refs.map((r) => `<a href="${e(links.resource(view.id, r.hex))}" download>${e(r.ref)}</a> (${e(formatBytes(r.size))}, ${e(r.mediaType)})`);
        detail = `${linked.length ? `<div>${linked.join("<br>")}</div>` : ""}<pre>${e(json(s.outputs, 4000))}</pre>`;
      }
      const wait = extras.waits[s.id];
      if (wait && !detail) detail = `waiting for ${e(wait.kind === "sleep" ? "time to pass" : `a ${wait.kind}`)}${wait.until ? ` until ${e(wait.until)}` : ""}`;
      const params = input.params?.[s.id];
      const inputs = params !== undefined && params !== null ? `<details><summary>params</summary><pre>${e(json(params, 4000))}</pre></details>` : "";
      return `<tr id="step-${e(s.id)}"><td><code>${e(s.id)}</code>${s.name ? `<div class="muted">${e(s.name)}</div>` : ""}</td><td>${e(s.kind)}</td><td>${e(s.effect)}</td>` +
        `<td><span class="s ${e(s.status)}">${e(s.status)}</span></td><td>${s.attempts}</td><td>${e(formatDuration(s.duration_ms))}</td><td>${inputs}${detail}</td></tr>`;
    })
    .join("\n");
  const gate = input.gate ?? gateFromView(view, extras);
  const journalRows = journal
    .map((s) => {
      const ev = publicEvent(s.event);
      const refused = ev.type === "approval_refused" ? ' class="failed"' : "";
      return `<tr${refused}><td>${s.seq}</td><td>${e(new Date(ev.at).toISOString())}</td><td><code>${e(ev.type)}</code></td><td>${e(describeEvent(ev))}</td></tr>`;
    })
    .join("\n");
  return {
    "run-head": `<h1>${e(view.flow)} <span class="muted">run</span> <code>${e(view.id)}</code> <span class="s ${e(status)}" id="run-status">${e(status)}</span></h1>
<div class="scroll"><table>
<tr><th>repository</th><td>${e(view.repo)}</td></tr>
<tr><th>release</th><td>${e(view.release.kind)} <code>${e(view.release.ref)}</code> @ <code>${e(view.release.sha)}</code></td></tr>
<tr><th>trigger</th><td>${e(view.trigger.type)} by <code>${e(view.trigger.actor)}</code></td></tr>
<tr><th>created</th><td>${e(view.created_at)}</td></tr>
<tr><th>updated</th><td>${e(view.updated_at)}</td></tr>
</table></div>${view.error ? `<h2>Error</h2><p><code>${e(view.error.code)}</code> ${e(view.error.message)}</p>` : ""}`,
    "run-timeline": `<h2>Timeline</h2>${renderTimeline(view, extras, input.now ?? Date.now())}`,
    "run-gate": gate ? `<h2>Gate</h2>${renderGate(view, gate, input.viewer, publicUrl)}` : "",
    "run-steps": `<h2>Steps</h2><div class="scroll"><table><tr><th>step</th><th>kind</th><th>effect</th><th>status</th><th>attempts</th><th>duration</th><th>inputs and output</th></tr>
${rows}
</table></div>`,
    "run-io": `${Object.keys(view.outputs).length ? `<h2>Outputs</h2><pre>${e(json(view.outputs, 20_000))}</pre>` : ""}${Object.keys(view.inputs).length ? `<h2>Inputs</h2><pre>${e(json(view.inputs, 20_000))}</pre>` : ""}`,
    "run-journal": `<h2>Journal</h2><div class="scroll"><table><tr><th>seq</th><th>at</th><th>event</th><th>details</th></tr>
${journalRows}
</table></div>`,
  };
}

/** The live page's script: subscribes to the run's events and replaces each part it is sent; stops when the run ends. */
function liveScript(eventsUrl: string, nonce: string): string {
  return `<script nonce="${escapeHtml(nonce)}">(function(){var last={};var es=new EventSource(${JSON.stringify(eventsUrl).replace(/</g, "\\u003c")});
es.addEventListener("run",function(m){var s=JSON.parse(m.data);for(var k in s){if(last[k]===s[k])continue;last[k]=s[k];var el=document.getElementById(k);if(el)el.innerHTML=s[k];}
document.title=document.title.replace(/ · [a-z_]+$/," · "+(document.getElementById("run-status")||{}).textContent);});
es.addEventListener("end",function(){es.close();});})();</script>`;
}

export function renderRunPage(input: RunPageInput): string {
  const { view } = input;
  const status = effectiveStatus(view);
  const active = !isTerminal(status);
  const sections = runSections(input);
  const body = Object.entries(sections).map(([id, html]) => `<section id="${id}">${html}</section>`).join("\n");
  const publicUrl = input.publicUrl.replace(/\/+$/, "");
  return page(`${view.flow} · run ${view.id} · ${status}`, `${body}
<p class="muted">JSON, with an API token: <a href="${escapeHtml(`${publicUrl}/api/v1/runs/${encodeURIComponent(view.id)}`)}">/api/v1/runs/${escapeHtml(view.id)}</a></p>
${input.live && active ? liveScript(input.live.eventsUrl, input.live.nonce) : ""}`, {
    ...(input.viewer ? { nav: navOf(input.viewer, publicUrl) } : {}),
  });
}

/** The pages' navigation: where a signed-in person goes, and signing out (a POST with the CSRF token). */
export function navOf(viewer: Viewer, publicUrl: string): string {
  const e = escapeHtml;
  if (viewer.kind !== "session") return viewer.signIn ? `<nav><a href="${e(publicUrl)}/login">Sign in</a></nav>` : "";
  return `<nav><a href="${e(publicUrl)}/runs">Runs</a><a href="${e(publicUrl)}/waiting">Waiting for me</a><a href="${e(publicUrl)}/tokens">Tokens</a>
<form method="post" action="${e(publicUrl)}/logout"><input type="hidden" name="csrf" value="${e(viewer.csrf)}"><span class="muted">${e(viewer.login)}</span> <button type="submit">Sign out</button></form></nav>`;
}

/** A whole page around `body`. */
export function page(title: string, body: string, opts: { nav?: string } = {}): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
${opts.nav ?? ""}
${body}
</body></html>
`;
}

export function renderNotFoundPage(message: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found</title><style>${STYLE}</style></head><body><h1>Not found</h1><p>${escapeHtml(message)}</p></body></html>\n`;
}

/** What a browser sees without credentials: the same page whether or not the run exists. */
export function renderUnauthorizedPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign-in needed</title><style>${STYLE}</style></head><body><h1>Sign-in needed</h1>
<p>Open this run from the <strong>Details</strong> link of its check run on GitHub: that link is signed and opens the run's page for ${LINK_DAYS} days.
Scripts use an API token (<code>Authorization: Bearer &lt;token&gt;</code>, made with <code>sluice tokens create</code>).</p></body></html>\n`;
}
