/**
 * The signed-in pages other than a run's: the runs list with its filters, "waiting for me"
 * (the open gates the viewer may decide) and the viewer's API tokens. Every value is escaped.
 */
import type { ApiToken, RunRecord } from "../../../ports/run-store.js";
import { RUN_STATUSES } from "../../../ports/run-store.js";
import { escapeHtml as e, navOf, page, type Viewer } from "../run-page.js";

export interface ListFilters {
  flow?: string;
  status?: string;
  repo?: string;
}

const when = (ms: number) => new Date(ms).toISOString().replace("T", " ").slice(0, 19);

export function renderRunsPage(viewer: Viewer, base: string, runs: RunRecord[], filters: ListFilters): string {
  const options = ["", ...RUN_STATUSES].map((s) => `<option value="${e(s)}"${s === (filters.status ?? "") ? " selected" : ""}>${e(s || "any status")}</option>`).join("");
  const rows = runs
    .map((r) => `<tr><td><a href="${e(`${base}/runs/${encodeURIComponent(r.id)}`)}"><code>${e(r.id)}</code></a></td><td>${e(r.flow)}</td><td>${e(r.repo)}</td><td><span class="s ${e(r.status)}">${e(r.status)}</span></td><td>${e(when(r.createdAt))}</td><td>${e(when(r.updatedAt))}</td></tr>`)
    .join("\n");
  return page("Runs", `<h1>Runs</h1>
<form method="get" action="${e(base)}/runs" class="decide">
<input name="flow" placeholder="flow" value="${e(filters.flow ?? "")}" aria-label="flow">
<input name="repo" placeholder="owner/name" value="${e(filters.repo ?? "")}" aria-label="repository">
<select name="status" aria-label="status">${options}</select><button type="submit">Filter</button></form>
${runs.length ? `<div class="scroll"><table id="runs"><tr><th>run</th><th>flow</th><th>repository</th><th>status</th><th>created</th><th>updated</th></tr>\n${rows}\n</table></div>` : '<p class="muted" id="runs">No runs you can read match.</p>'}`, { nav: navOf(viewer, base) });
}

export interface WaitingGate {
  run: RunRecord;
  step: string;
  title: string;
  quorum: string;
  deadline: string | null;
}

export function renderWaitingPage(viewer: Viewer, base: string, gates: WaitingGate[]): string {
  const rows = gates
    .map((g) => `<tr><td><a href="${e(`${base}/runs/${encodeURIComponent(g.run.id)}`)}"><code>${e(g.run.id)}</code></a></td><td>${e(g.run.flow)}</td><td>${e(g.run.repo)}</td><td><code>${e(g.step)}</code> ${e(g.title)}</td><td>${e(g.quorum)}</td><td>${e(g.deadline ?? "none")}</td></tr>`)
    .join("\n");
  return page("Waiting for me", `<h1>Waiting for me</h1>
${gates.length ? `<div class="scroll"><table id="waiting"><tr><th>run</th><th>flow</th><th>repository</th><th>gate</th><th>quorum</th><th>deadline</th></tr>\n${rows}\n</table></div>` : '<p class="muted" id="waiting">No gate waits for you.</p>'}`, { nav: navOf(viewer, base) });
}

export function renderTokensPage(viewer: Extract<Viewer, { kind: "session" }>, base: string, tokens: ApiToken[], now: number, made?: { id: string; secret: string }): string {
  const status = (t: ApiToken) => (t.revokedAt !== null ? "revoked" : t.expiresAt !== null && t.expiresAt <= now ? "expired" : "active");
  const csrf = `<input type="hidden" name="csrf" value="${e(viewer.csrf)}">`;
  const rows = tokens
    .map((t) => `<tr><td><code>${e(t.id)}</code></td><td>${e(t.repo ?? "every repository")}</td><td>${e(when(t.createdAt))}</td><td>${e(t.expiresAt === null ? "never" : when(t.expiresAt))}</td><td>${e(status(t))}</td>` +
      `<td>${status(t) === "active" ? `<form method="post" action="${e(`${base}/tokens/${encodeURIComponent(t.id)}/revoke`)}">${csrf}<button type="submit">Revoke</button></form>` : ""}</td></tr>`)
    .join("\n");
  const shown = made
    ? `<div class="notice" id="new-token"><p>Your new token <code>${e(made.id)}</code>; copy it now, it is not shown again:</p><pre>${e(made.secret)}</pre></div>`
    : "";
  return page("API tokens", `<h1>API tokens</h1>${shown}
<p>A token acts as you (<code>${e(viewer.login)}</code>) for scripts and the CLI: <code>Authorization: Bearer &lt;token&gt;</code>.</p>
<form method="post" action="${e(base)}/tokens" class="decide">${csrf}
<input name="repo" placeholder="owner/name (optional: one repository)" aria-label="repository">
<select name="expires" aria-label="expires"><option value="30">30 days</option><option value="90" selected>90 days</option><option value="365">a year</option></select>
<button type="submit">Create a token</button></form>
${tokens.length ? `<div class="scroll"><table id="tokens"><tr><th>id</th><th>reaches</th><th>created</th><th>expires</th><th>status</th><th></th></tr>\n${rows}\n</table></div>` : ""}`, { nav: navOf(viewer, base) });
}

export function renderMessagePage(viewer: Viewer | undefined, base: string, title: string, message: string, back?: string): string {
  return page(title, `<h1>${e(title)}</h1><p class="notice" id="message">${e(message)}</p>${back ? `<p><a href="${e(back)}">Back</a></p>` : ""}`, viewer ? { nav: navOf(viewer, base) } : {});
}
