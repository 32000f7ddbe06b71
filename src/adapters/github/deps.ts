/**
 * What the GitHub event handlers share: the runtime and store, the installations, and a few
 * small writes (a reply, a reaction, a check run with its annotations in batches of 50).
 */
import type { Runtime } from "../../app/runtime.js";
import type { Release, Trigger } from "../../core/engine/events.js";
import type { Config, Flow } from "../../core/flow/types.js";
import type { RunStore } from "../../ports/run-store.js";
import type { GitHubApi, Logger } from "../../ports/step-executor.js";
import { signedRunLinks, type LinkSigner } from "../server/auth.js";
import { chunk, fitSummary, type Annotation } from "./annotations.js";
import type { Installations } from "./installations.js";

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

export async function startRun(
  deps: GitHubDeps,
  req: { flow: Flow; config: Config; release: Release; repo: string; inputs: Record<string, unknown>; trigger: Trigger },
): Promise<string> {
  const id = await deps.runtime.createRun(req);
  deps.logger.info("run created", { run: id, flow: req.flow.name, repo: req.repo, trigger: req.trigger.type, release: req.release.sha });
  deps.kick(id);
  return id;
}

export async function reply(api: GitHubApi, repo: string, issue: number, body: string): Promise<void> {
  await api.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { ...splitRepo(repo), issue_number: issue, body });
}

export type Reaction = "eyes" | "+1" | "-1" | "confused" | "rocket";

export async function react(api: GitHubApi, repo: string, commentId: number, content: Reaction): Promise<void> {
  await api.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { ...splitRepo(repo), comment_id: commentId, content });
}

export interface CheckRunInput {
  name: string;
  headSha: string;
  conclusion: "success" | "failure" | "neutral" | "action_required";
  title: string;
  summary: string;
  text?: string;
  annotations: Annotation[];
  detailsUrl?: string;
  externalId?: string;
}

/**
 * Creates a completed check run; annotations past the first 50 follow in updates of 50 each
 * (GitHub's limit per request). Returns the check run's id.
 */
export async function writeCheckRun(api: GitHubApi, repo: string, c: CheckRunInput): Promise<number> {
  const batches = chunk(c.annotations);
  const output = (annotations: Annotation[] | undefined) => ({
    title: c.title.slice(0, 255),
    summary: fitSummary(c.summary),
    ...(c.text ? { text: fitSummary(c.text) } : {}),
    ...(annotations && annotations.length ? { annotations } : {}),
  });
  const created = await api.request("POST /repos/{owner}/{repo}/check-runs", {
    ...splitRepo(repo),
    name: c.name,
    head_sha: c.headSha,
    status: "completed",
    conclusion: c.conclusion,
    completed_at: new Date().toISOString(),
    ...(c.detailsUrl ? { details_url: c.detailsUrl } : {}),
    ...(c.externalId ? { external_id: c.externalId } : {}),
    output: output(batches[0]),
  });
  const id = Number(created.data.id);
  for (const batch of batches.slice(1)) {
    await api.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", { ...splitRepo(repo), check_run_id: id, output: output(batch) });
  }
  return id;
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

/** Errors worth another attempt of the whole delivery: GitHub or the store did not answer. */
export function isTransient(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  if (code === "GITHUB_UNAVAILABLE" || code === "STORE_ERROR") return true;
  const status = (e as { status?: unknown })?.status;
  return typeof status === "number" && (status >= 500 || status === 429);
}
