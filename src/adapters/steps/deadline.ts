/**
 * One abort signal per step execution that fires on the step's timeout (`STEP_TIMEOUT`,
 * retryable) or when the shell aborts the step (`STEP_ABORTED`, never retried). Its reason is
 * always a SluiceError, so an executor that catches an abort rethrows `deadline.error()`.
 */
import { NonRetriableError, SluiceError } from "../../core/errors.js";
import type { StepContext } from "../../ports/step-executor.js";

export interface Deadline {
  readonly signal: AbortSignal;
  /** The effective timeout in ms (the smaller of the step's and the executor's), if any. */
  readonly timeoutMs: number | undefined;
  /** The error that ended the step; call only once `signal.aborted` is true. */
  error(): SluiceError;
  /** Throws the deadline's error if it has fired. */
  check(): void;
  dispose(): void;
}

export function timeoutError(timeoutMs: number): SluiceError {
  return new SluiceError("STEP_TIMEOUT", `the step did not finish within its timeout of ${timeoutMs} ms`, {
    timeout_ms: timeoutMs,
  });
}

export function abortError(reason?: unknown): SluiceError {
  if (reason instanceof SluiceError) return reason;
  return new NonRetriableError("STEP_ABORTED", "the step was aborted");
}

export function startDeadline(ctx: Pick<StepContext, "signal" | "timeoutMs">, extraTimeoutMs?: number): Deadline {
  const candidates = [ctx.timeoutMs, extraTimeoutMs].filter((t): t is number => typeof t === "number" && t > 0);
  const timeoutMs = candidates.length > 0 ? Math.min(...candidates) : undefined;
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(abortError(ctx.signal.reason));
  let timer: NodeJS.Timeout | undefined;
  if (ctx.signal.aborted) onAbort();
  else {
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== undefined) timer = setTimeout(() => controller.abort(timeoutError(timeoutMs)), timeoutMs);
  }
  const error = (): SluiceError => abortError(controller.signal.reason);
  return {
    signal: controller.signal,
    timeoutMs,
    error,
    check() {
      if (controller.signal.aborted) throw error();
    },
    dispose() {
      if (timer) clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
    },
  };
}

/** Runs `fn` under a deadline and always disposes of it. */
export async function withDeadline<T>(
  ctx: Pick<StepContext, "signal" | "timeoutMs">,
  fn: (deadline: Deadline) => Promise<T>,
  extraTimeoutMs?: number,
): Promise<T> {
  const deadline = startDeadline(ctx, extraTimeoutMs);
  try {
    deadline.check();
    return await fn(deadline);
  } catch (err) {
    // Whatever a cancelled operation threw, the step's answer is the deadline's reason.
    if (deadline.signal.aborted && !(err instanceof SluiceError && isDeadlineCode(err))) throw deadline.error();
    throw err;
  } finally {
    deadline.dispose();
  }
}

function isDeadlineCode(err: SluiceError): boolean {
  return err.code === "STEP_TIMEOUT" || err.code === "STEP_ABORTED";
}
