/**
 * Webhook intake: a delivery's signature (`X-Hub-Signature-256` with WEBHOOK_SECRET) is verified
 * before anything is parsed; a verified delivery is recorded in the store with its payload and
 * answered 2xx at once, and the inbox processes it from the store. A redelivered id is
 * acknowledged and not recorded again. Rejected deliveries (forged or missing signature, bad
 * headers) are logged with what identifies them.
 *
 * The receiver is @octokit/webhooks' own, as in Probot (the same verification, the same answers),
 * mounted where Probot mounts its own, but without Probot's transform: for every event Probot
 * makes an authenticated Octokit, a logger and a context, which intake does not use and which
 * cost a share of every delivery's time under load (bench/intake.ts).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createNodeMiddleware, Webhooks } from "@octokit/webhooks";
import type { Probot } from "probot";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import type { SluiceMetrics } from "../server/metrics.js";
import { errorText } from "./deps.js";

export interface IntakeOptions {
  store: RunStore;
  logger: Logger;
  metrics: SluiceMetrics;
  clock: () => number;
  /** The app's webhook secret (WEBHOOK_SECRET): deliveries are verified with it. */
  secret: string;
  /** A delivery was recorded: the inbox should look. */
  recorded(): void;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Records every verified delivery; counts and logs what was rejected. */
export function registerIntake(app: Probot, opts: IntakeOptions): void {
  const webhooks = new Webhooks({ secret: opts.secret });
  webhooks.onAny(async (event) => {
    const id = String(event.id);
    const fresh = await opts.store.recordDelivery({ id, event: event.name, payload: event.payload, receivedAt: opts.clock() });
    opts.metrics.webhookDeliveries.inc({ event: event.name, outcome: fresh ? "accepted" : "duplicate" });
    if (fresh) {
      opts.logger.debug("delivery recorded", { delivery: id, event: event.name });
      opts.recorded();
    } else {
      opts.logger.info("redelivery acknowledged; it was recorded before and is not processed again", { delivery: id, event: event.name });
    }
  });
  webhooks.onError((error) => {
    const errors = error instanceof AggregateError ? error.errors : [error];
    const event = (error as { event?: { id?: string; name?: string } }).event;
    for (const e of errors) {
      opts.logger.warn("webhook delivery failed", { delivery: event?.id ?? null, event: event?.name ?? null, error: errorText(e) });
    }
  });
  observeRejections(app, webhooks, opts);
}

/** What the receiver logs itself: nothing (each refusal and failure is logged here, with what identifies it). */
const silent = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * The receiver answers a delivery it refuses (no signature, a signature that does not verify, a
 * missing header) with 4xx; this logs each such answer with the delivery's id and event. It is
 * the middleware Probot's server mounts for the webhook path (Probot's server asks its app for
 * it): the one place every delivery passes, before and after verification.
 */
function observeRejections(app: Probot, webhooks: Webhooks, opts: IntakeOptions): void {
  app.getNodeMiddleware = async (options) => {
    const path = options?.path ?? app.webhookPath;
    const middleware = createNodeMiddleware(webhooks, { path, log: silent });
    return (req: IncomingMessage, res: ServerResponse, next?: Function) => {
      const url = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "");
      if (url === path.replace(/\/+$/, "") && req.method === "POST") {
        const arrived = performance.now();
        res.once("finish", () => {
          const outcome = res.statusCode < 400 ? "accepted" : res.statusCode < 500 ? "rejected" : "failed";
          opts.metrics.webhookIntake.observe({ outcome }, (performance.now() - arrived) / 1000);
          if (res.statusCode < 400) return;
          const signature = header(req, "x-hub-signature-256");
          const event = header(req, "x-github-event") ?? "unknown";
          opts.metrics.webhookDeliveries.inc({ event, outcome: res.statusCode < 500 ? "rejected" : "failed" });
          opts.logger.warn("webhook delivery rejected", {
            status: res.statusCode,
            delivery: header(req, "x-github-delivery") ?? null,
            event,
            signature: signature ? "present" : "missing",
            remote: req.socket.remoteAddress ?? null,
          });
        });
      }
      return middleware(req, res, next);
    };
  };
}

/**
 * Deliveries POSTed to `/`: the webhook URL Probot's setup flow registers is the server's root,
 * so the root hands GitHub's deliveries (they carry X-GitHub-Event) to the same verifying
 * middleware as `/api/github/webhooks`.
 */
export function webhooksAtRoot(app: Probot): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  let middleware: ReturnType<Probot["getNodeMiddleware"]> | undefined;
  return async (req, res) => {
    if (req.method !== "POST" || header(req, "x-github-event") === undefined) return false;
    if (new URL(req.url ?? "/", "http://localhost").pathname !== "/") return false;
    middleware ??= app.getNodeMiddleware();
    req.url = app.webhookPath;
    return (await middleware)(req, res);
  };
}
