/**
 * Builds a StepContext for executor tests: real values everywhere, with the connections,
 * store and GitHub client the test hands in. Nothing here stands in for the executor under test.
 */
import { DEFAULT_POLICY } from "../../src/core/flow/types.js";
import { SluiceError } from "../../src/core/errors.js";
import type { Logger, ResolvedConnection, StepContext } from "../../src/ports/step-executor.js";
import type { RunStore } from "../../src/ports/run-store.js";

export interface LogLine {
  level: keyof Logger;
  msg: string;
  meta?: Record<string, unknown>;
}

export function makeStepContext(
  overrides: Partial<Omit<StepContext, "connection">> & {
    connections?: Record<string, Omit<ResolvedConnection, "name">>;
    logs?: LogLine[];
  } = {},
): StepContext {
  const { connections = {}, logs = [], ...rest } = overrides;
  const logger: Logger = {
    debug: (msg, meta) => logs.push({ level: "debug", msg, meta }),
    info: (msg, meta) => logs.push({ level: "info", msg, meta }),
    warn: (msg, meta) => logs.push({ level: "warn", msg, meta }),
    error: (msg, meta) => logs.push({ level: "error", msg, meta }),
  };
  const noStore = new Proxy({} as RunStore, {
    get() {
      throw new Error("this test gave the step context no store");
    },
  });
  return {
    runId: "run-test",
    stepId: "step",
    attempt: 1,
    idempotencyKey: "run-test:step:1",
    effect: "write",
    signal: new AbortController().signal,
    release: { sha: "0".repeat(40), ref: "refs/heads/main", kind: "live" },
    repo: "acme/widgets",
    policy: DEFAULT_POLICY,
    store: noStore,
    logger,
    now: () => Date.now(),
    connection(name: string): ResolvedConnection {
      const c = connections[name];
      if (!c) throw new SluiceError("CONNECTION_UNKNOWN", `no connection named '${name}'`, { connection: name });
      return { name, ...c };
    },
    ...rest,
  };
}

/** The SluiceError a step's promise rejects with; fails the test when it resolves instead. */
export async function failure(p: Promise<unknown>): Promise<SluiceError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SluiceError) return e;
    throw e;
  }
  throw new Error("expected the step to fail");
}
