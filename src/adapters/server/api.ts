/**
 * The HTTP API, `/api/v1` (SPEC §7): what the CLI does, over HTTP, with bearer tokens. Every
 * answer is the sluice/v1 envelope the CLI prints for the same command (schemas/cli/), made by
 * the CLI's own command functions, so the two cannot drift; `API_ROUTES` is the table that
 * serves them and that api-openapi.ts documents (a test holds the two together).
 *
 * Who may do what: any token reads and completes callbacks; an agent's also starts runs. A
 * person's token acts as its login: it starts, cancels and retries runs and sets kv with write
 * access to the repository (as the same commands in comments), and decides gates through
 * `decideGate` (eligibility with the person's permission and teams as GitHub says them now,
 * place, digest; `via: "api"`). An agent's token
 * never decides: its attempt is journaled as a refused decision like any other. A token limited
 * to a repository reaches only that repository: any other run answers as a missing one.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { LoadedRelease } from "../../app/releases.js";
import { runSummary } from "../../app/run-summary.js";
import type { Runtime } from "../../app/runtime.js";
import { decideGate, openGates } from "../../app/signals.js";
import type { ApprovalSignal, Release } from "../../core/engine/events.js";
import { teamsAsked } from "../../core/engine/gates.js";
import { SluiceError } from "../../core/errors.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { Config, Flow } from "../../core/flow/types.js";
import { RUN_STATUSES, type RunRecord, type RunStatus, type RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { flowsReport, kvReport, resourceReport, schemasDir } from "../cli/data.js";
import { envelope as envelopeOf, EXIT, type Io, type Report } from "../cli/output.js";
import { callbackCommand, driveRun, gatesExplain, gatesList, runsCancel, runsEvents, runsRetry, runsShow } from "../cli/runs.js";
import { resourceRefsOf, runPageUrl } from "../github/check-run-summary.js";
import { atLeast } from "../github/people.js";
import {
  envelope,
  errorOf,
  httpStatusFor,
  MAX_CALLBACK_BYTES,
  methodNotAllowed,
  readBody,
  requestUrl,
  safeDecode,
  send,
  sendEnvelopeError,
  sendJson,
  UNAUTHORIZED_MESSAGE,
  type RouteHandler,
} from "./api-http.js";
import { buildOpenApi } from "./api-openapi.js";
import { tokenCredential, type Credential } from "./auth.js";

type Token = Extract<Credential, { kind: "token" }>;

/** What GitHub says of a person now: a decision's eligibility rests on it. */
export interface PersonFacts {
  is_bot: boolean;
  permission: NonNullable<ApprovalSignal["permission"]>;
  teams: string[];
}

/** What the API needs from GitHub: flows at a ref, and people. Absent on a server without the app's credentials. */
export interface ApiGitHub {
  /** The flows of a repository at a ref (the live release without one), with the default branch's config. */
  flows(repo: string, ref: string | undefined): Promise<LoadedRelease>;
  /** One flow to start, as `flows` reads it. */
  flow(repo: string, name: string, ref: string | undefined): Promise<{ flow: Flow; config: Config; release: Release }>;
  person(repo: string, login: string, teams: readonly string[]): Promise<PersonFacts>;
}

export interface ApiOptions {
  runtime: Runtime;
  store: RunStore;
  /** The server's public base URL: run pages. */
  publicUrl: string;
  logger: Logger;
  github?: ApiGitHub;
}

/** What a token of each kind may do. */
type Access = "read" | "start" | "callback" | "control" | "decide";

export interface ApiRoute {
  method: "GET" | "POST" | "PUT";
  /** The path as OpenAPI writes it (`/api/v1/runs/{id}`). */
  path: string;
  /** The envelope's kind. */
  kind: string;
  access: Access | "open";
}

/** Every route the API serves: api-openapi.ts documents each. */
export const API_ROUTES: readonly ApiRoute[] = [
  { method: "GET", path: "/api/v1/openapi.json", kind: "OpenApi", access: "open" },
  { method: "GET", path: "/api/v1/runs", kind: "RunList", access: "read" },
  { method: "POST", path: "/api/v1/runs", kind: "Run", access: "start" },
  { method: "GET", path: "/api/v1/runs/{id}", kind: "Run", access: "read" },
  { method: "GET", path: "/api/v1/runs/{id}/events", kind: "EventList", access: "read" },
  { method: "POST", path: "/api/v1/runs/{id}/cancel", kind: "Run", access: "control" },
  { method: "POST", path: "/api/v1/runs/{id}/retry", kind: "Run", access: "control" },
  { method: "GET", path: "/api/v1/runs/{id}/gates", kind: "GateExplanation", access: "read" },
  { method: "POST", path: "/api/v1/runs/{id}/approve", kind: "Run", access: "decide" },
  { method: "POST", path: "/api/v1/runs/{id}/reject", kind: "Run", access: "decide" },
  { method: "POST", path: "/api/v1/runs/{id}/callbacks/{step}", kind: "Run", access: "callback" },
  { method: "GET", path: "/api/v1/gates", kind: "GateList", access: "read" },
  { method: "GET", path: "/api/v1/flows", kind: "FlowList", access: "read" },
  { method: "GET", path: "/api/v1/resources/{hex}", kind: "Resource", access: "read" },
  { method: "GET", path: "/api/v1/kv", kind: "KvList", access: "read" },
  { method: "GET", path: "/api/v1/kv/{key}", kind: "KvEntry", access: "read" },
  { method: "PUT", path: "/api/v1/kv/{key}", kind: "KvEntry", access: "control" },
];

const RUN_ID = /^[A-Za-z0-9_-]{1,128}$/;
const REPO = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;
const MAX_LIST = 1000;

/** Each route's path as a pattern, with its parameters' names. */
const PATTERNS = [...new Set(API_ROUTES.map((r) => r.path))].map((template) => {
  const names: string[] = [];
  const re = new RegExp(`^${template.replace(/[.]/g, "\\.").replace(/\{(\w+)\}/g, (_, n: string) => (names.push(n), "([^/]+)"))}/?$`);
  return { template, re, names };
});

/** A path's route template and its parameters, when it is one of the API's paths. */
function matchPath(path: string): { template: string; params: Record<string, string> } | undefined {
  for (const { template, re, names } of PATTERNS) {
    const m = re.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    // A parameter that does not decode is looked up as it is (and found nowhere).
    for (const [i, n] of names.entries()) params[n] = safeDecode(m[i + 1]!) ?? m[i + 1]!;
    return { template, params };
  }
  return undefined;
}

let openApiText: string | undefined;
/** The OpenAPI document, made once, with the CLI schemas of schemas/ (found as the CLI finds them). */
function openApiDocument(): string {
  openApiText ??= JSON.stringify(buildOpenApi(schemasDir())) + "\n";
  return openApiText;
}

/** A quiet terminal for the CLI's command functions: the API keeps their reports, never their text. */
const QUIET: Io = { stdout: () => {}, stderr: () => {}, isTTY: false, colour: false, env: {}, cwd: "/" };

export function createApi(opts: ApiOptions): RouteHandler {
  const { runtime: rt, store, logger } = opts;
  const base = opts.publicUrl.replace(/\/+$/, "");

  function github(): ApiGitHub {
    if (!opts.github) throw new SluiceError("GITHUB_UNAVAILABLE", "this server has no GitHub App credentials, so it reads no flows from GitHub: set APP_ID, PRIVATE_KEY and WEBHOOK_SECRET");
    return opts.github;
  }

  /** The run as the token may reach it: another repository's run is as absent as one that never existed. */
  async function reach(cred: Token, id: string): Promise<RunRecord> {
    const record = RUN_ID.test(id) ? await store.getRun(id) : undefined;
    if (!record || (cred.repo !== null && cred.repo !== record.repo)) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { run: id });
    return record;
  }

  /** The repository a request is about: the token's own, or the one asked for (?repo=, "repo" in a body). */
  function repoOf(cred: Token, asked: string | null | undefined): string {
    if (asked !== null && asked !== undefined && asked !== "" && !REPO.test(asked)) throw new SluiceError("USAGE", `repo takes a repository as owner/name, not '${asked}'`);
    if (cred.repo !== null) {
      if (asked && asked.toLowerCase() !== cred.repo.toLowerCase()) throw new SluiceError("NOT_FOUND", `no repository '${asked}'`, { repo: asked });
      return cred.repo;
    }
    if (!asked) throw new SluiceError("USAGE", "name the repository (repo=owner/name): this token reaches every repository");
    return asked;
  }

  function onlyParams(q: URLSearchParams, known: string[]): void {
    for (const key of q.keys()) {
      if (!known.includes(key)) throw new SluiceError("USAGE", `unknown query parameter '${key}' (known: ${known.join(", ") || "none"})`);
    }
  }

  async function jsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const raw = await readBody(req, MAX_CALLBACK_BYTES);
    if (raw === undefined) throw new SluiceError("OUTPUT_TOO_LARGE", `the request body is larger than ${MAX_CALLBACK_BYTES} bytes`);
    const text = raw.toString("utf8");
    if (text.trim() === "") return {};
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new SluiceError("USAGE", `the request body is not JSON: ${errorOf(e).message}`);
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw new SluiceError("USAGE", "the request body must be a JSON object");
    return body as Record<string, unknown>;
  }

  function optString(body: Record<string, unknown>, key: string): string | undefined {
    const v = body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw new SluiceError("USAGE", `'${key}' must be a string`);
    return v;
  }

  function onlyFields(body: Record<string, unknown>, known: string[]): void {
    for (const key of Object.keys(body)) {
      if (!known.includes(key)) throw new SluiceError("USAGE", `unknown field '${key}' in the request body (known: ${known.join(", ")})`);
    }
  }

  /**
   * A person's token acts as that person: starting, cancelling and retrying runs and setting kv
   * need write access to the repository, as `/run`, `/cancel` and `/retry` comments do (an
   * agent's token starts runs by the operator's leave, and does nothing else of these).
   */
  async function mayWrite(cred: Token, repo: string, what: string): Promise<void> {
    if (cred.tokenKind === "agent" || !opts.github) return;
    const { permission } = await opts.github.person(repo, cred.login, []);
    if (!atLeast(permission, "write")) {
      throw new SluiceError("FORBIDDEN", `${what} needs write access to ${repo}, as the same command in a comment does; ${cred.login} has ${permission}`, { repo, login: cred.login, permission });
    }
  }

  /** The Run report of a run, with its page's URL. */
  async function runReport(id: string): Promise<Report> {
    const r = await runsShow(rt, id, QUIET);
    const d = r.data as { url?: string | null };
    return { ...r, data: { ...d, url: d.url ?? runPageUrl(base, id) } };
  }

  function listRuns(url: URL, cred: Token): Promise<Report> {
    const q = url.searchParams;
    onlyParams(q, ["flow", "status", "repo", "limit"]);
    const statuses = q.get("status")?.split(",").map((s) => s.trim()).filter(Boolean);
    for (const s of statuses ?? []) {
      if (!RUN_STATUSES.includes(s as RunStatus)) throw new SluiceError("USAGE", `unknown status '${s}' (one of ${RUN_STATUSES.join(", ")})`);
    }
    const limitText = q.get("limit");
    const limit = limitText === null ? 20 : Number(limitText);
    if (!/^[0-9]+$/.test(limitText ?? "20") || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST) {
      throw new SluiceError("USAGE", `limit must be a whole number from 1 to ${MAX_LIST}, got '${limitText}'`);
    }
    const flow = q.get("flow");
    const asked = q.get("repo");
    // A token restricted to a repository lists that repository's runs only.
    const repo = cred.repo ?? asked;
    return (async () => {
      const found =
        cred.repo !== null && asked && asked !== cred.repo
          ? []
          : await store.listRuns({ ...(flow ? { flow } : {}), ...(repo ? { repo } : {}), ...(statuses?.length ? { status: statuses as RunStatus[] } : {}), limit });
      const list = found.map((r) => ({ ...runSummary(r), url: runPageUrl(base, r.id) }));
      return { kind: "RunList", ok: true, data: { runs: list }, exitCode: EXIT.ok, human: "" };
    })();
  }

  async function startRun(req: IncomingMessage, cred: Token): Promise<Report> {
    const body = await jsonBody(req);
    onlyFields(body, ["repo", "flow", "ref", "inputs", "detach"]);
    const name = optString(body, "flow");
    if (!name) throw new SluiceError("USAGE", "name the flow to start: {\"flow\": \"<name>\"}");
    const ref = optString(body, "ref");
    const inputs = body.inputs ?? {};
    if (inputs === null || typeof inputs !== "object" || Array.isArray(inputs)) throw new SluiceError("USAGE", "'inputs' must be a JSON object of input names to values");
    if (body.detach !== undefined && typeof body.detach !== "boolean") throw new SluiceError("USAGE", "'detach' must be true or false");
    const repo = repoOf(cred, optString(body, "repo"));
    await mayWrite(cred, repo, "starting a run");
    const { flow, config, release } = await github().flow(repo, name, ref);
    const resolved = resolveInputs(flow, inputs as Record<string, unknown>);
    // The trigger's actor is the token's login: self-approval rules apply to it.
    const id = await rt.createRun({ flow, config, release, repo, inputs: resolved, trigger: { type: "manual", actor: cred.login } });
    logger.info("run created through the API", { run: id, flow: flow.name, repo, token: cred.tokenId, login: cred.login });
    if (body.detach === true) return { ...(await runReport(id)), exitCode: EXIT.ok };
    await driveRun(rt, id, false);
    return runReport(id);
  }

  async function decide(req: IncomingMessage, cred: Token, id: string, decision: "approve" | "reject"): Promise<Report> {
    const body = await jsonBody(req);
    onlyFields(body, ["step", "digest", "comment"]);
    const fields = { step: optString(body, "step"), digest: optString(body, "digest"), comment: optString(body, "comment") };
    const record = await reach(cred, id);
    let facts: Partial<PersonFacts> = {};
    if (cred.tokenKind === "agent") facts = { is_bot: true };
    else if (opts.github) {
      // Eligibility rests on the person's permission and teams as GitHub says them now.
      const { state } = await rt.load(id);
      const open = openGates(state);
      const gate = (fields.step ? open.find((g) => g.id === fields.step) : open[0])?.gate;
      const teams = gate ? teamsAsked(gate.info, gate.level) : [];
      facts = await opts.github.person(record.repo, cred.login, teams);
    }
    try {
      await decideGate(rt, id, {
        login: cred.login,
        via: "api",
        decision,
        ...(fields.step ? { step: fields.step } : {}),
        ...(fields.digest ? { digest: fields.digest } : {}),
        ...(fields.comment ? { comment: fields.comment } : {}),
        ...facts,
      });
    } catch (e) {
      if (cred.tokenKind === "agent" && e instanceof SluiceError && e.code === "APPROVAL_NOT_ELIGIBLE") {
        throw new SluiceError(
          "APPROVAL_NOT_ELIGIBLE",
          `this is an agent's token (${cred.login}): agents start runs and read, and only a person's token approves or rejects; the attempt is in the run's journal`,
          { ...e.details, token_kind: "agent" },
        );
      }
      throw e;
    }
    await driveRun(rt, id, false);
    return runReport(id);
  }

  async function resource(url: URL, cred: Token, hex: string): Promise<{ report: Report; raw?: { data: Uint8Array; mediaType: string } }> {
    onlyParams(url.searchParams, ["run"]);
    const ref = `res://sha256/${hex}`;
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new SluiceError("NOT_FOUND", `no resource ${ref}`, { ref });
    const runId = url.searchParams.get("run");
    if (runId !== null) {
      await reach(cred, runId);
      const journal = await store.loadJournal(runId);
      if (!journal.some((s) => s.event.type === "step_succeeded" && resourceRefsOf(s.event.outputs).some((r) => r.ref === ref))) {
        throw new SluiceError("NOT_FOUND", `run ${runId} has no output ${ref}`, { run: runId, ref });
      }
    } else if (cred.repo !== null) {
      // A resource is content-addressed, not owned: a token of one repository names the run it came from.
      throw new SluiceError("NOT_FOUND", `no resource ${ref} (this token is limited to ${cred.repo}: name the run it came from, ?run=<id>)`, { ref });
    }
    const got = await rt.resources.get(ref);
    if (!got) throw new SluiceError("NOT_FOUND", `no resource ${ref}`, { ref });
    return { report: await resourceReport(rt.resources, ref, undefined), raw: { data: got.data, mediaType: got.mediaType } };
  }

  async function kv(req: IncomingMessage, url: URL, cred: Token, key: string | undefined): Promise<Report> {
    const q = url.searchParams;
    onlyParams(q, key === undefined ? ["repo", "draft", "prefix"] : ["repo", "draft"]);
    const draft = q.get("draft");
    if (draft !== null && draft !== "true" && draft !== "false") throw new SluiceError("USAGE", `draft takes true or false, not '${draft}'`);
    const repo = repoOf(cred, q.get("repo"));
    const flags = { draft: draft === "true" };
    if (key === undefined) return kvReport(store, repo, "list", q.get("prefix") ? [q.get("prefix")!] : [], flags);
    if (req.method !== "PUT") return kvReport(store, repo, "get", [key], flags);
    const body = await jsonBody(req);
    onlyFields(body, ["value", "ttl", "if_version"]);
    if (!("value" in body)) throw new SluiceError("USAGE", "give the value to set: {\"value\": <JSON>}");
    const ttl = optString(body, "ttl");
    const ifVersion = body.if_version;
    if (ifVersion !== undefined && ifVersion !== null && !Number.isInteger(ifVersion)) throw new SluiceError("USAGE", "'if_version' must be a whole number");
    await mayWrite(cred, repo, "setting kv");
    return kvReport(store, repo, "set", [key, JSON.stringify(body.value)], {
      ...flags,
      ...(ttl ? { ttl } : {}),
      ...(typeof ifVersion === "number" ? { ifVersion: String(ifVersion) } : {}),
    });
  }

  async function serve(req: IncomingMessage, res: ServerResponse, url: URL, route: ApiRoute, p: Record<string, string>, cred: Token): Promise<void> {
    const by = route.method + " " + route.path;
    if (cred.tokenKind === "agent" && route.access === "control") {
      throw new SluiceError("FORBIDDEN", `this is an agent's token (${cred.login}): agents start runs, read and complete callbacks; ${route.path.includes("kv") ? "setting kv" : "cancelling and retrying"} needs a person's token`);
    }
    let report: Report;
    let status = 200;
    switch (by) {
      case "GET /api/v1/runs":
        report = await listRuns(url, cred);
        break;
      case "POST /api/v1/runs":
        report = await startRun(req, cred);
        status = 201;
        break;
      case "GET /api/v1/runs/{id}":
        await reach(cred, p.id!);
        report = await runReport(p.id!);
        break;
      case "GET /api/v1/runs/{id}/events":
        await reach(cred, p.id!);
        report = await runsEvents(rt, p.id!);
        break;
      case "POST /api/v1/runs/{id}/cancel":
        await mayWrite(cred, (await reach(cred, p.id!)).repo, "cancelling a run");
        onlyFields(await jsonBody(req), []);
        report = await runsCancel(rt, p.id!, cred.login, QUIET);
        break;
      case "POST /api/v1/runs/{id}/retry":
        await mayWrite(cred, (await reach(cred, p.id!)).repo, "retrying a run");
        onlyFields(await jsonBody(req), []);
        report = await runsRetry(rt, p.id!, cred.login, QUIET);
        break;
      case "GET /api/v1/runs/{id}/gates":
        await reach(cred, p.id!);
        report = await gatesExplain(rt, p.id!, QUIET);
        break;
      case "POST /api/v1/runs/{id}/approve":
      case "POST /api/v1/runs/{id}/reject":
        report = await decide(req, cred, p.id!, by.endsWith("approve") ? "approve" : "reject");
        break;
      case "POST /api/v1/runs/{id}/callbacks/{step}": {
        await reach(cred, p.id!);
        const raw = await readBody(req, MAX_CALLBACK_BYTES);
        if (raw === undefined) throw new SluiceError("OUTPUT_TOO_LARGE", `the callback body is larger than ${MAX_CALLBACK_BYTES} bytes`);
        const text = raw.toString("utf8");
        report = await callbackCommand(rt, p.id!, p.step!, text.trim() === "" ? undefined : text, QUIET);
        break;
      }
      case "GET /api/v1/gates": {
        onlyParams(url.searchParams, ["repo"]);
        const asked = url.searchParams.get("repo");
        // A token limited to a repository sees no other repository's gates, as it sees no other's runs.
        report = cred.repo !== null && asked && asked !== cred.repo ? { kind: "GateList", ok: true, data: { gates: [] }, exitCode: EXIT.ok, human: "" } : await gatesList(rt, cred.repo ?? asked ?? undefined);
        break;
      }
      case "GET /api/v1/flows": {
        onlyParams(url.searchParams, ["repo", "ref"]);
        const repo = repoOf(cred, url.searchParams.get("repo"));
        report = flowsReport(await github().flows(repo, url.searchParams.get("ref") ?? undefined), Date.now());
        break;
      }
      case "GET /api/v1/resources/{hex}": {
        const got = await resource(url, cred, p.hex!);
        // Bytes as they are for a client that asks for them (the CLI's -o FILE); else the Resource envelope.
        if (got.raw && String(req.headers.accept ?? "").startsWith("application/octet-stream")) {
          send(res, 200, "application/octet-stream", got.raw.data, { "x-sluice-media-type": got.raw.mediaType, "content-security-policy": "default-src 'none'; sandbox" });
          return;
        }
        report = got.report;
        break;
      }
      case "GET /api/v1/kv":
        report = await kv(req, url, cred, undefined);
        break;
      case "GET /api/v1/kv/{key}":
      case "PUT /api/v1/kv/{key}":
        report = await kv(req, url, cred, p.key!);
        break;
      default:
        throw new SluiceError("INTERNAL", `no handler for ${by}`);
    }
    // A report with data is an answer (a failed run is one); only a bare error takes the error's status.
    const code = report.data === null && report.error ? httpStatusFor(report.error.code) : status;
    send(res, code, "application/json; charset=utf-8", envelopeOf(report) + "\n");
  }

  return async function api(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = requestUrl(req);
    if (!url) return false;
    if (url.pathname !== "/api/v1" && !url.pathname.startsWith("/api/v1/")) return false;
    const hit = matchPath(url.pathname);
    if (!hit) {
      sendJson(res, 404, envelope("Error", null, { code: "NOT_FOUND", message: `no API route ${url.pathname} (see /api/v1/openapi.json)`, details: {} }));
      return true;
    }
    const methods = API_ROUTES.filter((r) => r.path === hit.template);
    const method = req.method === "HEAD" ? "GET" : req.method;
    const route = methods.find((r) => r.method === method);
    if (!route) return methodNotAllowed(res, methods.map((r) => r.method).join(", "));
    if (route.access === "open") {
      send(res, 200, "application/json; charset=utf-8", openApiDocument());
      return true;
    }
    // Credentials before anything is looked up: the same 401 whether or not the run exists.
    let cred: Credential | undefined;
    try {
      cred = await tokenCredential(store, req.headers.authorization, rt.now());
    } catch (e) {
      logger.error("checking credentials failed", { error: errorOf(e).message });
      sendEnvelopeError(res, route.kind, e);
      return true;
    }
    if (cred?.kind !== "token") {
      sendJson(res, 401, envelope(route.kind, null, { code: "UNAUTHORIZED", message: UNAUTHORIZED_MESSAGE, details: {} }), { "www-authenticate": 'Bearer realm="sluice"' });
      return true;
    }
    try {
      await serve(req, res, url, route, hit.params, cred);
    } catch (e) {
      const err = errorOf(e);
      if (httpStatusFor(err.code) >= 500) logger.error("an API request failed", { route: `${route.method} ${route.path}`, error: err.message });
      if (!res.headersSent) sendEnvelopeError(res, route.kind, e);
    }
    return true;
  };
}
