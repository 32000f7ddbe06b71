/**
 * The OpenAPI 3.1 description of the API, served at /api/v1/openapi.json: the operations below,
 * whose answers are the CLI's sluice/v1 envelopes, with the CLI's own JSON Schemas
 * (schemas/cli/) embedded under components.schemas, so the document stands alone and the two
 * never disagree. test/adapters/server/api.test.ts checks that it documents exactly the routes
 * of `API_ROUTES` and that real answers validate against it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

type Json = Record<string, unknown>;

/** The kind a CLI schema file describes: run-list.schema.json → RunList. */
export function kindOfSchemaFile(file: string): string {
  return file
    .replace(/\.schema\.json$/, "")
    .split("-")
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join("");
}

const schemaOf = (kind: string): Json => ({ $ref: `#/components/schemas/${kind}` });
const json = (schema: Json) => ({ "application/json": { schema } });
const FAILURES = { "4XX": { $ref: "#/components/responses/Error" }, "5XX": { $ref: "#/components/responses/Error" } };

/** A success with the envelope of `kind`, and the failures every operation may answer. */
const answers = (kind: string, description: string, status = "200"): Json => ({ [status]: { description, content: json(schemaOf(kind)) }, ...FAILURES });

const param = (name: string, where: "path" | "query", description: string, schema: Json = { type: "string" }): Json => ({ name, in: where, required: where === "path", description, schema });
const RUN = param("id", "path", "The run's id.", { type: "string", pattern: "^[A-Za-z0-9_-]{1,128}$" });
const REPO = param("repo", "query", "The repository, owner/name: needed with a token that reaches every repository; a token limited to one reaches only that one.");
const DRAFT = param("draft", "query", "The drafts' namespace instead of the live one.", { type: "string", enum: ["true", "false"] });
const KEY = param("key", "path", "The key.");

/** A JSON object body with these properties (and no others). */
function body(description: string, properties: Record<string, Json>, required: string[] = []): Json {
  return { required: required.length > 0, description, content: json({ type: "object", properties, required, additionalProperties: false }) };
}

const DECISION = body("What the person decides on.", {
  step: { type: "string", description: "The gate's step, when several are open." },
  digest: { type: "string", description: "The evidence digest the person saw (gates explain): refused with APPROVAL_STALE when the evidence changed." },
  comment: { type: "string", description: "Kept with the decision." },
});

const PERSON_WRITES = "a person's token with write access to the repository, as the same command in a comment needs (FORBIDDEN otherwise); never an agent's";

const PATHS: Json = {
  "/api/v1/openapi.json": {
    get: { operationId: "openapi", summary: "This document.", security: [], responses: { "200": { description: "The OpenAPI 3.1 description of the API.", content: json({ type: "object" }) } } },
  },
  "/api/v1/runs": {
    get: {
      operationId: "listRuns",
      summary: "Runs, newest first (sluice runs list).",
      parameters: [
        param("flow", "query", "Only runs of this flow."),
        param("status", "query", "Comma-separated statuses: queued, running, waiting, succeeded, failed, cancelled, timed_out."),
        param("repo", "query", "Only runs of this repository (a token limited to another one lists nothing)."),
        param("limit", "query", "At most this many (1 to 1000, default 20).", { type: "string", pattern: "^[0-9]+$" }),
      ],
      responses: answers("RunList", "The runs."),
    },
    post: {
      operationId: "startRun",
      summary: `Start a run (sluice run): live from the live release, or a draft at \`ref\`, run until it ends or waits. The trigger's actor is the token's login. An agent's token may start runs; a person's needs write access to the repository.`,
      requestBody: body(
        "The run to start.",
        {
          repo: { type: "string", description: "owner/name; the token's own repository when it is limited to one." },
          flow: { type: "string", description: "The flow's name." },
          ref: { type: "string", description: "A branch, tag or commit: a draft unless it is the live release." },
          inputs: { type: "object", description: "The flow's inputs, by name (coerced to their types, as the CLI's --input)." },
          detach: { type: "boolean", description: "Create the run and leave it to the worker." },
        },
        ["flow"],
      ),
      responses: answers("Run", "The run, as it ended or waits (a failed run is an answer: ok false, with the run).", "201"),
    },
  },
  "/api/v1/runs/{id}": { get: { operationId: "getRun", summary: "A run (sluice runs show).", parameters: [RUN], responses: answers("Run", "The run.") } },
  "/api/v1/runs/{id}/events": {
    get: { operationId: "getRunEvents", summary: "A run's journal (sluice runs events), refused decisions included.", parameters: [RUN], responses: answers("EventList", "The journal.") },
  },
  "/api/v1/runs/{id}/cancel": { post: { operationId: "cancelRun", summary: `Cancel a run (sluice runs cancel): ${PERSON_WRITES}.`, parameters: [RUN], responses: answers("Run", "The cancelled run.") } },
  "/api/v1/runs/{id}/retry": {
    post: { operationId: "retryRun", summary: `Retry a failed, cancelled or timed-out run (sluice runs retry): ${PERSON_WRITES}.`, parameters: [RUN], responses: answers("Run", "The run, as it ended or waits.") },
  },
  "/api/v1/runs/{id}/gates": {
    get: {
      operationId: "explainGates",
      summary: "Why a run is blocked (sluice gates explain): evidence, digest, who may approve, quorum, deadline, stale and refused decisions.",
      parameters: [RUN],
      responses: answers("GateExplanation", "The open gates."),
    },
  },
  "/api/v1/runs/{id}/approve": {
    post: {
      operationId: "approve",
      summary:
        "Approve the open gate as the token's login, with the person's permission and teams as GitHub says them now, under the same eligibility and digest rules as on GitHub (via api). An agent's token is refused (APPROVAL_NOT_ELIGIBLE), and the attempt journaled.",
      parameters: [RUN],
      requestBody: DECISION,
      responses: answers("Run", "The run after the decision."),
    },
  },
  "/api/v1/runs/{id}/reject": {
    post: { operationId: "reject", summary: "Reject the open gate as the token's login (the same rules as approve).", parameters: [RUN], requestBody: DECISION, responses: answers("Run", "The run after the decision.") },
  },
  "/api/v1/runs/{id}/callbacks/{step}": {
    post: {
      operationId: "completeCallback",
      summary: "Complete a callback wait with a JSON body, checked against the step's schema; a second completion is a no-op that keeps the first body.",
      parameters: [RUN, param("step", "path", "The wait step's id.")],
      requestBody: { required: false, description: "The callback's body (default {}).", content: json({}) },
      responses: answers("Run", "The run after the callback."),
    },
  },
  "/api/v1/gates": {
    get: { operationId: "listGates", summary: "Open gates of waiting runs (sluice gates list).", parameters: [param("repo", "query", "Only this repository's.")], responses: answers("GateList", "The open gates.") },
  },
  "/api/v1/flows": {
    get: {
      operationId: "listFlows",
      summary: "The flows at a ref with their triggers (sluice flows list), read from GitHub.",
      parameters: [REPO, param("ref", "query", "A branch, tag or commit (default: the live release).")],
      responses: answers("FlowList", "The flows."),
    },
  },
  "/api/v1/resources/{hex}": {
    get: {
      operationId: "getResource",
      summary: "A large output kept as a resource (res://sha256/<hex>); with Accept: application/octet-stream, its bytes.",
      parameters: [
        param("hex", "path", "The resource's SHA-256.", { type: "string", pattern: "^[0-9a-f]{64}$" }),
        param("run", "query", "The run whose output it is: needed with a token limited to one repository."),
      ],
      responses: {
        "200": { description: "The resource.", content: { ...json(schemaOf("Resource")), "application/octet-stream": { schema: { type: "string", contentMediaType: "application/octet-stream" } } } },
        ...FAILURES,
      },
    },
  },
  "/api/v1/kv": {
    get: { operationId: "listKv", summary: "A repository's kv entries (sluice kv list).", parameters: [REPO, DRAFT, param("prefix", "query", "Only keys that start with this.")], responses: answers("KvList", "The entries.") },
  },
  "/api/v1/kv/{key}": {
    get: { operationId: "getKv", summary: "A kv entry (sluice kv get); a missing key is NOT_FOUND.", parameters: [KEY, REPO, DRAFT], responses: answers("KvEntry", "The entry.") },
    put: {
      operationId: "setKv",
      summary: `Set a kv entry (sluice kv set): ${PERSON_WRITES}.`,
      parameters: [KEY, REPO, DRAFT],
      requestBody: body(
        "The value.",
        {
          value: { description: "Any JSON value." },
          ttl: { type: "string", description: "Expire after this duration (10m, 7d)." },
          if_version: { type: "integer", description: "Only if the key is at this version (0: only if absent); else STATE_CONFLICT." },
        },
        ["value"],
      ),
      responses: answers("KvEntry", "The entry as set."),
    },
  },
};

const ERROR_STATUSES =
  "USAGE and INPUT_INVALID 400, UNAUTHORIZED 401, FORBIDDEN, APPROVAL_NOT_ELIGIBLE and APPROVAL_WRONG_PLACE 403, *_NOT_FOUND 404, NOT_WAITING, STATE_CONFLICT and APPROVAL_STALE 409, OUTPUT_TOO_LARGE 413, CALLBACK_INVALID, FLOW_INVALID and CONFIG_INVALID 422, GITHUB_RATE_LIMITED 429, STORE_ERROR and GITHUB_UNAVAILABLE 503";

/** The document, with the CLI schemas of `schemasDir`/cli embedded. */
export function buildOpenApi(schemasDir: string): Json {
  const dir = join(schemasDir, "cli");
  const schemas: Json = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".schema.json")).sort()) {
    schemas[kindOfSchemaFile(file)] = JSON.parse(readFileSync(join(dir, file), "utf8")) as unknown;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Sluice API",
      version: "v1",
      description:
        "What the `sluice` CLI does, over HTTP. Every answer is the envelope `sluice <command> --json` prints (schemas/cli/): {apiVersion, kind, ok, data, error}. Authenticate with `Authorization: Bearer <token>` (sluice tokens create). A person's token acts as its login: it decides gates under the same rules as on GitHub. An agent's token (--agent) starts runs, reads and completes callbacks, and never decides. A token limited to a repository reaches only that repository: another's runs answer as missing ones.",
    },
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    paths: PATHS,
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "A token made by sluice tokens create (sluice_…)." } },
      responses: {
        Error: { description: `The sluice/v1 envelope with ok false, data null and the error's stable code; the HTTP status follows the code: ${ERROR_STATUSES}.`, content: json(schemaOf("Envelope")) },
      },
      schemas,
    },
  };
}
