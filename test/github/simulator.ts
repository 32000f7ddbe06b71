/**
 * A stateful simulator of the GitHub REST API on a loopback port, for tests. Point Probot at it
 * the way a user points it at GitHub Enterprise Server (GHE_HOST=127.0.0.1:PORT,
 * GHE_PROTOCOL=http) or give a plain Octokit `baseUrl: sim.url`. Every request is mapped to its
 * operation in GitHub's OpenAPI description and validated against it; see README.md.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createHash, randomBytes, randomUUID, type KeyObject } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { AddressInfo } from "node:net";
import { ObjectStore, diffTrees, isoNow, type FileChange, type FlatTree, type GitPerson } from "./git-model.js";
import { OpenApi } from "./openapi.js";
import { looksLikeJwt, toPublicKey, verifyAppJwt } from "./jwt.js";
import { nodeId } from "./shapes.js";
import { appRoutes } from "./routes-apps.js";
import { gitRoutes } from "./routes-git.js";
import { checkRoutes } from "./routes-checks.js";
import { issueRoutes } from "./routes-issues.js";
import { pullRoutes } from "./routes-pulls.js";
import { miscRoutes } from "./routes-misc.js";
import { searchRoutes } from "./routes-search.js";
import { PayloadBuilders } from "./payloads.js";
import { sendWebhook, type SendWebhookOptions, type WebhookResult } from "./webhooks.js";
import { Limits, SECONDARY_LIMIT_MESSAGE, type LimitsConfig } from "./limits.js";
import { OAuthSim } from "./oauth.js";
import {
  HttpError,
  notFound,
  validationFailed,
  type Auth,
  type LoggedRequest,
  type Permission,
  type Req,
  type Res,
  type ReviewState,
  type SimApp,
  type SimComment,
  type SimCheckRun,
  type SimInstallation,
  type SimIssue,
  type SimRepo,
  type SimReview,
  type SimToken,
  type SimUser,
  type Violation,
  type WorkflowDispatch,
} from "./state.js";

export type Handler = (req: Req, sim: GitHubSimulator) => Res | Promise<Res>;
export type AddRoute = (key: string, handler: Handler) => void;

export interface FailSpec {
  /** HTTP method to match (any when left out). */
  method?: string;
  /** Matched against the request's decoded path (without /api/v3 and the query). */
  path?: RegExp | string;
  status: number;
  /** Extra answer headers; null removes one of the rate-limit defaults. */
  headers?: Record<string, string | null>;
  body?: unknown;
  /** The error message (default: GitHub's secondary rate limit text for 403, its rate limit text for 429). */
  message?: string;
  /** How many matching requests fail (default 1). */
  times?: number;
}

export type FileInput = string | Buffer | null;

const DOCS = "https://docs.github.com/rest";

function parseQuery(qs: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of new URLSearchParams(qs)) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else out[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export class GitHubSimulator {
  /** Every request, in order: method, path, query, body, status, operationId, auth. */
  readonly requests: LoggedRequest[] = [];
  /** Requests that broke GitHub's OpenAPI description or named no route. Tests assert it stays empty. */
  readonly violations: Violation[] = [];
  /**
   * Answers of the simulator that do not match the documented response schema: the
   * simulator's own fidelity problems, kept apart from the callers' violations.
   */
  readonly responseViolations: Violation[] = [];
  /** Workflow dispatches accepted by POST .../actions/workflows/{id}/dispatches. */
  readonly dispatches: WorkflowDispatch[] = [];
  /** Webhook payload builders (see payloads.ts). */
  readonly payloads: PayloadBuilders;
  /**
   * GitHub's secondary limits (limits.ts): off until `enforceLimits`; the most requests seen in
   * flight at once, the content-creating requests accepted, and every breach, always recorded.
   */
  readonly limits = new Limits();
  /** GET answers 304 Not Modified to a matching If-None-Match (those do not count against the primary limit). */
  notModified = 0;
  /** How long every request waits before it is handled (GitHub is not on loopback): 0 by default. */
  latencyMs = 0;
  /** The OAuth web flow (oauth.ts): its clients, who is signed in, the code exchanges. */
  readonly oauth = new OAuthSim((login) => this.createUserToken(login));

  /** http://127.0.0.1:PORT: the API is also served here, for a plain Octokit `baseUrl`. */
  url = "";
  /** http://127.0.0.1:PORT/api/v3: the GitHub Enterprise Server style base URL. */
  apiUrl = "";
  /** 127.0.0.1:PORT, for GHE_HOST. */
  host = "";

  private server: Server | undefined;
  private readonly openapi = OpenApi.get();
  private readonly handlers = new Map<string, Handler>();
  private idCounter = 100_000;
  private faults: (FailSpec & { remaining: number })[] = [];
  /** Requests counted against the primary limit, per credentials, in the current hour. */
  private rateUsed = new Map<string, { used: number; reset: number }>();

  private readonly users = new Map<string, SimUser>();
  private readonly apps = new Map<number, SimApp>();
  private readonly installations = new Map<number, SimInstallation>();
  private readonly tokens = new Map<string, SimToken>();
  private readonly repos = new Map<string, SimRepo>();
  /** Comment id → comment, across repositories. */
  readonly comments = new Map<number, SimComment>();
  /** Check run id → check run, across repositories. */
  readonly checkRuns = new Map<number, SimCheckRun>();
  /** org → team slug → login → role. */
  private readonly teams = new Map<string, Map<string, Map<string, "member" | "maintainer">>>();

  private constructor() {
    this.payloads = new PayloadBuilders(this);
    const add: AddRoute = (key, handler) => {
      if (!this.openapi.operation(key)) throw new Error(`simulator route ${key} is not in GitHub's OpenAPI description`);
      this.handlers.set(key, handler);
    };
    for (const register of [appRoutes, gitRoutes, checkRoutes, issueRoutes, pullRoutes, miscRoutes, searchRoutes]) register(add);
  }

  /** Starts a simulator on 127.0.0.1 and a free port. */
  static async start(): Promise<GitHubSimulator> {
    const sim = new GitHubSimulator();
    const server = createServer((req, res) => {
      sim.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.setHeader("content-type", "application/json; charset=utf-8");
        res.end(JSON.stringify({ message: `simulator error: ${err instanceof Error ? err.stack : String(err)}` }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    sim.server = server;
    sim.host = `127.0.0.1:${port}`;
    sim.url = `http://${sim.host}`;
    sim.apiUrl = `${sim.url}/api/v3`;
    return sim;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  }

  /** Returns the violations recorded so far and forgets them (for tests that provoke some on purpose). */
  takeViolations(): Violation[] {
    return this.violations.splice(0, this.violations.length);
  }

  newId(): number {
    this.idCounter += 1 + Math.floor(Math.random() * 7);
    return this.idCounter;
  }

  // ---------------------------------------------------------------- request handling

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const rawUrl = req.url ?? "/";
    const qi = rawUrl.indexOf("?");
    let rawPath = qi >= 0 ? rawUrl.slice(0, qi) : rawUrl;
    let base = this.url;
    if (rawPath === "/api/v3" || rawPath.startsWith("/api/v3/")) {
      rawPath = rawPath.slice("/api/v3".length) || "/";
      base = this.apiUrl;
    }
    const query = parseQuery(qi >= 0 ? rawUrl.slice(qi + 1) : "");
    const method = (req.method ?? "GET").toUpperCase();
    const path = safeDecode(rawPath);
    const bodyBuf = await readBody(req);
    const hasBody = bodyBuf.length > 0;
    let body: unknown;
    let jsonError = false;
    if (hasBody) {
      try {
        body = JSON.parse(bodyBuf.toString("utf8"));
      } catch {
        jsonError = true;
        body = bodyBuf.toString("utf8");
      }
    }
    const auth = this.authenticate(req.headers.authorization);
    const entry: LoggedRequest = {
      method,
      path,
      query,
      body,
      status: 0,
      auth: auth instanceof HttpError ? "invalid" : describeAuth(auth),
      at: Date.now(),
    };
    this.requests.push(entry);
    const verdict = this.limits.arrive(entry.auth, method, path, entry.at);
    try {
      await this.answer(req, res, { rawPath, base, query, method, path, body, hasBody, jsonError, auth, entry, verdict });
    } finally {
      this.limits.leave(entry.auth);
    }
  }

  private async answer(
    req: IncomingMessage,
    res: ServerResponse,
    r: {
      rawPath: string;
      base: string;
      query: Record<string, string | string[]>;
      method: string;
      path: string;
      body: unknown;
      hasBody: boolean;
      jsonError: boolean;
      auth: Auth | HttpError;
      entry: LoggedRequest;
      verdict: ReturnType<Limits["arrive"]>;
    },
  ): Promise<void> {
    const { rawPath, base, query, method, path, body, hasBody, jsonError, auth, entry } = r;
    const ifNoneMatch = method === "GET" ? req.headers["if-none-match"] : undefined;
    const send = (answer: Res): void => {
      entry.status = this.write(res, answer, entry.auth, typeof ifNoneMatch === "string" ? ifNoneMatch : undefined);
    };
    const sendError = (e: HttpError): void =>
      send({
        status: e.status,
        headers: e.headers,
        body: { message: e.message, documentation_url: DOCS, status: String(e.status), ...e.extra },
      });

    if (this.latencyMs > 0) await delay(this.latencyMs);
    if (r.verdict.refused) {
      send({
        status: 403,
        headers: { "retry-after": String(r.verdict.retryAfter) },
        body: { message: SECONDARY_LIMIT_MESSAGE, documentation_url: `${DOCS}/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits`, status: "403" },
      });
      return;
    }
    const fault = this.takeFault(method, path);
    if (fault) {
      send(fault);
      return;
    }
    // The OAuth web flow lives on the web host, not in the REST API (github.com/login/oauth/…).
    if (base === this.url) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
      const o = this.oauth.handle(method, path, q, body);
      if (o) {
        res.writeHead(o.status, { ...o.headers, "content-length": String(Buffer.byteLength(o.body)) });
        res.end(o.body);
        entry.status = o.status;
        return;
      }
    }
    const match = this.openapi.match(method, rawPath);
    if (!match) {
      this.violations.push({ kind: "unknown-route", method, path, message: `no ${method} ${path} in GitHub's REST API` });
      sendError(notFound());
      return;
    }
    const { op, params } = match;
    entry.operationId = op.operationId;
    const key = `${op.method.toUpperCase()} ${op.template}`;
    const handler = this.handlers.get(key);
    if (!handler) {
      this.violations.push({
        kind: "not-implemented",
        method,
        path,
        operationId: op.operationId,
        message: `the simulator does not implement ${key}`,
      });
      sendError(notFound());
      return;
    }
    if (jsonError) {
      this.violations.push({ kind: "invalid-json", method, path, operationId: op.operationId, message: "body is not JSON" });
      sendError(new HttpError(400, "Problems parsing JSON"));
      return;
    }
    if (auth instanceof HttpError) {
      sendError(auth);
      return;
    }
    const needsJwt = op.template === "/app" || op.template.startsWith("/app/") || op.template.endsWith("/installation");
    if (needsJwt && auth.kind !== "app") {
      sendError(
        new HttpError(
          401,
          auth.kind === "none"
            ? "A JSON web token could not be decoded"
            : "'Authorization' header is not a JSON web token: this endpoint needs the app's JWT",
        ),
      );
      return;
    }
    if (!needsJwt && auth.kind === "none") {
      sendError(new HttpError(401, "Requires authentication"));
      return;
    }
    if (!needsJwt && auth.kind === "app") {
      sendError(new HttpError(403, "A JSON web token authenticates only as the app: use an installation token here"));
      return;
    }
    const problems = this.openapi.validate(op, { params, query, body, hasBody });
    if (problems.length > 0) {
      for (const p of problems) {
        this.violations.push({ kind: p.where, method, path, operationId: op.operationId, message: p.message });
      }
      sendError(new HttpError(422, `Invalid request.\n\n${problems.map((p) => p.message).join("\n")}`));
      return;
    }
    const request: Req = { op, base, method, path, params, query, body, headers: req.headers, auth };
    try {
      const answer = await handler(request, this);
      const problem = answer.raw === undefined ? this.openapi.validateResponse(op, answer.status, answer.body) : undefined;
      if (problem) this.responseViolations.push({ kind: "response", method, path, operationId: op.operationId, message: problem });
      send(answer);
    } catch (err) {
      if (err instanceof HttpError) sendError(err);
      else throw err;
    }
  }

  /**
   * Writes an answer with GitHub's headers and returns its status: a GET answered 200 carries an
   * ETag, and one whose If-None-Match matches it is answered 304 without a body, not counted
   * against the primary limit (15,000 requests an hour, an installation's on GitHub Enterprise Cloud).
   */
  private write(res: ServerResponse, r: Res, authKey: string, ifNoneMatch?: string): number {
    let payload: string | Buffer | undefined;
    const headers: Record<string, string> = {};
    if (r.raw !== undefined) {
      payload = r.raw;
      headers["content-type"] = "application/vnd.github.raw; charset=utf-8";
    } else if (r.body !== undefined && r.status !== 204) {
      payload = JSON.stringify(r.body);
      headers["content-type"] = "application/json; charset=utf-8";
    }
    let status = r.status;
    const etag = ifNoneMatch !== undefined || status === 200 ? `"${createHash("sha1").update(payload ?? "").digest("hex")}"` : undefined;
    const notModified = ifNoneMatch !== undefined && status === 200 && ifNoneMatch === etag;
    const now = Date.now();
    let rate = this.rateUsed.get(authKey);
    if (!rate || rate.reset <= now) {
      rate = { used: 0, reset: now + 3_600_000 };
      this.rateUsed.set(authKey, rate);
    }
    if (notModified) {
      this.notModified++;
      status = 304;
      payload = undefined;
      delete headers["content-type"];
    } else {
      rate.used++;
    }
    Object.assign(
      headers,
      {
        "x-github-media-type": "github.v3; format=json",
        "x-github-api-version-selected": "2022-11-28",
        "x-github-request-id": randomUUID().toUpperCase(),
        "x-ratelimit-limit": "15000",
        "x-ratelimit-remaining": String(Math.max(0, 15_000 - rate.used)),
        "x-ratelimit-reset": String(Math.floor(rate.reset / 1000)),
        "x-ratelimit-used": String(rate.used),
        "x-ratelimit-resource": "core",
        ...(etag && r.status === 200 ? { etag } : {}),
      },
      r.headers,
    );
    res.writeHead(status, headers);
    res.end(payload);
    return status;
  }

  /**
   * Enforces GitHub's secondary limits from now on (limits.ts): `{}` for GitHub's own (80
   * content-creating requests a minute, 500 an hour, 100 in flight, a 60 s hold), or smaller
   * windows for a fast test; `undefined` stops enforcing them.
   */
  enforceLimits(config: LimitsConfig | undefined): void {
    this.limits.enforce(config);
  }

  private takeFault(method: string, path: string): Res | undefined {
    const i = this.faults.findIndex(
      (f) =>
        (!f.method || f.method.toUpperCase() === method) &&
        (!f.path || (typeof f.path === "string" ? path.includes(f.path) : f.path.test(path))),
    );
    if (i < 0) return undefined;
    const f = this.faults[i] as FailSpec & { remaining: number };
    f.remaining--;
    if (f.remaining <= 0) this.faults.splice(i, 1);
    const reset = String(Math.floor(Date.now() / 1000) + 1);
    const defaults: Record<string, string> =
      f.status === 403 || f.status === 429
        ? { "retry-after": "1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": reset }
        : {};
    const message =
      f.message ??
      (f.status === 403
        ? "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID."
        : f.status === 429
          ? "API rate limit exceeded. Please wait before you try again."
          : f.status >= 500
            ? "Server Error"
            : "Simulated failure");
    const headers: Record<string, string> = { ...defaults };
    for (const [k, v] of Object.entries(f.headers ?? {})) {
      if (v === null) delete headers[k];
      else headers[k] = v;
    }
    return {
      status: f.status,
      headers,
      body: f.body ?? { message, documentation_url: `${DOCS}/using-the-rest-api/rate-limits-for-the-rest-api`, status: String(f.status) },
    };
  }

  /**
   * Makes the next request(s) matching `method` and `path` fail with `status` (403/429 answer a
   * rate limit with `retry-after: 1`, `x-ratelimit-remaining: 0` and `x-ratelimit-reset` unless
   * `headers` says otherwise).
   */
  failNext(spec: FailSpec): void {
    this.faults.push({ ...spec, remaining: spec.times ?? 1 });
  }

  private authenticate(header: string | undefined): Auth | HttpError {
    if (!header) return { kind: "none" };
    const m = /^(token|bearer)\s+(\S+)$/i.exec(header.trim());
    if (!m) return new HttpError(401, "Bad credentials");
    const value = m[2] as string;
    const token = this.tokens.get(value);
    if (token?.kind === "installation") {
      if (token.expiresAt <= Date.now()) return new HttpError(401, "Bad credentials");
      const installation = this.installations.get(token.installationId);
      if (!installation) return new HttpError(401, "Bad credentials");
      return { kind: "installation", installation, app: this.app(installation.appId), token };
    }
    if (token?.kind === "user") return { kind: "user", user: this.user(token.login) };
    if (looksLikeJwt(value)) {
      const keys = new Map<string, KeyObject>([...this.apps.values()].map((a) => [String(a.id), a.publicKey]));
      const check = verifyAppJwt(value, keys);
      if (!check.ok) return new HttpError(401, check.message);
      return { kind: "app", app: this.app(Number(check.appId)) };
    }
    return new HttpError(401, "Bad credentials");
  }

  // ---------------------------------------------------------------- helpers for route handlers

  /** The repository a request names, if its credentials may see it (else 404, as GitHub answers). */
  repoFor(req: Req): SimRepo {
    const repo = this.findRepo(`${req.params.owner}/${req.params.repo}`);
    if (!repo || !this.canSee(req.auth, repo)) throw notFound();
    return repo;
  }

  canSee(auth: Auth, repo: SimRepo): boolean {
    // A person sees public repositories and the ones they have a role on, as on GitHub.
    if (auth.kind === "user") return !repo.private || repo.owner.toLowerCase() === auth.user.login.toLowerCase() || (repo.permissions.get(auth.user.login) ?? "none") !== "none";
    if (auth.kind !== "installation") return false;
    const inst = auth.installation;
    if (inst.account.toLowerCase() !== repo.owner.toLowerCase()) return false;
    if (inst.repositorySelection === "selected" && !inst.repositories.has(repo.fullName.toLowerCase())) return false;
    if (auth.token.repositories && !auth.token.repositories.has(repo.fullName.toLowerCase())) return false;
    return true;
  }

  /** The login a request acts as: the app's bot for an installation token, else the token's user. */
  actor(req: Req): string {
    if (req.auth.kind === "installation") return req.auth.app.bot.login;
    if (req.auth.kind === "user") return req.auth.user.login;
    if (req.auth.kind === "app") return req.auth.app.bot.login;
    throw new HttpError(401, "Requires authentication");
  }

  /** One page of a list, with GitHub's Link header. */
  paginate<T>(req: Req, items: T[]): { items: T[]; headers: Record<string, string> } {
    const perPage = Math.min(100, Math.max(1, Number(first(req.query.per_page) ?? 30) || 30));
    const page = Math.max(1, Number(first(req.query.page) ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const slice = items.slice((page - 1) * perPage, page * perPage);
    const link = (p: number, rel: string): string => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(req.query)) if (k !== "page") for (const x of [v].flat()) q.append(k, x);
      q.set("page", String(p));
      return `<${req.base}${req.path.split("/").map(encodeURIComponent).join("/")}?${q.toString()}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (page > 1) links.push(link(page - 1, "prev"), link(1, "first"));
    if (page < last) links.push(link(page + 1, "next"), link(last, "last"));
    return { items: slice, headers: links.length > 0 ? { link: links.join(", ") } : {} };
  }

  // ---------------------------------------------------------------- users, apps, installations, tokens

  /** Adds (or updates) a user, bot or organization. */
  addUser(login: string, opts: { type?: SimUser["type"]; name?: string; email?: string; siteAdmin?: boolean } = {}): SimUser {
    const existing = this.users.get(login.toLowerCase());
    const u: SimUser = {
      id: existing?.id ?? this.newId(),
      login,
      type: opts.type ?? existing?.type ?? (login.endsWith("[bot]") ? "Bot" : "User"),
      name: opts.name ?? existing?.name ?? null,
      email: opts.email ?? existing?.email ?? null,
      siteAdmin: opts.siteAdmin ?? existing?.siteAdmin ?? false,
    };
    this.users.set(login.toLowerCase(), u);
    return u;
  }

  addOrg(login: string): SimUser {
    return this.addUser(login, { type: "Organization" });
  }

  findUser(login: string): SimUser | undefined {
    return this.users.get(login.toLowerCase());
  }

  /** The user with this login, created as a plain user on first mention. */
  user(login: string): SimUser {
    return this.findUser(login) ?? this.addUser(login);
  }

  /** Registers a GitHub App; the simulator checks its JWTs against `publicKey`. */
  addApp(opts: {
    id?: number;
    slug?: string;
    name?: string;
    owner?: string;
    publicKey: string | KeyObject;
    permissions?: Record<string, string>;
    events?: string[];
  }): SimApp {
    const id = opts.id ?? this.newId();
    const slug = opts.slug ?? "sluice";
    const owner = opts.owner ?? "acme";
    if (!this.findUser(owner)) this.addOrg(owner);
    const app: SimApp = {
      id,
      slug,
      name: opts.name ?? slug,
      owner,
      publicKey: toPublicKey(opts.publicKey),
      bot: this.addUser(`${slug}[bot]`, { type: "Bot" }),
      permissions: opts.permissions ?? {
        checks: "write",
        contents: "write",
        issues: "write",
        pull_requests: "write",
        actions: "write",
        members: "read",
        metadata: "read",
      },
      events: opts.events ?? ["check_run", "issue_comment", "issues", "pull_request", "pull_request_review", "push"],
      createdAt: isoNow(),
    };
    this.apps.set(id, app);
    return app;
  }

  findApp(id: number): SimApp | undefined {
    return this.apps.get(id);
  }

  app(id: number): SimApp {
    const a = this.apps.get(id);
    if (!a) throw new Error(`no app ${id}`);
    return a;
  }

  /** Installs an app on an account: all its repositories, or only `repositories` ("owner/name"). */
  addInstallation(opts: { id?: number; appId: number; account: string; repositories?: string[] }): SimInstallation {
    this.app(opts.appId);
    if (!this.findUser(opts.account)) this.addOrg(opts.account);
    const inst: SimInstallation = {
      id: opts.id ?? this.newId(),
      appId: opts.appId,
      account: opts.account,
      repositorySelection: opts.repositories ? "selected" : "all",
      repositories: new Set((opts.repositories ?? []).map((r) => r.toLowerCase())),
      createdAt: isoNow(),
    };
    this.installations.set(inst.id, inst);
    return inst;
  }

  findInstallation(id: number): SimInstallation | undefined {
    return this.installations.get(id);
  }

  installationsOf(appId: number): SimInstallation[] {
    return [...this.installations.values()].filter((i) => i.appId === appId);
  }

  /** The first installation whose repositories include `repo`. */
  installationFor(repo: string): SimInstallation | undefined {
    const r = this.repo(repo);
    return [...this.installations.values()].find(
      (i) =>
        i.account.toLowerCase() === r.owner.toLowerCase() &&
        (i.repositorySelection === "all" || i.repositories.has(r.fullName.toLowerCase())),
    );
  }

  /** Issues an installation token (what POST /app/installations/{id}/access_tokens does). */
  createInstallationToken(installationId: number, repositories?: string[]): { token: string; expiresAt: string } {
    if (!this.installations.has(installationId)) throw notFound();
    const token = `ghs_${randomBytes(18).toString("hex")}`;
    const expiresAt = Date.now() + 3600_000;
    this.tokens.set(token, {
      kind: "installation",
      token,
      installationId,
      expiresAt,
      ...(repositories ? { repositories: new Set(repositories.map((r) => r.toLowerCase())) } : {}),
    });
    return { token, expiresAt: isoNow(expiresAt) };
  }

  /** A token acting as a user (a personal access token), e.g. for `sluice` in local mode. */
  createUserToken(login: string): string {
    this.user(login);
    const token = `ghp_${randomBytes(18).toString("hex")}`;
    this.tokens.set(token, { kind: "user", token, login });
    return token;
  }

  /** Gives `login` a permission on a repository (what the collaborator permission endpoint reports). */
  setPermission(repo: string, login: string, permission: Permission): void {
    this.user(login);
    this.repo(repo).permissions.set(login, permission);
  }

  addTeamMember(org: string, team: string, login: string, role: "member" | "maintainer" = "member"): void {
    if (!this.findUser(org)) this.addOrg(org);
    this.user(login);
    const teams = this.teams.get(org.toLowerCase()) ?? new Map<string, Map<string, "member" | "maintainer">>();
    this.teams.set(org.toLowerCase(), teams);
    const members = teams.get(team.toLowerCase()) ?? new Map<string, "member" | "maintainer">();
    teams.set(team.toLowerCase(), members);
    members.set(login.toLowerCase(), role);
  }

  teamMembers(org: string, team: string): Map<string, "member" | "maintainer"> | undefined {
    return this.teams.get(org.toLowerCase())?.get(team.toLowerCase());
  }

  // ---------------------------------------------------------------- repositories and git

  /**
   * Creates a repository with a first commit on its default branch (`files`, or a README).
   * The owner is created as an organization if unknown.
   */
  createRepo(
    fullName: string,
    opts: { defaultBranch?: string; private?: boolean; description?: string; files?: Record<string, FileInput>; message?: string } = {},
  ): SimRepo {
    const [owner, name] = fullName.split("/");
    if (!owner || !name) throw new Error(`repository names are owner/name, not '${fullName}'`);
    if (this.repos.has(fullName.toLowerCase())) throw new Error(`repository ${fullName} exists`);
    if (!this.findUser(owner)) this.addOrg(owner);
    const now = isoNow();
    const id = this.newId();
    const repo: SimRepo = {
      id,
      nodeId: nodeId("Repository", id),
      owner,
      name,
      fullName,
      private: opts.private ?? false,
      description: opts.description ?? null,
      defaultBranch: opts.defaultBranch ?? "main",
      createdAt: now,
      updatedAt: now,
      pushedAt: now,
      git: new ObjectStore(),
      refs: new Map(),
      permissions: new Map(),
      labels: new Map(),
      issues: new Map(),
      nextNumber: 1,
    };
    this.repos.set(fullName.toLowerCase(), repo);
    this.pushCommit(fullName, repo.defaultBranch, opts.files ?? { "README.md": `# ${name}\n` }, {
      message: opts.message ?? "Initial commit",
      author: owner,
    });
    return repo;
  }

  findRepo(fullName: string): SimRepo | undefined {
    return this.repos.get(fullName.toLowerCase());
  }

  repo(fullName: string): SimRepo {
    const r = this.findRepo(fullName);
    if (!r) throw new Error(`no repository ${fullName}`);
    return r;
  }

  allRepos(): SimRepo[] {
    return [...this.repos.values()];
  }

  person(login: string, date = isoNow()): GitPerson {
    const u = this.user(login);
    return { name: u.login, email: u.email ?? `${u.id}+${u.login}@users.noreply.github.com`, date };
  }

  /**
   * Commits `files` (path → content; null deletes) on top of `branch` and moves the branch. A new
   * branch starts from `from` (a branch or SHA; default: the default branch). Returns the new
   * commit's SHA and the branch's previous SHA (all zeros for a new branch).
   */
  pushCommit(
    repoName: string,
    branch: string,
    files: Record<string, FileInput>,
    opts: { message?: string; author?: string; from?: string } = {},
  ): { sha: string; before: string } {
    const repo = this.repo(repoName);
    const ref = `refs/heads/${branch}`;
    const current = repo.refs.get(ref);
    const parent = current ?? (repo.refs.size === 0 ? undefined : this.resolveRef(repoName, opts.from ?? repo.defaultBranch));
    if (repo.refs.size > 0 && !current && !parent) throw new Error(`cannot start ${branch} from ${opts.from}`);
    const flat: FlatTree = parent ? repo.git.flatten(repo.git.commit(parent)?.tree ?? "") : new Map();
    for (const [path, content] of Object.entries(files)) {
      if (content === null) flat.delete(path);
      else flat.set(path, { mode: "100644", type: "blob", sha: repo.git.writeBlob(content) });
    }
    const person = this.person(opts.author ?? repo.owner);
    const sha = repo.git.writeCommit({
      tree: repo.git.buildTree(flat),
      parents: parent ? [parent] : [],
      author: person,
      committer: person,
      message: opts.message ?? `Update ${Object.keys(files).join(", ")}`,
    });
    this.setRef(repoName, ref, sha);
    repo.pushedAt = isoNow();
    return { sha, before: current ?? "0".repeat(40) };
  }

  /** Creates a branch at `from` (a branch, tag or SHA; default: the default branch's head). */
  createBranch(repoName: string, branch: string, from?: string): string {
    const repo = this.repo(repoName);
    const sha = this.resolveRef(repoName, from ?? repo.defaultBranch);
    if (!sha) throw new Error(`cannot resolve ${from}`);
    this.setRef(repoName, `refs/heads/${branch}`, sha);
    return sha;
  }

  /** Sets (or, with undefined, deletes) a full ref, keeping open pull requests' head SHAs current. */
  setRef(repoName: string, ref: string, sha: string | undefined): void {
    const repo = this.repo(repoName);
    if (sha === undefined) repo.refs.delete(ref);
    else repo.refs.set(ref, sha);
    if (sha !== undefined && ref.startsWith("refs/heads/")) {
      const branch = ref.slice("refs/heads/".length);
      for (const r of this.repos.values()) {
        for (const issue of r.issues.values()) {
          const p = issue.pull;
          if (p && issue.state === "open" && p.headRef === branch && p.headRepo.toLowerCase() === repo.fullName.toLowerCase()) {
            p.headSha = sha;
          }
        }
      }
    }
  }

  branchSha(repoName: string, branch: string): string | undefined {
    return this.repo(repoName).refs.get(`refs/heads/${branch}`);
  }

  /** A commit SHA for a branch, tag, full ref, SHA or abbreviated SHA. */
  resolveRef(repoName: string, ref: string): string | undefined {
    const repo = this.repo(repoName);
    const r = ref.replace(/^refs\//, "");
    for (const candidate of [`refs/${r}`, `refs/heads/${r}`, `refs/tags/${r}`]) {
      const sha = repo.refs.get(candidate);
      if (sha) return sha;
    }
    const sha = repo.git.expand(ref.toLowerCase());
    return sha && repo.git.commit(sha) ? sha : undefined;
  }

  /** A file's text at a ref, or undefined. */
  readFile(repoName: string, ref: string, path: string): string | undefined {
    const repo = this.repo(repoName);
    const sha = this.resolveRef(repoName, ref);
    const commit = sha ? repo.git.commit(sha) : undefined;
    if (!commit) return undefined;
    const entry = repo.git.flatten(commit.tree).get(path);
    return entry ? repo.git.blob(entry.sha)?.toString("utf8") : undefined;
  }

  flatAt(repo: SimRepo, sha: string): FlatTree {
    const c = repo.git.commit(sha);
    return c ? repo.git.flatten(c.tree) : new Map();
  }

  // ---------------------------------------------------------------- issues, pull requests, comments

  createIssue(
    repoName: string,
    opts: { title: string; body?: string | null; user?: string; labels?: string[]; assignees?: string[] },
  ): SimIssue {
    const repo = this.repo(repoName);
    const now = isoNow();
    const id = this.newId();
    for (const l of opts.labels ?? []) this.ensureLabel(repo, l);
    const issue: SimIssue = {
      id,
      nodeId: nodeId("Issue", id),
      number: repo.nextNumber++,
      title: opts.title,
      body: opts.body ?? null,
      user: this.user(opts.user ?? repo.owner).login,
      state: "open",
      stateReason: null,
      labels: [...new Set(opts.labels ?? [])],
      assignees: [...new Set(opts.assignees ?? [])],
      locked: false,
      createdAt: now,
      updatedAt: now,
      closedAt: null,
      closedBy: null,
      reactions: [],
    };
    repo.issues.set(issue.number, issue);
    return issue;
  }

  ensureLabel(repo: SimRepo, name: string): void {
    if ([...repo.labels.keys()].some((k) => k.toLowerCase() === name.toLowerCase())) return;
    const id = this.newId();
    repo.labels.set(name, {
      id,
      nodeId: nodeId("Label", id),
      name,
      color: "ededed",
      description: null,
      isDefault: false,
    });
  }

  /** Opens a pull request, with GitHub's checks (branches exist, no duplicate, commits between). */
  createPullRequest(
    repoName: string,
    opts: { head: string; base?: string; title: string; body?: string | null; user?: string; draft?: boolean; maintainerCanModify?: boolean },
  ): SimIssue {
    const repo = this.repo(repoName);
    const base = opts.base ?? repo.defaultBranch;
    const [headOwner, headBranch] = opts.head.includes(":") ? (opts.head.split(":", 2) as [string, string]) : [repo.owner, opts.head];
    // Pull requests from forks are not simulated: the head is a branch of the same repository.
    const headRepo = headOwner.toLowerCase() === repo.owner.toLowerCase() ? repo : undefined;
    const baseSha = this.branchSha(repoName, base);
    if (!baseSha) throw validationFailed("PullRequest", `base: ${base} does not exist`, "invalid", "base");
    const headSha = headRepo ? this.branchSha(headRepo.fullName, headBranch) : undefined;
    if (!headRepo || !headSha) throw validationFailed("PullRequest", `head: ${opts.head} does not exist`, "invalid", "head");
    const dup = [...repo.issues.values()].find(
      (i) => i.pull && i.state === "open" && i.pull.headRef === headBranch && i.pull.baseRef === base && i.pull.headRepo.toLowerCase() === headRepo.fullName.toLowerCase(),
    );
    if (dup) throw validationFailed("PullRequest", `A pull request already exists for ${headRepo.owner}:${headBranch}.`);
    if (repo.git.commitsBetween(baseSha, headSha).length === 0) {
      throw validationFailed("PullRequest", `No commits between ${base} and ${headBranch}`);
    }
    const issue = this.createIssue(repoName, { title: opts.title, body: opts.body ?? null, user: opts.user ?? repo.owner });
    const id = this.newId();
    issue.pull = {
      id,
      nodeId: nodeId("PullRequest", id),
      headRef: headBranch,
      headRepo: headRepo.fullName,
      headSha,
      baseRef: base,
      draft: opts.draft ?? false,
      merged: false,
      mergedAt: null,
      mergedBy: null,
      mergeCommitSha: null,
      mergeableOverride: null,
      frozenMergeBase: null,
      reviews: [],
      maintainerCanModify: opts.maintainerCanModify ?? false,
    };
    return issue;
  }

  issue(repoName: string, number: number): SimIssue {
    const i = this.repo(repoName).issues.get(number);
    if (!i) throw new Error(`no issue #${number} in ${repoName}`);
    return i;
  }

  pull(repoName: string, number: number): SimIssue & { pull: NonNullable<SimIssue["pull"]> } {
    const i = this.issue(repoName, number);
    if (!i.pull) throw new Error(`#${number} in ${repoName} is not a pull request`);
    return i as SimIssue & { pull: NonNullable<SimIssue["pull"]> };
  }

  /** Forces a pull request's mergeability (null: computed from a three-way merge of the trees). */
  setMergeable(repoName: string, number: number, mergeable: boolean | null): void {
    this.pull(repoName, number).pull.mergeableOverride = mergeable;
  }

  mergeBaseOf(repoName: string, number: number): string | undefined {
    const i = this.pull(repoName, number);
    if (i.pull.frozenMergeBase) return i.pull.frozenMergeBase;
    const repo = this.repo(repoName);
    const baseSha = this.branchSha(repoName, i.pull.baseRef);
    return baseSha ? repo.git.mergeBase(baseSha, i.pull.headSha) : undefined;
  }

  pullFiles(repoName: string, number: number): FileChange[] {
    const repo = this.repo(repoName);
    const i = this.pull(repoName, number);
    const mb = this.mergeBaseOf(repoName, number);
    return diffTrees(repo.git, mb ? this.flatAt(repo, mb) : new Map(), this.flatAt(repo, i.pull.headSha));
  }

  pullCommits(repoName: string, number: number): string[] {
    const repo = this.repo(repoName);
    const i = this.pull(repoName, number);
    return repo.git.commitsBetween(this.mergeBaseOf(repoName, number), i.pull.headSha);
  }

  /** The merged tree of a pull request, or undefined when base and head conflict. */
  mergedTree(repoName: string, number: number): FlatTree | undefined {
    const repo = this.repo(repoName);
    const i = this.pull(repoName, number);
    const baseSha = this.branchSha(repoName, i.pull.baseRef);
    if (!baseSha) return undefined;
    const mb = repo.git.mergeBase(baseSha, i.pull.headSha);
    const b = mb ? this.flatAt(repo, mb) : new Map();
    const ours = this.flatAt(repo, baseSha);
    const theirs = this.flatAt(repo, i.pull.headSha);
    const out: FlatTree = new Map();
    const same = (x?: { sha: string; mode: string }, y?: { sha: string; mode: string }): boolean =>
      (!x && !y) || (!!x && !!y && x.sha === y.sha && x.mode === y.mode);
    for (const path of new Set([...b.keys(), ...ours.keys(), ...theirs.keys()])) {
      const o = ours.get(path);
      const t = theirs.get(path);
      const bb = b.get(path);
      let pick;
      if (same(o, t)) pick = o;
      else if (same(o, bb)) pick = t;
      else if (same(t, bb)) pick = o;
      else return undefined;
      if (pick) out.set(path, pick);
    }
    return out;
  }

  mergeable(repoName: string, number: number): boolean {
    const i = this.pull(repoName, number);
    if (i.pull.mergeableOverride !== null) return i.pull.mergeableOverride;
    return this.mergedTree(repoName, number) !== undefined;
  }

  /** Merges a pull request as PUT .../pulls/{n}/merge does; throws the HttpError GitHub would answer. */
  mergePullRequest(
    repoName: string,
    number: number,
    opts: { method?: "merge" | "squash" | "rebase"; user?: string; sha?: string; commitTitle?: string; commitMessage?: string } = {},
  ): { sha: string } {
    const repo = this.repo(repoName);
    const i = this.pull(repoName, number);
    const p = i.pull;
    if (p.merged || i.state === "closed") throw new HttpError(405, "Pull Request is not mergeable");
    if (p.draft) throw new HttpError(405, "Pull Request is still a draft");
    if (opts.sha && opts.sha !== p.headSha) throw new HttpError(409, "Head branch was modified. Review and try the merge again.");
    const merged = p.mergeableOverride === false ? undefined : this.mergedTree(repoName, number);
    if (!merged) throw new HttpError(405, "Pull Request is not mergeable");
    const baseSha = this.branchSha(repoName, p.baseRef) as string;
    const mergeBase = repo.git.mergeBase(baseSha, p.headSha) ?? null;
    const user = opts.user ?? repo.owner;
    const person = this.person(user);
    const method = opts.method ?? "merge";
    const tree = repo.git.buildTree(merged);
    let sha: string;
    if (method === "merge") {
      sha = repo.git.writeCommit({
        tree,
        parents: [baseSha, p.headSha],
        author: person,
        committer: person,
        message: `${opts.commitTitle ?? `Merge pull request #${number} from ${p.headRepo.split("/")[0]}/${p.headRef}`}\n\n${opts.commitMessage ?? i.title}`,
      });
    } else if (method === "squash") {
      sha = repo.git.writeCommit({
        tree,
        parents: [baseSha],
        author: person,
        committer: person,
        message: `${opts.commitTitle ?? `${i.title} (#${number})`}${opts.commitMessage ? `\n\n${opts.commitMessage}` : ""}`,
      });
    } else {
      // Rebase: replay each commit of the PR onto the base, in order.
      let parent = baseSha;
      let flat = this.flatAt(repo, baseSha);
      for (const c of repo.git.commitsBetween(mergeBase ?? undefined, p.headSha)) {
        const commit = repo.git.commit(c);
        if (!commit) continue;
        const before = commit.parents[0] ? this.flatAt(repo, commit.parents[0]) : new Map();
        const after = repo.git.flatten(commit.tree);
        for (const path of new Set([...before.keys(), ...after.keys()])) {
          const x = before.get(path);
          const y = after.get(path);
          if (x?.sha === y?.sha) continue;
          if (y) flat.set(path, y);
          else flat.delete(path);
        }
        flat = new Map(flat);
        parent = repo.git.writeCommit({
          tree: repo.git.buildTree(flat),
          parents: [parent],
          author: commit.author,
          committer: person,
          message: commit.message,
        });
      }
      sha = parent;
    }
    this.setRef(repoName, `refs/heads/${p.baseRef}`, sha);
    const now = isoNow();
    p.frozenMergeBase = mergeBase;
    p.merged = true;
    p.mergedAt = now;
    p.mergedBy = user;
    p.mergeCommitSha = sha;
    i.state = "closed";
    i.closedAt = now;
    i.updatedAt = now;
    return { sha };
  }

  addComment(repoName: string, issue: number, opts: { user: string; body: string }): SimComment {
    const repo = this.repo(repoName);
    const i = this.issue(repoName, issue);
    const now = isoNow();
    const id = this.newId();
    const c: SimComment = {
      id,
      nodeId: nodeId("IssueComment", id),
      repo: repo.fullName,
      issueNumber: issue,
      user: this.user(opts.user).login,
      body: opts.body,
      createdAt: now,
      updatedAt: now,
      reactions: [],
    };
    this.comments.set(id, c);
    i.updatedAt = now;
    return c;
  }

  commentsOf(repoName: string, issue: number): SimComment[] {
    return [...this.comments.values()].filter(
      (c) => c.repo.toLowerCase() === repoName.toLowerCase() && c.issueNumber === issue,
    );
  }

  /** Records a submitted review (state: APPROVED, CHANGES_REQUESTED, COMMENTED; lower case accepted). */
  addReview(repoName: string, number: number, opts: { user: string; state: string; body?: string; commitId?: string }): SimReview {
    const i = this.pull(repoName, number);
    const id = this.newId();
    const r: SimReview = {
      id,
      nodeId: nodeId("PullRequestReview", id),
      user: this.user(opts.user).login,
      body: opts.body ?? "",
      state: opts.state.toUpperCase() as ReviewState,
      commitId: opts.commitId ?? i.pull.headSha,
      submittedAt: isoNow(),
    };
    i.pull.reviews.push(r);
    return r;
  }

  /** Check runs on a repository, optionally on one head SHA, oldest first. */
  checkRunsOf(repoName: string, headSha?: string): SimCheckRun[] {
    return [...this.checkRuns.values()].filter(
      (r) => r.repo.toLowerCase() === repoName.toLowerCase() && (!headSha || r.headSha === headSha),
    );
  }

  recordDispatch(d: WorkflowDispatch): void {
    this.dispatches.push(d);
  }

  // ---------------------------------------------------------------- webhooks

  /**
   * POSTs a webhook signed like GitHub signs them (X-Hub-Signature-256, X-GitHub-Event,
   * X-GitHub-Delivery). `forge: true` signs with a wrong secret.
   */
  sendWebhook(url: string, event: string, payload: unknown, opts: SendWebhookOptions): Promise<WebhookResult> {
    return sendWebhook(url, event, payload, opts);
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function queryValue(req: Req, name: string): string | undefined {
  return first(req.query[name]);
}

function describeAuth(auth: Auth): string {
  switch (auth.kind) {
    case "none":
      return "none";
    case "app":
      return "app";
    case "installation":
      return `installation:${auth.installation.id}`;
    case "user":
      return `user:${auth.user.login}`;
  }
}
