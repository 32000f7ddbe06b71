import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetriableError, RetryAfterError } from "../../../src/core/errors.js";
import { notifyExecutor } from "../../../src/adapters/steps/notify.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { sendJson, sendText, startHttpPeer, type HttpPeer } from "../../support/http-peer.js";

/**
 * A Slack-like incoming webhook under /hooks/T0KEN that deduplicates deliveries by their
 * Idempotency-Key, as a careful receiver does.
 */
let hook: HttpPeer;
const delivered = new Map<string, { id: string; payload: unknown }>();

beforeAll(async () => {
  hook = await startHttpPeer((req, res) => {
    if (req.url.pathname === "/hooks/T0KEN") {
      const key = String(req.headers["idempotency-key"] ?? "");
      const seen = delivered.get(key);
      if (seen) return sendJson(res, 200, { ok: true, id: seen.id, duplicate: true });
      const id = `msg-${delivered.size + 1}`;
      delivered.set(key, { id, payload: req.json() });
      return sendJson(res, 200, { ok: true, id });
    }
    if (req.url.pathname === "/slack") return sendText(res, 200, "ok");
    if (req.url.pathname === "/big") return sendText(res, 200, "o".repeat(1024 * 1024));
    if (req.url.pathname === "/gone") return sendText(res, 404, "no_service");
    if (req.url.pathname === "/busy") return sendText(res, 429, "rate_limited", { "retry-after": "5" });
    if (req.url.pathname === "/hang") return;
    if (req.url.pathname === "/moved") {
      res.writeHead(308, { location: `http://localhost:${hook.port}/slack` });
      return void res.end();
    }
    return sendText(res, 404, "no route");
  });
});

afterAll(async () => {
  await hook.stop();
});

function ctx(extra: Parameters<typeof makeStepContext>[0] = {}) {
  return makeStepContext({
    connections: {
      team: { type: "webhook", secretValue: `${hook.origin}/hooks/T0KEN` },
      slack: { type: "webhook", secretValue: `${hook.origin}/slack` },
      big: { type: "webhook", secretValue: `${hook.origin}/big` },
      gone: { type: "webhook", secretValue: `${hook.origin}/gone` },
      busy: { type: "webhook", secretValue: `${hook.origin}/busy` },
      hang: { type: "webhook", secretValue: `${hook.origin}/hang` },
      moved: { type: "webhook", secretValue: `${hook.origin}/moved` },
    },
    ...extra,
  });
}


describe("notify executor: webhook", () => {
  it("posts {text} with the Idempotency-Key, and a deduplicating peer sees one message for a repeated key", async () => {
    const c = ctx({ idempotencyKey: "run-1:tell:1" });
    const first = await notifyExecutor.execute({ webhook: { connection: "team", text: "deployed" } }, c);
    const again = await notifyExecutor.execute({ webhook: { connection: "team", text: "deployed" } }, c);
    expect(first.outputs.id).toBe("msg-1");
    expect(again.outputs.id).toBe("msg-1");
    expect(delivered.size).toBe(1);
    expect(delivered.get("run-1:tell:1")!.payload).toEqual({ text: "deployed" });
    const other = await notifyExecutor.execute({ webhook: { connection: "team", text: "deployed" } }, ctx({ idempotencyKey: "run-1:tell:2" }));
    expect(other.outputs.id).toBe("msg-2");
  });

  it("posts a given body as JSON; without an id in the answer, the id is the idempotency key", async () => {
    const out = await notifyExecutor.execute(
      { webhook: { connection: "slack", body: { blocks: [{ type: "section", text: { type: "mrkdwn", text: "*hi*" } }] } } },
      ctx({ idempotencyKey: "run-2:n:1" }),
    );
    expect(out.outputs.id).toBe("run-2:n:1");
    expect(hook.requests.at(-1)!.json()).toEqual({ blocks: [{ type: "section", text: { type: "mrkdwn", text: "*hi*" } }] });
    expect(hook.requests.at(-1)!.headers["content-type"]).toBe("application/json");
  });

  it("a huge answer does not fail a delivered message", async () => {
    const out = await notifyExecutor.execute({ webhook: { connection: "big", text: "x" } }, ctx({ idempotencyKey: "k-big" }));
    expect(out.outputs.id).toBe("k-big");
  });

  it("a 404 is non-retriable, a 429 waits, and the webhook URL (a secret) stays out of the error", async () => {
    const gone = await failure(notifyExecutor.execute({ webhook: { connection: "gone", text: "x" } }, ctx()));
    expect(gone).toBeInstanceOf(NonRetriableError);
    expect(gone.code).toBe("HTTP_STATUS");
    expect(JSON.stringify({ m: gone.message, d: gone.details })).not.toContain("/gone");
    expect(gone.message).toContain("webhook 'gone'");
    const busy = await failure(notifyExecutor.execute({ webhook: { connection: "busy", text: "x" } }, ctx()));
    expect(busy).toBeInstanceOf(RetryAfterError);
    expect((busy as RetryAfterError).retryAfterMs).toBe(5000);
  });

  it("times out and aborts", async () => {
    const t = await failure(notifyExecutor.execute({ webhook: { connection: "hang", text: "x" } }, ctx({ timeoutMs: 200 })));
    expect(t.code).toBe("STEP_TIMEOUT");
    const controller = new AbortController();
    const arrived = hook.nextRequest();
    const run = failure(notifyExecutor.execute({ webhook: { connection: "hang", text: "x" } }, ctx({ signal: controller.signal })));
    await arrived;
    controller.abort();
    expect((await run).code).toBe("STEP_ABORTED");
  });

  it("a webhook that does not answer is CONNECTION_FAILED", async () => {
    const closed = await startHttpPeer(() => undefined);
    await closed.stop();
    const c = makeStepContext({ connections: { down: { type: "webhook", secretValue: `${closed.origin}/hooks/SECRET` } } });
    const err = await failure(notifyExecutor.execute({ webhook: { connection: "down", text: "x" } }, c));
    expect(err.code).toBe("CONNECTION_FAILED");
    expect(err.message).not.toContain("SECRET");
  });

  it("the SSRF guard refuses anything but the connection's host: a redirect elsewhere on loopback", async () => {
    const before = hook.requests.length;
    const err = await failure(notifyExecutor.execute({ webhook: { connection: "moved", text: "x" } }, ctx()));
    expect(err.code).toBe("SSRF_REFUSED");
    expect(hook.requests.length).toBe(before + 1);
  });

  it("bad parameters are PARAM_INVALID", async () => {
    for (const params of [
      {},
      { webhook: { connection: "team" } },
      { webhook: { connection: "team", text: "a", body: { b: 1 } } },
      { webhook: "team" },
      { webhook: { connection: "team", text: "a" }, github_comment: { body: "b" } },
    ]) {
      expect((await failure(notifyExecutor.execute(params, ctx()))).code).toBe("PARAM_INVALID");
    }
    const c = makeStepContext({ connections: { api: { type: "http", base_url: "http://127.0.0.1:1" } } });
    expect((await failure(notifyExecutor.execute({ webhook: { connection: "api", text: "a" } }, c))).code).toBe("PARAM_INVALID");
  });
});

describe("notify executor: github_comment", () => {
  it("needs an issue when the run has none, and GitHub access", async () => {
    expect((await failure(notifyExecutor.execute({ github_comment: { body: "hi" } }, ctx()))).code).toBe("PARAM_INVALID");
    const err = await failure(notifyExecutor.execute({ github_comment: { body: "hi" } }, ctx({ issue: 7 })));
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
  });
});
