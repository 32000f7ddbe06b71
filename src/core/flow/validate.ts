/**
 * Validation of flows and config: parse with positions, then the schema pass (ajv, compiled
 * at build time, all errors), then the semantic pass. Every diagnostic carries a JSON pointer and the
 * line and column it maps to, so the CLI and the check-run annotations say the same thing.
 */
import type { ErrorObject } from "ajv/dist/2020.js";
import { Cron } from "croner";
// Compiled from schemas/*.schema.json at build time (scripts/compile-schemas.mjs, ajv's
// standalone code), so no start pays for compiling a JSON Schema.
import { validateConfig as configSchema, validateFlow as flowSchema } from "./generated/validators.js";
import { findExpressions, parseExpression, referencedPaths } from "../expr/expressions.js";
import { KINDS_WITH_CONNECTION } from "../policy/effects.js";
import { regexError } from "../policy/patterns.js";
import { policyRefusals } from "../policy/refusals.js";
import { approvalSpecOf } from "../engine/coverage.js";
import { isDuration } from "./duration.js";
import { escapePointer, parseYamlSource, type YamlSource } from "./yaml-source.js";
import {
  DEFAULT_POLICY,
  STEP_KINDS,
  type Config,
  type Diagnostic,
  type Flow,
  type Step,
  type StepKind,
} from "./types.js";

export interface FlowValidation {
  flow?: Flow;
  diagnostics: Diagnostic[];
}

export interface ConfigValidation {
  config?: Config;
  diagnostics: Diagnostic[];
}

type Add = (code: string, message: string, pointer: string, opts?: { key?: boolean; severity?: "error" | "warning" }) => void;

function reporter(src: YamlSource, out: Diagnostic[], file?: string): Add {
  return (code, message, pointer, opts = {}) => {
    const pos = src.position(pointer, { key: opts.key ?? false });
    out.push({
      severity: opts.severity ?? "error",
      code,
      message,
      ...(file ? { file } : {}),
      line: pos.line,
      column: pos.column,
      pointer,
    });
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** The stem of a file name: `.github/flows/deploy.yml` → `deploy`. */
export function fileStem(file: string): string {
  const base = file.split(/[\\/]/).pop() ?? file;
  return base.replace(/\.(ya?ml)$/i, "");
}

// ---------------------------------------------------------------- schema pass

function schemaDiagnostics(errors: ErrorObject[], code: string, add: Add): void {
  // A failed oneOf/anyOf brings the errors of each branch along. Keep the branch that got
  // furthest into the value (its errors are the user's real mistake); when no branch got past
  // the discriminating level, report the alternative itself once.
  const dropped = new Set<ErrorObject>();
  const alternatives = errors.filter((e) => e.keyword === "oneOf" || e.keyword === "anyOf");
  const replaced = new Map<ErrorObject, string>();
  for (const alt of alternatives) {
    const prefix = `${alt.schemaPath}/`;
    const branchErrors = errors.filter((e) => e !== alt && e.schemaPath.startsWith(prefix));
    const depth = (e: ErrorObject) => e.instancePath.split("/").length + (e.keyword === "additionalProperties" ? 1 : 0);
    const altDepth = alt.instancePath.split("/").length;
    const deepest = Math.max(-1, ...branchErrors.map(depth));
    if (branchErrors.length > 0 && deepest > altDepth + 1) {
      const branchOf = (e: ErrorObject) => e.schemaPath.slice(prefix.length).split("/")[0];
      const best = branchOf(branchErrors.find((e) => depth(e) === deepest) as ErrorObject);
      for (const e of branchErrors) if (branchOf(e) !== best) dropped.add(e);
      dropped.add(alt);
    } else {
      for (const e of branchErrors) dropped.add(e);
      replaced.set(alt, alternativeMessage(alt));
    }
  }
  const seen = new Set<string>();
  for (const e of errors) {
    // A failed if/then reports the `then` error and an `if` error beside it: one mistake.
    if (dropped.has(e) || e.keyword === "if") continue;
    let pointer = e.instancePath;
    let key = false;
    let message = replaced.get(e) ?? `${pointer || "the document"} ${e.message ?? "is invalid"}`;
    if (e.keyword === "additionalProperties") {
      const prop = String((e.params as { additionalProperty: string }).additionalProperty);
      pointer = `${e.instancePath}/${escapePointer(prop)}`;
      key = true;
      message = `unknown key '${prop}'${e.instancePath ? ` in ${e.instancePath}` : ""}`;
    } else if (e.keyword === "required") {
      const prop = String((e.params as { missingProperty: string }).missingProperty);
      message = `missing required key '${prop}'${e.instancePath ? ` in ${e.instancePath}` : ""}`;
    } else if (e.keyword === "enum") {
      const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ");
      message = `${pointer} must be one of ${allowed}`;
    }
    const dedupe = `${pointer}|${e.keyword}|${message}`;
    if (seen.has(dedupe)) continue;
    seen.add(dedupe);
    add(code, message, pointer, { key });
  }
}

function alternativeMessage(e: ErrorObject): string {
  if (/^\/steps\/\d+$/.test(e.instancePath)) {
    return `${e.instancePath}: a step must have exactly one kind key (${STEP_KINDS.join(", ")})`;
  }
  return `${e.instancePath || "the document"} must match exactly one of the allowed forms`;
}

// ---------------------------------------------------------------- semantic pass

interface StringSite {
  pointer: string;
  value: string;
  /** Bare `if:` conditions are expressions even without `${{ }}`. */
  condition: boolean;
}

function collectStrings(value: unknown, pointer: string, out: StringSite[]): void {
  if (typeof value === "string") out.push({ pointer, value, condition: CONDITION_AT.test(pointer) });
  else if (Array.isArray(value)) value.forEach((v, i) => collectStrings(v, `${pointer}/${i}`, out));
  else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) collectStrings(v, `${pointer}/${escapePointer(k)}`, out);
  }
}

/** Where a bare string is an `if:` condition (an expression even without `${{ }}`). */
const CONDITION_AT = /^(\/steps\/\d+\/if|\/on\/github\/\d+\/if|\/steps\/\d+\/wait\/event\/github\/if)$/;

const STEP_FIELDS = new Set(["outputs", "outcome", "conclusion"]);

function checkExpressions(raw: Record<string, unknown>, sites: StringSite[], add: Add): void {
  const steps = Array.isArray(raw.steps) ? raw.steps : [];
  const stepIndex = new Map<string, number>();
  const callbackSteps = new Set<string>();
  steps.forEach((s, i) => {
    if (!isObject(s) || typeof s.id !== "string") return;
    if (!stepIndex.has(s.id)) stepIndex.set(s.id, i);
    if (isObject(s.wait) && "callback" in s.wait) callbackSteps.add(s.id);
  });
  const on = isObject(raw.on) ? raw.on : {};
  const manual = isObject(on.manual) ? on.manual : {};
  const inputs = isObject(manual.inputs) ? manual.inputs : {};

  for (const site of sites) {
    const spans = findExpressions(site.value);
    const sources: string[] = [];
    if (spans.length === 0 && site.condition && site.value.trim() !== "") sources.push(site.value);
    for (const span of spans) {
      if (span.end < 0) {
        add("EXPR_SYNTAX", "unclosed '${{': an expression ends with '}}'", site.pointer);
        continue;
      }
      sources.push(span.source);
    }
    // Where the expression stands decides which steps it may name.
    const stepMatch = /^\/steps\/(\d+)(\/|$)/.exec(site.pointer);
    const here = stepMatch ? Number(stepMatch[1]) : undefined;
    const inOutputs = site.pointer.startsWith("/outputs/");
    for (const source of sources) {
      let expr;
      try {
        expr = parseExpression(source);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        const named = /Unrecognized named-value: '([^']+)'/.exec(msg);
        if (named) {
          const name = named[1];
          add(
            "EXPR_UNKNOWN_REF",
            name === "secrets"
              ? "there is no 'secrets' context: secrets reach steps only through connections"
              : `unknown context '${name}' (contexts: inputs, steps, github, run, callbacks)`,
            site.pointer,
          );
        } else add("EXPR_SYNTAX", `expression does not parse: ${msg}`, site.pointer);
        continue;
      }
      for (const path of referencedPaths(expr)) {
        const [ctx, name, field] = path;
        if (name === undefined) continue;
        if (ctx === "inputs" && !(name in inputs)) {
          add("EXPR_UNKNOWN_REF", `input '${name}' is not declared under on.manual.inputs`, site.pointer);
        } else if (ctx === "steps") {
          const index = stepIndex.get(name);
          if (index === undefined) add("EXPR_UNKNOWN_REF", `there is no step '${name}'`, site.pointer);
          else if (!inOutputs && (here === undefined || index >= here)) {
            add(
              "EXPR_UNKNOWN_REF",
              here === undefined
                ? `steps.${name} is not known here: only steps and outputs may read step results`
                : index === here
                  ? `a step cannot read its own result (steps.${name})`
                  : `step '${name}' runs later than this one, so its result is not known yet`,
              site.pointer,
            );
          } else if (field !== undefined && !STEP_FIELDS.has(field)) {
            add("EXPR_UNKNOWN_REF", `steps.${name}.${field} does not exist (use outputs or outcome)`, site.pointer);
          }
        } else if (ctx === "callbacks" && !callbackSteps.has(name)) {
          add("EXPR_UNKNOWN_REF", `callbacks.${name}: '${name}' is not a wait.callback step`, site.pointer);
        }
      }
    }
  }
}

/** The places that hold durations; anything else (bodies, inputs, values) is the user's data. */
const DURATION_AT = [
  /^\/timeout$/,
  /^\/steps\/\d+\/(timeout|sleep)$/,
  /^\/steps\/\d+\/retry\/(initial|max)$/,
  /^\/steps\/\d+\/wait\/(approval|callback|event)\/timeout$/,
  /^\/steps\/\d+\/wait\/approval\/escalate\/\d+\/after$/,
  /^\/steps\/\d+\/kv\/set\/ttl$/,
  /^\/steps\/\d+\/(function|ssh)\/timeout$/,
];

function isExpression(v: string): boolean {
  return v.includes("${{");
}

function checkDurations(sites: StringSite[], add: Add): void {
  for (const { pointer, value } of sites) {
    if (!DURATION_AT.some((re) => re.test(pointer)) || isExpression(value) || isDuration(value)) continue;
    add("DURATION_INVALID", `'${value}' is not a duration: use a number and a unit (500ms, 30s, 10m, 8h, 7d)`, pointer);
  }
}

function checkSchedules(raw: Record<string, unknown>, add: Add): void {
  const on = isObject(raw.on) ? raw.on : {};
  if (!Array.isArray(on.schedule)) return;
  on.schedule.forEach((entry, i) => {
    if (!isObject(entry)) return;
    const base = `/on/schedule/${i}`;
    if (typeof entry.timezone === "string" && !isTimeZone(entry.timezone)) {
      add("TIMEZONE_INVALID", `unknown time zone '${entry.timezone}' (use an IANA name such as Europe/Berlin)`, `${base}/timezone`);
    }
    if (typeof entry.cron === "string") {
      try {
        new Cron(entry.cron, { paused: true });
      } catch (e) {
        add("CRON_INVALID", `invalid cron expression '${entry.cron}': ${e instanceof Error ? e.message : String(e)}`, `${base}/cron`);
      }
    }
  });
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The connection a step names, with the pointer to where it is named. */
function stepConnection(kind: StepKind, params: unknown): { name: string; path: string; types: readonly string[] } | undefined {
  if (!isObject(params)) return undefined;
  if (kind === "notify" && isObject(params.webhook) && typeof params.webhook.connection === "string") {
    return { name: params.webhook.connection, path: "webhook/connection", types: ["webhook"] };
  }
  if (kind === "search" && typeof params.connection === "string") {
    return { name: params.connection, path: "connection", types: ["search", "http"] };
  }
  const types = KINDS_WITH_CONNECTION[kind];
  if (types && typeof params.connection === "string") return { name: params.connection, path: "connection", types };
  return undefined;
}

function checkConnectionsAndPolicy(flow: Flow, config: Config, configFile: string, add: Add): void {
  flow.steps.forEach((step, i) => {
    const base = `/steps/${i}/${step.kind}`;
    const conn = stepConnection(step.kind, step.params);
    if (conn && !isExpression(conn.name)) {
      const declared = config.connections[conn.name];
      if (!declared) add("CONNECTION_UNKNOWN", `connection '${conn.name}' is not declared in ${configFile}`, `${base}/${conn.path}`);
      else if (!conn.types.includes(declared.type)) {
        add(
          "CONNECTION_TYPE",
          `connection '${conn.name}' is of type ${declared.type}; a ${step.kind} step needs ${conn.types.join(" or ")}`,
          `${base}/${conn.path}`,
        );
      }
    }
    for (const r of policyRefusals(step, config)) add(r.code, r.message, `${base}/${r.path}`);
  });
}

/** An approval's `covers:` names steps after it: a step that is not there, or came earlier, would leave a write unguarded. */
function checkCovers(flow: Flow, add: Add): void {
  const index = new Map(flow.steps.map((s, i) => [s.id, i]));
  flow.steps.forEach((step, i) => {
    approvalSpecOf(step)?.covers?.forEach((id, j) => {
      const at = index.get(id);
      const pointer = `/steps/${i}/wait/approval/covers/${j}`;
      if (at === undefined) add("COVERS_INVALID", `covers names step '${id}', which this flow does not have`, pointer);
      else if (at <= i) add("COVERS_INVALID", `covers names step '${id}', which runs before this approval: an approval covers only later steps`, pointer);
    });
  });
}

function normaliseFlow(raw: Record<string, unknown>, file: string | undefined): Flow {
  const steps: Step[] = (Array.isArray(raw.steps) ? raw.steps : []).filter(isObject).map((s) => {
    const kind = STEP_KINDS.find((k) => k in s) as StepKind;
    const step: Step = { id: String(s.id), kind, params: s[kind] };
    if (typeof s.name === "string") step.name = s.name;
    if (typeof s.if === "string") step.if = s.if;
    if (typeof s.timeout === "string") step.timeout = s.timeout;
    if (isObject(s.retry)) step.retry = s.retry as unknown as Step["retry"] & object;
    if (s.on_error === "fail" || s.on_error === "continue") step.on_error = s.on_error;
    return step;
  });
  const flow: Flow = {
    name: typeof raw.name === "string" ? raw.name : fileStem(file ?? "flow"),
    on: (isObject(raw.on) ? raw.on : {}) as Flow["on"],
    steps,
  };
  if (typeof raw.description === "string") flow.description = raw.description;
  if (isObject(raw.concurrency)) flow.concurrency = raw.concurrency as unknown as Flow["concurrency"] & object;
  if (typeof raw.timeout === "string") flow.timeout = raw.timeout;
  if (isObject(raw.outputs)) flow.outputs = raw.outputs as Record<string, string>;
  return flow;
}

/** With a config, connections and deny rules are checked too; `configFile` names it in messages (default `.github/sluice.yml`). */
export function validateFlow(text: string, opts: { file?: string; config?: Config; configFile?: string } = {}): FlowValidation {
  const src = parseYamlSource(text, opts.file);
  const diagnostics = [...src.diagnostics];
  if (src.value === undefined) return { diagnostics };
  const raw = src.value as Record<string, unknown>;
  const add = reporter(src, diagnostics, opts.file);

  const v = flowSchema;
  const schemaOk = v(raw);
  if (!schemaOk) schemaDiagnostics(v.errors ?? [], "FLOW_SCHEMA", add);

  const steps = Array.isArray(raw.steps) ? raw.steps : [];
  const seen = new Set<string>();
  steps.forEach((s, i) => {
    if (!isObject(s) || typeof s.id !== "string") return;
    if (seen.has(s.id)) add("STEP_ID_DUPLICATE", `step id '${s.id}' is used by an earlier step`, `/steps/${i}/id`);
    seen.add(s.id);
  });
  const sites: StringSite[] = [];
  collectStrings(raw, "", sites);
  checkExpressions(raw, sites, add);
  checkDurations(sites, add);
  checkSchedules(raw, add);

  const flow = schemaOk ? normaliseFlow(raw, opts.file) : undefined;
  if (flow) checkCovers(flow, add);
  if (flow && opts.config) checkConnectionsAndPolicy(flow, opts.config, opts.configFile ?? ".github/sluice.yml", add);
  diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  return diagnostics.some((d) => d.severity === "error") ? { diagnostics } : { ...(flow ? { flow } : {}), diagnostics };
}

/** Validates `.github/sluice.yml`; the policy is completed with the defaults of SPEC §3. */
export function validateConfig(text: string, opts: { file?: string } = {}): ConfigValidation {
  const src = parseYamlSource(text, opts.file);
  const diagnostics = [...src.diagnostics];
  if (src.value === undefined) return { diagnostics };
  const raw = src.value as Record<string, unknown>;
  const add = reporter(src, diagnostics, opts.file);
  const v = configSchema;
  if (!v(raw)) schemaDiagnostics(v.errors ?? [], "CONFIG_SCHEMA", add);
  const policy = isObject(raw.policy) ? raw.policy : {};
  for (const list of ["allow", "deny"] as const) {
    const rules = isObject(policy[list]) ? policy[list] : {};
    if (Array.isArray(rules.ssh)) {
      rules.ssh.forEach((r, i) => {
        const err = typeof r === "string" ? regexError(r) : undefined;
        if (err) add("CONFIG_SCHEMA", `policy.${list}.ssh[${i}] is not a valid regular expression: ${err}`, `/policy/${list}/ssh/${i}`);
      });
    }
  }
  // Gates are announced to the webhook the policy names: a name that reaches nothing would stay silent.
  if (isObject(policy.notify) && typeof policy.notify.connection === "string") {
    const name = policy.notify.connection;
    const conn = isObject(raw.connections) ? raw.connections[name] : undefined;
    if (!isObject(conn)) add("CONNECTION_UNKNOWN", `policy.notify.connection '${name}' is not declared in connections`, "/policy/notify/connection");
    else if (conn.type !== "webhook") add("CONFIG_SCHEMA", `policy.notify.connection '${name}' is a ${String(conn.type)} connection; gates are announced to a webhook`, "/policy/notify/connection");
  }
  diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  if (diagnostics.some((d) => d.severity === "error")) return { diagnostics };
  return { config: normaliseConfig(raw), diagnostics };
}

export function normaliseConfig(raw: Record<string, unknown> = {}): Config {
  const p = isObject(raw.policy) ? raw.policy : {};
  return {
    connections: (isObject(raw.connections) ? raw.connections : {}) as Config["connections"],
    policy: {
      auto_approve: (p.auto_approve as string[] | undefined) ?? DEFAULT_POLICY.auto_approve,
      require_approval: (p.require_approval as string[] | undefined) ?? DEFAULT_POLICY.require_approval,
      approvers: (p.approvers as Config["policy"]["approvers"] | undefined) ?? DEFAULT_POLICY.approvers,
      allow: (p.allow as Config["policy"]["allow"] | undefined) ?? {},
      deny: (p.deny as Config["policy"]["deny"] | undefined) ?? {},
      drafts: (p.drafts as Config["policy"]["drafts"] | undefined) ?? DEFAULT_POLICY.drafts,
      allow_self_approval: p.allow_self_approval === true,
      ...(isObject(p.notify) && typeof p.notify.connection === "string" ? { notify: { connection: p.notify.connection } } : {}),
    },
  };
}

/** The default config when the repository has no `.github/sluice.yml`. */
export const DEFAULT_CONFIG: Config = normaliseConfig();
