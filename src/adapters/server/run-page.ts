/**
 * The run page (GET /runs/<id>, the check run's details_url): the steps, the open gate with its
 * evidence and how to approve it, the release, and the journal. Every value from the run is
 * HTML-escaped; callback URLs (their tokens complete waits) are never shown. Links to the run's
 * outputs are the signed ones the route gives (`links`).
 */
import type { RunView } from "../../app/run-view.js";
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

const STYLE = `
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}pre{white-space:pre-wrap;word-break:break-word;margin:0;max-height:24rem;overflow:auto}
.s{display:inline-block;padding:0 .5rem;border-radius:1rem;font-weight:600}.succeeded{background:#dafbe1}.failed,.timed_out{background:#ffebe9}
.waiting{background:#fff8c5}.running,.queued{background:#ddf4ff}.cancelled,.skipped,.pending{background:#eaeef2}
.gate{border:2px solid #d4a72c;border-radius:6px;padding:.5rem 1rem;background:#fffbdd}.muted{color:#59636e}`;

export interface RunPageInput {
  view: RunView;
  extras: RunExtras;
  journal: StoredEvent[];
  publicUrl: string;
  links: RunLinks;
}

export function renderRunPage({ view, extras, journal, publicUrl, links }: RunPageInput): string {
  const status = effectiveStatus(view);
  const active = !isTerminal(status);
  const e = escapeHtml;
  const rows = view.steps
    .map((s) => {
      let detail = "";
      if (s.error) detail = `<code>${e(s.error.code)}</code> ${e(clip(s.error.message, 2000))}`;
      else if (s.outputs && Object.keys(s.outputs).length) {
        const refs = resourceRefsOf(s.outputs);
        const linked = refs.map((r) => `<a href="${e(links.resource(view.id, r.hex))}">${e(r.ref)}</a> (${e(formatBytes(r.size))}, ${e(r.mediaType)})`);
        detail = `${linked.length ? `<div>${linked.join("<br>")}</div>` : ""}<pre>${e(json(s.outputs, 4000))}</pre>`;
      }
      const wait = extras.waits[s.id];
      if (wait && !detail) detail = `waiting for ${e(wait.kind === "sleep" ? "time to pass" : `a ${wait.kind}`)}${wait.until ? ` until ${e(wait.until)}` : ""}`;
      return `<tr id="step-${e(s.id)}"><td><code>${e(s.id)}</code>${s.name ? `<div class="muted">${e(s.name)}</div>` : ""}</td><td>${e(s.kind)}</td><td>${e(s.effect)}</td>` +
        `<td><span class="s ${e(s.status)}">${e(s.status)}</span></td><td>${s.attempts}</td><td>${e(formatDuration(s.duration_ms))}</td><td>${detail}</td></tr>`;
    })
    .join("\n");

  let gate = "";
  if (view.gate) {
    const g = view.gate;
    const digest12 = g.digest.slice(0, 12);
    const who = [
      g.approvers.users?.length ? `users ${g.approvers.users.map((u) => `<code>${e(u)}</code>`).join(", ")}` : "",
      g.approvers.teams?.length ? `teams ${g.approvers.teams.map((t) => `<code>${e(t)}</code>`).join(", ")}` : "",
      g.approvers.permission ? `anyone with <code>${e(g.approvers.permission)}</code> permission` : "",
    ].filter(Boolean).join(" or ") || "anyone with <code>write</code> permission";
    const evidence = (extras.gate?.evidence ?? [])
      .map((ev, i) => `<h3>Evidence ${i + 1}</h3><pre>${e(typeof ev === "string" ? clip(ev, 20_000) : json(ev, 20_000))}</pre>`)
      .join("\n");
    gate = `<h2>Gate</h2><div class="gate">
<p><strong>${e(g.title)}</strong> at step <code>${e(g.step)}</code> (${e(g.kind)})</p>
${extras.gate?.summary ? `<pre>${e(clip(extras.gate.summary, 20_000))}</pre>` : ""}
<table><tr><th>approvers</th><td>${who}</td></tr>
<tr><th>quorum</th><td>${g.approvals.length}/${g.min} approved${g.approvals.length ? `: ${g.approvals.map((a) => `<code>${e(a.login)}</code> via ${e(a.via)} at ${e(a.at)}`).join(", ")}` : ""}</td></tr>
<tr><th>deadline</th><td>${e(g.deadline ?? "none")}</td></tr>
<tr><th>digest</th><td><code>${e(g.digest)}</code></td></tr></table>
<p>To approve, comment <code>/approve ${e(view.id)} ${e(digest12)}</code> on the pull request or issue, or press <strong>Approve</strong> on the check run;
to reject, <code>/reject ${e(view.id)} &lt;reason&gt;</code> or <strong>Reject</strong>. Locally: <code>sluice approve ${e(view.id)}</code>.
An approval counts only for this digest.</p>
${evidence}
</div>`;
  }

  const journalRows = journal
    .map((s) => `<tr><td>${s.seq}</td><td>${e(new Date(s.event.at).toISOString())}</td><td><code>${e(s.event.type)}</code></td><td>${e(describeEvent(s.event))}</td></tr>`)
    .join("\n");

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${active ? '<meta http-equiv="refresh" content="10">' : ""}
<title>${e(`${view.flow} · run ${view.id} · ${status}`)}</title><style>${STYLE}</style></head>
<body>
<h1>${e(view.flow)} <span class="muted">run</span> <code>${e(view.id)}</code> <span class="s ${e(status)}">${e(status)}</span></h1>
<table>
<tr><th>repository</th><td>${e(view.repo)}</td></tr>
<tr><th>release</th><td>${e(view.release.kind)} <code>${e(view.release.ref)}</code> @ <code>${e(view.release.sha)}</code></td></tr>
<tr><th>trigger</th><td>${e(view.trigger.type)} by <code>${e(view.trigger.actor)}</code></td></tr>
<tr><th>created</th><td>${e(view.created_at)}</td></tr>
<tr><th>updated</th><td>${e(view.updated_at)}</td></tr>
</table>
${gate}
${view.error ? `<h2>Error</h2><p><code>${e(view.error.code)}</code> ${e(view.error.message)}</p>` : ""}
<h2>Steps</h2>
<table><tr><th>step</th><th>kind</th><th>effect</th><th>status</th><th>attempts</th><th>duration</th><th>output</th></tr>
${rows}
</table>
${Object.keys(view.outputs).length ? `<h2>Outputs</h2><pre>${e(json(view.outputs, 20_000))}</pre>` : ""}
${Object.keys(view.inputs).length ? `<h2>Inputs</h2><pre>${e(json(view.inputs, 20_000))}</pre>` : ""}
<h2>Journal</h2>
<table><tr><th>seq</th><th>at</th><th>event</th><th>details</th></tr>
${journalRows}
</table>
<p class="muted">JSON, with an API token: <a href="${e(`${publicUrl.replace(/\/+$/, "")}/api/v1/runs/${encodeURIComponent(view.id)}`)}">/api/v1/runs/${e(view.id)}</a></p>
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
