/**
 * The GitHub API of one installation as Sluice uses it (SPEC §5 "The GitHub budget"):
 *
 * - every request waits for its place in the installation's budget (budget.ts), at the priority
 *   of the view it is made through (`at`), and frees it when GitHub answered, with the hold
 *   GitHub asked for (a 403/429 rate limit, an exhausted quota), which every process obeys;
 * - a request refused by a rate limit is sent again once the hold has passed (GitHub did nothing
 *   with it), a few times at most;
 * - a GET is sent with the ETag of its last answer, and a 304 is answered from that answer: a
 *   conditional request that GitHub answers 304 does not count against the primary rate limit;
 * - a request GitHub has not answered in a minute is given up, so no place in flight is held
 *   longer than its lease in the store.
 */
import type { GitHubApi } from "../../ports/step-executor.js";
import type { SluiceMetrics } from "../server/metrics.js";
import { holdAfter, rateLimitWaitMs } from "../steps/github-errors.js";
import type { GitHubBudget, WritePriority } from "./budget.js";

/** The API of an installation whose writes can be queued at a priority. */
export interface BudgetedGitHub extends GitHubApi {
  /** The same API with its requests queued at `priority`, each waiting at most `maxWaitMs` for the budget (default: no limit). */
  at(priority: WritePriority, opts?: { maxWaitMs?: number }): BudgetedGitHub;
}

/** `api` at `priority` when it is budgeted (a plain API, as in tests, is returned as it is). */
export function prioritized(api: GitHubApi, priority: WritePriority, opts?: { maxWaitMs?: number }): GitHubApi {
  const at = (api as Partial<BudgetedGitHub>).at;
  return typeof at === "function" ? at.call(api, priority, opts) : api;
}

/** What is needed of an Octokit: `request`. */
export interface Requester {
  request(route: string, params?: Record<string, unknown>): Promise<unknown>;
}

type Response = Awaited<ReturnType<GitHubApi["request"]>>;

export interface ClientOptions {
  octokit: Requester;
  budget: GitHubBudget;
  /** The budget's key: the installation's id. */
  installation: string;
  identity?: GitHubApi["identity"];
  metrics?: SluiceMetrics;
  clock?: () => number;
  /** Answers of GET requests kept for conditional requests. Default 500. */
  cacheEntries?: number;
  /** Attempts of a request refused by a rate limit. Default 3. */
  maxAttempts?: number;
  /** A request GitHub has not answered by then is given up. Default 60 s. */
  timeoutMs?: number;
}

export type RequestKind = "read" | "write" | "create";

/** read (GET, HEAD), create (POST, PUT: content-creating) or write (PATCH, DELETE). */
export function requestKind(route: string): RequestKind {
  const method = /^\s*([A-Za-z]+)\s+\//.exec(route)?.[1]?.toUpperCase() ?? "GET";
  if (method === "GET" || method === "HEAD") return "read";
  return method === "POST" || method === "PUT" ? "create" : "write";
}

/** Params as a stable text (keys sorted), without the request options and headers. */
function cacheKey(route: string, params: Record<string, unknown> | undefined): string {
  const { request: _r, headers: _h, ...rest } = params ?? {};
  return `${route} ${JSON.stringify(rest, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  )}`;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === "number" ? s : undefined;
}

class EtagCache {
  private readonly map = new Map<string, { etag: string; response: Response }>();
  constructor(private readonly max: number) {}
  get(key: string): { etag: string; response: Response } | undefined {
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
    }
    return hit;
  }
  set(key: string, etag: string, response: Response): void {
    this.map.delete(key);
    this.map.set(key, { etag, response });
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
  }
}

/** A budgeted API over an installation's Octokit (made once per installation and shared by its views). */
export function budgetedClient(opts: ClientOptions): BudgetedGitHub {
  const clock = opts.clock ?? Date.now;
  const cache = new EtagCache(opts.cacheEntries ?? 500);
  const maxAttempts = opts.maxAttempts ?? 3;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const m = opts.metrics;

  async function request(priority: WritePriority, maxWaitMs: number | undefined, route: string, params?: Record<string, unknown>): Promise<Response> {
    const kind = requestKind(route);
    const given = (params?.request ?? {}) as { signal?: AbortSignal };
    // Blobs are immutable and large, and cached by SHA where they are read: not worth an ETag.
    const key = kind === "read" && !route.includes("/git/blobs/") ? cacheKey(route, params) : undefined;
    for (let attempt = 1; ; attempt++) {
      const grant = await opts.budget.acquire(opts.installation, {
        create: kind === "create",
        priority,
        ...(given.signal ? { signal: given.signal } : {}),
        ...(maxWaitMs !== undefined ? { maxWaitMs } : {}),
      });
      const cached = key ? cache.get(key) : undefined;
      const timeout = AbortSignal.timeout(timeoutMs);
      const headers = { ...((params?.headers ?? {}) as Record<string, string>), ...(cached ? { "if-none-match": cached.etag } : {}) };
      let res: Response | undefined;
      let error: unknown;
      try {
        res = (await opts.octokit.request(route, {
          ...params,
          headers,
          request: { ...given, signal: given.signal ? AbortSignal.any([given.signal, timeout]) : timeout },
        })) as Response;
      } catch (e) {
        error = e;
      }
      const status = res?.status ?? statusOf(error);
      const answerHeaders = (res?.headers ?? (error as { response?: { headers?: Record<string, unknown> } })?.response?.headers ?? {}) as Record<string, unknown>;
      const message = error instanceof Error ? error.message : "";
      const hold = status !== undefined ? holdAfter(status, answerHeaders, message, clock()) : undefined;
      grant.release(hold !== undefined ? { holdUntil: hold } : undefined);
      if (res) {
        m?.githubRequests.inc({ kind, outcome: "ok" });
        const etag = res.headers?.etag;
        if (key && typeof etag === "string" && res.status === 200) cache.set(key, etag, res);
        return res;
      }
      if (status === 304 && cached) {
        m?.githubRequests.inc({ kind, outcome: "not_modified" });
        return cached.response;
      }
      const limited = status !== undefined && rateLimitWaitMs(status, answerHeaders, message, clock()) !== undefined;
      m?.githubRequests.inc({ kind, outcome: limited ? "rate_limited" : "error" });
      // Refused by a rate limit, the request did nothing: the next grant comes after the hold.
      if (limited && attempt < maxAttempts && !given.signal?.aborted) continue;
      throw error;
    }
  }

  // One object per priority and wait, so that what is cached per API object (people.ts) is shared.
  const views = new Map<string, BudgetedGitHub>();
  const view = (priority: WritePriority, maxWaitMs: number | undefined): BudgetedGitHub => {
    const key = `${priority}:${maxWaitMs ?? ""}`;
    let v = views.get(key);
    if (!v) {
      v = {
        request: (route, params) => request(priority, maxWaitMs, route, params),
        ...(opts.identity ? { identity: opts.identity } : {}),
        at: (p, o) => view(p, o?.maxWaitMs),
      };
      views.set(key, v);
    }
    return v;
  };
  return view("reply", undefined);
}

/** A budgeted API found on its first request (the installation is looked up then). */
export function deferredClient(get: () => Promise<BudgetedGitHub>, identity?: GitHubApi["identity"]): BudgetedGitHub {
  const view = (priority: WritePriority | undefined, o: { maxWaitMs?: number } | undefined): BudgetedGitHub => ({
    request: async (route, params) => {
      const api = await get();
      return (priority ? api.at(priority, o) : api).request(route, params);
    },
    ...(identity ? { identity } : {}),
    at: (p, opts) => view(p, opts),
  });
  return view(undefined, undefined);
}
