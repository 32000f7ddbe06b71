/**
 * Webhook payloads built from @octokit/webhooks-examples: the example for the event and action,
 * with its entities (repository, sender, installation, issue, comment, pull_request, review,
 * check_run) replaced by the simulator's own. A builder records what the event reports (a new
 * comment, a review) in the simulator's state first, so the app's follow-up API calls find it.
 */
import { createRequire } from "node:module";
import {
  checkRunShape,
  commentShape,
  issueShape,
  labelShape,
  pullShape,
  repoShape,
  reviewShape,
  userByLogin,
} from "./shapes.js";
import type { GitHubSimulator } from "./simulator.js";
import type { SimRepo } from "./state.js";

const require = createRequire(import.meta.url);

interface WebhookDefinition {
  name: string;
  actions: string[];
  examples: Record<string, any>[];
}

let definitions: WebhookDefinition[] | undefined;

/** A deep copy of the example payload for `event` (and `action`, when the event has actions). */
export function examplePayload(event: string, action?: string): Record<string, any> {
  definitions ??= require("@octokit/webhooks-examples") as WebhookDefinition[];
  const def = definitions.find((d) => d.name === event);
  if (!def) throw new Error(`@octokit/webhooks-examples has no '${event}' event`);
  const example =
    (action === undefined ? def.examples[0] : def.examples.find((e) => e.action === action)) ??
    (action !== undefined && def.actions.includes(action) ? { ...def.examples[0], action } : undefined);
  if (!example) throw new Error(`@octokit/webhooks-examples has no '${event}.${action}' example`);
  return structuredClone(example);
}

export class PayloadBuilders {
  constructor(private readonly sim: GitHubSimulator) {}

  private common(repoName: string, sender: string, installationId?: number): Record<string, unknown> {
    const sim = this.sim;
    const repo = sim.repo(repoName);
    const inst = installationId !== undefined ? sim.findInstallation(installationId) : sim.installationFor(repo.fullName);
    const owner = sim.user(repo.owner);
    return {
      repository: repoShape(sim, repo),
      sender: userByLogin(sim, sender),
      ...(inst ? { installation: { id: inst.id, node_id: nodeIdOf(inst.id) } } : {}),
      ...(owner.type === "Organization"
        ? {
            organization: {
              login: owner.login,
              id: owner.id,
              node_id: Buffer.from(`012:Organization${owner.id}`).toString("base64"),
              url: `${sim.apiUrl}/orgs/${owner.login}`,
              repos_url: `${sim.apiUrl}/orgs/${owner.login}/repos`,
              events_url: `${sim.apiUrl}/orgs/${owner.login}/events`,
              hooks_url: `${sim.apiUrl}/orgs/${owner.login}/hooks`,
              issues_url: `${sim.apiUrl}/orgs/${owner.login}/issues`,
              members_url: `${sim.apiUrl}/orgs/${owner.login}/members{/member}`,
              public_members_url: `${sim.apiUrl}/orgs/${owner.login}/public_members{/member}`,
              avatar_url: `${sim.url}/avatars/u/${owner.id}?v=4`,
              description: null,
            },
          }
        : {}),
    };
  }

  private merge(example: Record<string, any>, fields: Record<string, unknown>): Record<string, any> {
    const out = { ...example };
    for (const [k, v] of Object.entries(fields)) {
      const prev = out[k];
      out[k] = prev && typeof prev === "object" && !Array.isArray(prev) && v && typeof v === "object" && !Array.isArray(v) ? { ...prev, ...v } : v;
    }
    return out;
  }

  /**
   * Any event: the example for `event`/`action` with `fields` merged over it (one level deep).
   * `repo` and `sender` fill repository, sender, installation and organization.
   */
  build(event: string, action: string | undefined, opts: { repo?: string; sender?: string; installationId?: number; fields?: Record<string, unknown> }): Record<string, any> {
    const example = examplePayload(event, action);
    const common = opts.repo ? this.common(opts.repo, opts.sender ?? this.sim.repo(opts.repo).owner, opts.installationId) : {};
    return this.merge(example, { ...common, ...(opts.fields ?? {}) });
  }

  /** issue_comment: creates the comment (by `sender`) unless `commentId` names an existing one. */
  issueComment(opts: {
    repo: string;
    issue: number;
    sender: string;
    body?: string;
    action?: "created" | "edited" | "deleted";
    commentId?: number;
    installationId?: number;
  }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const comment =
      opts.commentId !== undefined
        ? sim.comments.get(opts.commentId)
        : sim.addComment(repo.fullName, opts.issue, { user: opts.sender, body: opts.body ?? "" });
    if (!comment) throw new Error(`no comment ${opts.commentId}`);
    if (opts.commentId !== undefined && opts.body !== undefined) comment.body = opts.body;
    const issue = sim.issue(repo.fullName, comment.issueNumber);
    return this.build("issue_comment", opts.action ?? "created", {
      repo: repo.fullName,
      sender: opts.sender,
      ...(opts.installationId !== undefined ? { installationId: opts.installationId } : {}),
      fields: { issue: issueShape(sim, repo, issue), comment: commentShape(sim, repo, comment) },
    });
  }

  /** issues: opened, labeled (with `label`), closed... for an existing issue. */
  issues(opts: { repo: string; issue: number; sender: string; action: string; label?: string; installationId?: number }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const issue = sim.issue(repo.fullName, opts.issue);
    const fields: Record<string, unknown> = { issue: issueShape(sim, repo, issue) };
    if (opts.label !== undefined) {
      sim.ensureLabel(repo, opts.label);
      if (opts.action === "labeled" && !issue.labels.includes(opts.label)) issue.labels.push(opts.label);
      fields.issue = issueShape(sim, repo, issue);
      const label = [...repo.labels.values()].find((l) => l.name.toLowerCase() === opts.label?.toLowerCase());
      if (label) fields.label = labelShape(sim, repo, label);
    }
    return this.build("issues", opts.action, { repo: repo.fullName, sender: opts.sender, ...inst(opts), fields });
  }

  /** pull_request: opened, synchronize, closed... for an existing pull request. */
  pullRequest(opts: { repo: string; number: number; sender?: string; action: string; before?: string; installationId?: number }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const pr = sim.pull(repo.fullName, opts.number);
    const fields: Record<string, unknown> = { number: pr.number, pull_request: pullShape(sim, repo, pr) };
    if (opts.action === "synchronize") {
      fields.before = opts.before ?? pr.pull.headSha;
      fields.after = pr.pull.headSha;
    }
    return this.build("pull_request", opts.action, { repo: repo.fullName, sender: opts.sender ?? pr.user, ...inst(opts), fields });
  }

  /** pull_request_review.submitted: records the review (state approved / changes_requested / commented). */
  pullRequestReview(opts: {
    repo: string;
    number: number;
    sender: string;
    state?: "approved" | "changes_requested" | "commented";
    body?: string;
    action?: "submitted" | "edited" | "dismissed";
    reviewId?: number;
    installationId?: number;
  }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const pr = sim.pull(repo.fullName, opts.number);
    const review =
      opts.reviewId !== undefined
        ? pr.pull.reviews.find((r) => r.id === opts.reviewId)
        : sim.addReview(repo.fullName, pr.number, { user: opts.sender, state: opts.state ?? "approved", body: opts.body ?? "" });
    if (!review) throw new Error(`no review ${opts.reviewId}`);
    const shape = reviewShape(sim, repo, pr.number, review);
    shape.state = review.state.toLowerCase();
    return this.build("pull_request_review", opts.action ?? "submitted", {
      repo: repo.fullName,
      sender: opts.sender,
      ...inst(opts),
      fields: { review: shape, pull_request: pullShape(sim, repo, pr) },
    });
  }

  /** push: from `before` to `after` (default: the branch's head) on `branch`. */
  push(opts: { repo: string; branch: string; before: string; after?: string; sender?: string; forced?: boolean; installationId?: number }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const zero = "0".repeat(40);
    const after = opts.after ?? sim.branchSha(repo.fullName, opts.branch) ?? zero;
    const sender = opts.sender ?? repo.owner;
    const deleted = after === zero;
    const created = opts.before === zero;
    const defaultHead = sim.branchSha(repo.fullName, repo.defaultBranch);
    const exclude = created ? (opts.branch === repo.defaultBranch ? undefined : defaultHead) : opts.before;
    const shas = deleted ? [] : repo.git.commitsBetween(exclude, after).slice(-20);
    const commits = shas.map((sha) => this.pushCommit(repo, sha));
    const u = sim.user(sender);
    return this.build("push", undefined, {
      repo: repo.fullName,
      sender,
      ...inst(opts),
      fields: {
        ref: `refs/heads/${opts.branch}`,
        before: opts.before,
        after,
        created,
        deleted,
        forced: opts.forced ?? false,
        base_ref: null,
        compare: `${sim.url}/${repo.fullName}/compare/${opts.before.slice(0, 12)}...${after.slice(0, 12)}`,
        commits,
        head_commit: commits[commits.length - 1] ?? null,
        pusher: { name: u.login, email: u.email ?? `${u.id}+${u.login}@users.noreply.github.com` },
      },
    });
  }

  private pushCommit(repo: SimRepo, sha: string): Record<string, unknown> {
    const c = repo.git.commit(sha);
    if (!c) throw new Error(`no commit ${sha}`);
    const before = c.parents[0] ? this.sim.flatAt(repo, c.parents[0]) : new Map();
    const after = this.sim.flatAt(repo, sha);
    const added: string[] = [];
    const removed: string[] = [];
    const modified: string[] = [];
    for (const p of new Set([...before.keys(), ...after.keys()])) {
      const a = before.get(p);
      const b = after.get(p);
      if (!a && b) added.push(p);
      else if (a && !b) removed.push(p);
      else if (a && b && a.sha !== b.sha) modified.push(p);
    }
    const person = (p: { name: string; email: string }) => ({ name: p.name, email: p.email, username: p.name });
    return {
      id: sha,
      tree_id: c.tree,
      distinct: true,
      message: c.message,
      timestamp: c.committer.date,
      url: `${this.sim.url}/${repo.fullName}/commit/${sha}`,
      author: person(c.author),
      committer: person(c.committer),
      added: added.sort(),
      removed: removed.sort(),
      modified: modified.sort(),
    };
  }

  /** check_run.requested_action: a click on one of the check run's buttons. */
  checkRunRequestedAction(opts: { repo: string; checkRunId: number; identifier: string; sender: string; installationId?: number }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const run = sim.checkRuns.get(opts.checkRunId);
    if (!run) throw new Error(`no check run ${opts.checkRunId}`);
    if (!run.actions.some((a) => a.identifier === opts.identifier)) {
      throw new Error(`check run ${opts.checkRunId} has no action '${opts.identifier}'`);
    }
    return this.build("check_run", "requested_action", {
      repo: repo.fullName,
      sender: opts.sender,
      ...inst(opts),
      fields: { check_run: checkRunShape(sim, repo, run), requested_action: { identifier: opts.identifier } },
    });
  }

  /** check_run with another action (created, completed, rerequested). */
  checkRun(opts: { repo: string; checkRunId: number; action: "created" | "completed" | "rerequested"; sender: string; installationId?: number }): Record<string, any> {
    const sim = this.sim;
    const repo = sim.repo(opts.repo);
    const run = sim.checkRuns.get(opts.checkRunId);
    if (!run) throw new Error(`no check run ${opts.checkRunId}`);
    return this.build("check_run", opts.action, {
      repo: repo.fullName,
      sender: opts.sender,
      ...inst(opts),
      fields: { check_run: checkRunShape(sim, repo, run) },
    });
  }
}

function inst(opts: { installationId?: number }): { installationId?: number } {
  return opts.installationId !== undefined ? { installationId: opts.installationId } : {};
}

function nodeIdOf(id: number): string {
  return Buffer.from(`023:Integration::Installation${id}`).toString("base64");
}
