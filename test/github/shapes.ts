/**
 * The JSON shapes the simulator answers with, modelled on GitHub's (ids, node_id, urls,
 * timestamps, user objects...), built from the simulator's state.
 */
import type { GitHubSimulator } from "./simulator.js";
import type { FileChange } from "./git-model.js";
import type {
  SimApp,
  SimCheckRun,
  SimComment,
  SimInstallation,
  SimIssue,
  SimLabel,
  SimReaction,
  SimRepo,
  SimReview,
  SimUser,
} from "./state.js";
import { PERMISSION_ORDER } from "./state.js";

export function nodeId(type: string, id: number): string {
  return Buffer.from(`0${type.length}:${type}${id}`).toString("base64").replace(/=+$/, "");
}

export function userShape(sim: GitHubSimulator, u: SimUser): Record<string, unknown> {
  const login = encodeURIComponent(u.login);
  const api = `${sim.apiUrl}/users/${login}`;
  return {
    login: u.login,
    id: u.id,
    node_id: nodeId(u.type === "Organization" ? "Organization" : u.type === "Bot" ? "Bot" : "User", u.id),
    avatar_url: `${sim.url}/avatars/u/${u.id}?v=4`,
    gravatar_id: "",
    url: api,
    html_url: u.type === "Bot" ? `${sim.url}/apps/${u.login.replace(/\[bot\]$/, "")}` : `${sim.url}/${login}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: u.type,
    user_view_type: "public",
    site_admin: u.siteAdmin,
  };
}

export function userByLogin(sim: GitHubSimulator, login: string): Record<string, unknown> {
  return userShape(sim, sim.user(login));
}

export function authorAssociation(sim: GitHubSimulator, repo: SimRepo, login: string): string {
  if (login === repo.owner) return "OWNER";
  const u = sim.findUser(login);
  if (u?.type === "Bot") return "NONE";
  const perm = repo.permissions.get(login);
  if (perm && PERMISSION_ORDER.indexOf(perm) >= PERMISSION_ORDER.indexOf("read")) return "COLLABORATOR";
  return "NONE";
}

export function repoShape(sim: GitHubSimulator, repo: SimRepo, forLogin?: string): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  const html = `${sim.url}/${repo.fullName}`;
  const perm = forLogin ? (repo.permissions.get(forLogin) ?? "none") : undefined;
  const at = (p: string): boolean => (perm ? PERMISSION_ORDER.indexOf(perm) >= PERMISSION_ORDER.indexOf(p as never) : false);
  return {
    id: repo.id,
    node_id: repo.nodeId,
    name: repo.name,
    full_name: repo.fullName,
    private: repo.private,
    owner: userByLogin(sim, repo.owner),
    html_url: html,
    description: repo.description,
    fork: false,
    url: api,
    forks_url: `${api}/forks`,
    keys_url: `${api}/keys{/key_id}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    teams_url: `${api}/teams`,
    hooks_url: `${api}/hooks`,
    issue_events_url: `${api}/issues/events{/number}`,
    events_url: `${api}/events`,
    assignees_url: `${api}/assignees{/user}`,
    branches_url: `${api}/branches{/branch}`,
    tags_url: `${api}/tags`,
    blobs_url: `${api}/git/blobs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    trees_url: `${api}/git/trees{/sha}`,
    statuses_url: `${api}/statuses/{sha}`,
    languages_url: `${api}/languages`,
    stargazers_url: `${api}/stargazers`,
    contributors_url: `${api}/contributors`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    commits_url: `${api}/commits{/sha}`,
    git_commits_url: `${api}/git/commits{/sha}`,
    comments_url: `${api}/comments{/number}`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    contents_url: `${api}/contents/{+path}`,
    compare_url: `${api}/compare/{base}...{head}`,
    merges_url: `${api}/merges`,
    archive_url: `${api}/{archive_format}{/ref}`,
    downloads_url: `${api}/downloads`,
    issues_url: `${api}/issues{/number}`,
    pulls_url: `${api}/pulls{/number}`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    labels_url: `${api}/labels{/name}`,
    releases_url: `${api}/releases{/id}`,
    deployments_url: `${api}/deployments`,
    created_at: repo.createdAt,
    updated_at: repo.updatedAt,
    pushed_at: repo.pushedAt,
    git_url: `git://${sim.host}/${repo.fullName}.git`,
    ssh_url: `git@${sim.host.split(":")[0]}:${repo.fullName}.git`,
    clone_url: `${html}.git`,
    svn_url: html,
    homepage: null,
    size: 1,
    stargazers_count: 0,
    watchers_count: 0,
    language: null,
    has_issues: true,
    has_projects: true,
    has_downloads: true,
    has_wiki: true,
    has_pages: false,
    has_discussions: false,
    forks_count: 0,
    mirror_url: null,
    archived: false,
    disabled: false,
    open_issues_count: [...repo.issues.values()].filter((i) => i.state === "open").length,
    license: null,
    allow_forking: true,
    is_template: false,
    web_commit_signoff_required: false,
    topics: [],
    visibility: repo.private ? "private" : "public",
    forks: 0,
    open_issues: [...repo.issues.values()].filter((i) => i.state === "open").length,
    watchers: 0,
    default_branch: repo.defaultBranch,
    ...(perm
      ? { permissions: { admin: at("admin"), maintain: at("maintain"), push: at("write"), triage: at("triage"), pull: at("read") } }
      : {}),
    network_count: 0,
    subscribers_count: 0,
  };
}

export function labelShape(sim: GitHubSimulator, repo: SimRepo, l: SimLabel): Record<string, unknown> {
  return {
    id: l.id,
    node_id: l.nodeId,
    url: `${sim.apiUrl}/repos/${repo.fullName}/labels/${encodeURIComponent(l.name)}`,
    name: l.name,
    color: l.color,
    default: l.isDefault,
    description: l.description,
  };
}

function reactionRollup(url: string, reactions: SimReaction[]): Record<string, unknown> {
  const count = (c: string): number => reactions.filter((r) => r.content === c).length;
  return {
    url,
    total_count: reactions.length,
    "+1": count("+1"),
    "-1": count("-1"),
    laugh: count("laugh"),
    hooray: count("hooray"),
    confused: count("confused"),
    heart: count("heart"),
    rocket: count("rocket"),
    eyes: count("eyes"),
  };
}

export function reactionShape(sim: GitHubSimulator, r: SimReaction): Record<string, unknown> {
  return { id: r.id, node_id: r.nodeId, user: userByLogin(sim, r.user), content: r.content, created_at: r.createdAt };
}

export function issueShape(sim: GitHubSimulator, repo: SimRepo, i: SimIssue): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}/issues/${i.number}`;
  const html = `${sim.url}/${repo.fullName}/${i.pull ? "pull" : "issues"}/${i.number}`;
  const labels = i.labels.map((n) => repo.labels.get(n)).filter((l): l is SimLabel => !!l);
  const assignees = i.assignees.map((a) => userByLogin(sim, a));
  return {
    url: api,
    repository_url: `${sim.apiUrl}/repos/${repo.fullName}`,
    labels_url: `${api}/labels{/name}`,
    comments_url: `${api}/comments`,
    events_url: `${api}/events`,
    html_url: html,
    id: i.id,
    node_id: i.nodeId,
    number: i.number,
    title: i.title,
    user: userByLogin(sim, i.user),
    labels: labels.map((l) => labelShape(sim, repo, l)),
    state: i.state,
    locked: i.locked,
    assignee: assignees[0] ?? null,
    assignees,
    milestone: null,
    comments: sim.commentsOf(repo.fullName, i.number).length,
    created_at: i.createdAt,
    updated_at: i.updatedAt,
    closed_at: i.closedAt,
    author_association: authorAssociation(sim, repo, i.user),
    active_lock_reason: null,
    ...(i.pull
      ? {
          draft: i.pull.draft,
          pull_request: {
            url: `${sim.apiUrl}/repos/${repo.fullName}/pulls/${i.number}`,
            html_url: html,
            diff_url: `${html}.diff`,
            patch_url: `${html}.patch`,
            merged_at: i.pull.mergedAt,
          },
        }
      : {}),
    body: i.body,
    closed_by: i.closedBy ? userByLogin(sim, i.closedBy) : null,
    reactions: reactionRollup(`${api}/reactions`, i.reactions),
    timeline_url: `${api}/timeline`,
    performed_via_github_app: null,
    state_reason: i.stateReason,
  };
}

export function commentShape(sim: GitHubSimulator, repo: SimRepo, c: SimComment): Record<string, unknown> {
  const issue = repo.issues.get(c.issueNumber);
  const kind = issue?.pull ? "pull" : "issues";
  const api = `${sim.apiUrl}/repos/${repo.fullName}/issues/comments/${c.id}`;
  return {
    url: api,
    html_url: `${sim.url}/${repo.fullName}/${kind}/${c.issueNumber}#issuecomment-${c.id}`,
    issue_url: `${sim.apiUrl}/repos/${repo.fullName}/issues/${c.issueNumber}`,
    id: c.id,
    node_id: c.nodeId,
    user: userByLogin(sim, c.user),
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    author_association: authorAssociation(sim, repo, c.user),
    body: c.body,
    reactions: reactionRollup(`${api}/reactions`, c.reactions),
    performed_via_github_app: null,
  };
}

function personShape(p: { name: string; email: string; date: string }): Record<string, unknown> {
  return { name: p.name, email: p.email, date: p.date };
}

const UNSIGNED = { verified: false, reason: "unsigned", signature: null, payload: null, verified_at: null };

export function gitCommitShape(sim: GitHubSimulator, repo: SimRepo, sha: string): Record<string, unknown> {
  const c = repo.git.commit(sha);
  if (!c) throw new Error(`no commit ${sha}`);
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  return {
    sha,
    node_id: nodeId("Commit", parseInt(sha.slice(0, 8), 16)),
    url: `${api}/git/commits/${sha}`,
    html_url: `${sim.url}/${repo.fullName}/commit/${sha}`,
    author: personShape(c.author),
    committer: personShape(c.committer),
    tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
    message: c.message,
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/git/commits/${p}`, html_url: `${sim.url}/${repo.fullName}/commit/${p}` })),
    verification: UNSIGNED,
  };
}

export function fileChangeShape(sim: GitHubSimulator, repo: SimRepo, ref: string, f: FileChange): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  return {
    sha: f.sha ?? "0000000000000000000000000000000000000000",
    filename: f.filename,
    status: f.status,
    additions: f.additions,
    deletions: f.deletions,
    changes: f.changes,
    blob_url: `${sim.url}/${repo.fullName}/blob/${ref}/${f.filename}`,
    raw_url: `${sim.url}/${repo.fullName}/raw/${ref}/${f.filename}`,
    contents_url: `${api}/contents/${f.filename}?ref=${ref}`,
    ...(f.patch !== undefined ? { patch: f.patch } : {}),
  };
}

/** The REST "commit" shape (GET /repos/{o}/{r}/commits/{ref}), with files and stats when asked. */
export function commitShape(
  sim: GitHubSimulator,
  repo: SimRepo,
  sha: string,
  files?: FileChange[],
): Record<string, unknown> {
  const c = repo.git.commit(sha);
  if (!c) throw new Error(`no commit ${sha}`);
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  const author = sim.findUser(c.author.name);
  const committer = sim.findUser(c.committer.name);
  const out: Record<string, unknown> = {
    sha,
    node_id: nodeId("Commit", parseInt(sha.slice(0, 8), 16)),
    url: `${api}/commits/${sha}`,
    html_url: `${sim.url}/${repo.fullName}/commit/${sha}`,
    comments_url: `${api}/commits/${sha}/comments`,
    commit: {
      url: `${api}/git/commits/${sha}`,
      author: personShape(c.author),
      committer: personShape(c.committer),
      message: c.message,
      tree: { sha: c.tree, url: `${api}/git/trees/${c.tree}` },
      comment_count: 0,
      verification: UNSIGNED,
    },
    author: author ? userShape(sim, author) : null,
    committer: committer ? userShape(sim, committer) : null,
    parents: c.parents.map((p) => ({ sha: p, url: `${api}/commits/${p}`, html_url: `${sim.url}/${repo.fullName}/commit/${p}` })),
  };
  if (files) {
    const additions = files.reduce((n, f) => n + f.additions, 0);
    const deletions = files.reduce((n, f) => n + f.deletions, 0);
    out.stats = { total: additions + deletions, additions, deletions };
    out.files = files.map((f) => fileChangeShape(sim, repo, sha, f));
  }
  return out;
}

export function refShape(sim: GitHubSimulator, repo: SimRepo, ref: string, sha: string): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  return {
    ref,
    node_id: nodeId("Ref", repo.id) + Buffer.from(ref).toString("base64url").slice(0, 12),
    url: `${api}/git/${ref}`,
    object: { sha, type: "commit", url: `${api}/git/commits/${sha}` },
  };
}

export function appShape(sim: GitHubSimulator, app: SimApp): Record<string, unknown> {
  return {
    id: app.id,
    slug: app.slug,
    node_id: nodeId("App", app.id),
    client_id: `Iv1.${app.id.toString(16).padStart(16, "0")}`,
    owner: userByLogin(sim, app.owner),
    name: app.name,
    description: "",
    external_url: sim.url,
    html_url: `${sim.url}/apps/${app.slug}`,
    created_at: app.createdAt,
    updated_at: app.createdAt,
    permissions: app.permissions,
    events: app.events,
    installations_count: sim.installationsOf(app.id).length,
  };
}

export function installationShape(sim: GitHubSimulator, inst: SimInstallation): Record<string, unknown> {
  const app = sim.app(inst.appId);
  const account = sim.user(inst.account);
  return {
    id: inst.id,
    account: userShape(sim, account),
    repository_selection: inst.repositorySelection,
    access_tokens_url: `${sim.apiUrl}/app/installations/${inst.id}/access_tokens`,
    repositories_url: `${sim.apiUrl}/installation/repositories`,
    html_url: `${sim.url}/settings/installations/${inst.id}`,
    app_id: inst.appId,
    app_slug: app.slug,
    target_id: account.id,
    target_type: account.type === "Organization" ? "Organization" : "User",
    permissions: app.permissions,
    events: app.events,
    created_at: inst.createdAt,
    updated_at: inst.createdAt,
    single_file_name: null,
    has_multiple_single_files: false,
    single_file_paths: [],
    suspended_by: null,
    suspended_at: null,
  };
}

export function checkRunShape(sim: GitHubSimulator, repo: SimRepo, r: SimCheckRun): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  const app = r.appId !== null ? sim.findApp(r.appId) : undefined;
  const pulls = [...repo.issues.values()].filter((i) => i.pull && i.state === "open" && i.pull.headSha === r.headSha);
  return {
    id: r.id,
    head_sha: r.headSha,
    node_id: r.nodeId,
    external_id: r.externalId,
    url: `${api}/check-runs/${r.id}`,
    html_url: `${sim.url}/${repo.fullName}/runs/${r.id}`,
    details_url: r.detailsUrl ?? (app ? `${sim.url}/apps/${app.slug}` : null),
    status: r.status,
    conclusion: r.conclusion,
    started_at: r.startedAt,
    completed_at: r.completedAt,
    output: {
      title: r.output.title,
      summary: r.output.summary,
      text: r.output.text,
      annotations_count: r.annotations.length,
      annotations_url: `${api}/check-runs/${r.id}/annotations`,
    },
    name: r.name,
    check_suite: { id: r.checkSuiteId },
    app: app ? appShape(sim, app) : null,
    pull_requests: pulls.map((i) => ({
      url: `${api}/pulls/${i.number}`,
      id: i.pull?.id,
      number: i.number,
      head: { ref: i.pull?.headRef, sha: i.pull?.headSha, repo: { id: repo.id, url: api, name: repo.name } },
      base: {
        ref: i.pull?.baseRef,
        sha: sim.branchSha(repo.fullName, i.pull?.baseRef ?? repo.defaultBranch) ?? "",
        repo: { id: repo.id, url: api, name: repo.name },
      },
    })),
  };
}

export function reviewShape(sim: GitHubSimulator, repo: SimRepo, number: number, r: SimReview): Record<string, unknown> {
  const html = `${sim.url}/${repo.fullName}/pull/${number}`;
  return {
    id: r.id,
    node_id: r.nodeId,
    user: userByLogin(sim, r.user),
    body: r.body,
    state: r.state,
    html_url: `${html}#pullrequestreview-${r.id}`,
    pull_request_url: `${sim.apiUrl}/repos/${repo.fullName}/pulls/${number}`,
    author_association: authorAssociation(sim, repo, r.user),
    _links: { html: { href: `${html}#pullrequestreview-${r.id}` }, pull_request: { href: `${sim.apiUrl}/repos/${repo.fullName}/pulls/${number}` } },
    submitted_at: r.submittedAt,
    commit_id: r.commitId,
  };
}

export function pullShape(sim: GitHubSimulator, repo: SimRepo, i: SimIssue): Record<string, unknown> {
  const p = i.pull;
  if (!p) throw new Error(`#${i.number} is not a pull request`);
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  const html = `${sim.url}/${repo.fullName}/pull/${i.number}`;
  const headRepo = sim.findRepo(p.headRepo) ?? repo;
  const baseSha = sim.branchSha(repo.fullName, p.baseRef) ?? "";
  const files = sim.pullFiles(repo.fullName, i.number);
  const commits = sim.pullCommits(repo.fullName, i.number);
  const mergeable = p.merged || i.state === "closed" ? null : sim.mergeable(repo.fullName, i.number);
  const assignees = i.assignees.map((a) => userByLogin(sim, a));
  const labels = i.labels.map((n) => repo.labels.get(n)).filter((l): l is SimLabel => !!l);
  return {
    url: `${api}/pulls/${i.number}`,
    id: p.id,
    node_id: p.nodeId,
    html_url: html,
    diff_url: `${html}.diff`,
    patch_url: `${html}.patch`,
    issue_url: `${api}/issues/${i.number}`,
    commits_url: `${api}/pulls/${i.number}/commits`,
    review_comments_url: `${api}/pulls/${i.number}/comments`,
    review_comment_url: `${api}/pulls/comments{/number}`,
    comments_url: `${api}/issues/${i.number}/comments`,
    statuses_url: `${api}/statuses/${p.headSha}`,
    number: i.number,
    state: i.state,
    locked: i.locked,
    title: i.title,
    user: userByLogin(sim, i.user),
    body: i.body,
    labels: labels.map((l) => labelShape(sim, repo, l)),
    milestone: null,
    active_lock_reason: null,
    created_at: i.createdAt,
    updated_at: i.updatedAt,
    closed_at: i.closedAt,
    merged_at: p.mergedAt,
    merge_commit_sha: p.mergeCommitSha,
    assignee: assignees[0] ?? null,
    assignees,
    requested_reviewers: [],
    requested_teams: [],
    head: {
      label: `${headRepo.owner}:${p.headRef}`,
      ref: p.headRef,
      sha: p.headSha,
      user: userByLogin(sim, headRepo.owner),
      repo: repoShape(sim, headRepo),
    },
    base: {
      label: `${repo.owner}:${p.baseRef}`,
      ref: p.baseRef,
      sha: baseSha,
      user: userByLogin(sim, repo.owner),
      repo: repoShape(sim, repo),
    },
    _links: {
      self: { href: `${api}/pulls/${i.number}` },
      html: { href: html },
      issue: { href: `${api}/issues/${i.number}` },
      comments: { href: `${api}/issues/${i.number}/comments` },
      review_comments: { href: `${api}/pulls/${i.number}/comments` },
      review_comment: { href: `${api}/pulls/comments{/number}` },
      commits: { href: `${api}/pulls/${i.number}/commits` },
      statuses: { href: `${api}/statuses/${p.headSha}` },
    },
    author_association: authorAssociation(sim, repo, i.user),
    auto_merge: null,
    draft: p.draft,
    merged: p.merged,
    mergeable,
    rebaseable: mergeable,
    mergeable_state: p.merged || i.state === "closed" ? "unknown" : mergeable ? "clean" : "dirty",
    merged_by: p.mergedBy ? userByLogin(sim, p.mergedBy) : null,
    comments: sim.commentsOf(repo.fullName, i.number).length,
    review_comments: 0,
    maintainer_can_modify: p.maintainerCanModify,
    commits: commits.length,
    additions: files.reduce((n, f) => n + f.additions, 0),
    deletions: files.reduce((n, f) => n + f.deletions, 0),
    changed_files: files.length,
  };
}

/** The "pull-request-simple" shape used by list endpoints. */
export function pullSimpleShape(sim: GitHubSimulator, repo: SimRepo, i: SimIssue): Record<string, unknown> {
  const full = pullShape(sim, repo, i);
  for (const k of [
    "merged",
    "mergeable",
    "rebaseable",
    "mergeable_state",
    "merged_by",
    "comments",
    "review_comments",
    "maintainer_can_modify",
    "commits",
    "additions",
    "deletions",
    "changed_files",
  ]) {
    delete full[k];
  }
  return full;
}
