/**
 * `POST /hooks/<owner>/<repo>/<flow>` (SPEC §7): the generic trigger of a live flow with
 * `on.webhook`; the JSON body becomes the run's inputs (typed by `on.manual.inputs` when the flow
 * declares them).
 *
 * A request carries `X-Sluice-Timestamp` (unix seconds), a new `X-Sluice-Delivery` id and
 * `X-Sluice-Signature-256: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` keyed with
 * the server secret the flow's `on.webhook.secret` names. The route is on the internet, so:
 *
 * - every refusal before a run starts (no such repository or flow, no `on.webhook`, no secret on
 *   the server, a bad signature, a timestamp more than 5 minutes off, a replay) is one answer:
 *   the same status and body. The flow has to be found to know its secret; when anything is
 *   missing the signature is still checked, against a random secret no flow has, so a missing
 *   flow costs the same HMAC as a wrong signature. (The GitHub lookups before it take what they
 *   take: an unknown repository fails sooner than a known one. The answer never differs.)
 * - a signed request is accepted once: its signature and its delivery id are claimed together,
 *   atomically in the store (two servers racing on one request cannot both start a run), for a
 *   day. The signature covers the timestamp and the body but not the delivery id, so claiming
 *   the signature is what stops a captured request from being replayed under a new id; claiming
 *   the delivery id stops a sender's re-signed retry of one delivery from starting a second run.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pickFlow } from "../../app/releases.js";
import { SluiceError, type ErrorCode } from "../../core/errors.js";
import type { Flow } from "../../core/flow/types.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { Secrets } from "../../ports/secrets.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { runUrl, startRun, type GitHubDeps } from "./deps.js";
import { asLoaded, liveSnapshot } from "./snapshot.js";

export const SIGNATURE_HEADER = "x-sluice-signature-256";
export const TIMESTAMP_HEADER = "x-sluice-timestamp";
export const DELIVERY_HEADER = "x-sluice-delivery";
/** How far a request's timestamp may be from the server's clock, either way. */
export const HOOK_WINDOW_MS = 5 * 60_000;
/** How long a request's signature and delivery id stay claimed: far past the window. */
export const HOOK_CLAIM_MS = 24 * 3_600_000;
const MAX_BODY = 1024 * 1024;

const REFUSED =
  "the request was refused. POST /hooks/<owner>/<repo>/<flow> starts a live flow with on.webhook; it needs X-Sluice-Timestamp " +
  "(unix seconds, within 5 minutes of the server's clock), a new X-Sluice-Delivery id, and X-Sluice-Signature-256: sha256=<hex>, " +
  "the HMAC-SHA256 of '<timestamp>.<raw body>' keyed with the secret the flow's on.webhook.secret names";

/** HMAC-SHA256 of `payload` as `sha256=<hex>`. */
export function signHook(secret: string, payload: string | Buffer): string {
  return `sha256=${createHmac("sha256", secret).update(payload).digest("hex")}`;
}

/** What a hook request signs: `<timestamp>.<raw body>`. */
export function hookPayload(timestamp: string, body: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${timestamp}.`), Buffer.isBuffer(body) ? body : Buffer.from(body)]);
}

/** The headers of a signed hook request, for senders (and tests): `timestamp` in unix seconds. */
export function hookHeaders(secret: string, body: string | Buffer, opts: { timestamp: number; delivery: string }): Record<string, string> {
  const ts = String(opts.timestamp);
  return { [TIMESTAMP_HEADER]: ts, [DELIVERY_HEADER]: opts.delivery, [SIGNATURE_HEADER]: signHook(secret, hookPayload(ts, body)) };
}

/** Constant-time check of `sha256=<hex>` against the payload. */
export function verifyHook(secret: string, payload: Buffer, signature: string | undefined): boolean {
  if (!signature || !/^sha256=[0-9a-f]{64}$/i.test(signature)) return false;
  const expected = Buffer.from(signHook(secret, payload));
  const given = Buffer.from(signature.toLowerCase());
  return expected.length === given.length && timingSafeEqual(expected, given);
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  USAGE: 400,
  INPUT_INVALID: 400,
  STATE_CONFLICT: 409,
  GITHUB_UNAVAILABLE: 503,
  STORE_ERROR: 503,
};

/** Lookup failures that say nothing about the hook (GitHub or the store is down): a 503, try again. */
const UNAVAILABLE: readonly ErrorCode[] = ["GITHUB_UNAVAILABLE", "STORE_ERROR"];

function send(res: ServerResponse, status: number, body: unknown): true {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text), "cache-control": "no-store" }).end(text);
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

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

export function createHooksRoute(deps: GitHubDeps & { secrets: Secrets }): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  // A secret no flow has: what a request is checked against when there is no flow to take it.
  const noSecret = randomBytes(32).toString("hex");

  /** The flow the path names, with its live release and its webhook secret; or why there is none. */
  async function find(owner: string, name: string, flowName: string): Promise<{ flow: Flow; live: Awaited<ReturnType<typeof liveSnapshot>>; secret: string } | { missing: string }> {
    const repo = `${owner}/${name}`;
    try {
      const api = await deps.installations.api(repo);
      const live = await liveSnapshot(deps.store, new GitHubFlowSource(repo, api), deps.runtime.now());
      const flow = pickFlow(asLoaded(live.snapshot, live.release), flowName);
      const hook = flow.on.webhook;
      if (!hook) return { missing: `flow '${flow.name}' has no on.webhook trigger` };
      const secret = deps.secrets.get(hook.secret);
      if (secret === undefined) {
        deps.logger.error("webhook trigger secret is not set on the server", { repo, flow: flow.name, secret: hook.secret });
        return { missing: `the server has no secret ${hook.secret}` };
      }
      return { flow, live, secret };
    } catch (e) {
      // Any other answer (no installation, no such flow, an invalid one…) means no hook to take the request.
      if (e instanceof SluiceError && !UNAVAILABLE.includes(e.code)) return { missing: e.message };
      throw e;
    }
  }

  return async (req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const m = /^\/hooks\/([^/]+)\/([^/]+)\/([^/]+)\/?$/.exec(path);
    if (!m) return false;
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return fail(res, 405, "USAGE", "POST a JSON body to /hooks/<owner>/<repo>/<flow>");
    }
    const body = await readBody(req);
    if (!body) return fail(res, 413, "USAGE", `the body is larger than ${MAX_BODY} bytes`);
    const [owner, name, flowName] = [m[1]!, m[2]!, m[3]!].map(decode);
    const repo = `${owner}/${name}`;
    const refuse = (reason: string): true => {
      deps.logger.warn("webhook trigger refused", { repo, flow: flowName, reason });
      return fail(res, 401, "UNAUTHORIZED", REFUSED);
    };
    try {
      const found = owner && name && flowName ? await find(owner, name, flowName) : { missing: "the path is not /hooks/<owner>/<repo>/<flow>" };
      const timestamp = header(req, TIMESTAMP_HEADER) ?? "";
      const signature = header(req, SIGNATURE_HEADER);
      const signed = verifyHook("secret" in found ? found.secret : noSecret, hookPayload(timestamp, body), signature);
      if ("missing" in found) return refuse(found.missing);
      if (!signed) return refuse(signature ? "the signature is wrong" : "the signature is missing");
      const now = deps.runtime.now();
      if (!/^[0-9]{1,12}$/.test(timestamp) || Math.abs(now - Number(timestamp) * 1000) > HOOK_WINDOW_MS) return refuse(`the timestamp '${timestamp}' is not within 5 minutes of now`);
      const delivery = header(req, DELIVERY_HEADER);
      if (!delivery || !/^[\x21-\x7e]{1,200}$/.test(delivery)) return refuse("the delivery id is missing or not 1 to 200 printable characters");
      const { flow, live } = found;
      // Repository names are case-insensitive on GitHub: one delivery id per flow, whatever the path's case.
      const keys = [`hook-signature:${signature!.toLowerCase()}`, `hook-delivery:${repo.toLowerCase()}/${flow.name}:${delivery}`];
      if (!(await deps.store.claimHookKeys(keys, now, now + HOOK_CLAIM_MS))) return refuse(`a replay (delivery '${delivery}' or its signature was seen before)`);

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
      const id = await startRun(deps, {
        flow,
        config: live.snapshot.config,
        release: live.release,
        repo,
        inputs,
        trigger: { type: "webhook", actor: "sluice:webhook", event: given },
      });
      return send(res, 201, { apiVersion: "sluice/v1", kind: "Run", ok: true, data: { id, flow: flow.name, url: runUrl(deps, id), release: live.release }, error: null });
    } catch (e) {
      if (e instanceof SluiceError && STATUS[e.code]) {
        if (e.code === "INPUT_INVALID" || e.code === "USAGE") return fail(res, STATUS[e.code]!, e.code, e.message);
        deps.logger.error("webhook trigger could not look up or start its flow", { repo, flow: flowName, error: e.message });
        return fail(res, STATUS[e.code]!, e.code, "the request could not be handled now: try again (with a new X-Sluice-Delivery id)");
      }
      deps.logger.error("webhook trigger failed", { repo, flow: flowName, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      return fail(res, 500, "INTERNAL", "the run could not be started");
    }
  };
}
