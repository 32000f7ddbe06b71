/**
 * `POST /hooks/<owner>/<repo>/<flow>` (SPEC §7): the generic trigger of a live flow with
 * `on.webhook`. The request is signed with HMAC-SHA256 of its raw body, in
 * `X-Sluice-Signature-256: sha256=<hex>`, keyed with the server secret the flow's
 * `on.webhook.secret` names; the JSON body becomes the run's inputs (typed by `on.manual.inputs`
 * when the flow declares them). An `X-Sluice-Delivery` header makes a retried request start
 * one run only.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pickFlow } from "../../app/releases.js";
import { SluiceError, type ErrorCode } from "../../core/errors.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { Secrets } from "../../ports/secrets.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { runUrl, startRun, type GitHubDeps } from "./deps.js";
import { asLoaded, liveSnapshot } from "./snapshot.js";

export const HOOKS_NAMESPACE = "sluice:hooks";
export const SIGNATURE_HEADER = "x-sluice-signature-256";
const MAX_BODY = 1024 * 1024;

export function signHook(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Constant-time check of `sha256=<hex>` against the body. */
export function verifyHook(secret: string, body: Buffer, signature: string | undefined): boolean {
  if (!signature || !/^sha256=[0-9a-f]{64}$/i.test(signature)) return false;
  const expected = Buffer.from(signHook(secret, body));
  const given = Buffer.from(signature.toLowerCase());
  return expected.length === given.length && timingSafeEqual(expected, given);
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  USAGE: 400,
  INPUT_INVALID: 400,
  NOT_FOUND: 404,
  FLOW_NOT_FOUND: 404,
  FLOW_INVALID: 409,
  CONFIG_INVALID: 409,
  REF_NOT_FOUND: 404,
  SECRET_MISSING: 500,
  GITHUB_UNAVAILABLE: 503,
};

function send(res: ServerResponse, status: number, body: unknown): true {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) }).end(text);
  return true;
}

function fail(res: ServerResponse, status: number, code: string, message: string): true {
  return send(res, status, { apiVersion: "sluice/v1", kind: "Run", ok: false, data: null, error: { code, message, details: {} } });
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export function createHooksRoute(deps: GitHubDeps & { secrets: Secrets }): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const m = /^\/hooks\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(path);
    if (!m) return false;
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return fail(res, 405, "USAGE", "POST a JSON body to /hooks/<owner>/<repo>/<flow>");
    }
    const [owner, name, flowName] = [m[1], m[2], m[3]].map((s) => decodeURIComponent(s as string)) as [string, string, string];
    const repo = `${owner}/${name}`;
    const body = await readBody(req);
    if (!body) return fail(res, 413, "USAGE", `the body is larger than ${MAX_BODY} bytes`);
    try {
      const api = await deps.installations.api(repo);
      const live = await liveSnapshot(deps.store, new GitHubFlowSource(repo, api), deps.runtime.now());
      const flow = pickFlow(asLoaded(live.snapshot, live.release), flowName);
      const hook = flow.on.webhook;
      if (!hook) return fail(res, 404, "FLOW_NOT_FOUND", `flow '${flow.name}' has no on.webhook trigger`);
      const secret = deps.secrets.get(hook.secret);
      if (secret === undefined) {
        deps.logger.error("webhook trigger secret is not set on the server", { repo, flow: flow.name, secret: hook.secret });
        return fail(res, 500, "SECRET_MISSING", `the server has no secret ${hook.secret} (SLUICE_SECRET_${hook.secret} or 'sluice secrets set ${hook.secret}')`);
      }
      const signature = req.headers[SIGNATURE_HEADER];
      if (!verifyHook(secret, body, Array.isArray(signature) ? signature[0] : signature)) {
        deps.logger.warn("webhook trigger signature rejected", { repo, flow: flow.name, signature: signature ? "mismatch" : "missing" });
        return fail(res, 401, "USAGE", `${SIGNATURE_HEADER} is ${signature ? "wrong" : "missing"}: sign the raw body with HMAC-SHA256 and the secret ${hook.secret}, as sha256=<hex>`);
      }
      let data: unknown = {};
      if (body.length) {
        try {
          data = JSON.parse(body.toString("utf8"));
        } catch {
          return fail(res, 400, "INPUT_INVALID", "the body is not JSON");
        }
      }
      if (data === null || typeof data !== "object" || Array.isArray(data)) return fail(res, 400, "INPUT_INVALID", "the body must be a JSON object: it becomes the run's inputs");
      const given = data as Record<string, unknown>;
      const inputs = flow.on.manual?.inputs ? resolveInputs(flow, given) : given;
      const deliveryHeader = req.headers["x-sluice-delivery"];
      const deliveryId = typeof deliveryHeader === "string" && deliveryHeader ? `${repo}:${flow.name}:${deliveryHeader}` : undefined;
      const now = deps.runtime.now();
      if (deliveryId) {
        const seen = await deps.store.kvGet(HOOKS_NAMESPACE, deliveryId, now);
        const runId = (seen?.value as { run?: string } | undefined)?.run;
        if (runId) return send(res, 200, { apiVersion: "sluice/v1", kind: "Run", ok: true, data: { id: runId, flow: flow.name, url: runUrl(deps, runId), duplicate: true }, error: null });
      }
      const id = await startRun(deps, {
        flow,
        config: live.snapshot.config,
        release: live.release,
        repo,
        inputs,
        trigger: { type: "webhook", actor: "sluice:webhook", event: given },
      });
      if (deliveryId) await deps.store.kvSet(HOOKS_NAMESPACE, deliveryId, { run: id }, { now, ttlMs: 7 * 24 * 3600_000 });
      return send(res, 201, { apiVersion: "sluice/v1", kind: "Run", ok: true, data: { id, flow: flow.name, url: runUrl(deps, id), release: live.release }, error: null });
    } catch (e) {
      if (e instanceof SluiceError) return fail(res, STATUS[e.code] ?? 500, e.code, e.message);
      deps.logger.error("webhook trigger failed", { repo, flow: flowName, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      return fail(res, 500, "INTERNAL", "the run could not be started");
    }
  };
}
