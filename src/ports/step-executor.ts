/**
 * One executor per step kind that does I/O (http, llm, search, db, notify, ssh, github,
 * function, kv). `sleep` and `wait` are not executors: the engine turns them into timers and
 * gates. Executors are registered in one map (src/adapters/steps/index.ts).
 */
import type { Connection, Effect, Policy, StepKind } from "../core/flow/types.js";
import type { Release } from "../core/engine/events.js";
import type { KvWrite, RunStore } from "./run-store.js";

export interface Logger {
  debug(msg: string, meta?: Record<string, unknown>): void;
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

/** A connection of the config with its secret value resolved on the server. */
export interface ResolvedConnection extends Connection {
  name: string;
  /** The secret's value (never logged: the logger redacts it). */
  secretValue?: string;
}

/** The GitHub API as executors use it: an authenticated Octokit-style request function. */
export interface GitHubApi {
  request(route: string, params?: Record<string, unknown>): Promise<{ status: number; data: any; headers: Record<string, unknown> }>;
  /**
   * Who the requests act as: the app's bot (`<slug>[bot]`) on the server, the token's user
   * (`GET /user`) locally. What Sluice wrote itself is told apart by its author (notify's marker).
   */
  identity?(): Promise<{ login: string }>;
}

export interface StepContext {
  runId: string;
  stepId: string;
  attempt: number;
  /** `<run>:<step>:<attempt>`, passed on where the target accepts one. */
  idempotencyKey: string;
  /**
   * The effect the engine classified this attempt with (and gated on). An executor that finds,
   * before acting, that a `read` can change state throws EffectIsWriteError instead of running it.
   */
  effect: Effect;
  signal: AbortSignal;
  /** The step's timeout in ms, if any (the shell also aborts `signal` when it passes). */
  timeoutMs?: number;
  release: Release;
  /** "owner/name" of the run's repository. */
  repo: string;
  /** The pull request or issue the run came from, if any (notify's default target). */
  issue?: number;
  /** Resolves a connection named by the step; throws CONNECTION_UNKNOWN or SECRET_MISSING. */
  connection(name: string): ResolvedConnection;
  policy: Policy;
  store: RunStore;
  /** GitHub API access: the installation token on the server, a `github` connection locally. */
  github?: GitHubApi;
  logger: Logger;
  now(): number;
}

export interface StepResult {
  outputs: Record<string, unknown>;
  /**
   * A kv write the store applies in the same transaction as the step's result (exactly once:
   * a crash can neither lose nor repeat it). Only the kv step returns one.
   */
  kv?: KvWrite;
}

export interface StepExecutor {
  readonly kind: StepKind;
  /** `params` are the step's evaluated parameters (expressions already resolved). */
  execute(params: Record<string, unknown>, ctx: StepContext): Promise<StepResult>;
}
