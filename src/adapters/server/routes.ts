/**
 * The server's own HTTP routes (SPEC §7), as one Node handler in the shape Probot 14's
 * `server.addHandler` takes: it answers and returns true for its paths, false for the rest.
 *
 *   GET  /runs/<id>                   the run page (the check run's details_url)   token or link
 *   GET  /runs/<id>/resources/<hex>   a large output of that run                   token or link
 *   GET  /api/v1/runs                 ?flow=&status=&repo=&limit= → RunList         token
 *   GET  /api/v1/runs/<id>            sluice/v1 Run (the RunView)                   token
 *   GET  /metrics                     Prometheus text                               token for every repository
 *   GET  /healthz                     200 {ok:true} when the store answers, else 503 (open; says nothing about runs)
 *   POST /callbacks/<token>           completes a callback wait (JSON body, ≤ 1 MiB, idempotent; the token is the credential)
 *
 * Credentials are checked before anything is looked up, and a request without them gets the
 * same 401 whether or not the run exists; a token restricted to one repository gets the same
 * 404 for another repository's run as for a run that does not exist (auth.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { runSummary } from "../../app/run-summary.js";
import { runView, type RunView } from "../../app/run-view.js";
import type { Runtime } from "../../app/runtime.js";
import { completeCallbackToken } from "../../app/signals.js";
import { fold } from "../../core/engine/state.js";
import { SluiceError } from "../../core/errors.js";
import { RUN_STATUSES, type RunStatus, type RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { API_VERSION } from "../cli/output.js";
import { extrasOf, resourceRefsOf, runPageUrl } from "../github/check-run-summary.js";
import { signedRunLinks, tokenCredential, type Credential, type LinkSigner } from "./auth.js";
import { ACTIVE_STATUSES, metrics as defaultMetrics, observeRuntime, type SluiceMetrics } from "./metrics.js";
import { renderNotFoundPage, renderRunPage, renderUnauthorizedPage } from "./run-page.js";

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface RoutesOptions {
  runtime: Runtime;
  store: RunStore;
  /** The server's public base URL: run pages and details_url. */
  publicUrl: string;
  /** Verifies the signed links to run pages (and signs the links on a page). */
  links: LinkSigner;
  logger: Logger;
  metrics?: SluiceMetrics;
  /** Largest callback body accepted, in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /**
   * After a callback is recorded, advance the run in the background (default: the caller gets
   * its answer at once and the worker carries on) or before answering ("inline").
   */
  advance?: "background" | "inline";
}

export const MAX_CALLBACK_BYTES = 1024 * 1024;

const UNAUTHORIZED_MESSAGE =
  "this needs credentials: an API token (Authorization: Bearer <token>, made with 'sluice tokens create'), or, for a run's page and its outputs, the signed link in the run's check run";

const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;
const MAX_LIST = 1000;

function httpStatusFor(code: string): number {
  switch (code) {
    case "USAGE":
    case "INPUT_INVALID":
      return 400;
    case "UNAUTHORIZED":
      return 401;
    case "FORBIDDEN":
      return 403;
    case "NOT_FOUND":
    case "RUN_NOT_FOUND":
    case "FLOW_NOT_FOUND":
      return 404;
    case "NOT_WAITING":
    case "STATE_CONFLICT":
      return 409;
    case "OUTPUT_TOO_LARGE":
      return 413;
    case "CALLBACK_INVALID":
      return 422;
    case "STORE_ERROR":
      return 503;
    default:
      return 500;
  }
}

function errorOf(e: unknown): { code: string; message: string; details: Record<string, unknown> } {
  if (e instanceof SluiceError) return { code: e.code, message: e.message, details: e.details };
  return { code: "INTERNAL", message: e instanceof Error ? e.message : String(e), details: {} };
}

function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength),
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value) + "\n", headers);
}

function envelope(kind: string, data: unknown, error?: { code: string; message: string; details: Record<string, unknown> }) {
  return { apiVersion: API_VERSION, kind, ok: !error, data: error ? null : data, error: error ?? null };
}

function sendEnvelopeError(res: ServerResponse, kind: string, e: unknown): void {
  const err = errorOf(e);
  sendJson(res, httpStatusFor(err.code), envelope(kind, null, err));
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  sendJson(res, 405, { ok: false, error: { code: "USAGE", message: `method not allowed here; use ${allow}`, details: {} } }, { allow });
  return true;
}

const isRead = (m: string | undefined) => m === "GET" || m === "HEAD";

function wantsHtml(req: IncomingMessage): boolean {
  return String(req.headers.accept ?? "").includes("text/html");
}

/** Reads a body of at most `max` bytes; undefined when it is larger (the rest is drained). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > max) {
      drain(req);
      return resolve(undefined);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        drain(req);
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on("error", (e) => {
      if (!over) reject(e);
    });
  });
}

/** Lets a refused upload finish (so the client reads the answer), up to a bound, then hangs up. */
function drain(req: IncomingMessage): void {
  let drained = 0;
  req.on("data", (c: Buffer) => {
    drained += c.length;
    if (drained > 16 * MAX_CALLBACK_BYTES) req.destroy();
  });
  req.resume();
}

export function createRoutes(opts: RoutesOptions): RouteHandler {
  const { runtime, store, logger } = opts;
  const m = opts.metrics ?? defaultMetrics;
  const maxBody = opts.maxBodyBytes ?? MAX_CALLBACK_BYTES;
  const base = opts.publicUrl.replace(/\/+$/, "");
  observeRuntime(runtime, m);

  // completeCallbackToken advances the run after recording the callback; by default the
  // advance runs in the background so the caller is answered as soon as the callback is durable.
  const signalRuntime: Runtime =
    opts.advance === "inline"
      ? runtime
      : Object.assign(Object.create(runtime) as Runtime, {
          advance: (id: string): Promise<boolean> => {
            runtime.advance(id).catch((e: unknown) => logger.error("advancing a run after its callback failed", { run: id, error: e instanceof Error ? e.message : String(e) }));
            return Promise.resolve(true);
          },
        });

  /** The run as `cred` may see it: another repository's run is as absent as a run that never existed. */
  async function viewOf(id: string, cred: Credential): Promise<{ view: RunView; extras: ReturnType<typeof extrasOf>; journal: Awaited<ReturnType<RunStore["loadJournal"]>> }> {
    const record = await store.getRun(id);
    const reaches = cred.kind === "link" ? cred.runId === id : cred.repo === null || cred.repo === record?.repo;
    if (!record || !reaches) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { run: id });
    const journal = await store.loadJournal(id);
    const state = fold(journal.map((s) => s.event));
    const view = runView(record, state);
    return { view: { ...view, url: view.url ?? runPageUrl(base, id) }, extras: extrasOf(state), journal };
  }

  /** The token in the request, or a signed link to `runId` (when the route takes links). */
  async function credentialOf(req: IncomingMessage, url: URL, runId?: string): Promise<Credential | undefined> {
    const now = runtime.now();
    const token = await tokenCredential(store, req.headers.authorization, now);
    if (token) return token;
    if (runId === undefined) return undefined;
    return opts.links.verify(runId, url.searchParams.get("exp"), url.searchParams.get("sig"), now);
  }

  /** One answer for every missing, unknown, revoked, expired or misplaced credential. */
  function unauthorized(req: IncomingMessage, res: ServerResponse, kind: string): void {
    const headers = { "www-authenticate": 'Bearer realm="sluice"' };
    if (wantsHtml(req)) send(res, 401, "text/html; charset=utf-8", renderUnauthorizedPage(), headers);
    else sendJson(res, 401, envelope(kind, null, { code: "UNAUTHORIZED", message: UNAUTHORIZED_MESSAGE, details: {} }), headers);
  }

  async function listRuns(res: ServerResponse, url: URL, cred: Extract<Credential, { kind: "token" }>): Promise<void> {
    try {
      const q = url.searchParams;
      for (const key of q.keys()) {
        if (!["flow", "status", "repo", "limit"].includes(key)) throw new SluiceError("USAGE", `unknown query parameter '${key}' (known: flow, status, repo, limit)`);
      }
      const statuses = q.get("status")?.split(",").map((s) => s.trim()).filter(Boolean);
      for (const s of statuses ?? []) {
        if (!RUN_STATUSES.includes(s as RunStatus)) throw new SluiceError("USAGE", `unknown status '${s}' (one of ${RUN_STATUSES.join(", ")})`);
      }
      const limitText = q.get("limit");
      const limit = limitText === null ? 20 : Number(limitText);
      if (!/^[0-9]+$/.test(limitText ?? "20") || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST) {
        throw new SluiceError("USAGE", `limit must be a whole number from 1 to ${MAX_LIST}, got '${limitText}'`);
      }
      const flow = q.get("flow");
      const asked = q.get("repo");
      // A token restricted to a repository lists that repository's runs only.
      const repo = cred.repo ?? asked;
      const runs =
        cred.repo !== null && asked && asked !== cred.repo
          ? []
          : await store.listRuns({
              ...(flow ? { flow } : {}),
              ...(repo ? { repo } : {}),
              ...(statuses?.length ? { status: statuses as RunStatus[] } : {}),
              limit,
            });
      const data = runs.map((r) => ({ ...runSummary(r), url: runPageUrl(base, r.id) }));
      sendJson(res, 200, envelope("RunList", { runs: data }));
    } catch (e) {
      if (!(e instanceof SluiceError)) logger.error("listing runs failed", { error: errorOf(e).message });
      sendEnvelopeError(res, "RunList", e);
    }
  }

  async function showRun(res: ServerResponse, id: string, cred: Credential): Promise<void> {
    try {
      const { view } = await viewOf(id, cred);
      sendJson(res, 200, envelope("Run", view));
    } catch (e) {
      sendEnvelopeError(res, "Run", e);
    }
  }

  async function runPage(req: IncomingMessage, res: ServerResponse, id: string, cred: Credential): Promise<void> {
    let page: Awaited<ReturnType<typeof viewOf>>;
    try {
      page = await viewOf(id, cred);
    } catch (e) {
      const err = errorOf(e);
      if (err.code !== "RUN_NOT_FOUND") logger.error("rendering a run page failed", { run: id, error: err.message });
      if (wantsHtml(req)) send(res, httpStatusFor(err.code), "text/html; charset=utf-8", renderNotFoundPage(err.message));
      else sendEnvelopeError(res, "Run", e);
      return;
    }
    // The page's own links carry a signature: the link's own (it never outlives the link that
    // opened the page), or a fresh one for a token holder, whose browser sends no token.
    const links = signedRunLinks(base, opts.links, runtime.now(), cred.kind === "link" ? cred : undefined);
    send(res, 200, "text/html; charset=utf-8", renderRunPage({ ...page, publicUrl: base, links }), {
      "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      "referrer-policy": "no-referrer",
    });
  }

  async function resource(res: ServerResponse, id: string, hex: string, cred: Credential): Promise<void> {
    try {
      const { journal } = await viewOf(id, cred);
      const ref = `res://sha256/${hex}`;
      const known = journal.some((s) => s.event.type === "step_succeeded" && resourceRefsOf(s.event.outputs).some((r) => r.ref === ref));
      if (!known) throw new SluiceError("NOT_FOUND", `run ${id} has no output ${ref}`, { run: id, ref });
      const got = await runtime.resources.get(ref);
      if (!got) throw new SluiceError("NOT_FOUND", `resource ${ref} is not in the resource store`, { run: id, ref });
      const type = /^(text\/plain|application\/json)\b/.test(got.mediaType) ? got.mediaType : "application/octet-stream";
      send(res, 200, type, got.data, { "content-security-policy": "default-src 'none'; sandbox", etag: `"${hex}"`, "referrer-policy": "no-referrer" });
    } catch (e) {
      sendEnvelopeError(res, "Resource", e);
    }
  }

  async function healthz(res: ServerResponse): Promise<void> {
    try {
      await store.listRuns({ limit: 1 });
      sendJson(res, 200, { ok: true });
    } catch (e) {
      logger.error("health check: the store does not answer", { error: errorOf(e).message });
      sendJson(res, 503, { ok: false, error: { code: "STORE_ERROR", message: "the store does not answer" } });
    }
  }

  async function metricsPage(res: ServerResponse, cred: Extract<Credential, { kind: "token" }>): Promise<void> {
    // Metrics count every repository's runs: a token restricted to one repository does not read them.
    if (cred.repo !== null) {
      const message = `the metrics are server-wide and this token is restricted to ${cred.repo}: use a token made without --repo`;
      sendJson(res, 403, envelope("Metrics", null, { code: "FORBIDDEN", message, details: {} }));
      return;
    }
    try {
      const active = await store.listRuns({ status: [...ACTIVE_STATUSES] });
      for (const s of ACTIVE_STATUSES) m.activeRuns.set({ status: s }, active.filter((r) => r.status === s).length);
    } catch (e) {
      logger.warn("metrics: could not count active runs", { error: errorOf(e).message });
    }
    send(res, 200, m.registry.contentType, await m.registry.metrics());
  }

  async function callback(req: IncomingMessage, res: ServerResponse, token: string): Promise<void> {
    const fail = (status: number, outcome: string, code: string, message: string, details: Record<string, unknown> = {}) => {
      m.callbacks.inc({ outcome });
      sendJson(res, status, { ok: false, error: { code, message, details } }, status === 413 ? { connection: "close" } : {});
    };
    let raw: Buffer | undefined;
    try {
      raw = await readBody(req, maxBody);
    } catch (e) {
      return fail(400, "invalid", "USAGE", `the request body could not be read: ${errorOf(e).message}`);
    }
    if (raw === undefined) return fail(413, "too_large", "OUTPUT_TOO_LARGE", `the callback body is larger than ${maxBody} bytes`, { max_bytes: maxBody });
    let body: unknown = null;
    const text = raw.toString("utf8");
    if (text.trim() !== "") {
      try {
        body = JSON.parse(text);
      } catch (e) {
        return fail(400, "invalid", "CALLBACK_INVALID", `the callback body is not JSON: ${errorOf(e).message}`);
      }
    }
    try {
      const r = await completeCallbackToken(signalRuntime, token, body);
      m.callbacks.inc({ outcome: r.duplicate ? "duplicate" : "completed" });
      sendJson(res, 200, { ok: true, run: r.runId, step: r.step, duplicate: r.duplicate });
    } catch (e) {
      const err = errorOf(e);
      const status = httpStatusFor(err.code);
      if (status >= 500) logger.error("completing a callback failed", { error: err.message });
      const outcome = status === 404 ? "not_found" : status === 422 ? "invalid" : "refused";
      return fail(status, outcome, err.code, err.message, err.details);
    }
  }

  /**
   * Answers a route that needs credentials: the method, then the credentials (before anything
   * about the run is looked up), then `serve`. A store failure while checking them is a 503.
   */
  async function guarded<C extends Credential>(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    kind: string,
    access: { runId?: string; only?: C["kind"] },
    serve: (cred: C) => Promise<void>,
  ): Promise<true> {
    if (!isRead(req.method)) return methodNotAllowed(res, "GET");
    let cred: Credential | undefined;
    try {
      cred = await credentialOf(req, url, access.runId);
    } catch (e) {
      logger.error("checking credentials failed", { error: errorOf(e).message });
      sendEnvelopeError(res, kind, e);
      return true;
    }
    if (!cred || (access.only && cred.kind !== access.only)) unauthorized(req, res, kind);
    else await serve(cred as C);
    return true;
  }

  return async function routes(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://sluice.invalid");
    } catch {
      return false;
    }
    const path = url.pathname;
    const method = req.method;
    type Token = Extract<Credential, { kind: "token" }>;
    if (path === "/healthz") {
      if (!isRead(method)) return methodNotAllowed(res, "GET");
      await healthz(res);
      return true;
    }
    if (path === "/metrics") return guarded<Token>(req, res, url, "Metrics", { only: "token" }, (cred) => metricsPage(res, cred));
    if (path === "/api/v1/runs" || path === "/api/v1/runs/") return guarded<Token>(req, res, url, "RunList", { only: "token" }, (cred) => listRuns(res, url, cred));
    let match = /^\/api\/v1\/runs\/([^/]+)$/.exec(path);
    if (match) {
      const raw = match[1]!;
      return guarded<Token>(req, res, url, "Run", { only: "token" }, async (cred) => {
        const id = safeDecode(raw);
        if (id === undefined || !RUN_ID.test(id)) sendEnvelopeError(res, "Run", new SluiceError("RUN_NOT_FOUND", `no run '${id ?? raw}'`, { run: id ?? raw }));
        else await showRun(res, id, cred);
      });
    }
    match = /^\/runs\/([^/]+)\/resources\/([0-9a-f]{64})$/.exec(path);
    if (match) {
      const [raw, hex] = [match[1]!, match[2]!];
      const id = safeDecode(raw);
      return guarded(req, res, url, "Resource", id !== undefined ? { runId: id } : {}, async (cred) => {
        if (id === undefined || !RUN_ID.test(id)) sendEnvelopeError(res, "Resource", new SluiceError("RUN_NOT_FOUND", `no run '${raw}'`));
        else await resource(res, id, hex, cred);
      });
    }
    match = /^\/runs\/([^/]+)\/?$/.exec(path);
    if (match) {
      const raw = match[1]!;
      const id = safeDecode(raw);
      return guarded(req, res, url, "Run", id !== undefined ? { runId: id } : {}, async (cred) => {
        if (id === undefined || !RUN_ID.test(id)) {
          const message = `no run '${id ?? raw}'`;
          if (wantsHtml(req)) send(res, 404, "text/html; charset=utf-8", renderNotFoundPage(message));
          else sendEnvelopeError(res, "Run", new SluiceError("RUN_NOT_FOUND", message));
        } else await runPage(req, res, id, cred);
      });
    }
    match = /^\/callbacks\/([^/]+)$/.exec(path);
    if (match) {
      if (method !== "POST") return methodNotAllowed(res, "POST");
      const token = safeDecode(match[1]!);
      if (token === undefined || !/^[A-Za-z0-9_-]{1,256}$/.test(token)) {
        m.callbacks.inc({ outcome: "not_found" });
        sendJson(res, 404, { ok: false, error: { code: "NOT_FOUND", message: "unknown callback token", details: {} } });
        drain(req);
        return true;
      }
      await callback(req, res, token);
      return true;
    }
    return false;
  };
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}
