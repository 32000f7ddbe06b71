/**
 * Search over the simulator's own state, with GitHub's qualifier syntax (repo:, is:, label:,
 * author:, path:, extension:, user:/org:...) and case-insensitive substring matching of the
 * remaining terms.
 */
import type { AddRoute, GitHubSimulator } from "./simulator.js";
import { queryValue } from "./simulator.js";
import { commitShape, issueShape, repoShape } from "./shapes.js";
import { HttpError, type Req, type SimRepo } from "./state.js";

interface ParsedQuery {
  terms: string[];
  qualifiers: { key: string; value: string; negated: boolean }[];
}

export function parseSearchQuery(q: string): ParsedQuery {
  const tokens = q.match(/-?[\w.]+:"[^"]*"|-?[\w.]+:\S+|"[^"]*"|\S+/g) ?? [];
  const out: ParsedQuery = { terms: [], qualifiers: [] };
  for (const t of tokens) {
    const m = /^(-?)([\w.]+):(.*)$/.exec(t);
    if (m && !/^https?$/.test(m[2] as string)) {
      out.qualifiers.push({ key: (m[2] as string).toLowerCase(), value: (m[3] as string).replace(/^"|"$/g, ""), negated: m[1] === "-" });
    } else if (!/^(AND|OR|NOT)$/.test(t)) {
      out.terms.push(t.replace(/^"|"$/g, "").toLowerCase());
    }
  }
  return out;
}

function matchesTerms(text: string, terms: string[]): boolean {
  const t = text.toLowerCase();
  return terms.every((term) => t.includes(term));
}

function qual(p: ParsedQuery, key: string): string[] {
  return p.qualifiers.filter((q) => q.key === key && !q.negated).map((q) => q.value);
}

/** The repositories the caller may see that the query's repo:/user:/org: qualifiers allow. */
function scope(sim: GitHubSimulator, req: Req, p: ParsedQuery): SimRepo[] {
  const repos = qual(p, "repo").map((r) => r.toLowerCase());
  const owners = [...qual(p, "user"), ...qual(p, "org")].map((o) => o.toLowerCase());
  return sim
    .allRepos()
    .filter((r) => sim.canSee(req.auth, r))
    .filter((r) => repos.length === 0 || repos.includes(r.fullName.toLowerCase()))
    .filter((r) => owners.length === 0 || owners.includes(r.owner.toLowerCase()));
}

function searchResult(sim: GitHubSimulator, req: Req, items: Record<string, unknown>[]) {
  const page = sim.paginate(req, items);
  return { status: 200, headers: page.headers, body: { total_count: items.length, incomplete_results: false, items: page.items } };
}

function parse(req: Req): ParsedQuery {
  const q = queryValue(req, "q") ?? "";
  if (q.trim() === "") {
    throw new HttpError(422, "Validation Failed", { errors: [{ resource: "Search", field: "q", code: "missing" }] });
  }
  return parseSearchQuery(q);
}

function textMatches(text: string, terms: string[], objectUrl: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const term of terms) {
    const at = text.toLowerCase().indexOf(term);
    if (at < 0) continue;
    const start = text.lastIndexOf("\n", at) + 1;
    const endNl = text.indexOf("\n", at);
    const fragment = text.slice(start, endNl < 0 ? undefined : endNl);
    out.push({
      object_url: objectUrl,
      object_type: "FileContent",
      property: "content",
      fragment,
      matches: [{ text: text.slice(at, at + term.length), indices: [at - start, at - start + term.length] }],
    });
  }
  return out;
}

export function searchRoutes(add: AddRoute): void {
  add("GET /search/issues", (req, sim) => {
    const p = parse(req);
    const is = [...qual(p, "is"), ...qual(p, "type")].map((v) => v.toLowerCase());
    const states = qual(p, "state").map((v) => v.toLowerCase());
    const labels = qual(p, "label");
    const authors = qual(p, "author").map((a) => a.toLowerCase());
    const items: Record<string, unknown>[] = [];
    for (const repo of scope(sim, req, p)) {
      for (const i of [...repo.issues.values()].reverse()) {
        const kind = i.pull ? "pr" : "issue";
        if (is.includes("issue") && kind !== "issue") continue;
        if ((is.includes("pr") || is.includes("pull-request")) && kind !== "pr") continue;
        if (is.includes("open") && i.state !== "open") continue;
        if (is.includes("closed") && i.state !== "closed") continue;
        if (is.includes("merged") && !i.pull?.merged) continue;
        if (states.length > 0 && !states.includes(i.state)) continue;
        if (!labels.every((l) => i.labels.some((x) => x.toLowerCase() === l.toLowerCase()))) continue;
        if (authors.length > 0 && !authors.includes(i.user.toLowerCase())) continue;
        const comments = sim.commentsOf(repo.fullName, i.number).map((c) => c.body).join("\n");
        if (!matchesTerms(`${i.title}\n${i.body ?? ""}\n${comments}`, p.terms)) continue;
        const item: Record<string, unknown> = { ...issueShape(sim, repo, i), score: 1 };
        if (item.body === null) delete item.body;
        items.push(item);
      }
    }
    const answer = searchResult(sim, req, items);
    return { ...answer, body: { ...answer.body, search_type: "lexical" } };
  });

  add("GET /search/code", (req, sim) => {
    const p = parse(req);
    if (p.terms.length === 0) {
      throw new HttpError(422, "Validation Failed", {
        errors: [{ resource: "Search", field: "q", code: "invalid", message: "Must include at least one search term." }],
      });
    }
    const paths = qual(p, "path");
    const filenames = qual(p, "filename");
    const exts = qual(p, "extension").map((e) => e.replace(/^\./, ""));
    // As on GitHub, text matches come only with the text-match media type.
    const withMatches = /text-match/.test(String(req.headers.accept ?? ""));
    const items: Record<string, unknown>[] = [];
    for (const repo of scope(sim, req, p)) {
      const head = sim.branchSha(repo.fullName, repo.defaultBranch);
      if (!head) continue;
      for (const [path, entry] of sim.flatAt(repo, head)) {
        if (entry.type !== "blob") continue;
        const name = path.split("/").pop() as string;
        if (paths.length > 0 && !paths.some((x) => path.startsWith(x.replace(/^\//, "")))) continue;
        if (filenames.length > 0 && !filenames.includes(name)) continue;
        if (exts.length > 0 && !exts.some((e) => name.endsWith(`.${e}`))) continue;
        const text = repo.git.blob(entry.sha)?.toString("utf8") ?? "";
        if (!matchesTerms(`${path}\n${text}`, p.terms)) continue;
        const api = `${sim.apiUrl}/repos/${repo.fullName}`;
        items.push({
          name,
          path,
          sha: entry.sha,
          url: `${api}/contents/${path}?ref=${head}`,
          git_url: `${api}/git/blobs/${entry.sha}`,
          html_url: `${sim.url}/${repo.fullName}/blob/${head}/${path}`,
          repository: repoShape(sim, repo),
          score: 1,
          ...(withMatches ? { text_matches: textMatches(text, p.terms, `${api}/contents/${path}?ref=${head}`) } : {}),
        });
      }
    }
    return searchResult(sim, req, items);
  });

  add("GET /search/commits", (req, sim) => {
    const p = parse(req);
    const authors = qual(p, "author").map((a) => a.toLowerCase());
    const items: Record<string, unknown>[] = [];
    for (const repo of scope(sim, req, p)) {
      const head = sim.branchSha(repo.fullName, repo.defaultBranch);
      if (!head) continue;
      for (const sha of repo.git.commitsBetween(undefined, head).reverse()) {
        const c = repo.git.commit(sha);
        if (!c) continue;
        if (authors.length > 0 && !authors.includes(c.author.name.toLowerCase())) continue;
        if (!matchesTerms(c.message, p.terms)) continue;
        items.push({ ...commitShape(sim, repo, sha), repository: repoShape(sim, repo), score: 1 });
      }
    }
    return searchResult(sim, req, items);
  });

  add("GET /search/repositories", (req, sim) => {
    const p = parse(req);
    const items = scope(sim, req, p)
      .filter((r) => matchesTerms(`${r.fullName}\n${r.description ?? ""}`, p.terms))
      .map((r) => ({ ...repoShape(sim, r), score: 1 }));
    return searchResult(sim, req, items);
  });
}
