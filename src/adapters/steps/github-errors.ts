/**
 * Errors of GitHub API calls made through `ctx.github`, as step errors: rate limits (429, or
 * 403 with Retry-After or an exhausted quota) wait and retry, 5xx retry, other 4xx do not. The
 * wait GitHub asks for (`rateLimitWaitMs`, `holdAfter`) is also what the GitHub write budget
 * holds every writer for.
 */
import { NonRetriableError, RetryAfterError, SluiceError } from "../../core/errors.js";
import type { GitHubApi, StepContext } from "../../ports/step-executor.js";

export function requireGitHub(ctx: Pick<StepContext, "github">, what: string): GitHubApi {
  if (!ctx.github) {
    throw new NonRetriableError(
      "GITHUB_UNAVAILABLE",
      `${what} needs GitHub API access: run it on the server (the app's installation token) or declare a 'github' connection for local mode`,
    );
  }
  return ctx.github;
}

/** When GitHub names no wait for a rate limit, wait this long. */
export const DEFAULT_RATE_LIMIT_WAIT_MS = 60_000;

export function githubError(what: string, err: unknown, now: number): SluiceError {
  if (err instanceof SluiceError) return err;
  const e = err as { status?: unknown; message?: unknown; response?: { headers?: Record<string, unknown> } };
  const status = typeof e.status === "number" ? e.status : undefined;
  const message = typeof e.message === "string" ? e.message : String(err);
  if (status === undefined) return new SluiceError("CONNECTION_FAILED", `${what}: ${message}`);
  const details = { status, message };
  const wait = rateLimitWaitMs(status, e.response?.headers ?? {}, message, now);
  if (wait !== undefined) return new RetryAfterError("HTTP_STATUS", `${what}: GitHub rate limit (${status}): ${message}`, wait, details);
  if (status >= 500) return new SluiceError("HTTP_STATUS", `${what}: GitHub answered ${status}: ${message}`, details);
  return new NonRetriableError("HTTP_STATUS", `${what}: GitHub answered ${status}: ${message}`, details);
}

/**
 * How long GitHub asks to wait after an answer, or undefined when it asks for no wait: a 429,
 * or a 403 that is a rate limit (Retry-After, an exhausted quota, or "rate limit" in its
 * message), waits for Retry-After, else for the quota's reset, else a minute (GitHub says to
 * wait at least that long after a secondary limit that names no wait).
 */
export function rateLimitWaitMs(status: number, headers: Record<string, unknown>, message: string, now: number): number | undefined {
  const retryAfter = header(headers, "retry-after");
  const remaining = header(headers, "x-ratelimit-remaining");
  const reset = header(headers, "x-ratelimit-reset");
  const rateLimited = status === 429 || (status === 403 && (retryAfter !== undefined || remaining === "0" || /rate limit/i.test(message)));
  if (!rateLimited) return undefined;
  if (retryAfter !== undefined && /^[0-9]+$/.test(retryAfter)) return Number(retryAfter) * 1000;
  // The reset time belongs to the primary quota: it tells the wait only when that is exhausted.
  if (remaining === "0" && reset !== undefined && /^[0-9]+$/.test(reset)) return Math.max(0, Number(reset) * 1000 - now);
  return DEFAULT_RATE_LIMIT_WAIT_MS;
}

/**
 * The hold an answer asks for (epoch ms), if any: a rate limit (above), or a successful answer
 * that spent the last request of the primary quota, which lasts until `x-ratelimit-reset`.
 */
export function holdAfter(status: number, headers: Record<string, unknown>, message: string, now: number): number | undefined {
  const wait = rateLimitWaitMs(status, headers, message, now);
  if (wait !== undefined) return now + wait;
  const reset = header(headers, "x-ratelimit-reset");
  if (header(headers, "x-ratelimit-remaining") === "0" && reset !== undefined && /^[0-9]+$/.test(reset)) return Math.max(now, Number(reset) * 1000);
  return undefined;
}

function header(headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name];
  return v === undefined || v === null ? undefined : String(v);
}
