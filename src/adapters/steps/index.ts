/**
 * The one registry of step executors. `sleep` and `wait` are not here: the engine turns them
 * into timers and gates. Each executor's module (and its client library: pg, ssh2…) loads on
 * first use, so a CLI command that runs no such step does not pay for it; the `function`
 * step's QuickJS loads in its worker thread, on first use too.
 */
import type { StepKind } from "../../core/flow/types.js";
import type { StepExecutor } from "../../ports/step-executor.js";
import { createFunctionExecutor, functionCapsFromEnv } from "./function.js";

const LOADERS: Partial<Record<StepKind, () => Promise<StepExecutor>>> = {
  http: async () => (await import("./http.js")).httpExecutor,
  llm: async () => (await import("./llm.js")).llmExecutor,
  search: async () => (await import("./search.js")).searchExecutor,
  notify: async () => (await import("./notify.js")).notifyExecutor,
  kv: async () => (await import("./kv.js")).kvExecutor,
  ssh: async () => (await import("./ssh.js")).sshExecutor,
  db: async () => (await import("./db.js")).dbExecutor,
  github: async () => (await import("./github.js")).githubExecutor,
};

function lazy(kind: StepKind, load: () => Promise<StepExecutor>): StepExecutor {
  let loaded: Promise<StepExecutor> | undefined;
  return {
    kind,
    async execute(params, ctx) {
      loaded ??= load();
      return (await loaded).execute(params, ctx);
    },
  };
}

export interface ExecutorOptions {
  /** Where the server's limits come from (SLUICE_FUNCTION_MAX_TIMEOUT, SLUICE_FUNCTION_MAX_MEMORY_MB); ENV_INVALID names a bad one. */
  env?: NodeJS.ProcessEnv;
}

export function defaultExecutors({ env = process.env }: ExecutorOptions = {}): ReadonlyMap<StepKind, StepExecutor> {
  const executors = new Map(Object.entries(LOADERS).map(([kind, load]) => [kind as StepKind, lazy(kind as StepKind, load)]));
  executors.set("function", createFunctionExecutor(functionCapsFromEnv(env)));
  return executors;
}
