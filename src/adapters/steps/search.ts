/**
 * The `search` step. `provider: web` queries a SearXNG-compatible JSON API (a connection:
 * `GET {base_url}/search?q=…&format=json`); `provider: github` searches issues, pull requests,
 * code, commits or repositories through the GitHub API. Both give
 * `results[{title, url, snippet}]` and `total`.
 */
import { SluiceError } from "../../core/errors.js";
import type { StepContext, StepExecutor } from "../../ports/step-executor.js";
import { withDeadline, type Deadline } from "./deadline.js";
import { githubError, requireGitHub } from "./github-errors.js";
import { DEFAULT_MAX_BYTES, httpRequest, ssrfOptions, statusError } from "./http-client.js";
import { isRecord, optNumber, optString, paramError, reqString, type Params } from "./params.js";

const KIND = "search";
const SNIPPET_CHARS = 300;
const MAX_WEB_PAGES = 10;

export interface SearchResult {
  title: string;
  url: string;
  snippet: string;
}

export const GITHUB_SEARCH_TYPES = ["issues", "pull_requests", "code", "commits", "repositories"] as const;
type GitHubSearchType = (typeof GITHUB_SEARCH_TYPES)[number];

export const searchExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const provider = optString(KIND, params, "provider") ?? "web";
    const query = reqString(KIND, params, "query");
    const limit = optNumber(KIND, params, "limit", { min: 1, max: 1000, integer: true }) ?? 10;
    return withDeadline(ctx, async (deadline) => {
      let found: { results: SearchResult[]; total: number };
      if (provider === "web") found = await searchWeb(params, query, limit, ctx, deadline);
      else if (provider === "github") found = await searchGitHub(params, query, limit, ctx, deadline);
      else throw paramError(KIND, "provider", `must be web or github, not '${provider}'`);
      return { outputs: { results: found.results.slice(0, limit), total: found.total } };
    });
  },
};

async function searchWeb(
  params: Params,
  query: string,
  limit: number,
  ctx: StepContext,
  deadline: Deadline,
): Promise<{ results: SearchResult[]; total: number }> {
  const conn = ctx.connection(reqString(KIND, params, "connection"));
  if (!conn.base_url) throw paramError(KIND, "connection", `'${conn.name}' has no base_url (a SearXNG-compatible JSON API)`);
  const headers: Record<string, string> = { accept: "application/json", "user-agent": "sluice" };
  if (conn.secretValue) headers.authorization = `Bearer ${conn.secretValue}`;
  const results: SearchResult[] = [];
  const seen = new Set<string>();
  let total = 0;
  for (let page = 1; page <= MAX_WEB_PAGES && results.length < limit; page++) {
    const url = new URL(`${conn.base_url.replace(/\/+$/, "")}/search`);
    url.searchParams.set("q", query);
    url.searchParams.set("format", "json");
    if (page > 1) url.searchParams.set("pageno", String(page));
    const reply = await httpRequest({
      method: "GET",
      url: url.href,
      headers,
      maxBytes: DEFAULT_MAX_BYTES,
      signal: deadline.signal,
      ssrf: ssrfOptions(ctx.policy, [conn.base_url]),
    });
    if (reply.status < 200 || reply.status > 299) throw statusError(`search ${conn.name}`, reply, ctx.now());
    let data: unknown;
    try {
      data = JSON.parse(reply.body.toString("utf8"));
    } catch {
      throw new SluiceError("HTTP_STATUS", `search ${conn.name}: the answer is not JSON (is format=json enabled?)`, {
        status: reply.status,
      });
    }
    const items = isRecord(data) && Array.isArray(data.results) ? data.results : undefined;
    if (!items) throw new SluiceError("HTTP_STATUS", `search ${conn.name}: the answer has no 'results' list`, {});
    if (isRecord(data) && typeof data.number_of_results === "number") total = Math.max(total, data.number_of_results);
    let fresh = 0;
    for (const item of items) {
      if (!isRecord(item) || typeof item.url !== "string" || seen.has(item.url)) continue;
      seen.add(item.url);
      fresh++;
      results.push({ title: str(item.title), url: item.url, snippet: snippet(str(item.content)) });
    }
    if (fresh === 0) break;
  }
  return { results, total: Math.max(total, results.length) };
}

async function searchGitHub(
  params: Params,
  query: string,
  limit: number,
  ctx: StepContext,
  deadline: Deadline,
): Promise<{ results: SearchResult[]; total: number }> {
  const type = (optString(KIND, params, "type") ?? "issues") as GitHubSearchType;
  if (!GITHUB_SEARCH_TYPES.includes(type)) throw paramError(KIND, "type", `must be one of ${GITHUB_SEARCH_TYPES.join(", ")}`);
  const github = requireGitHub(ctx, "search (provider github)");
  const endpoint = type === "pull_requests" ? "issues" : type;
  const q = githubQuery(type, query);
  const perPage = Math.min(limit, 100);
  const results: SearchResult[] = [];
  let total = 0;
  for (let page = 1; results.length < limit; page++) {
    deadline.check();
    let data: any;
    try {
      const res = await github.request(`GET /search/${endpoint}`, {
        q,
        per_page: perPage,
        ...(page > 1 ? { page } : {}),
        ...(type === "code" ? { headers: { accept: "application/vnd.github.text-match+json" } } : {}),
        request: { signal: deadline.signal },
      });
      data = res.data;
    } catch (err) {
      if (deadline.signal.aborted) throw deadline.error();
      throw githubError(`search ${type}`, err, ctx.now());
    }
    deadline.check();
    total = typeof data?.total_count === "number" ? data.total_count : total;
    const items: unknown[] = Array.isArray(data?.items) ? data.items : [];
    for (const item of items) if (isRecord(item)) results.push(normaliseGitHub(type, item));
    if (items.length < perPage) break;
  }
  return { results, total: Math.max(total, results.length) };
}

/** The `q` GitHub gets: pull_requests is issues with `is:pr` added (unless the query says so). */
export function githubQuery(type: GitHubSearchType, query: string): string {
  if (type === "pull_requests" && !/(^|\s)(is|type):(pr|pull-request)\b/i.test(query)) return `${query} is:pr`;
  return query;
}

function normaliseGitHub(type: GitHubSearchType, item: Record<string, unknown>): SearchResult {
  const url = str(item.html_url);
  switch (type) {
    case "issues":
    case "pull_requests":
      return { title: str(item.title), url, snippet: snippet(str(item.body)) };
    case "code": {
      const repo = isRecord(item.repository) ? str(item.repository.full_name) : "";
      const matches = Array.isArray(item.text_matches) ? item.text_matches : [];
      const fragment = matches.map((m) => (isRecord(m) ? str(m.fragment) : "")).find((f) => f !== "");
      return { title: repo ? `${repo}: ${str(item.path)}` : str(item.path), url, snippet: snippet(fragment ?? "") };
    }
    case "commits": {
      const message = isRecord(item.commit) ? str(item.commit.message) : "";
      const [first = "", ...rest] = message.split("\n");
      return { title: first, url, snippet: snippet(rest.join("\n").trim()) };
    }
    case "repositories":
      return { title: str(item.full_name), url, snippet: snippet(str(item.description)) };
  }
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > SNIPPET_CHARS ? `${flat.slice(0, SNIPPET_CHARS - 1)}…` : flat;
}
