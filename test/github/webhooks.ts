/** Signed webhook delivery, as GitHub sends it. */
import { createHmac, randomUUID } from "node:crypto";

export interface SendWebhookOptions {
  /** The webhook secret the receiver verifies with. */
  secret: string;
  /** X-GitHub-Delivery; a fresh UUID when left out. Reuse one to simulate a redelivery. */
  deliveryId?: string;
  /** Sign with a wrong secret, so the signature does not verify. */
  forge?: boolean;
  /** Extra or overriding headers. */
  headers?: Record<string, string>;
}

export interface WebhookResult {
  status: number;
  body: string;
  deliveryId: string;
  /** The exact bytes sent, and their signature, for tests that verify by hand. */
  payload: string;
  signature: string;
}

export function signWebhook(secret: string, payload: string): string {
  return `sha256=${createHmac("sha256", secret).update(payload).digest("hex")}`;
}

export async function sendWebhook(url: string, event: string, payload: unknown, opts: SendWebhookOptions): Promise<WebhookResult> {
  const body = JSON.stringify(payload);
  const deliveryId = opts.deliveryId ?? randomUUID();
  const signature = signWebhook(opts.forge ? `${opts.secret}-forged` : opts.secret, body);
  const installation = (payload as { installation?: { id?: number } })?.installation;
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/sim",
      "x-github-event": event,
      "x-github-delivery": deliveryId,
      "x-github-hook-id": "1",
      "x-github-hook-installation-target-type": "integration",
      "x-github-hook-installation-target-id": String(installation?.id ?? 1),
      "x-hub-signature-256": signature,
      ...opts.headers,
    },
    body,
  });
  return { status: res.status, body: await res.text(), deliveryId, payload: body, signature };
}
