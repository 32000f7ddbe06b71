/**
 * Error classes with stable string codes. The code is what the CLI prints as `error.code`
 * and what callers branch on; messages are for humans and may change.
 */
export type ErrorCode =
  | "USAGE"
  | "NOT_FOUND"
  | "RUN_NOT_FOUND"
  | "FLOW_NOT_FOUND"
  | "FLOW_INVALID"
  | "CONFIG_INVALID"
  /** The server's environment (APP_ID, PORT, SLUICE_PUBLIC_URL…) is invalid. */
  | "ENV_INVALID"
  | "INPUT_INVALID"
  | "STATE_CONFLICT"
  | "NOT_WAITING"
  | "APPROVAL_NOT_ELIGIBLE"
  | "APPROVAL_STALE"
  | "CALLBACK_INVALID"
  | "REF_NOT_FOUND"
  | "NOT_A_REPOSITORY"
  | "STEP_FAILED"
  | "STEP_TIMEOUT"
  | "STEP_ABORTED"
  | "SSRF_REFUSED"
  | "CONNECTION_UNKNOWN"
  | "CONNECTION_FAILED"
  | "SECRET_MISSING"
  | "OUTPUT_TOO_LARGE"
  | "SANDBOX_ERROR"
  | "SANDBOX_TIMEOUT"
  | "SANDBOX_MEMORY"
  | "KV_VERSION_CONFLICT"
  | "KV_NOT_A_NUMBER"
  | "RESOURCE_REF_INVALID"
  | "PARAM_INVALID"
  | "HTTP_STATUS"
  | "LLM_SCHEMA"
  | "LLM_RESPONSE"
  | "DB_ERROR"
  | "DB_READ_ONLY"
  | "SSH_HOST_KEY"
  | "SSH_EXIT"
  | "GITHUB_UNAVAILABLE"
  | "STORE_ERROR"
  /** A flow file is larger than Sluice parses (1 MiB). */
  | "FLOW_TOO_LARGE"
  /** A policy `deny` rule refuses the request a step would make. */
  | "POLICY_DENIED"
  /** A step classified as a read turned out, at run time, to be able to change state. */
  | "EFFECT_IS_WRITE"
  /** A request to the server carries no credentials, or ones that are not valid. */
  | "UNAUTHORIZED"
  /** The credentials are valid but do not reach this resource. */
  | "FORBIDDEN"
  /** A decision made somewhere it does not count (another issue or pull request, another head). */
  | "APPROVAL_WRONG_PLACE"
  /** GitHub's write budget for the installation (or a hold GitHub asked for) lets no request through before the time given. */
  | "GITHUB_RATE_LIMITED"
  | "INTERNAL";

export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "SluiceError";
    this.code = code;
    this.details = details;
  }
}

/** A step error that must not be retried, whatever the step's retry policy says. */
export class NonRetriableError extends SluiceError {
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = "NonRetriableError";
  }
}

/** A step error that may be retried, no earlier than `retryAfterMs` from now. */
export class RetryAfterError extends SluiceError {
  readonly retryAfterMs: number;
  constructor(code: ErrorCode, message: string, retryAfterMs: number, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = "RetryAfterError";
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * Thrown by an executor, before it does anything, when a step the engine ran as a `read` can in
 * fact change state (the database's own verdict on a query, say). The runtime records the step
 * as a write and the engine gates it like any write; nothing was executed.
 */
export class EffectIsWriteError extends NonRetriableError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("EFFECT_IS_WRITE", message, details);
    this.name = "EffectIsWriteError";
  }
}

/** An append lost the compare-and-set race: another worker wrote the journal first. */
export class ConflictError extends SluiceError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super("STATE_CONFLICT", message, details);
    this.name = "ConflictError";
  }
}

export function assertNever(value: never, what = "value"): never {
  throw new SluiceError("INTERNAL", `unexpected ${what}: ${JSON.stringify(value)}`);
}
