/** Repository, contents and git data endpoints over the simulator's object model. */
import type { AddRoute, GitHubSimulator } from "./simulator.js";
import { queryValue } from "./simulator.js";
import { diffTrees, isoNow, type FlatTree, type TreeEntry } from "./git-model.js";
import { commitShape, fileChangeShape, gitCommitShape, nodeId, refShape, repoShape } from "./shapes.js";
import { HttpError, notFound, type Req, type SimRepo } from "./state.js";

function wrap64(buf: Buffer): string {
  return (buf.toString("base64").match(/.{1,60}/g) ?? []).join("\n") + (buf.length > 0 ? "\n" : "");
}

function wantsRaw(req: Req): boolean {
  return /application\/vnd\.github(\.v3)?\.raw/.test(String(req.headers.accept ?? ""));
}

function commitOrFail(sim: GitHubSimulator, repo: SimRepo, ref: string): string {
  const sha = sim.resolveRef(repo.fullName, ref);
  if (!sha) throw new HttpError(422, `No commit found for SHA: ${ref}`);
  return sha;
}

/** A tree SHA for a tree SHA, a commit SHA or a ref name. */
function treeish(sim: GitHubSimulator, repo: SimRepo, value: string): string | undefined {
  if (repo.git.tree(value)) return value;
  const sha = sim.resolveRef(repo.fullName, value);
  return sha ? repo.git.commit(sha)?.tree : undefined;
}

function entryAt(repo: SimRepo, treeSha: string, path: string): TreeEntry | "root" | undefined {
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0) return "root";
  let tree = treeSha;
  let found: TreeEntry | undefined;
  for (const [i, part] of parts.entries()) {
    found = repo.git.tree(tree)?.find((e) => e.name === part);
    if (!found) return undefined;
    if (i < parts.length - 1) {
      if (found.type !== "tree") return undefined;
      tree = found.sha;
    }
  }
  return found;
}

function contentItem(sim: GitHubSimulator, repo: SimRepo, ref: string, path: string, e: TreeEntry): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  const type = e.type === "tree" ? "dir" : e.type === "commit" ? "submodule" : e.mode === "120000" ? "symlink" : "file";
  const gitUrl = e.type === "tree" ? `${api}/git/trees/${e.sha}` : e.type === "blob" ? `${api}/git/blobs/${e.sha}` : null;
  const htmlUrl = `${sim.url}/${repo.fullName}/${e.type === "tree" ? "tree" : "blob"}/${ref}/${path}`;
  const self = `${api}/contents/${path}?ref=${encodeURIComponent(ref)}`;
  return {
    type,
    size: e.type === "blob" ? (repo.git.blob(e.sha)?.length ?? 0) : 0,
    name: path.split("/").pop(),
    path,
    sha: e.sha,
    url: self,
    git_url: gitUrl,
    html_url: htmlUrl,
    download_url: type === "file" ? `${sim.url}/${repo.fullName}/raw/${ref}/${path}` : null,
    _links: { self, git: gitUrl, html: htmlUrl },
  };
}

function treeEntryShape(sim: GitHubSimulator, repo: SimRepo, path: string, e: TreeEntry): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  return {
    path,
    mode: e.mode,
    type: e.type,
    sha: e.sha,
    ...(e.type === "blob" ? { size: repo.git.blob(e.sha)?.length ?? 0, url: `${api}/git/blobs/${e.sha}` } : {}),
    ...(e.type === "tree" ? { url: `${api}/git/trees/${e.sha}` } : {}),
  };
}

function treeShape(sim: GitHubSimulator, repo: SimRepo, sha: string, recursive: boolean): Record<string, unknown> {
  const entries = recursive
    ? repo.git.walk(sha).map(({ path, entry }) => treeEntryShape(sim, repo, path, entry))
    : (repo.git.tree(sha) ?? []).map((e) => treeEntryShape(sim, repo, e.name, e));
  return { sha, url: `${sim.apiUrl}/repos/${repo.fullName}/git/trees/${sha}`, tree: entries, truncated: false };
}

function fullRef(ref: string): string {
  return ref.startsWith("refs/") ? ref : `refs/${ref}`;
}

function branchShape(sim: GitHubSimulator, repo: SimRepo, name: string, sha: string): Record<string, unknown> {
  const api = `${sim.apiUrl}/repos/${repo.fullName}`;
  return {
    name,
    commit: commitShape(sim, repo, sha),
    _links: { self: `${api}/branches/${name}`, html: `${sim.url}/${repo.fullName}/tree/${name}` },
    protected: false,
    protection: { enabled: false, required_status_checks: { enforcement_level: "off", contexts: [], checks: [] } },
    protection_url: `${api}/branches/${name}/protection`,
  };
}

export function gitRoutes(add: AddRoute): void {
  add("GET /repos/{owner}/{repo}", (req, sim) => {
    const repo = sim.repoFor(req);
    return { status: 200, body: repoShape(sim, repo, req.auth.kind === "user" ? req.auth.user.login : undefined) };
  });

  add("GET /repos/{owner}/{repo}/contents/{path}", (req, sim) => {
    const repo = sim.repoFor(req);
    const ref = queryValue(req, "ref") ?? repo.defaultBranch;
    const sha = sim.resolveRef(repo.fullName, ref);
    if (!sha) throw new HttpError(404, `No commit found for the ref ${ref}`);
    const tree = repo.git.commit(sha)?.tree as string;
    const path = (req.params.path ?? "").replace(/^\/+|\/+$/g, "");
    const e = entryAt(repo, tree, path);
    if (!e) throw notFound();
    if (e === "root" || e.type === "tree") {
      const treeSha = e === "root" ? tree : e.sha;
      const items = (repo.git.tree(treeSha) ?? []).map((c) => contentItem(sim, repo, ref, path ? `${path}/${c.name}` : c.name, c));
      return { status: 200, body: items };
    }
    const content = repo.git.blob(e.sha) ?? Buffer.alloc(0);
    if (wantsRaw(req)) return { status: 200, raw: content };
    return { status: 200, body: { ...contentItem(sim, repo, ref, path, e), content: wrap64(content), encoding: "base64" } };
  });

  add("GET /repos/{owner}/{repo}/git/trees/{tree_sha}", (req, sim) => {
    const repo = sim.repoFor(req);
    const sha = treeish(sim, repo, req.params.tree_sha ?? "");
    if (!sha) throw notFound();
    return { status: 200, body: treeShape(sim, repo, sha, queryValue(req, "recursive") !== undefined) };
  });

  add("GET /repos/{owner}/{repo}/git/blobs/{file_sha}", (req, sim) => {
    const repo = sim.repoFor(req);
    const sha = req.params.file_sha ?? "";
    const blob = repo.git.blob(sha);
    if (!blob) throw notFound();
    if (wantsRaw(req)) return { status: 200, raw: blob };
    return {
      status: 200,
      body: {
        sha,
        node_id: nodeId("Blob", parseInt(sha.slice(0, 8), 16)),
        size: blob.length,
        url: `${sim.apiUrl}/repos/${repo.fullName}/git/blobs/${sha}`,
        content: wrap64(blob),
        encoding: "base64",
      },
    };
  });

  add("POST /repos/{owner}/{repo}/git/blobs", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as { content: string; encoding?: string };
    const enc = body.encoding ?? "utf-8";
    if (enc !== "utf-8" && enc !== "utf8" && enc !== "base64") {
      throw new HttpError(422, `encoding must be one of "utf-8" or "base64"`);
    }
    const buf = enc === "base64" ? Buffer.from(body.content, "base64") : Buffer.from(body.content, "utf8");
    const sha = repo.git.writeBlob(buf);
    return { status: 201, body: { url: `${sim.apiUrl}/repos/${repo.fullName}/git/blobs/${sha}`, sha } };
  });

  add("POST /repos/{owner}/{repo}/git/trees", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as {
      base_tree?: string;
      tree: { path?: string; mode?: string; type?: string; sha?: string | null; content?: string }[];
    };
    let flat: FlatTree = new Map();
    if (body.base_tree) {
      const base = treeish(sim, repo, body.base_tree);
      if (!base) throw new HttpError(422, "Invalid tree info: base_tree is not a valid tree oid");
      flat = repo.git.flatten(base);
    }
    for (const e of body.tree) {
      const path = (e.path ?? "").replace(/^\/+|\/+$/g, "");
      if (!path) throw new HttpError(422, "Invalid tree info: tree.path is required");
      const removeUnder = (): void => {
        for (const p of [...flat.keys()]) if (p === path || p.startsWith(`${path}/`)) flat.delete(p);
      };
      if (e.sha === null) {
        removeUnder();
        continue;
      }
      if (e.content !== undefined) {
        if (e.sha !== undefined) throw new HttpError(422, "Invalid tree info: only one of tree.sha and tree.content may be given");
        flat.set(path, { mode: e.mode ?? "100644", type: "blob", sha: repo.git.writeBlob(e.content) });
        continue;
      }
      if (!e.sha) throw new HttpError(422, "Invalid tree info: tree.sha or tree.content is required");
      if (e.type === "tree") {
        if (!repo.git.tree(e.sha)) throw new HttpError(422, `Invalid tree info: tree.sha ${e.sha} is not a valid tree`);
        removeUnder();
        for (const [p, v] of repo.git.flatten(e.sha)) flat.set(`${path}/${p}`, v);
      } else if (e.type === "commit") {
        flat.set(path, { mode: "160000", type: "commit", sha: e.sha });
      } else {
        if (!repo.git.blob(e.sha)) throw new HttpError(422, `Invalid tree info: tree.sha ${e.sha} is not a valid blob`);
        flat.set(path, { mode: e.mode ?? "100644", type: "blob", sha: e.sha });
      }
    }
    const sha = repo.git.buildTree(flat);
    return { status: 201, body: treeShape(sim, repo, sha, false) };
  });

  add("POST /repos/{owner}/{repo}/git/commits", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as {
      message: string;
      tree: string;
      parents?: string[];
      author?: { name: string; email: string; date?: string };
      committer?: { name: string; email: string; date?: string };
    };
    if (!repo.git.tree(body.tree)) throw new HttpError(422, "Tree SHA does not exist");
    for (const p of body.parents ?? []) {
      if (!repo.git.commit(p)) throw new HttpError(422, "Parent SHA does not exist or is not a commit object");
    }
    const me = sim.person(sim.actor(req));
    const person = (p?: { name: string; email: string; date?: string }) =>
      p ? { name: p.name, email: p.email, date: p.date ? isoNow(Date.parse(p.date)) : isoNow() } : me;
    const author = person(body.author);
    const sha = repo.git.writeCommit({
      tree: body.tree,
      parents: body.parents ?? [],
      author,
      committer: body.committer ? person(body.committer) : author,
      message: body.message,
    });
    return { status: 201, body: gitCommitShape(sim, repo, sha) };
  });

  add("GET /repos/{owner}/{repo}/git/commits/{commit_sha}", (req, sim) => {
    const repo = sim.repoFor(req);
    const sha = repo.git.expand(req.params.commit_sha ?? "");
    if (!sha || !repo.git.commit(sha)) throw notFound();
    return { status: 200, body: gitCommitShape(sim, repo, sha) };
  });

  add("GET /repos/{owner}/{repo}/git/ref/{ref}", (req, sim) => {
    const repo = sim.repoFor(req);
    const ref = fullRef(req.params.ref ?? "");
    const sha = repo.refs.get(ref);
    if (!sha) throw notFound();
    return { status: 200, body: refShape(sim, repo, ref, sha) };
  });

  const matching = (repo: SimRepo, prefix: string): [string, string][] =>
    [...repo.refs.entries()].filter(([r]) => r.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1));

  add("GET /repos/{owner}/{repo}/git/matching-refs/{ref}", (req, sim) => {
    const repo = sim.repoFor(req);
    const refs = matching(repo, fullRef(req.params.ref ?? ""));
    return { status: 200, body: refs.map(([r, sha]) => refShape(sim, repo, r, sha)) };
  });

  add("GET /repos/{owner}/{repo}/git/refs", (req, sim) => {
    const repo = sim.repoFor(req);
    const page = sim.paginate(req, matching(repo, "refs/"));
    return { status: 200, headers: page.headers, body: page.items.map(([r, sha]) => refShape(sim, repo, r, sha)) };
  });

  add("GET /repos/{owner}/{repo}/git/refs/{ref}", (req, sim) => {
    const repo = sim.repoFor(req);
    const ref = fullRef(req.params.ref ?? "");
    const sha = repo.refs.get(ref);
    if (sha) return { status: 200, body: refShape(sim, repo, ref, sha) };
    const refs = matching(repo, `${ref}/`);
    if (refs.length === 0) throw notFound();
    return { status: 200, body: refs.map(([r, s]) => refShape(sim, repo, r, s)) };
  });

  add("POST /repos/{owner}/{repo}/git/refs", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as { ref: string; sha: string };
    if (!/^refs\/[^/]+\/.+/.test(body.ref)) {
      throw new HttpError(422, "Reference name must start with 'refs/' and have at least two slashes");
    }
    if (repo.refs.has(body.ref)) throw new HttpError(422, "Reference already exists");
    if (!repo.git.commit(body.sha)) throw new HttpError(422, "Object does not exist");
    sim.setRef(repo.fullName, body.ref, body.sha);
    return {
      status: 201,
      headers: { location: `${sim.apiUrl}/repos/${repo.fullName}/git/${body.ref}` },
      body: refShape(sim, repo, body.ref, body.sha),
    };
  });

  add("PATCH /repos/{owner}/{repo}/git/refs/{ref}", (req, sim) => {
    const repo = sim.repoFor(req);
    const ref = fullRef(req.params.ref ?? "");
    const body = req.body as { sha: string; force?: boolean };
    const old = repo.refs.get(ref);
    if (!old) throw new HttpError(422, "Reference does not exist");
    if (!repo.git.commit(body.sha)) throw new HttpError(422, "Object does not exist");
    if (!body.force && !repo.git.isAncestor(old, body.sha)) throw new HttpError(422, "Update is not a fast forward");
    sim.setRef(repo.fullName, ref, body.sha);
    return { status: 200, body: refShape(sim, repo, ref, body.sha) };
  });

  add("DELETE /repos/{owner}/{repo}/git/refs/{ref}", (req, sim) => {
    const repo = sim.repoFor(req);
    const ref = fullRef(req.params.ref ?? "");
    if (!repo.refs.has(ref)) throw new HttpError(422, "Reference does not exist");
    sim.setRef(repo.fullName, ref, undefined);
    return { status: 204 };
  });

  add("GET /repos/{owner}/{repo}/commits/{ref}", (req, sim) => {
    const repo = sim.repoFor(req);
    const sha = commitOrFail(sim, repo, req.params.ref ?? "");
    if (/application\/vnd\.github(\.v3)?\.sha/.test(String(req.headers.accept ?? ""))) {
      return { status: 200, raw: sha, headers: { "content-type": "application/vnd.github.sha; charset=utf-8" } };
    }
    const c = repo.git.commit(sha);
    const parent = c?.parents[0];
    const files = diffTrees(repo.git, parent ? sim.flatAt(repo, parent) : new Map(), sim.flatAt(repo, sha));
    return { status: 200, body: commitShape(sim, repo, sha, files) };
  });

  add("GET /repos/{owner}/{repo}/commits", (req, sim) => {
    const repo = sim.repoFor(req);
    const start = commitOrFail(sim, repo, queryValue(req, "sha") ?? repo.defaultBranch);
    const path = queryValue(req, "path");
    const author = queryValue(req, "author");
    let shas = repo.git.commitsBetween(undefined, start).reverse();
    if (path) {
      shas = shas.filter((s) => {
        const c = repo.git.commit(s);
        const before = c?.parents[0] ? sim.flatAt(repo, c.parents[0]) : new Map();
        const after = sim.flatAt(repo, s);
        return diffTrees(repo.git, before, after).some((f) => f.filename === path || f.filename.startsWith(`${path}/`));
      });
    }
    if (author) shas = shas.filter((s) => repo.git.commit(s)?.author.name.toLowerCase() === author.toLowerCase());
    const page = sim.paginate(req, shas);
    return { status: 200, headers: page.headers, body: page.items.map((s) => commitShape(sim, repo, s)) };
  });

  add("GET /repos/{owner}/{repo}/compare/{basehead}", (req, sim) => {
    const repo = sim.repoFor(req);
    const bh = req.params.basehead ?? "";
    const m = /^(.+?)(\.\.\.?)(.+)$/.exec(bh);
    if (!m) throw notFound();
    const strip = (s: string): string => (s.includes(":") ? s.slice(s.indexOf(":") + 1) : s);
    const base = sim.resolveRef(repo.fullName, strip(m[1] as string));
    const head = sim.resolveRef(repo.fullName, strip(m[3] as string));
    if (!base || !head) throw notFound();
    const mergeBase = repo.git.mergeBase(base, head);
    const ahead = repo.git.commitsBetween(base, head);
    const behind = repo.git.commitsBetween(head, base);
    const status = base === head ? "identical" : ahead.length > 0 && behind.length > 0 ? "diverged" : ahead.length > 0 ? "ahead" : behind.length > 0 ? "behind" : "identical";
    const from = m[2] === "..." ? mergeBase : base;
    const files = diffTrees(repo.git, from ? sim.flatAt(repo, from) : new Map(), sim.flatAt(repo, head));
    const page = sim.paginate(req, ahead);
    const html = `${sim.url}/${repo.fullName}/compare/${bh}`;
    return {
      status: 200,
      headers: page.headers,
      body: {
        url: `${sim.apiUrl}/repos/${repo.fullName}/compare/${bh}`,
        html_url: html,
        permalink_url: `${sim.url}/${repo.fullName}/compare/${base}...${head}`,
        diff_url: `${html}.diff`,
        patch_url: `${html}.patch`,
        base_commit: commitShape(sim, repo, base),
        merge_base_commit: mergeBase ? commitShape(sim, repo, mergeBase) : commitShape(sim, repo, base),
        status,
        ahead_by: ahead.length,
        behind_by: behind.length,
        total_commits: ahead.length,
        commits: page.items.map((s) => commitShape(sim, repo, s)),
        files: files.map((f) => fileChangeShape(sim, repo, head, f)),
      },
    };
  });

  add("GET /repos/{owner}/{repo}/branches/{branch}", (req, sim) => {
    const repo = sim.repoFor(req);
    const name = req.params.branch ?? "";
    const sha = repo.refs.get(`refs/heads/${name}`);
    if (!sha) throw new HttpError(404, "Branch not found");
    return { status: 200, body: branchShape(sim, repo, name, sha) };
  });

  add("GET /repos/{owner}/{repo}/branches", (req, sim) => {
    const repo = sim.repoFor(req);
    const branches = matching(repo, "refs/heads/");
    const page = sim.paginate(req, branches);
    return {
      status: 200,
      headers: page.headers,
      body: page.items.map(([r, sha]) => ({
        name: r.slice("refs/heads/".length),
        commit: { sha, url: `${sim.apiUrl}/repos/${repo.fullName}/commits/${sha}` },
        protected: false,
      })),
    };
  });
}
