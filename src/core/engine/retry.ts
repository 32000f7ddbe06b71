/** Retry decisions: whether a failed attempt is tried again, and when. */
import { parseDuration } from "../flow/duration.js";
import type { RetryPolicy } from "../flow/types.js";
import type { StepErrorInfo } from "./events.js";

const DEFAULT_INITIAL_MS = 1_000;
const DEFAULT_MAX_MS = 3_600_000;

/** Delay before attempt `attempt + 1`, after attempt `attempt` failed. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const initial = policy.initial ? parseDuration(policy.initial) : DEFAULT_INITIAL_MS;
  const max = policy.max ? parseDuration(policy.max) : DEFAULT_MAX_MS;
  const delay = policy.backoff === "exponential" ? initial * 2 ** Math.max(0, attempt - 1) : initial;
  return Math.min(delay, max);
}

/** When the next attempt may start, or null when the failure is final. */
export function nextAttemptAt(
  policy: RetryPolicy | undefined,
  failure: { attempt: number; at: number; error: StepErrorInfo },
): number | null {
  if (!policy || !failure.error.retryable) return null;
  if (failure.attempt >= policy.max_attempts) return null;
  return failure.at + Math.max(backoffMs(policy, failure.attempt), failure.error.retryAfterMs ?? 0);
}
