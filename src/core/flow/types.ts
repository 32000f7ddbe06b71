/**
 * The flow and config model of SPEC §2 and §3, as it stands after parsing and validation.
 * Values that may hold `${{ }}` expressions stay strings here; they are evaluated at run time.
 */

export type Severity = "error" | "warning";

export interface Diagnostic {
  severity: Severity;
  /** A stable code: FLOW_SCHEMA, STEP_ID_DUPLICATE, EXPR_SYNTAX, EXPR_UNKNOWN_REF, ... */
  code: string;
  message: string;
  /** The file the diagnostic is about, when known. */
  file?: string;
  /** 1-based line and column of the offending node; 0 when unknown. */
  line: number;
  column: number;
  /** JSON pointer into the document, e.g. /steps/2/http/url. */
  pointer: string;
}

export const STEP_KINDS = [
  "http",
  "llm",
  "search",
  "db",
  "wait",
  "function",
  "notify",
  "kv",
  "sleep",
  "ssh",
  "github",
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export type Effect = "read" | "write" | "none";

export interface RetryPolicy {
  max_attempts: number;
  backoff?: "fixed" | "exponential";
  initial?: string;
  max?: string;
}

export interface Approvers {
  users?: string[];
  teams?: string[];
  permission?: "read" | "triage" | "write" | "maintain" | "admin";
  min?: number;
}

export interface ApprovalSpec {
  title?: string;
  summary?: string;
  evidence?: unknown[];
  approvers?: Approvers;
  allow_self_approval?: boolean;
  timeout?: string;
  escalate?: { after: string; approvers: Approvers }[];
  on_timeout?: "fail" | "cancel" | "continue";
  pull_request?: number | string;
  /** Exactly the write steps this approval covers (default: those after it, up to the next approval step). */
  covers?: string[];
}

export interface WaitSpec {
  approval?: ApprovalSpec;
  callback?: { timeout?: string; schema?: Record<string, unknown> };
  event?: { github: { event: string; actions?: string[]; if?: string }; timeout?: string };
}

/** One step. `kind` names the one kind key present; `params` is that key's value. */
export interface Step {
  id: string;
  name?: string;
  if?: string;
  timeout?: string;
  retry?: RetryPolicy;
  on_error?: "fail" | "continue";
  kind: StepKind;
  params: unknown;
}

export interface InputSpec {
  type: "string" | "boolean" | "number" | "choice" | "environment";
  required?: boolean;
  default?: unknown;
  description?: string;
  options?: string[];
}

export interface Triggers {
  manual?: { inputs?: Record<string, InputSpec> } | null;
  schedule?: { cron: string; timezone?: string }[];
  github?: { event: string; actions?: string[]; if?: string }[];
  webhook?: { secret: string };
}

export interface Flow {
  name: string;
  description?: string;
  on: Triggers;
  concurrency?: { group: string; on_conflict?: "queue" | "cancel_new" | "cancel_running" };
  timeout?: string;
  steps: Step[];
  outputs?: Record<string, string>;
}

export interface Connection {
  type: "postgres" | "sqlite" | "llm" | "ssh" | "webhook" | "http" | "github" | "search";
  secret?: string;
  environments?: ("live" | "draft")[];
  base_url?: string;
  host?: string;
  port?: number;
  user?: string;
  host_key?: string;
  path?: string;
}

export interface Policy {
  auto_approve: string[];
  require_approval: string[];
  approvers: Approvers;
  allow: { ssh?: string[]; http?: string[] };
  deny: { ssh?: string[]; http?: string[] };
  drafts: { forks: "never" | "always" };
  /** Whether a gate's own allow_self_approval may take effect (default false). */
  allow_self_approval: boolean;
  /** A webhook connection told when a gate opens, escalates or nears its deadline (absent: none). */
  notify?: { connection: string };
}

export interface Config {
  connections: Record<string, Connection>;
  policy: Policy;
}

export const DEFAULT_POLICY: Policy = {
  auto_approve: ["read", "notify", "kv"],
  require_approval: ["write"],
  approvers: { permission: "write", min: 1 },
  allow: {},
  deny: {},
  drafts: { forks: "never" },
  allow_self_approval: false,
};
