/**
 * The JSON Schemas in schemas/: they compile under ajv's strict mode, document every property,
 * cover every key of SPEC §2 and §3, accept the examples and the valid fixtures, and reject the
 * fixtures whose expected diagnostics include a schema violation.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const schemasDir = join(root, "schemas");
const fixtures = join(root, "test", "fixtures", "flows");
const examples = join(root, "examples");

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

function walkFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walkFiles(path) : [path];
  });
}

const schemaFiles = walkFiles(schemasDir).filter((f) => f.endsWith(".json")).sort();
const readJson = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Schema;
const flowSchema = readJson(join(schemasDir, "flow.schema.json"));
const configSchema = readJson(join(schemasDir, "config.schema.json"));

function strictAjv(): Ajv2020 {
  return new Ajv2020({ strict: true, allErrors: true });
}

const validators = (() => {
  const ajv = strictAjv();
  return { flow: ajv.compile(flowSchema), config: ajv.compile(configSchema) };
})();

function check(v: ValidateFunction, data: unknown): ErrorObject[] {
  return v(data) ? [] : [...(v.errors ?? [])];
}

const showErrors = (errors: ErrorObject[]) => errors.map((e) => `${e.instancePath || "/"} ${e.keyword}: ${e.message}`).join("\n");

const isObject = (v: unknown): v is Schema => v !== null && typeof v === "object" && !Array.isArray(v);

/** Every subschema of a schema, with its JSON pointer. */
function subschemas(schema: Json, pointer = ""): { pointer: string; schema: Schema }[] {
  if (!isObject(schema)) return [];
  const out = [{ pointer, schema }];
  for (const [key, value] of Object.entries(schema)) {
    if (["properties", "patternProperties", "$defs"].includes(key) && isObject(value)) {
      for (const [name, sub] of Object.entries(value)) out.push(...subschemas(sub, `${pointer}/${key}/${name}`));
    } else if (["anyOf", "oneOf", "allOf"].includes(key) && Array.isArray(value)) {
      value.forEach((sub, i) => out.push(...subschemas(sub, `${pointer}/${key}/${i}`)));
    } else if (["items", "additionalProperties", "if", "then", "else", "not"].includes(key)) {
      out.push(...subschemas(value, `${pointer}/${key}`));
    }
  }
  return out;
}

/** The keys a schema node allows, following a local $ref. */
function keysOf(schema: Schema, node: Schema): string[] {
  let n = node;
  if (typeof n.$ref === "string" && n.$ref.startsWith("#/")) {
    n = n.$ref
      .slice(2)
      .split("/")
      .reduce<Json>((acc, seg) => (isObject(acc) ? (acc[seg] as Json) : null), schema) as Schema;
  }
  return isObject(n.properties) ? Object.keys(n.properties).sort() : [];
}

function at(schema: Schema, path: string[]): Schema {
  let node: Json = schema;
  for (const seg of path) {
    if (!isObject(node)) throw new Error(`no ${path.join("/")}`);
    if (typeof node.$ref === "string") node = at(schema, node.$ref.slice(2).split("/"));
    node = (node as Schema)[seg] as Json;
  }
  if (!isObject(node)) throw new Error(`no ${path.join("/")}`);
  return node;
}

const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
const isConfigFile = (f: string) => /(^|\.)sluice\.ya?ml$/.test(f);

describe("every schema", () => {
  it("is found", () => {
    expect(schemaFiles.map((f) => relative(root, f))).toEqual(
      expect.arrayContaining([
        "schemas/flow.schema.json",
        "schemas/config.schema.json",
        "schemas/cli/envelope.schema.json",
        "schemas/cli/validation-report.schema.json",
      ]),
    );
  });

  for (const file of schemaFiles) {
    const name = relative(root, file);
    it(`${name} compiles under ajv's strict mode`, () => {
      const ajv = strictAjv();
      for (const f of schemaFiles) ajv.addSchema(readJson(f));
      const schema = readJson(file);
      expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
      expect(schema.$id).toMatch(/^https:\/\/sluice\.dev\/schemas\/.+\.schema\.json$/);
      expect(typeof ajv.getSchema(schema.$id as string)).toBe("function");
    });

    it(`${name} describes every property`, () => {
      const missing: string[] = [];
      for (const { pointer, schema } of subschemas(readJson(file))) {
        // Conditions (if/then/else) only restate properties declared beside them.
        if (/\/(if|then|else)(\/|$)/.test(pointer)) continue;
        for (const key of ["properties", "patternProperties"]) {
          const props = schema[key];
          if (!isObject(props)) continue;
          for (const [prop, sub] of Object.entries(props)) {
            // `properties: { k: true }` beside `required: [k]` in an alternative only names a key.
            if (sub === true) continue;
            if (!isObject(sub) || typeof sub.description !== "string" || sub.description.length === 0) {
              missing.push(`${pointer}/${key}/${prop}`);
            }
          }
        }
      }
      expect(missing).toEqual([]);
    });
  }

  for (const schema of [flowSchema, configSchema]) {
    it(`${String(schema.$id)} closes every object a user writes keys into`, () => {
      const open = subschemas(schema)
        .filter(({ schema: s }) => isObject(s.properties) && s.type !== undefined)
        .filter(({ schema: s }) => s.additionalProperties !== false)
        .map(({ pointer }) => pointer);
      expect(open).toEqual([]);
    });
  }

  for (const schema of [flowSchema, configSchema]) {
    it(`${String(schema.$id)} has no $ref inside an alternative`, () => {
      // An error inside a $ref carries the target's schema path, which would hide which
      // alternative of an anyOf/oneOf it came from: the validator groups errors by that path.
      const hasRef = (n: Json): boolean => isObject(n) ? "$ref" in n || Object.values(n).some(hasRef) : Array.isArray(n) && n.some(hasRef);
      const offending = subschemas(schema)
        .filter(({ schema: s }) => ["anyOf", "oneOf"].some((k) => Array.isArray(s[k]) && (s[k] as Json[]).some(hasRef)))
        .map(({ pointer }) => pointer);
      expect(offending).toEqual([]);
    });
  }

  it("the flow schema compiles on its own, as the validator compiles it", () => {
    expect(() => strictAjv().compile(flowSchema)).not.toThrow();
    expect(() => strictAjv().compile(configSchema)).not.toThrow();
  });
});

describe("flow schema covers SPEC §2", () => {
  const step = at(flowSchema, ["$defs", "step"]);
  const kind = (k: string) => at(flowSchema, ["$defs", "step", "properties", k]);

  it("has the top-level keys", () => {
    expect(keysOf(flowSchema, flowSchema)).toEqual(["concurrency", "description", "name", "on", "outputs", "steps", "timeout"]);
    expect(keysOf(flowSchema, at(flowSchema, ["properties", "on"]))).toEqual(["github", "manual", "schedule", "webhook"]);
    expect(keysOf(flowSchema, at(flowSchema, ["$defs", "input"]))).toEqual(["default", "description", "options", "required", "type"]);
    expect(keysOf(flowSchema, at(flowSchema, ["properties", "concurrency"]))).toEqual(["group", "on_conflict"]);
  });

  it("has every step kind, and exactly one of them per step", () => {
    const kinds = ["http", "llm", "search", "db", "wait", "function", "notify", "kv", "sleep", "ssh", "github"];
    expect(keysOf(flowSchema, step)).toEqual([...kinds, "id", "if", "name", "on_error", "retry", "timeout"].sort());
    expect(step.oneOf).toEqual(kinds.map((k) => ({ properties: { [k]: true }, required: [k] })));
    expect(keysOf(flowSchema, at(flowSchema, ["$defs", "retry"]))).toEqual(["backoff", "initial", "max", "max_attempts"]);
  });

  it("has each kind's parameters", () => {
    const expected: Record<string, string[]> = {
      http: ["body", "connection", "expect", "headers", "max_bytes", "method", "query", "url"],
      llm: ["connection", "max_tokens", "messages", "model", "prompt", "schema", "system", "temperature"],
      search: ["connection", "limit", "provider", "query", "type"],
      db: ["connection", "max_rows", "params", "query"],
      wait: ["approval", "callback", "event"],
      function: ["code", "file", "input", "memory_mb", "timeout"],
      notify: ["github_comment", "webhook"],
      kv: ["delete", "get", "incr", "set"],
      ssh: ["connection", "detach", "env", "run", "timeout"],
      github: ["add_labels", "comment", "create_issue", "create_pull_request", "dispatch_workflow", "merge_pull_request"],
    };
    for (const [k, keys] of Object.entries(expected)) expect(keysOf(flowSchema, kind(k)), k).toEqual(keys);

    const wait = kind("wait").properties as Schema;
    expect(keysOf(flowSchema, wait.approval as Schema)).toEqual(
      ["allow_self_approval", "approvers", "covers", "escalate", "evidence", "on_timeout", "pull_request", "summary", "timeout", "title"],
    );
    expect(keysOf(flowSchema, wait.callback as Schema)).toEqual(["schema", "timeout"]);
    expect(keysOf(flowSchema, wait.event as Schema)).toEqual(["github", "timeout"]);
    expect(keysOf(flowSchema, at(flowSchema, ["$defs", "approvers"]))).toEqual(["min", "permission", "teams", "users"]);
    expect(keysOf(flowSchema, at(flowSchema, ["$defs", "githubEventFilter"]))).toEqual(["actions", "event", "if"]);

    const notify = kind("notify").properties as Schema;
    expect(keysOf(flowSchema, notify.github_comment as Schema)).toEqual(["body", "issue"]);
    expect(keysOf(flowSchema, notify.webhook as Schema)).toEqual(["body", "connection", "text"]);
    const kv = kind("kv").properties as Schema;
    expect(keysOf(flowSchema, kv.set as Schema)).toEqual(["if_version", "key", "ttl", "value"]);
    expect(keysOf(flowSchema, kv.incr as Schema)).toEqual(["by", "key"]);
    const gh = kind("github").properties as Schema;
    expect(keysOf(flowSchema, gh.create_pull_request as Schema)).toEqual(["base", "body", "branch", "files", "title"]);
    expect(keysOf(flowSchema, gh.merge_pull_request as Schema)).toEqual(["method", "number", "sha"]);
    expect(keysOf(flowSchema, gh.comment as Schema)).toEqual(["body", "issue"]);
    expect(keysOf(flowSchema, gh.create_issue as Schema)).toEqual(["assignees", "body", "labels", "title"]);
    expect(keysOf(flowSchema, gh.add_labels as Schema)).toEqual(["issue", "labels"]);
    expect(keysOf(flowSchema, gh.dispatch_workflow as Schema)).toEqual(["inputs", "ref", "workflow"]);
  });
});

describe("config schema covers SPEC §3", () => {
  it("has every key", () => {
    expect(keysOf(configSchema, configSchema)).toEqual(["connections", "policy"]);
    expect(keysOf(configSchema, at(configSchema, ["$defs", "connection"]))).toEqual(
      ["base_url", "environments", "host", "host_key", "path", "port", "secret", "type", "user"],
    );
    expect(at(configSchema, ["$defs", "connection", "properties", "type"]).enum).toEqual(
      ["postgres", "sqlite", "llm", "ssh", "webhook", "http", "github", "search"],
    );
    expect(keysOf(configSchema, at(configSchema, ["properties", "policy"]))).toEqual(
      ["allow", "allow_self_approval", "approvers", "auto_approve", "deny", "drafts", "notify", "require_approval"],
    );
    expect(keysOf(configSchema, at(configSchema, ["properties", "policy", "properties", "deny"]))).toEqual(["http", "ssh"]);
  });

  it("accepts SPEC §3's example", () => {
    const spec = parse(`
connections:
  prod-db:    { type: postgres, secret: PROD_DB_URL, environments: [live] }
  staging-db: { type: postgres, secret: STAGING_DB_URL }
  openai:     { type: llm, base_url: https://api.openai.com/v1, secret: OPENAI_API_KEY }
  agent-vm:   { type: ssh, host: 10.0.0.5, user: agent, host_key: "SHA256:abc", secret: AGENT_VM_KEY }
  slack:      { type: webhook, secret: SLACK_WEBHOOK_URL }
  inventory:  { type: http, base_url: http://10.0.0.9:8080, secret: INVENTORY_TOKEN }
  local-db:   { type: sqlite, path: data/app.db }
  gh:         { type: github, secret: GH_TOKEN }
policy:
  auto_approve: [read, notify, kv]
  require_approval: [write]
  approvers: { teams: [acme/maintainers], min: 1 }
  allow: { ssh: ["^uptime$"], http: ["GET https://api.github.com/**"] }
  deny:  { ssh: ["rm -rf /"], http: ["* http://169.254.169.254/**"] }
  drafts: { forks: never }
`) as unknown;
    expect(showErrors(check(validators.config, spec))).toBe("");
  });
});

describe("flow schema, value by value", () => {
  const flow = (step: Record<string, unknown>, top: Record<string, unknown> = {}) => ({
    on: { manual: null },
    steps: [{ id: "s", ...step }],
    ...top,
  });
  const accepts = (data: unknown) => expect(showErrors(check(validators.flow, data))).toBe("");
  const rejects = (data: unknown) => expect(check(validators.flow, data).length).toBeGreaterThan(0);

  it("accepts SPEC §2's example flow", () => {
    const spec = parse(readFileSync(join(examples, "long-running-handoff.yml"), "utf8")) as unknown;
    accepts(spec);
  });

  it("reports a step with no kind or two kinds through one oneOf at the step", () => {
    for (const step of [{ name: "x" }, { sleep: "1s", http: { url: "https://x" } }]) {
      const errors = check(validators.flow, flow(step));
      expect(errors.filter((e) => e.keyword === "oneOf").map((e) => e.instancePath)).toEqual(["/steps/0"]);
    }
  });

  it("takes an expression wherever a scalar parameter may be computed", () => {
    const e = "${{ inputs.x }}";
    accepts(flow({ http: { url: "https://x", method: e, max_bytes: e, expect: e } }));
    accepts(flow({ llm: { connection: "c", model: "m", prompt: "p", temperature: e, max_tokens: e } }));
    accepts(flow({ search: { query: "q", limit: e } }));
    accepts(flow({ db: { connection: "c", query: "SELECT 1", params: e, max_rows: e } }));
    accepts(flow({ ssh: { connection: "c", run: "x", detach: e } }));
    accepts(flow({ kv: { set: { key: "k", value: 1, if_version: e } } }));
    accepts(flow({ kv: { incr: { key: "k", by: e } } }));
    accepts(flow({ function: { code: "return 1", memory_mb: e } }));
    accepts(flow({ github: { merge_pull_request: { number: e, method: e } } }));
    accepts(flow({ wait: { approval: { pull_request: e } } }));
    accepts(flow({ sleep: e }));
    rejects(flow({ http: { url: "https://x", method: "FETCH" } }));
    rejects(flow({ http: { url: "https://x", max_bytes: "lots" } }));
    rejects(flow({ ssh: { connection: "c", run: "x", detach: "inputs.x" } }));
  });

  it("leaves the format of durations to the semantic pass", () => {
    accepts(flow({ sleep: "10 minutes", timeout: "soon" }, { timeout: "1 week" }));
    rejects(flow({ sleep: 10 }));
    rejects(flow({ sleep: "1s", timeout: 30 }));
  });

  it("accepts `manual:` and `callback:` with no value", () => {
    accepts(flow({ wait: { callback: null } }));
    rejects(flow({ sleep: "1s" }, { on: {} }));
  });

  it("checks the step id, flow name and secret name patterns", () => {
    rejects(flow({ id: "Bad", sleep: "1s" }));
    rejects(flow({ id: "1st", sleep: "1s" }));
    accepts(flow({ id: "a_b-c9", sleep: "1s" }));
    rejects(flow({ sleep: "1s" }, { name: "Deploy" }));
    accepts(flow({ sleep: "1s" }, { name: "0-deploy" }));
    rejects(flow({ sleep: "1s" }, { on: { webhook: { secret: "lower" } } }));
  });

  it("rejects a choice input without options and a web search without a connection", () => {
    rejects(flow({ sleep: "1s" }, { on: { manual: { inputs: { x: { type: "choice" } } } } }));
    accepts(flow({ sleep: "1s" }, { on: { manual: { inputs: { x: { type: "choice", options: ["a"] } } } } }));
    rejects(flow({ search: { provider: "web", query: "q" } }));
    accepts(flow({ search: { provider: "web", query: "q", connection: "s" } }));
  });
});

describe("examples and fixtures against the schemas", () => {
  const validFlows = [
    ...yamlFiles(examples).filter((f) => !isConfigFile(f)).map((f) => join(examples, f)),
    ...yamlFiles(join(fixtures, "valid")).filter((f) => !isConfigFile(f)).map((f) => join(fixtures, "valid", f)),
  ];
  const validConfigs = [
    join(examples, "sluice.yml"),
    join(fixtures, "sluice.yml"),
    ...yamlFiles(join(fixtures, "valid")).filter(isConfigFile).map((f) => join(fixtures, "valid", f)),
  ];

  for (const file of validFlows) {
    it(`${relative(root, file)} matches the flow schema`, () => {
      const data = parse(readFileSync(file, "utf8"), { maxAliasCount: 100 }) as unknown;
      expect(showErrors(check(validators.flow, data))).toBe("");
    });
  }
  for (const file of validConfigs) {
    it(`${relative(root, file)} matches the config schema`, () => {
      const data = parse(readFileSync(file, "utf8")) as unknown;
      expect(showErrors(check(validators.config, data))).toBe("");
    });
  }

  // Checks of the schema pass that JSON Schema cannot express (a policy regex that does not
  // compile) are reported with the schema code by the validator's own code.
  const beyondJsonSchema = new Set(["config-bad-regex.sluice.yml"]);
  const invalidDir = join(fixtures, "invalid");
  for (const name of yamlFiles(invalidDir)) {
    const expected = JSON.parse(readFileSync(join(invalidDir, name.replace(/\.ya?ml$/, ".expected.json")), "utf8")) as {
      code: string;
    }[];
    const codes = new Set(expected.map((e) => e.code));
    if ([...codes].some((c) => c.startsWith("YAML_"))) continue;
    const schemaCode = isConfigFile(name) ? "CONFIG_SCHEMA" : "FLOW_SCHEMA";
    const v = isConfigFile(name) ? validators.config : validators.flow;
    const shouldFail = codes.has(schemaCode) && !beyondJsonSchema.has(name);
    it(`invalid/${name} ${shouldFail ? "does not match" : "matches"} the ${isConfigFile(name) ? "config" : "flow"} schema`, () => {
      const errors = check(v, parse(readFileSync(join(invalidDir, name), "utf8")) as unknown);
      if (shouldFail) expect(errors.length).toBeGreaterThan(0);
      else expect(showErrors(errors)).toBe("");
    });
  }
});

describe("CLI schemas", () => {
  const ajv = strictAjv();
  for (const f of schemaFiles.filter((f) => f.includes(`${join("schemas", "cli")}`))) ajv.addSchema(readJson(f));
  const envelope = ajv.getSchema("https://sluice.dev/schemas/cli/envelope.schema.json") as ValidateFunction;
  const report = ajv.getSchema("https://sluice.dev/schemas/cli/validation-report.schema.json") as ValidateFunction;

  const diagnostic = {
    severity: "error",
    code: "EXPR_UNKNOWN_REF",
    message: "there is no 'secrets' context",
    file: ".github/flows/deploy.yml",
    line: 12,
    column: 9,
    pointer: "/steps/0/http/headers/Authorization",
  };
  const sample = (over: Record<string, unknown> = {}, data: Record<string, unknown> = {}) => ({
    apiVersion: "sluice/v1",
    kind: "ValidationReport",
    ok: false,
    error: { code: "FLOW_INVALID", message: "1 error in 1 file", details: {} },
    data: {
      files: [
        { file: ".github/flows/deploy.yml", kind: "flow", valid: false, diagnostics: [diagnostic] },
        { file: ".github/sluice.yml", kind: "config", valid: true, diagnostics: [] },
      ],
      valid: false,
      errors: 1,
      warnings: 0,
      ...data,
    },
    ...over,
  });

  it("the envelope takes any kind, and ties ok to error", () => {
    expect(envelope({ apiVersion: "sluice/v1", kind: "Run", ok: true, data: {}, error: null })).toBe(true);
    expect(envelope({ apiVersion: "sluice/v1", kind: "Run", ok: false, data: null, error: { code: "RUN_NOT_FOUND", message: "no run" } })).toBe(true);
    expect(envelope({ apiVersion: "sluice/v1", kind: "Run", ok: false, data: {}, error: null })).toBe(false);
    expect(envelope({ apiVersion: "sluice/v1", kind: "Run", ok: true, data: {}, error: { code: "X", message: "m" } })).toBe(false);
    expect(envelope({ apiVersion: "sluice/v2", kind: "Run", ok: true, data: {}, error: null })).toBe(false);
    expect(envelope({ apiVersion: "sluice/v1", kind: "Run", ok: true, data: {} })).toBe(false);
  });

  it("a validation report matches, and fields may be added", () => {
    expect(report(sample()), showErrors(report.errors ?? [])).toBe(true);
    expect(report(sample({ ok: true, error: null }, { valid: true, errors: 0, files: [] }))).toBe(true);
    expect(report(sample({ extra: 1 }, { extra: 2 }))).toBe(true);
  });

  it("a malformed validation report does not", () => {
    expect(report(sample({ kind: "Run" }))).toBe(false);
    expect(report(sample({}, { errors: -1 }))).toBe(false);
    expect(report(sample({}, { files: [{ file: "x", kind: "script", valid: true, diagnostics: [] }] }))).toBe(false);
    expect(report(sample({}, { files: [{ file: "x", kind: "flow", valid: false, diagnostics: [{ ...diagnostic, severity: "fatal" }] }] }))).toBe(false);
    expect(report(sample({}, { files: [{ file: "x", kind: "flow", valid: false, diagnostics: [{ ...diagnostic, pointer: "steps/0" }] }] }))).toBe(false);
    const { line: _line, ...noLine } = diagnostic;
    expect(report(sample({}, { files: [{ file: "x", kind: "flow", valid: false, diagnostics: [noLine] }] }))).toBe(false);
  });
});
