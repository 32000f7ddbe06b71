/**
 * Webhook intake on Probot: Probot verifies the signature (`X-Hub-Signature-256` with
 * WEBHOOK_SECRET) before anything is parsed; a verified delivery is recorded in the store with
 * its payload and answered 2xx at once, and the inbox processes it from the store. A
 * redelivered id is acknowledged and not recorded again. Rejected deliveries (forged or
 * missing signature, bad headers) are logged with what identifies them.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
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
  /** A delivery was recorded: the inbox should look. */
  recorded(): void;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Records every verified delivery; counts and logs what Probot rejected. */
export function registerIntake(app: Probot, opts: IntakeOptions): void {
  app.onAny(async (event) => {
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
  app.onError((error) => {
    const errors = error instanceof AggregateError ? error.errors : [error];
    const event = (error as { event?: { id?: string; name?: string } }).event;
    for (const e of errors) {
      opts.logger.warn("webhook delivery failed", { delivery: event?.id ?? null, event: event?.name ?? null, error: errorText(e) });
    }
  });
  observeRejections(app, opts);
}

/**
 * Probot answers a delivery it refuses (no signature, a signature that does not verify, a
 * missing header) with 4xx; this logs each such answer with the delivery's id and event. It
 * wraps the middleware Probot's server mounts for the webhook path: the one place every
 * delivery passes, before and after verification.
 */
function observeRejections(app: Probot, opts: IntakeOptions): void {
  const original = app.getNodeMiddleware.bind(app);
  app.getNodeMiddleware = async (options) => {
    const middleware = await original(options);
    const path = options?.path ?? app.webhookPath;
    return (req: IncomingMessage, res: ServerResponse, next?: Function) => {
      const url = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "");
      if (url === path.replace(/\/+$/, "") && req.method === "POST") {
        res.once("finish", () => {
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
