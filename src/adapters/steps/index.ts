/**
 * The one registry of step executors. `sleep` and `wait` are not here: the engine turns them
 * into timers and gates.
 */
import type { StepKind } from "../../core/flow/types.js";
import type { StepExecutor } from "../../ports/step-executor.js";
import { httpExecutor } from "./http.js";
import { kvExecutor } from "./kv.js";
import { llmExecutor } from "./llm.js";
import { notifyExecutor } from "./notify.js";
import { searchExecutor } from "./search.js";
import { sshExecutor } from "./ssh.js";

export function defaultExecutors(): ReadonlyMap<StepKind, StepExecutor> {
  return new Map([httpExecutor, kvExecutor, llmExecutor, notifyExecutor, searchExecutor, sshExecutor].map((e) => [e.kind, e]));
}
