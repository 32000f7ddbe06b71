/**
 * What the GitHub event handlers share: the runtime and store, the installations, the outbox
 * their writes go through (a reply, a reaction), and what one delivery's stages read once.
 */
import { keyedRunId, type Runtime } from "../../app/runtime.js";
import { ConflictError } from "../../core/errors.js";
import type { Release, Trigger } from "../../core/engine/events.js";
import type { Config, Flow } from "../../core/flow/types.js";
import type { RunStore } from "../../ports/run-store.js";
import type { GitHubApi, Logger } from "../../ports/step-executor.js";
import { signedRunLinks, type LinkSigner } from "../server/auth.js";
import type { WritePriority } from "./budget.js";
import type { Installations } from "./installations.js";
import type { Outbox, Reaction } from "./outbox.js";

export interface GitHubDeps {
  runtime: Runtime;
  store: RunStore;
  logger: Logger;
  installations: Installations;
  /** The server's public base URL (run pages). */
  publicUrl: string;
  /** A run was created or signalled: advance it soon and report it. */
  kick(runId: string): void;
  /** Signs links to run pages, so a link in a comment opens the run for whoever reads it there. */
  links?: LinkSigner;
  /** The app's writes that are not a run's check run: recorded now, sent at GitHub's pace. */
  outbox: Pick<Outbox, "enqueue">;
  /** What the stages of one delivery read once and share (the live release of a repository). */
  memo?: Map<string, Promise<unknown>>;
  /** The delivery being handled (its id and when it was received): the runs it starts are keyed by it. */
  delivery?: { id: string; receivedAt: number };
}

export function splitRepo(repo: string): { owner: string; repo: string } {
  const [owner, name] = repo.split("/");
  return { owner: owner ?? "", repo: name ?? "" };
}

/** A run's page: a signed link where the server signs them (its pages need credentials). */
export function runUrl(deps: Pick<GitHubDeps, "publicUrl" | "links">, id: string): string {
  if (deps.links) return signedRunLinks(deps.publicUrl, deps.links, Date.now()).page(id);
  return `${deps.publicUrl.replace(/\/+$/, "")}/runs/${id}`;
}

/**
 * Starts a run. A delivery starts each flow once, whatever happens to the process handling it:
 * the run's id derives from the delivery and the flow, so a delivery taken over after a crash
 * (the run created, the stage not yet marked done) finds its run instead of starting another.
 */
export async function startRun(
  deps: GitHubDeps,
  req: { flow: Flow; config: Config; release: Release; repo: string; inputs: Record<string, unknown>; trigger: Trigger },
): Promise<string> {
  const keyed = deps.delivery ? keyedRunId(deps.delivery.receivedAt, `${deps.delivery.id}:${req.flow.name}`) : undefined;
  let id: string;
  try {
    id = await deps.runtime.createRun(req, keyed ? { id: keyed } : {});
    deps.logger.info("run created", { run: id, flow: req.flow.name, repo: req.repo, trigger: req.trigger.type, release: req.release.sha });
  } catch (e) {
    if (!keyed || !(e instanceof ConflictError)) throw e;
    id = keyed;
    deps.logger.info("run already created by an earlier attempt of this delivery", { run: id, flow: req.flow.name, delivery: deps.delivery?.id });
  }
  deps.kick(id);
  return id;
}

/** How a delivery reads the live release: once for all its stages, with the default branch its payload names. */
export function liveOptions(deps: Pick<GitHubDeps, "memo">, payload: any): { defaultBranch?: string; memo?: Map<string, Promise<unknown>> } {
  const branch = payload?.repository?.default_branch;
  return { ...(typeof branch === "string" && branch ? { defaultBranch: branch } : {}), ...(deps.memo ? { memo: deps.memo } : {}) };
}

/** The lane of an issue or pull request: the app's writes there are sent in order. */
export function laneOf(repo: string, issue: number): string {
  return `${repo.toLowerCase()}#${issue}`;
}

/**
 * A reply in an issue or pull request, through the outbox: sent at GitHub's pace, retried until
 * GitHub takes it. `ack` marks a reply that only acknowledges (skipped under pressure).
 */
export async function replyLater(deps: Pick<GitHubDeps, "outbox">, repo: string, issue: number, body: string, priority: WritePriority = "reply"): Promise<void> {
  await deps.outbox.enqueue({ kind: "comment", repo, issue, body }, { priority, lane: laneOf(repo, issue) });
}

/** A reaction to a comment, through the outbox: an acknowledgement, skipped under pressure. */
export async function reactLater(deps: Pick<GitHubDeps, "outbox">, repo: string, issue: number, commentId: number, content: Reaction): Promise<void> {
  await deps.outbox.enqueue({ kind: "reaction", repo, comment_id: commentId, content }, { priority: "ack", lane: laneOf(repo, issue) });
}

/** Every item of a paginated list endpoint (per_page 100). */
export async function listAll<T>(api: GitHubApi, route: string, params: Record<string, unknown>, max = 3_000): Promise<T[]> {
  const out: T[] = [];
  for (let page = 1; out.length < max; page++) {
    const r = await api.request(route, { ...params, per_page: 100, page });
    const items = (Array.isArray(r.data) ? r.data : []) as T[];
    out.push(...items);
    if (items.length < 100) break;
  }
  return out;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Errors worth another attempt of the whole delivery: GitHub or the store did not answer, or the budget holds GitHub's requests. */
export function isTransient(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (code === "GITHUB_UNAVAILABLE" || code === "STORE_ERROR" || code === "GITHUB_RATE_LIMITED") return true;
  const status = (e as { status?: unknown })?.status;
  return typeof status === "number" && (status >= 500 || status === 429);
}
