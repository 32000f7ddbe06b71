/**
 * The server's pages for people (issue 9), one Node handler in the shape of Probot's `addHandler`:
 *
 *   GET  /login, /login/callback        GitHub OAuth web flow (state checked against a cookie)   open
 *   POST /logout                        ends the session                                          session + CSRF
 *   GET  /runs                          runs list (?flow=&status=&repo=), readable repositories   session
 *   GET  /waiting                       the open gates the viewer may decide                      session
 *   GET  /tokens, POST /tokens, POST /tokens/<id>/revoke   the viewer's API tokens (shown once)    session (+ CSRF)
 *   GET  /runs/<id>                     the run page, live                                        session, token or signed link
 *   GET  /runs/<id>/events              its server-sent events                                    session, token or signed link
 *   POST /runs/<id>/decision            Approve / Reject from the page                            session + CSRF
 *
 * A run of a repository the person cannot read answers exactly like a missing run. A decision
 * goes through `decideGate` like every other (eligibility, digest; refusals journaled) with the
 * person's facts as GitHub tells the app. Without OAuth configured there is no login: run pages
 * still open with a token or a signed link, without buttons.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { runView } from "../../../app/run-view.js";
import type { Runtime } from "../../../app/runtime.js";
import { decideGate, explainGate, openGates } from "../../../app/signals.js";
import { fold } from "../../../core/engine/state.js";
import { SluiceError } from "../../../core/errors.js";
import { isTerminal, RUN_STATUSES, type RunRecord, type RunStatus, type RunStore } from "../../../ports/run-store.js";
import type { GitHubApi, Logger } from "../../../ports/step-executor.js";
import { extrasOf, runPageUrl } from "../../github/check-run-summary.js";
import { envelope, errorOf, httpStatusFor, readBody, requestUrl, safeDecode, send, sendJson, UNAUTHORIZED_MESSAGE, wantsHtml, type RouteHandler } from "../api-http.js";
import { newToken, signedRunLinks, tokenCredential, type Credential, type LinkSigner } from "../auth.js";
import type { OAuthClient } from "../oauth.js";
import { renderNotFoundPage, renderRunPage, renderUnauthorizedPage, runSections, type RunPageInput, type Viewer } from "../run-page.js";
import { sameSecret, Sessions, type Session } from "../session.js";
import { Access } from "./access.js";
import { renderMessagePage, renderRunsPage, renderTokensPage, renderWaitingPage, type WaitingGate } from "./pages.js";

export interface WebOptions {
  runtime: Runtime;
  store: RunStore;
  publicUrl: string;
  links: LinkSigner;
  logger: Logger;
  /** GitHub sign-in; undefined: no login on this server. */
  oauth?: OAuthClient;
  /** The app's GitHub access to a repository (to resolve a person's permission and teams). */
  githubFor: (repo: string) => Promise<GitHubApi | undefined>;
  /** Whether the live page also polls the store for other processes' events (ms; default 2 s). */
  pollMs?: number;
}

const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_FORM = 64 * 1024;
const LIST_LIMIT = 200;

type RunCred = { kind: "session"; session: Session } | Credential;

export function createWebHandler(opts: WebOptions): RouteHandler {
  const { runtime, store, logger } = opts;
  const base = opts.publicUrl.replace(/\/+$/, "");
  const sessions = new Sessions({ store, secure: base.startsWith("https:"), now: () => runtime.now() });
  const access = opts.oauth ? new Access(opts.oauth, opts.githubFor, () => runtime.now()) : undefined;
  const pollMs = opts.pollMs ?? 2_000;
  // A decision is journaled before the answer; the run then advances in the background, so the
  // person is not kept waiting for the next step.
  const signalRuntime: Runtime = Object.assign(Object.create(runtime) as Runtime, {
    advance: (id: string): Promise<boolean> => {
      runtime.advance(id).catch((e: unknown) => logger.error("advancing a run after a decision on its page failed", { run: id, error: errorOf(e).message }));
      return Promise.resolve(true);
    },
  });

  const csp = (nonce?: string) =>
    `default-src 'none'; style-src 'unsafe-inline'; ${nonce ? `script-src 'nonce-${nonce}'; connect-src 'self'; ` : ""}img-src 'self'; base-uri 'none'; form-action 'self' ${new URL(base).origin}; frame-ancestors 'none'`;
  const html = (res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}, nonce?: string) =>
    send(res, status, "text/html; charset=utf-8", body, { "content-security-policy": csp(nonce), "referrer-policy": "no-referrer", ...headers });
  const redirect = (res: ServerResponse, to: string, headers: Record<string, string | string[]> = {}) => {
    res.writeHead(303, { location: to, "cache-control": "no-store", "content-length": "0", ...headers });
    res.end();
  };
  const viewerOf = (s: Session): Extract<Viewer, { kind: "session" }> => ({ kind: "session", login: s.login, csrf: s.csrf });

  /** A page that needs a signed-in person: to the login (and back) when there is none. */
  async function signedIn(req: IncomingMessage, res: ServerResponse, url: URL): Promise<Session | undefined> {
    const s = await sessions.read(req);
    if (s) return s;
    if (opts.oauth && (req.method === "GET" || req.method === "HEAD")) redirect(res, `${base}/login?next=${encodeURIComponent(url.pathname + url.search)}`);
    else html(res, 401, renderUnauthorizedPage(), { "www-authenticate": 'Bearer realm="sluice"' });
    return undefined;
  }

  /** The form of a POST, when its CSRF token is the session's; else answers 403 and gives undefined. */
  async function form(req: IncomingMessage, res: ServerResponse, s: Session): Promise<URLSearchParams | undefined> {
    const raw = await readBody(req, MAX_FORM);
    const f = new URLSearchParams(raw?.toString("utf8") ?? "");
    if (raw === undefined || !sameSecret(f.get("csrf") ?? "", s.csrf)) {
      html(res, 403, renderMessagePage(viewerOf(s), base, "Refused", "This form is stale or did not come from this site: reload the page and try again."));
      return undefined;
    }
    return f;
  }

  /** The run's record if `cred` reaches it: another repository's run is as absent as a missing one. */
  async function reach(id: string, cred: RunCred): Promise<RunRecord | undefined> {
    const record = await store.getRun(id);
    if (!record) return undefined;
    switch (cred.kind) {
      case "session":
        return access && (await access.canRead(cred.session, record.repo)) ? record : undefined;
      case "token":
        return cred.repo === null || cred.repo === record.repo ? record : undefined;
      case "link":
        return cred.runId === id ? record : undefined;
    }
  }

  async function credOf(req: IncomingMessage, url: URL, id: string): Promise<RunCred | undefined> {
    const s = await sessions.read(req);
    if (s) return { kind: "session", session: s };
    const now = runtime.now();
    return (await tokenCredential(store, req.headers.authorization, now)) ?? opts.links.verify(id, url.searchParams.get("exp"), url.searchParams.get("sig"), now);
  }

  /** Everything the run page draws, for `cred`. */
  async function pageInput(record: RunRecord, cred: RunCred, live?: { nonce: string }): Promise<RunPageInput> {
    const id = record.id;
    const journal = await store.loadJournal(id);
    const state = fold(journal.map((s) => s.event));
    const view = runView(record, state);
    const now = runtime.now();
    const open = openGates(state)[0];
    const links = signedRunLinks(base, opts.links, now, cred.kind === "link" ? cred : undefined);
    let viewer: Viewer = { kind: cred.kind === "session" ? "token" : cred.kind, signIn: opts.oauth !== undefined };
    if (cred.kind === "session") {
      viewer = viewerOf(cred.session);
      if (open && access) viewer.decide = await access.mayDecide(cred.session.login, state, open).catch((e: unknown) => ({ ok: false as const, why: `GitHub could not tell: ${errorOf(e).message}` }));
    }
    // A browser sends no token: a token holder's live page subscribes with a signed query, like its links.
    const signed = cred.kind === "link" ? cred : cred.kind === "token" ? opts.links.sign(id, now) : undefined;
    const eventsUrl = `${runPageUrl(base, id)}/events${signed ? `?exp=${signed.exp}&sig=${signed.sig}` : ""}`;
    return {
      view: { ...view, url: view.url ?? runPageUrl(base, id) },
      extras: extrasOf(state),
      journal,
      publicUrl: base,
      links,
      viewer,
      now,
      params: Object.fromEntries(state.flow.steps.map((d) => [d.id, d.params])),
      ...(open?.gate ? { gate: explainGate(state, open, "github") } : {}),
      ...(live ? { live: { eventsUrl, nonce: live.nonce } } : {}),
    };
  }

  // A script (no Accept: text/html) gets the API's envelopes, as from the other routes.
  function notFound(req: IncomingMessage, res: ServerResponse, id: string): void {
    const message = `no run '${id}'`;
    if (wantsHtml(req)) html(res, 404, renderNotFoundPage(message));
    else sendJson(res, 404, envelope("Run", null, { code: "RUN_NOT_FOUND", message, details: { run: id } }));
  }

  function unauthorized(req: IncomingMessage, res: ServerResponse): void {
    const headers = { "www-authenticate": 'Bearer realm="sluice"' };
    if (wantsHtml(req)) html(res, 401, renderUnauthorizedPage(), headers);
    else sendJson(res, 401, envelope("Run", null, { code: "UNAUTHORIZED", message: UNAUTHORIZED_MESSAGE, details: {} }), headers);
  }

  async function runPage(req: IncomingMessage, res: ServerResponse, url: URL, id: string): Promise<void> {
    const cred = await credOf(req, url, id);
    if (!cred) return unauthorized(req, res);
    const record = await reach(id, cred);
    if (!record) return notFound(req, res, id);
    const nonce = randomBytes(16).toString("base64url");
    html(res, 200, renderRunPage(await pageInput(record, cred, { nonce })), {}, nonce);
  }

  async function runEvents(req: IncomingMessage, res: ServerResponse, url: URL, id: string): Promise<void> {
    const cred = await credOf(req, url, id);
    if (!cred) return unauthorized(req, res);
    if (!(await reach(id, cred))) return notFound(req, res, id);
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-content-type-options": "nosniff", "x-accel-buffering": "no" });
    let last = "";
    let busy = false;
    let again = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      off();
      clearInterval(timer);
      res.end();
    };
    // Sends the page's sections when they changed; ends the stream with the run (or the viewer's access).
    const push = async (): Promise<void> => {
      if (closed) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const record = await reach(id, cred);
        if (!record) return close();
        const data = JSON.stringify(runSections(await pageInput(record, cred)));
        if (data !== last && !closed) {
          last = data;
          res.write(`event: run\ndata: ${data}\n\n`);
        }
        if (isTerminal(record.status) && !closed) {
          res.write("event: end\ndata: {}\n\n");
          close();
        }
      } catch (e) {
        logger.warn("a run page's live update failed", { run: id, error: errorOf(e).message });
      } finally {
        busy = false;
        if (again && !closed) {
          again = false;
          void push();
        }
      }
    };
    const off = runtime.onEvents((runId) => {
      if (runId === id) void push();
    });
    // Another process's events (and the passing time the timeline draws) reach the page too. A
    // server that stops listening (shutting down) waits for its open connections: end the stream
    // then, and the browser reconnects to whichever server answers next.
    const server = (req.socket as { server?: { listening?: boolean } }).server;
    const timer = setInterval(() => (server?.listening === false ? close() : void push()), pollMs);
    req.on("close", close);
    await push();
  }

  async function decision(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const s = await sessions.read(req);
    if (!s) return unauthorized(req, res);
    const f = await form(req, res, s);
    if (!f) return;
    const viewer = viewerOf(s);
    const back = runPageUrl(base, id);
    const record = await reach(id, { kind: "session", session: s });
    if (!record) return notFound(req, res, id);
    const verdict = f.get("decision");
    if (verdict !== "approve" && verdict !== "reject") {
      return html(res, 400, renderMessagePage(viewer, base, "Not decided", "the form names no decision (approve or reject)", back));
    }
    try {
      const { state } = await runtime.load(id);
      const gates = openGates(state);
      const step = f.get("step") ?? undefined;
      const open = step ? gates.find((g) => g.id === step) : gates[0];
      // No open gate (or not this one): decideGate says so, with nothing to resolve first.
      const person = open ? await access!.person(s.login, state, open) : undefined;
      if (open && !person) throw new SluiceError("GITHUB_UNAVAILABLE", `Sluice has no GitHub access to ${record.repo} to check who you are there`);
      const comment = f.get("comment")?.trim();
      await decideGate(signalRuntime, id, {
        login: s.login,
        via: "web",
        decision: verdict,
        digest: f.get("digest") ?? "",
        ...(comment ? { comment } : {}),
        ...(step ? { step } : {}),
        ...(person ? { is_bot: person.is_bot, permission: person.permission, teams: person.teams } : {}),
      });
      redirect(res, back);
    } catch (e) {
      const err = errorOf(e);
      if (!(e instanceof SluiceError)) logger.error("a decision from a run page failed", { run: id, error: err.message });
      html(res, httpStatusFor(err.code), renderMessagePage(viewer, base, "Your decision did not count", `${err.code}: ${err.message}`, back));
    }
  }

  async function runsList(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const s = await signedIn(req, res, url);
    if (!s) return;
    const q = url.searchParams;
    const flow = q.get("flow")?.trim() || undefined;
    const repo = q.get("repo")?.trim() || undefined;
    const status = q.get("status")?.trim() || undefined;
    if (status && !RUN_STATUSES.includes(status as RunStatus)) {
      return html(res, 400, renderMessagePage(viewerOf(s), base, "Runs", `unknown status '${status}' (one of ${RUN_STATUSES.join(", ")})`, `${base}/runs`));
    }
    const runs = await store.listRuns({ ...(flow ? { flow } : {}), ...(repo ? { repo } : {}), ...(status ? { status: [status as RunStatus] } : {}), limit: LIST_LIMIT });
    const readable = await readableOnly(s, runs);
    html(res, 200, renderRunsPage(viewerOf(s), base, readable, { ...(flow ? { flow } : {}), ...(repo ? { repo } : {}), ...(status ? { status } : {}) }));
  }

  async function readableOnly(s: Session, runs: RunRecord[]): Promise<RunRecord[]> {
    const repos = [...new Set(runs.map((r) => r.repo))];
    const ok = new Set<string>();
    await Promise.all(repos.map(async (r) => (await access!.canRead(s, r)) && ok.add(r)));
    return runs.filter((r) => ok.has(r.repo));
  }

  async function waiting(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const s = await signedIn(req, res, url);
    if (!s) return;
    const runs = await readableOnly(s, await store.listRuns({ status: ["waiting", "running", "queued"], limit: LIST_LIMIT }));
    const gates: WaitingGate[] = [];
    for (const run of runs) {
      const { state } = await runtime.load(run.id);
      for (const g of openGates(state)) {
        const may = await access!.mayDecide(s.login, state, g).catch(() => ({ ok: false }));
        if (!may.ok) continue;
        const x = explainGate(state, g, "github");
        gates.push({ run, step: g.id, title: x.title, quorum: x.quorum, deadline: x.deadline });
      }
    }
    html(res, 200, renderWaitingPage(viewerOf(s), base, gates));
  }

  const mine = async (s: Session) => (await store.listTokens()).filter((t) => t.login.toLowerCase() === s.login.toLowerCase());

  async function tokens(req: IncomingMessage, res: ServerResponse, url: URL, revoke?: string): Promise<void> {
    const s = await signedIn(req, res, url);
    if (!s) return;
    const now = runtime.now();
    if (req.method !== "POST") return html(res, 200, renderTokensPage(viewerOf(s), base, await mine(s), now));
    const f = await form(req, res, s);
    if (!f) return;
    if (revoke !== undefined) {
      // Someone else's token is as unknown as a missing one.
      if ((await mine(s)).some((t) => t.id === revoke)) await store.revokeToken(revoke, now);
      return redirect(res, `${base}/tokens`);
    }
    const repo = f.get("repo")?.trim() || null;
    const days = Number(f.get("expires") ?? "90");
    if (repo !== null && !/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repo)) {
      return html(res, 400, renderMessagePage(viewerOf(s), base, "No token made", `a token reaches one repository, written owner/name, not '${repo}'`, `${base}/tokens`));
    }
    if (![30, 90, 365].includes(days)) return html(res, 400, renderMessagePage(viewerOf(s), base, "No token made", "a token expires in 30, 90 or 365 days", `${base}/tokens`));
    const made = newToken();
    await store.createToken({ id: made.id, hash: made.hash, login: s.login, repo, kind: "human", createdAt: now, expiresAt: now + days * 86_400_000, revokedAt: null });
    html(res, 200, renderTokensPage(viewerOf(s), base, await mine(s), now, { id: made.id, secret: made.secret }));
  }

  async function login(res: ServerResponse, url: URL): Promise<void> {
    if (!opts.oauth) return html(res, 404, renderMessagePage(undefined, base, "No sign-in", "This server has no GitHub sign-in (GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET): open runs from their check run's link, or use an API token."));
    const asked = url.searchParams.get("next") ?? "/runs";
    // Only a path of this server: never an open redirect.
    const next = /^\/(?![/\\])/.test(asked) ? asked : "/runs";
    const { state, cookie } = sessions.beginLogin(next);
    res.writeHead(302, { location: opts.oauth.authorizeUrl(`${base}/login/callback`, state), "set-cookie": cookie, "cache-control": "no-store", "content-length": "0" });
    res.end();
  }

  async function callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (!opts.oauth) return html(res, 404, renderMessagePage(undefined, base, "No sign-in", "This server has no GitHub sign-in."));
    const { next, clear } = sessions.finishLogin(req, url.searchParams.get("state"));
    const code = url.searchParams.get("code");
    if (!next || !code) {
      return html(res, 400, renderMessagePage(undefined, base, "Not signed in", "This sign-in did not start in this browser (or took too long): sign in again.", `${base}/login`), { "set-cookie": clear });
    }
    try {
      const user = await opts.oauth.signIn(code, `${base}/login/callback`);
      const cookie = await sessions.create(user);
      logger.info("a person signed in", { login: user.login });
      redirect(res, `${base}${next}`, { "set-cookie": [clear, cookie] });
    } catch (e) {
      const err = errorOf(e);
      if (!(e instanceof SluiceError)) logger.error("signing in failed", { error: err.message });
      html(res, httpStatusFor(err.code), renderMessagePage(undefined, base, "Not signed in", err.message, `${base}/login`), { "set-cookie": clear });
    }
  }

  async function logout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const s = await sessions.read(req);
    if (!s) return redirect(res, `${base}/runs`);
    if (!(await form(req, res, s))) return;
    redirect(res, `${base}/runs`, { "set-cookie": await sessions.destroy(req) });
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const get = req.method === "GET" || req.method === "HEAD";
    const post = req.method === "POST";
    if (path === "/login" && get) return await login(res, url), true;
    if (path === "/login/callback" && get) return await callback(req, res, url), true;
    if (path === "/logout" && post) return await logout(req, res), true;
    if ((path === "/runs" || path === "/runs/") && get) return await runsList(req, res, url), true;
    if (path === "/waiting" && get) return await waiting(req, res, url), true;
    if (path === "/tokens" && (get || post)) return await tokens(req, res, url), true;
    let m = /^\/tokens\/([^/]+)\/revoke$/.exec(path);
    if (m && post) return await tokens(req, res, url, safeDecode(m[1]!) ?? ""), true;
    m = /^\/runs\/([^/]+)(\/events|\/decision)?\/?$/.exec(path);
    if (!m) return false;
    const id = safeDecode(m[1]!);
    const what = m[2];
    if ((what === "/decision" && !post) || (what === "/events" && req.method !== "GET") || (what === undefined && !get)) return false;
    if (id === undefined || !RUN_ID.test(id)) return notFound(req, res, m[1]!), true;
    if (what === "/events") await runEvents(req, res, url, id);
    else if (what === "/decision") await decision(req, res, id);
    else await runPage(req, res, url, id);
    return true;
  }

  return async function web(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = requestUrl(req);
    if (!url) return false;
    try {
      return await route(req, res, url);
    } catch (e) {
      const err = errorOf(e);
      logger.error("a page failed", { path: url.pathname, error: err.message });
      if (!res.headersSent) html(res, httpStatusFor(err.code) === 500 ? 500 : httpStatusFor(err.code), renderMessagePage(undefined, base, "Something went wrong", `${err.code}: ${err.message}`));
      else res.end();
      return true;
    }
  }
}
