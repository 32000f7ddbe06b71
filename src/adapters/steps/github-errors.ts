/**
 * Errors of GitHub API calls made through `ctx.github`, as step errors: rate limits (429, or
 * 403 with Retry-After or an exhausted quota) wait and retry, 5xx retry, other 4xx do not.
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
  const headers = e.response?.headers ?? {};
  const details = { status, message };
  const retryAfter = header(headers, "retry-after");
  const remaining = header(headers, "x-ratelimit-remaining");
  const reset = header(headers, "x-ratelimit-reset");
  // GitHub says to wait at least a minute after a secondary rate limit that names no wait: a
  // 403 whose message says "rate limit" with neither retry-after nor an exhausted quota.
  const rateLimited = status === 429 || (status === 403 && (retryAfter !== undefined || remaining === "0" || /rate limit/i.test(message)));
  if (rateLimited) {
    let ms = DEFAULT_RATE_LIMIT_WAIT_MS;
    if (retryAfter !== undefined && /^[0-9]+$/.test(retryAfter)) ms = Number(retryAfter) * 1000;
    // The reset time belongs to the primary quota: it tells the wait only when that is exhausted.
    else if (remaining === "0" && reset !== undefined && /^[0-9]+$/.test(reset)) ms = Math.max(0, Number(reset) * 1000 - now);
    return new RetryAfterError("HTTP_STATUS", `${what}: GitHub rate limit (${status}): ${message}`, ms, details);
  }
  if (status >= 500) return new SluiceError("HTTP_STATUS", `${what}: GitHub answered ${status}: ${message}`, details);
  return new NonRetriableError("HTTP_STATUS", `${what}: GitHub answered ${status}: ${message}`, details);
}

function header(headers: Record<string, unknown>, name: string): string | undefined {
  const v = headers[name];
  return v === undefined || v === null ? undefined : String(v);
}
