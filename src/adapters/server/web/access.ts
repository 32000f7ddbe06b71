/**
 * What a signed-in person may see and decide. See: a repository they can read on GitHub, asked
 * with their own token (`GET /repos/{owner}/{repo}`: GitHub answers 404 to anyone who may not
 * read it), remembered for a minute per person and repository. Decide: the core's eligibility
 * (`judgeDecision`), with the person's permission and teams as GitHub tells the app
 * (people.ts, as for a comment).
 */
import { createHash } from "node:crypto";
import { judgeDecision } from "../../../core/engine/decisions.js";
import { teamsAsked } from "../../../core/engine/gates.js";
import type { RunState, StepState } from "../../../core/engine/state.js";
import type { GitHubApi } from "../../../ports/step-executor.js";
import { permissionOf, personOf, teamsOf, type Person } from "../../github/people.js";
import type { OAuthClient } from "../oauth.js";
import type { Session } from "../session.js";
import { isGitHubRepo } from "../../../core/namespaces.js";

/** How long "ann can read acme/widgets" is believed: losing access takes effect within this. */
export const READ_TTL_MS = 60_000;

export class Access {
  private readonly seen = new Map<string, { at: number; ok: Promise<boolean> }>();

  constructor(
    private readonly oauth: OAuthClient,
    private readonly githubFor: (repo: string) => Promise<GitHubApi | undefined>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the person of `session` can read `repo` on GitHub. A run of no GitHub repository is nobody's on the web. */
  canRead(session: Session, repo: string): Promise<boolean> {
    if (!isGitHubRepo(repo)) return Promise.resolve(false);
    const key = `${createHash("sha256").update(session.token).digest("hex")}:${repo.toLowerCase()}`;
    const now = this.now();
    const hit = this.seen.get(key);
    if (hit && now - hit.at < READ_TTL_MS) return hit.ok;
    const [owner, name] = repo.split("/");
    const ok = this.oauth
      .asUser(session.token)
      .request("GET /repos/{owner}/{repo}", { owner: owner!, repo: name! })
      .then(() => true)
      .catch((e: unknown) => {
        const status = (e as { status?: unknown })?.status;
        if (status === 404 || status === 403 || status === 401) return false;
        throw e;
      });
    const entry = { at: now, ok };
    this.seen.set(key, entry);
    ok.catch(() => this.seen.get(key) === entry && this.seen.delete(key));
    if (this.seen.size > 10_000) for (const [k, v] of this.seen) if (now - v.at >= READ_TTL_MS) this.seen.delete(k);
    return ok;
  }

  /** The person as GitHub says now (a decision rests on it). */
  async person(login: string, state: RunState, s: StepState): Promise<Person | undefined> {
    const api = await this.githubFor(state.repo);
    if (!api) return undefined;
    return personOf(api, state.repo, { login }, teamsAsked(s.gate!.info, s.gate!.level));
  }

  /** Whether `login` may decide gate `s` (answers cached briefly, as for commands): for showing buttons and "waiting for me". */
  async mayDecide(login: string, state: RunState, s: StepState): Promise<{ ok: true } | { ok: false; why: string }> {
    const api = await this.githubFor(state.repo);
    if (!api) return { ok: false, why: `Sluice has no GitHub access to ${state.repo}` };
    const [permission, teams] = await Promise.all([permissionOf(api, state.repo, login), teamsOf(api, login, teamsAsked(s.gate!.info, s.gate!.level))]);
    const verdict = judgeDecision(state, s, { login, via: "web", decision: "approve", digest: s.gate!.info.digest, is_bot: false, permission, teams }, "github");
    return verdict.ok ? { ok: true } : { ok: false, why: verdict.message };
  }
}
