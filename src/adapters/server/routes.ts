/**
 * The server's own HTTP routes (SPEC §7), as one Node handler in the shape Probot 14's
 * `server.addHandler` takes: it answers and returns true for its paths, false for the rest.
 *
 *   GET  /runs/<id>/resources/<hex>   a large output of that run                   token or link
 *   (the run page, GET /runs/<id>, and the other pages for people are web/handler.ts's)
 *   /api/v1/…                         the API (api.ts; described at /api/v1/openapi.json)    token
 *   GET  /metrics                     Prometheus text                               token for every repository
 *   GET  /healthz                     200 {ok:true} when the store answers, else 503 (open; says nothing about runs)
 *   POST /callbacks/<token>           completes a callback wait (JSON body, ≤ 1 MiB, idempotent; the token is the credential)
 *
 * Credentials are checked before anything is looked up, and a request without them gets the
 * same 401 whether or not the run exists; a token restricted to one repository gets the same
 * 404 for another repository's run as for a run that does not exist (auth.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Runtime } from "../../app/runtime.js";
import { completeCallbackToken } from "../../app/signals.js";
import { SluiceError } from "../../core/errors.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { resourceRefsOf } from "../github/check-run-summary.js";
import { createApi, type ApiGitHub } from "./api.js";
import {
  drain,
  envelope,
  errorOf,
  httpStatusFor,
  isRead,
  MAX_CALLBACK_BYTES,
  methodNotAllowed,
  readBody,
  requestUrl,
  safeDecode,
  send,
  sendEnvelopeError,
  sendJson,
  UNAUTHORIZED_MESSAGE,
  wantsHtml,
  type RouteHandler,
} from "./api-http.js";
import { tokenCredential, type Credential, type LinkSigner } from "./auth.js";
import { ACTIVE_STATUSES, metrics as defaultMetrics, observeRuntime, type SluiceMetrics } from "./metrics.js";
import { renderUnauthorizedPage } from "./run-page.js";

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
  /** GitHub for the API: flows to start runs from, people's permissions for decisions (absent without the app's credentials). */
  github?: ApiGitHub;
}

export type { RouteHandler } from "./api-http.js";

const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function createRoutes(opts: RoutesOptions): RouteHandler {
  const { runtime, store, logger } = opts;
  const m = opts.metrics ?? defaultMetrics;
  const maxBody = opts.maxBodyBytes ?? MAX_CALLBACK_BYTES;
  const base = opts.publicUrl.replace(/\/+$/, "");
  observeRuntime(runtime, m);
  const api = createApi({ runtime, store, publicUrl: base, logger, ...(opts.github ? { github: opts.github } : {}) });

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

  /** The run's journal as `cred` may see it: another repository's run is as absent as a run that never existed. */
  async function journalOf(id: string, cred: Credential): Promise<Awaited<ReturnType<RunStore["loadJournal"]>>> {
    const record = await store.getRun(id);
    const reaches = cred.kind === "link" ? cred.runId === id : cred.repo === null || cred.repo === record?.repo;
    if (!record || !reaches) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { run: id });
    return store.loadJournal(id);
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

  async function resource(res: ServerResponse, id: string, hex: string, cred: Credential): Promise<void> {
    try {
      const journal = await journalOf(id, cred);
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
    const url = requestUrl(req);
    if (!url) return false;
    const path = url.pathname;
    const method = req.method;
    type Token = Extract<Credential, { kind: "token" }>;
    if (path === "/healthz") {
      if (!isRead(method)) return methodNotAllowed(res, "GET");
      await healthz(res);
      return true;
    }
    if (path === "/metrics") return guarded<Token>(req, res, url, "Metrics", { only: "token" }, (cred) => metricsPage(res, cred));
    if (await api(req, res)) return true;
    let match = /^\/runs\/([^/]+)\/resources\/([0-9a-f]{64})$/.exec(path);
    if (match) {
      const [raw, hex] = [match[1]!, match[2]!];
      const id = safeDecode(raw);
      return guarded(req, res, url, "Resource", id !== undefined ? { runId: id } : {}, async (cred) => {
        if (id === undefined || !RUN_ID.test(id)) sendEnvelopeError(res, "Resource", new SluiceError("RUN_NOT_FOUND", `no run '${raw}'`));
        else await resource(res, id, hex, cred);
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
