import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetriableError, RetryAfterError } from "../../../src/core/errors.js";
import { llmExecutor } from "../../../src/adapters/steps/llm.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { sendJson, sendText, startHttpPeer, type HttpPeer, type PeerRequest } from "../../support/http-peer.js";

/**
 * An OpenAI-shaped chat completions server. The last user message picks the answer:
 * "json" → a JSON object, "bad json" → an object missing a required field, "prose" → text,
 * "huge" → an answer over 10 MiB, "throttle" → 429, "hang" → no answer.
 */
let peer: HttpPeer;
let elsewhere: HttpPeer;

function completion(req: PeerRequest, content: string) {
  const body = req.json();
  return {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1_700_000_000,
    model: `${body.model}-2024`,
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
  };
}

beforeAll(async () => {
  elsewhere = await startHttpPeer((_req, res) => sendJson(res, 500, {}));
  peer = await startHttpPeer((req, res) => {
    if (req.url.pathname !== "/v1/chat/completions" || req.method !== "POST") return sendJson(res, 404, { error: { message: "no route" } });
    if (req.headers.authorization !== "Bearer sk-test") return sendJson(res, 401, { error: { message: "bad key" } });
    const body = req.json();
    const last = String(body.messages.at(-1).content);
    switch (last) {
      case "json":
        return sendJson(res, 200, completion(req, JSON.stringify({ verdict: "flaky", confidence: 0.9 })));
      case "bad json":
        return sendJson(res, 200, completion(req, JSON.stringify({ confidence: "high" })));
      case "prose":
        return sendJson(res, 200, completion(req, "The test is flaky."));
      case "fenced":
        return sendJson(res, 200, completion(req, '```json\n{"a": [1, 2]}\n```'));
      case "huge":
        return sendJson(res, 200, completion(req, "z".repeat(11 * 1024 * 1024)));
      case "throttle":
        return sendJson(res, 429, { error: { message: "rate limited" } }, { "retry-after": "3" });
      case "garbage":
        return sendText(res, 200, "<html>proxy error</html>");
      case "hang":
        return;
      case "redirect":
        res.writeHead(307, { location: `${elsewhere.origin}/v1/chat/completions` });
        return void res.end();
      default:
        return sendJson(res, 200, completion(req, `echo: ${last}`));
    }
  });
});

afterAll(async () => {
  await Promise.all([peer.stop(), elsewhere.stop()]);
});

function ctx(extra: Parameters<typeof makeStepContext>[0] = {}) {
  return makeStepContext({
    connections: {
      openai: { type: "llm", base_url: `${peer.origin}/v1`, secretValue: "sk-test" },
      wrongkey: { type: "llm", base_url: `${peer.origin}/v1`, secretValue: "sk-other" },
    },
    ...extra,
  });
}


const SCHEMA = {
  type: "object",
  properties: { verdict: { type: "string", enum: ["flaky", "broken"] }, confidence: { type: "number" } },
  required: ["verdict", "confidence"],
  additionalProperties: false,
};

describe("llm executor", () => {
  it("sends system and prompt, and returns text, usage and model", async () => {
    const out = await llmExecutor.execute(
      { connection: "openai", model: "gpt-test", system: "Be brief.", prompt: "hello", temperature: 0.2, max_tokens: 50 },
      ctx(),
    );
    expect(out.outputs).toMatchObject({
      text: "echo: hello",
      model: "gpt-test-2024",
      usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
    });
    expect(out.outputs.json).toBeUndefined();
    const sent = peer.requests.at(-1)!.json();
    expect(sent).toEqual({
      model: "gpt-test",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "hello" },
      ],
      temperature: 0.2,
      max_tokens: 50,
    });
  });

  it("asks for structured output with a schema and returns the validated json", async () => {
    const out = await llmExecutor.execute({ connection: "openai", model: "m", prompt: "json", schema: SCHEMA }, ctx());
    expect(out.outputs.json).toEqual({ verdict: "flaky", confidence: 0.9 });
    const sent = peer.requests.at(-1)!.json();
    expect(sent.response_format).toEqual({ type: "json_schema", json_schema: { name: "output", schema: SCHEMA, strict: true } });
  });

  it("takes messages, and parses a JSON answer without a schema (fences included)", async () => {
    const out = await llmExecutor.execute(
      { connection: "openai", model: "m", messages: [{ role: "user", content: "earlier" }, { role: "assistant", content: "ok" }, { role: "user", content: "fenced" }] },
      ctx(),
    );
    expect(out.outputs.json).toEqual({ a: [1, 2] });
    expect(peer.requests.at(-1)!.json().messages).toHaveLength(3);
  });

  it("an answer that does not match the schema is a retryable LLM_SCHEMA", async () => {
    const err = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "bad json", schema: SCHEMA }, ctx()));
    expect(err.code).toBe("LLM_SCHEMA");
    expect(err).not.toBeInstanceOf(NonRetriableError);
    expect(err.message).toMatch(/verdict/);
    const prose = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "prose", schema: SCHEMA }, ctx()));
    expect(prose.code).toBe("LLM_SCHEMA");
  });

  it("a 401 is non-retriable, a 429 with Retry-After is a RetryAfterError, a non-JSON answer is LLM_RESPONSE", async () => {
    const unauthorized = await failure(llmExecutor.execute({ connection: "wrongkey", model: "m", prompt: "hi" }, ctx()));
    expect(unauthorized).toBeInstanceOf(NonRetriableError);
    expect(unauthorized.details.status).toBe(401);
    const throttled = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "throttle" }, ctx()));
    expect(throttled).toBeInstanceOf(RetryAfterError);
    const garbage = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "garbage" }, ctx()));
    expect(garbage.code).toBe("LLM_RESPONSE");
  });

  it("an answer over 10 MiB is OUTPUT_TOO_LARGE", async () => {
    const err = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "huge" }, ctx()));
    expect(err.code).toBe("OUTPUT_TOO_LARGE");
  });

  it("times out and aborts", async () => {
    const timeout = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "hang" }, ctx({ timeoutMs: 200 })));
    expect(timeout.code).toBe("STEP_TIMEOUT");
    const controller = new AbortController();
    const arrived = peer.nextRequest();
    const run = failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "hang" }, ctx({ signal: controller.signal })));
    await arrived;
    controller.abort();
    expect((await run).code).toBe("STEP_ABORTED");
  });

  it("a connection that does not answer is CONNECTION_FAILED", async () => {
    const closed = await startHttpPeer(() => undefined);
    await closed.stop();
    const c = makeStepContext({ connections: { down: { type: "llm", base_url: `${closed.origin}/v1`, secretValue: "k" } } });
    const err = await failure(llmExecutor.execute({ connection: "down", model: "m", prompt: "hi" }, c));
    expect(err.code).toBe("CONNECTION_FAILED");
  });

  it("the SSRF guard applies beyond the connection's host: a redirect to another loopback server is refused", async () => {
    const before = elsewhere.requests.length;
    const err = await failure(llmExecutor.execute({ connection: "openai", model: "m", prompt: "redirect" }, ctx()));
    expect(err.code).toBe("SSRF_REFUSED");
    expect(elsewhere.requests.length).toBe(before);
  });

  it("bad parameters are PARAM_INVALID", async () => {
    for (const params of [
      { connection: "openai", prompt: "x" },
      { connection: "openai", model: "m" },
      { connection: "openai", model: "m", prompt: "x", messages: [{ role: "user", content: "y" }] },
      { connection: "openai", model: "m", messages: [{ role: "wizard", content: "y" }] },
      { connection: "openai", model: "m", prompt: "x", schema: { type: "nonsense" } },
      { connection: "openai", model: "m", prompt: "x", temperature: 7 },
    ]) {
      const err = await failure(llmExecutor.execute(params, ctx()));
      expect(err.code).toBe("PARAM_INVALID");
    }
  });
});
