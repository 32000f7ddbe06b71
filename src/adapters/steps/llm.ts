/**
 * The `llm` step: one OpenAI-compatible chat completion (`POST {base_url}/chat/completions`,
 * the connection's secret as a Bearer token). With `schema`, it asks for structured output
 * and validates the answer with ajv: an answer that does not match is a retryable `LLM_SCHEMA`.
 * Outputs `text`, `json` (when a schema was given or the text is JSON), `usage`, `model`.
 */
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { NonRetriableError, SluiceError } from "../../core/errors.js";
import type { StepExecutor } from "../../ports/step-executor.js";
import { withDeadline } from "./deadline.js";
import { DEFAULT_MAX_BYTES, httpRequest, ssrfOptions, statusError } from "./http-client.js";
import { isRecord, optNumber, optString, paramError, reqString, typeName, type Params } from "./params.js";

const KIND = "llm";
const ROLES = new Set(["system", "user", "assistant", "tool", "developer"]);

type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  (addFormatsModule as unknown as AddFormats)) satisfies AddFormats;

interface ChatMessage {
  role: string;
  content: unknown;
  [k: string]: unknown;
}

export const llmExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const conn = ctx.connection(reqString(KIND, params, "connection"));
    if (conn.type !== "llm") throw paramError(KIND, "connection", `names '${conn.name}' of type ${conn.type}; an llm step needs type llm`);
    if (!conn.base_url) throw paramError(KIND, "connection", `'${conn.name}' has no base_url`);
    const model = reqString(KIND, params, "model");
    const messages = buildMessages(params);
    const temperature = optNumber(KIND, params, "temperature", { min: 0, max: 2 });
    const maxTokens = optNumber(KIND, params, "max_tokens", { min: 1, integer: true });
    const schema = params.schema;
    let validate: ValidateFunction | undefined;
    if (schema !== undefined && schema !== null) {
      if (!isRecord(schema)) throw paramError(KIND, "schema", `must be a JSON Schema object, not ${typeName(schema)}`);
      validate = compileSchema(schema);
    }

    const request: Record<string, unknown> = { model, messages };
    if (temperature !== undefined) request.temperature = temperature;
    if (maxTokens !== undefined) request.max_tokens = maxTokens;
    if (validate) {
      request.response_format = {
        type: "json_schema",
        json_schema: { name: schemaName(params), schema, strict: true },
      };
    }
    const url = `${conn.base_url.replace(/\/+$/, "")}/chat/completions`;
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json", "user-agent": "sluice" };
    if (conn.secretValue) headers.authorization = `Bearer ${conn.secretValue}`;

    return withDeadline(ctx, async (deadline) => {
      const reply = await httpRequest({
        method: "POST",
        url,
        headers,
        body: JSON.stringify(request),
        maxBytes: DEFAULT_MAX_BYTES,
        signal: deadline.signal,
        ssrf: ssrfOptions(ctx.policy, [conn.base_url]),
      });
      if (reply.status < 200 || reply.status > 299) throw statusError(`llm ${conn.name}`, reply, ctx.now());
      let data: unknown;
      try {
        data = JSON.parse(reply.body.toString("utf8"));
      } catch {
        throw new SluiceError("LLM_RESPONSE", `llm ${conn.name}: the answer is not JSON`, { status: reply.status });
      }
      const choice = isRecord(data) && Array.isArray(data.choices) ? data.choices[0] : undefined;
      const message = isRecord(choice) && isRecord(choice.message) ? choice.message : undefined;
      if (!message) throw new SluiceError("LLM_RESPONSE", `llm ${conn.name}: the answer has no choices[0].message`, {});
      if (typeof message.refusal === "string" && message.refusal) {
        throw new SluiceError("LLM_RESPONSE", `llm ${conn.name}: the model refused: ${message.refusal}`, { refusal: message.refusal });
      }
      const text = typeof message.content === "string" ? message.content : "";
      const outputs: Record<string, unknown> = {
        text,
        usage: isRecord(data) && isRecord(data.usage) ? data.usage : {},
        model: isRecord(data) && typeof data.model === "string" ? data.model : model,
      };
      if (isRecord(choice) && typeof choice.finish_reason === "string") outputs.finish_reason = choice.finish_reason;
      const parsed = parseJson(text, validate !== undefined);
      if (validate) {
        if (!parsed.ok) {
          throw new SluiceError("LLM_SCHEMA", `llm ${conn.name}: the answer is not JSON, but the step asked for a schema`, {
            text: text.slice(0, 2000),
          });
        }
        if (!validate(parsed.value)) {
          const errors = (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "is invalid"}`);
          throw new SluiceError("LLM_SCHEMA", `llm ${conn.name}: the answer does not match the schema: ${errors.join("; ")}`, {
            errors,
            text: text.slice(0, 2000),
          });
        }
        outputs.json = parsed.value;
      } else if (parsed.ok) outputs.json = parsed.value;
      return { outputs };
    });
  },
};

function buildMessages(params: Params): ChatMessage[] {
  const system = optString(KIND, params, "system");
  const prompt = optString(KIND, params, "prompt");
  const raw = params.messages;
  if (raw !== undefined && raw !== null && prompt !== undefined) throw paramError(KIND, "prompt", "and 'messages' exclude each other");
  const messages: ChatMessage[] = [];
  if (system) messages.push({ role: "system", content: system });
  if (raw !== undefined && raw !== null) {
    if (!Array.isArray(raw) || raw.length === 0) throw paramError(KIND, "messages", "must be a non-empty list of {role, content}");
    raw.forEach((m, i) => {
      if (!isRecord(m) || typeof m.role !== "string" || !ROLES.has(m.role) || m.content === undefined) {
        throw paramError(KIND, `messages[${i}]`, "must be {role: system|user|assistant|tool|developer, content}");
      }
      messages.push({ ...m, role: m.role, content: m.content });
    });
  } else if (prompt !== undefined && prompt !== "") {
    messages.push({ role: "user", content: prompt });
  } else {
    throw paramError(KIND, "prompt", "or 'messages' is required");
  }
  return messages;
}

function compileSchema(schema: Record<string, unknown>): ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  try {
    return ajv.compile(schema);
  } catch (err) {
    throw new NonRetriableError("PARAM_INVALID", `llm: 'schema' is not a valid JSON Schema: ${(err as Error).message}`, {
      parameter: "schema",
    });
  }
}

function schemaName(params: Params): string {
  const title = isRecord(params.schema) && typeof params.schema.title === "string" ? params.schema.title : "output";
  return title.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 64) || "output";
}

/**
 * The answer as JSON: the whole text, or the body of a ```json fence around it. Without a
 * schema only an object or an array counts, so that a plain "42" or "yes" stays text.
 */
function parseJson(text: string, anyValue: boolean): { ok: true; value: unknown } | { ok: false } {
  const trimmed = text.trim();
  const fenced = /^```(?:json)?\s*\n([\s\S]*?)\n?```$/.exec(trimmed)?.[1];
  for (const candidate of [trimmed, fenced]) {
    if (!candidate || (!anyValue && !/^[[{]/.test(candidate.trim()))) continue;
    try {
      return { ok: true, value: JSON.parse(candidate) as unknown };
    } catch {
      // not JSON
    }
  }
  return { ok: false };
}
