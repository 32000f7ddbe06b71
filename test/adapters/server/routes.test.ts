/**
 * The server's routes on a real node:http server on loopback, with a real SQLite store and
 * Runtime: run page, API, health, metrics and callbacks, and the credentials they need (API
 * tokens, signed links), attacked for real: every request an outsider could make is made.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken, LINK_TTL_MS, newToken, openLinkSigner, type LinkSigner } from "../../../src/adapters/server/auth.js";
import { createMetrics, type SluiceMetrics } from "../../../src/adapters/server/metrics.js";
import { createRoutes, type RouteHandler } from "../../../src/adapters/server/routes.js";
import { createWebHandler } from "../../../src/adapters/server/web/handler.js";
import { defaultExecutors } from "../../../src/adapters/steps/index.js";
import { FileResourceStore } from "../../../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { runView } from "../../../src/app/run-view.js";
import { Runtime } from "../../../src/app/runtime.js";
import { decideGate } from "../../../src/app/signals.js";
import { DEFAULT_CONFIG, validateFlow } from "../../../src/core/flow/validate.js";
import type { Flow } from "../../../src/core/flow/types.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import type { Logger } from "../../../src/ports/step-executor.js";

const GATED = `
name: gated
on:
  manual:
    inputs:
      note: { type: string, default: "" }
steps:
  - id: count
    kv: { incr: { key: counter, by: 2 } }
  - id: review
    wait:
      approval:
        title: "Ship <b>it</b>? \${{ inputs.note }}"
        evidence: ["\${{ steps.count.outputs.value }}"]
        approvers: { users: [alice], min: 1 }
  - id: result
    wait:
      callback:
        timeout: 1h
        schema: { type: object, required: [ok], properties: { ok: { type: boolean } } }
  - id: after
    kv: { incr: { key: counter, by: 1 } }
outputs:
  ok: \${{ steps.result.outputs.body.ok }}
`;

const BIG = `
name: big
on: { manual: {} }
steps:
  - id: make
    function: { code: "return 'x'.repeat(70000)" }
`;

function flow(text: string): Flow {
  const v = validateFlow(text);
  if (!v.flow) throw new Error(JSON.stringify(v.diagnostics));
  return v.flow;
}

const SHA = "c".repeat(40);
const logs: { level: string; msg: string }[] = [];
const logger: Logger = {
  debug: () => {},
  info: () => {},
  warn: (msg) => logs.push({ level: "warn", msg }),
  error: (msg) => logs.push({ level: "error", msg }),
};

let dir: string;
let store: RunStore;
let runtime: Runtime;
let server: Server;
let base: string;
let m: SluiceMetrics;
let handler: RouteHandler;
let links: LinkSigner;
const servers: Server[] = [];
/** Tokens: for every repository, for acme/widgets only, for another repository only, revoked, expired. */
const tokens = { all: "", widgets: "", other: "", revoked: "", expired: "" };

async function makeToken(login: string, repo: string | null, over: { revokedAt?: number; expiresAt?: number } = {}): Promise<string> {
  const t = newToken();
  await store.createToken({ id: t.id, hash: t.hash, login, repo, kind: "human", createdAt: Date.now(), expiresAt: over.expiresAt ?? null, revokedAt: over.revokedAt ?? null });
  return t.secret;
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
/** GET with the token that reaches everything. */
const get = (url: string, init: { headers?: Record<string, string> } = {}) => fetch(url, { headers: { ...bearer(tokens.all), ...init.headers } });

async function listen(h: RouteHandler): Promise<{ server: Server; base: string }> {
  const s = createServer((req, res) => {
    void h(req, res).then((ours) => {
      if (!ours) {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not ours");
      }
    });
  });
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  servers.push(s);
  return { server: s, base: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-routes-"));
  store = openSqliteRunStore(join(dir, "sluice.db"));
  m = createMetrics({ defaultMetrics: false });
  // The server's address is the runtime's public URL: start it with a handler set below.
  let h: RouteHandler = async () => false;
  ({ server, base } = await listen((req, res) => h(req, res)));
  runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(dir, "resources")),
    executors: defaultExecutors(),
    secrets: { get: () => undefined, values: () => [] },
    logger,
    mode: "local",
    publicUrl: base,
  });
  links = await openLinkSigner(store);
  // As the server registers them: the pages for people (the run page) first, then the routes.
  const web = createWebHandler({ runtime, store, publicUrl: base, links, logger, githubFor: async () => undefined });
  const routes = createRoutes({ runtime, store, publicUrl: base, links, logger, metrics: m });
  handler = async (req, res) => (await web(req, res)) || routes(req, res);
  h = handler;
  tokens.all = await makeToken("ann", null);
  tokens.widgets = await makeToken("ann", "acme/widgets");
  tokens.other = await makeToken("eve", "other/repo");
  tokens.revoked = await makeToken("ann", null, { revokedAt: Date.now() - 1 });
  tokens.expired = await makeToken("ann", null, { expiresAt: Date.now() - 1 });
});

afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function startRun(text: string, inputs: Record<string, unknown> = {}, repo = "acme/widgets"): Promise<string> {
  const f = flow(text);
  const id = await runtime.createRun({
    flow: f,
    config: DEFAULT_CONFIG,
    release: { sha: SHA, ref: "refs/heads/main", kind: "live" },
    repo,
    inputs: { ...Object.fromEntries(Object.entries(f.on.manual?.inputs ?? {}).map(([k, v]) => [k, v.default])), ...inputs },
    trigger: { type: "manual", actor: "bob" },
  });
  await runtime.advance(id);
  return id;
}

async function callbackUrl(id: string, step: string): Promise<string> {
  const first = (await store.loadJournal(id))[0]!.event;
  if (first.type !== "run_created") throw new Error("no run_created");
  return first.callbacks[step]!;
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const envelopeSchema = JSON.parse(readFileSync(join(process.cwd(), "schemas/cli/envelope.schema.json"), "utf8"));
const validEnvelope = new Ajv2020({ strict: false }).compile(envelopeSchema);

describe("GET /healthz", () => {
  it("answers 200 {ok:true} when the store answers", async () => {
    const r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true });
  });

  it("answers 503 when the store does not", async () => {
    const closed = openSqliteRunStore(join(dir, "closed.db"));
    await closed.close();
    const { base: b } = await listen(createRoutes({ runtime, store: closed, publicUrl: base, links, logger, metrics: createMetrics({ defaultMetrics: false }) }));
    const r = await fetch(`${b}/healthz`);
    expect(r.status).toBe(503);
    expect(await r.json()).toMatchObject({ ok: false, error: { code: "STORE_ERROR" } });
  });
});

describe("the runs API", () => {
  let id: string;
  beforeAll(async () => {
    id = await startRun(GATED, { note: "<script>alert(1)</script>" });
  });

  it("GET /api/v1/runs/<id> is the sluice/v1 Run envelope with the RunView", async () => {
    const r = await get(`${base}/api/v1/runs/${id}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
    const body: any = await r.json();
    expect(validEnvelope(body)).toBe(true);
    const { record, state } = await runtime.load(id);
    expect(body).toEqual({ apiVersion: "sluice/v1", kind: "Run", ok: true, data: JSON.parse(JSON.stringify(runView(record, state))), error: null });
    expect(body.data).toMatchObject({ id, status: "waiting", url: `${base}/runs/${id}`, gate: { step: "review", min: 1 } });
  });

  it("an unknown run is a 404 with a clear JSON error", async () => {
    for (const path of ["/api/v1/runs/nope", "/api/v1/runs/%E0%A4%A", "/runs/nope"]) {
      const r = await get(`${base}${path}`);
      expect(r.status).toBe(404);
      const body: any = await r.json();
      expect(validEnvelope(body)).toBe(true);
      expect(body).toMatchObject({ apiVersion: "sluice/v1", ok: false, data: null, error: { code: "RUN_NOT_FOUND" } });
      expect(body.error.message).toMatch(/^no run '/);
    }
  });

  it("GET /api/v1/runs lists runs, filtered by flow and status, limited", async () => {
    const other = await startRun(BIG);
    const all: any = await (await get(`${base}/api/v1/runs`)).json();
    expect(validEnvelope(all)).toBe(true);
    expect(all.kind).toBe("RunList");
    const ids = all.data.runs.map((r: { id: string }) => r.id);
    expect(ids).toEqual(expect.arrayContaining([id, other]));
    const run = all.data.runs.find((r: { id: string }) => r.id === id);
    expect(run).toEqual({
      id,
      flow: "gated",
      repo: "acme/widgets",
      status: "waiting",
      release: { sha: SHA, ref: "refs/heads/main", kind: "live" },
      created_at: expect.any(String),
      updated_at: expect.any(String),
      url: `${base}/runs/${id}`,
    });
    const gated: any = await (await get(`${base}/api/v1/runs?flow=gated&status=waiting`)).json();
    expect(gated.data.runs.every((r: { flow: string; status: string }) => r.flow === "gated" && r.status === "waiting")).toBe(true);
    expect(gated.data.runs.map((r: { id: string }) => r.id)).toContain(id);
    const done: any = await (await get(`${base}/api/v1/runs?status=succeeded,failed`)).json();
    expect(done.data.runs.map((r: { id: string }) => r.id)).toEqual([other]);
    const one: any = await (await get(`${base}/api/v1/runs?limit=1`)).json();
    expect(one.data.runs).toHaveLength(1);
  });

  it.each([
    ["status=bogus", /unknown status 'bogus'/],
    ["limit=0", /limit must be a whole number from 1 to 1000/],
    ["limit=abc", /limit must be/],
    ["limit=5000", /limit must be/],
    ["per_page=3", /unknown query parameter 'per_page'/],
  ])("?%s is a 400 USAGE error", async (q, message) => {
    const r = await get(`${base}/api/v1/runs?${q}`);
    expect(r.status).toBe(400);
    const body: any = await r.json();
    expect(validEnvelope(body)).toBe(true);
    expect(body).toMatchObject({ kind: "RunList", ok: false, error: { code: "USAGE" } });
    expect(body.error.message).toMatch(message);
  });

  it("other methods are refused with 405", async () => {
    const r = await fetch(`${base}/api/v1/runs/${id}`, { method: "DELETE" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET");
  });
});

describe("GET /runs/<id>: the run page (the web handler, before the routes)", () => {
  it("shows steps, gate, release and journal, escaped, without callback tokens", async () => {
    const id = await startRun(GATED, { note: "<script>alert(1)</script>" });
    const r = await get(`${base}/runs/${id}`, { headers: { accept: "text/html" } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(r.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await r.text();
    const { state } = await runtime.load(id);
    const digest = state.steps.review!.gate!.info.digest;
    expect(html).toContain(`<code>/approve ${id} ${digest.slice(0, 12)}</code>`);
    expect(html).toContain(`<code>${digest}</code>`);
    for (const step of ["count", "review", "result", "after"]) expect(html).toContain(`<tr id="step-${step}">`);
    expect(html).toContain(`<code>${SHA}</code>`);
    expect(html).toContain("gate_opened");
    // The input reaches the page only escaped, in the gate title, the inputs and the journal.
    expect(html).not.toContain("<script>");
    expect(html).not.toContain("<b>it</b>");
    expect(html).toContain("Ship &lt;b&gt;it&lt;/b&gt;? &lt;script&gt;alert(1)&lt;/script&gt;");
    const token = new URL(await callbackUrl(id, "result")).pathname.split("/").pop()!;
    expect(html).not.toContain(token);
    // Still active: the page follows the run's events live, with a signed subscription.
    expect(html).toMatch(new RegExp(`new EventSource\\("${base}/runs/${id}/events\\?exp=[0-9]+&sig=[A-Za-z0-9_-]{43}"\\)`));
  });

  it("an unknown run asked for by a browser is an HTML 404", async () => {
    const r = await get(`${base}/runs/zzz`, { headers: { accept: "text/html,*/*" } });
    expect(r.status).toBe(404);
    expect(r.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await r.text()).toContain("no run &#39;zzz&#39;");
  });

  it("serves the run's large outputs, and only those", async () => {
    const id = await startRun(BIG);
    const { record, state } = await runtime.load(id);
    expect(record.status).toBe("succeeded");
    const ref = (runView(record, state).steps[0]!.outputs!.result as { $resource: string }).$resource;
    const hex = ref.split("/").pop()!;
    const html = await (await get(`${base}/runs/${id}`)).text();
    // A token holder's browser sends no token: the page's links carry a signature of their own.
    expect(html).toMatch(new RegExp(`href="${base}/runs/${id}/resources/${hex}\\?exp=[0-9]+&amp;sig=[A-Za-z0-9_-]{43}"`));
    const r = await get(`${base}/runs/${id}/resources/${hex}`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await r.text()).toBe("x".repeat(70000));
    const other = await get(`${base}/runs/${id}/resources/${"0".repeat(64)}`);
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ ok: false, error: { code: "NOT_FOUND" } });
  });
});

function post(url: string, body: string | Buffer, headers: Record<string, string> = {}, chunked = false): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method: "POST", headers: { "content-type": "application/json", ...(chunked ? {} : { "content-length": String(Buffer.byteLength(body)) }), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString("utf8") || "null") }));
      },
    );
    req.on("error", reject);
    if (chunked) {
      const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
      for (let i = 0; i < buf.length; i += 64 * 1024) req.write(buf.subarray(i, i + 64 * 1024));
      req.end();
    } else req.end(body);
  });
}

describe("POST /callbacks/<token>", () => {
  it("completes the wait (even before the run reaches it), once; the run carries on", async () => {
    const id = await startRun(GATED);
    const url = await callbackUrl(id, "result");
    const seqBefore = (await store.getRun(id))!.seq;

    const bad = await post(url, JSON.stringify({ ok: "yes" }));
    expect(bad.status).toBe(422);
    expect(bad.json).toMatchObject({ ok: false, error: { code: "CALLBACK_INVALID" } });
    expect(bad.json.error.message).toMatch(/\/ok must be boolean/);
    const notJson = await post(url, "{ok: true");
    expect(notJson.status).toBe(400);
    expect(notJson.json).toMatchObject({ ok: false, error: { code: "CALLBACK_INVALID" } });
    expect((await store.getRun(id))!.seq).toBe(seqBefore);

    const first = await post(url, JSON.stringify({ ok: true }));
    expect(first).toEqual({ status: 200, json: { ok: true, run: id, step: "result", duplicate: false } });
    const again = await post(url, JSON.stringify({ ok: false }));
    expect(again).toEqual({ status: 200, json: { ok: true, run: id, step: "result", duplicate: true } });

    await decideGate(runtime, id, { login: "alice", via: "cli", decision: "approve" });
    await until("the run to end", async () => (await store.getRun(id))!.status === "succeeded");
    const { state } = await runtime.load(id);
    expect(state.completed?.outputs).toEqual({ ok: true });
    // The second body changed nothing.
    expect((await store.loadJournal(id)).filter((s) => s.event.type === "callback_received")).toHaveLength(1);
  });

  it("a callback that arrives while the run waits there is answered at once and the run advances", async () => {
    const id = await startRun(GATED);
    await decideGate(runtime, id, { login: "alice", via: "cli", decision: "approve" });
    expect((await runtime.load(id)).state.steps.result!.status).toBe("waiting");
    const r = await post(await callbackUrl(id, "result"), JSON.stringify({ ok: true }));
    expect(r.json).toMatchObject({ ok: true, duplicate: false });
    await until("the run to end", async () => (await store.getRun(id))!.status === "succeeded");
  });

  it("an unknown token is a 404", async () => {
    for (const token of ["unknown-token", "%E0%A4%A", "bad*chars"]) {
      const r = await post(`${base}/callbacks/${token}`, "{}");
      expect(r.status).toBe(404);
      expect(r.json).toMatchObject({ ok: false, error: { code: "NOT_FOUND", message: "unknown callback token" } });
    }
  });

  it("a body over 1 MiB is a 413, declared or streamed", async () => {
    const id = await startRun(GATED);
    const url = await callbackUrl(id, "result");
    const big = JSON.stringify({ ok: true, pad: "x".repeat(1024 * 1024) });
    for (const chunked of [false, true]) {
      const r = await post(url, big, {}, chunked);
      expect(r.status).toBe(413);
      expect(r.json).toMatchObject({ ok: false, error: { code: "OUTPUT_TOO_LARGE", details: { max_bytes: 1048576 } } });
    }
    expect((await runtime.load(id)).state.callbackBodies).toEqual({});
    // Exactly 1 MiB is fine.
    const exact = JSON.stringify({ ok: true, pad: "" });
    const padded = exact.slice(0, -2) + "x".repeat(1024 * 1024 - Buffer.byteLength(exact)) + '"}';
    expect(Buffer.byteLength(padded)).toBe(1024 * 1024);
    expect((await post(url, padded)).json).toMatchObject({ ok: true, duplicate: false });
  });

  it("a callback on a run that ended is a 409", async () => {
    const id = await startRun(GATED);
    await decideGate(runtime, id, { login: "alice", via: "cli", decision: "reject" });
    expect((await store.getRun(id))!.status).toBe("failed");
    const r = await post(await callbackUrl(id, "result"), JSON.stringify({ ok: true }));
    expect(r.status).toBe(409);
    expect(r.json).toMatchObject({ ok: false, error: { code: "NOT_WAITING" } });
  });

  it("only POST", async () => {
    const r = await fetch(`${base}/callbacks/abc`);
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("POST");
  });
});

describe("GET /metrics", () => {
  it("is Prometheus text with runs by status, step executions, callbacks and check-run calls", async () => {
    m.webhookDeliveries.inc({ event: "push", outcome: "accepted" });
    m.checkRunCalls.inc({ method: "create", outcome: "ok" });
    const r = await get(`${base}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    const waiting = (await store.listRuns({ status: ["waiting"] })).length;
    expect(waiting).toBeGreaterThan(0);
    expect(text).toContain(`sluice_runs{status="waiting"} ${waiting}`);
    expect(text).toMatch(/sluice_step_executions_total\{kind="kv",outcome="succeeded"\} [1-9]/);
    expect(text).toMatch(/sluice_step_executions_total\{kind="function",outcome="succeeded"\} [1-9]/);
    expect(text).toMatch(/sluice_runs_completed_total\{status="succeeded"\} [1-9]/);
    expect(text).toMatch(/sluice_callbacks_total\{outcome="completed"\} [1-9]/);
    expect(text).toMatch(/sluice_callbacks_total\{outcome="duplicate"\} [1-9]/);
    expect(text).toContain('sluice_webhook_deliveries_total{event="push",outcome="accepted"} 1');
    expect(text).toContain('sluice_check_run_api_calls_total{method="create",outcome="ok"} 1');
  });
});

describe("credentials: nothing about a run without them", () => {
  let id: string;
  let otherRepo: string;
  let hex: string;
  beforeAll(async () => {
    id = await startRun(BIG);
    otherRepo = await startRun(BIG, {}, "other/repo");
    const { record, state } = await runtime.load(id);
    hex = ((runView(record, state).steps[0]!.outputs!.result as { $resource: string }).$resource).split("/").pop()!;
  });

  const signed = (runId: string, sig = links.sign(runId, Date.now())) => `exp=${sig.exp}&sig=${sig.sig}`;
  const protectedPaths = () => [`/api/v1/runs`, `/api/v1/runs/${id}`, `/runs/${id}`, `/runs/${id}/resources/${hex}`, `/metrics`];

  async function expectUnauthorized(r: Response, kind?: string): Promise<unknown> {
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="sluice"');
    const body: any = await r.json();
    expect(validEnvelope(body)).toBe(true);
    expect(body).toMatchObject({ ok: false, data: null, error: { code: "UNAUTHORIZED", details: {} } });
    if (kind) expect(body.kind).toBe(kind);
    expect(JSON.stringify(body)).not.toContain(id);
    return body;
  }

  it("every run route refuses a request without credentials with 401, and serves it with a token", async () => {
    for (const path of protectedPaths()) {
      await expectUnauthorized(await fetch(`${base}${path}`));
      expect((await get(`${base}${path}`)).status, path).toBe(200);
    }
    const html = await fetch(`${base}/runs/${id}`, { headers: { accept: "text/html" } });
    expect(html.status).toBe(401);
    expect(html.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const page = await html.text();
    expect(page).toContain("Sign-in needed");
    expect(page).not.toContain(id);
  });

  it("answers alike whether or not the run exists (no existence oracle)", async () => {
    const pairs = [
      [`/api/v1/runs/${id}`, `/api/v1/runs/0nosuchrun0`],
      [`/runs/${id}`, `/runs/0nosuchrun0`],
      [`/runs/${id}/resources/${hex}`, `/runs/0nosuchrun0/resources/${hex}`],
    ];
    for (const [real, missing] of pairs) {
      for (const headers of [{}, bearer(newToken().secret), { accept: "text/html" }] as Record<string, string>[]) {
        const [a, b] = [await fetch(`${base}${real}`, { headers }), await fetch(`${base}${missing}`, { headers })];
        expect([a.status, b.status]).toEqual([401, 401]);
        expect(await a.text()).toBe(await b.text());
      }
    }
  });

  it("refuses unknown, malformed, revoked and expired tokens the same way", async () => {
    const [first, ...rest] = [newToken().secret, "sluice_short", "not-a-token", tokens.revoked, tokens.expired, `${tokens.all}x`];
    const refusal = await expectUnauthorized(await fetch(`${base}/api/v1/runs/${id}`, { headers: bearer(first!) }), "Run");
    for (const t of rest) expect(await expectUnauthorized(await fetch(`${base}/api/v1/runs/${id}`, { headers: bearer(t) }))).toEqual(refusal);
    // The token goes in the Authorization header; the same token in the query string is no credential.
    await expectUnauthorized(await fetch(`${base}/api/v1/runs/${id}?token=${tokens.all}`));
    await expectUnauthorized(await fetch(`${base}/metrics`, { headers: { authorization: `Basic ${Buffer.from(`x:${tokens.all}`).toString("base64")}` } }));
    // The store keeps the hash only.
    expect(await store.findToken(hashToken(tokens.all))).toMatchObject({ login: "ann", repo: null, revokedAt: null });
  });

  it("a signed link opens its run's page and that run's outputs, and nothing else", async () => {
    const page = await fetch(`${base}/runs/${id}?${signed(id)}`, { headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    const html = await page.text();
    // The page's output links carry the link's own signature: they never outlive it.
    const sig = new URLSearchParams(signed(id));
    const linked = new RegExp(`href="(${base}/runs/${id}/resources/${hex}\\?exp=([0-9]+)&amp;sig=([^"]+))"`).exec(html);
    expect(linked).not.toBeNull();
    const resource = await fetch(linked![1]!.replace(/&amp;/g, "&"));
    expect(resource.status).toBe(200);
    expect(await resource.text()).toBe("x".repeat(70000));
    expect(Math.abs(Number(linked![2]) - Number(sig.get("exp")))).toBeLessThanOrEqual(1);
    // …not another run's page or outputs, not the API, not the metrics.
    await expectUnauthorized(await fetch(`${base}/runs/${otherRepo}?${signed(id)}`), "Run");
    await expectUnauthorized(await fetch(`${base}/api/v1/runs/${id}?${signed(id)}`), "Run");
    await expectUnauthorized(await fetch(`${base}/api/v1/runs?${signed(id)}`), "RunList");
    await expectUnauthorized(await fetch(`${base}/metrics?${signed(id)}`));
  });

  it("refuses a link for run A on run B, an expired link, a tampered signature or expiry", async () => {
    const good = links.sign(id, Date.now());
    const attacks = [
      `/runs/${otherRepo}?${signed(id)}`,
      `/runs/${otherRepo}/resources/${hex}?${signed(id)}`,
      `/runs/${id}?${signed(id, links.sign(id, Date.now() - LINK_TTL_MS - 5_000))}`,
      `/runs/${id}?exp=${good.exp}&sig=${good.sig.slice(0, -1)}${good.sig.endsWith("A") ? "B" : "A"}`,
      `/runs/${id}?exp=${good.exp + 86_400}&sig=${good.sig}`,
      `/runs/${id}?exp=${good.exp}`,
      `/runs/${id}?sig=${good.sig}`,
      `/runs/${id}/resources/${hex}?exp=${good.exp}&sig=${"A".repeat(43)}`,
    ];
    for (const path of attacks) await expectUnauthorized(await fetch(`${base}${path}`));
    // A link made with another key (another server) opens nothing here.
    const { LinkSigner } = await import("../../../src/adapters/server/auth.js");
    await expectUnauthorized(await fetch(`${base}/runs/${id}?${signed(id, new LinkSigner(Buffer.alloc(32, 7)).sign(id, Date.now()))}`));
  });

  it("a token restricted to a repository sees that repository's runs only; another's are as absent as none", async () => {
    expect((await get(`${base}/api/v1/runs/${id}`, { headers: bearer(tokens.widgets) })).status).toBe(200);
    const hidden = await fetch(`${base}/api/v1/runs/${otherRepo}`, { headers: bearer(tokens.widgets) });
    const none = await fetch(`${base}/api/v1/runs/0nosuchrun0`, { headers: bearer(tokens.widgets) });
    expect([hidden.status, none.status]).toEqual([404, 404]);
    const [h, n]: any[] = [await hidden.json(), await none.json()];
    expect(h.error).toEqual({ code: "RUN_NOT_FOUND", message: `no run '${otherRepo}'`, details: { run: otherRepo } });
    expect(n.error).toEqual({ code: "RUN_NOT_FOUND", message: "no run '0nosuchrun0'", details: { run: "0nosuchrun0" } });
    for (const path of [`/runs/${otherRepo}`, `/runs/${otherRepo}/resources/${hex}`]) {
      expect((await fetch(`${base}${path}`, { headers: bearer(tokens.widgets) })).status, path).toBe(404);
    }
    // The other repository's token sees its own run, and none of acme/widgets'.
    expect((await fetch(`${base}/api/v1/runs/${otherRepo}`, { headers: bearer(tokens.other) })).status).toBe(200);
    expect((await fetch(`${base}/runs/${id}/resources/${hex}`, { headers: bearer(tokens.other) })).status).toBe(404);

    const list = async (token: string, q = "") => ((await (await fetch(`${base}/api/v1/runs?limit=1000${q}`, { headers: bearer(token) })).json()) as any).data.runs.map((r: { id: string; repo: string }) => r);
    const all = await list(tokens.all);
    expect(all.map((r: { id: string }) => r.id)).toEqual(expect.arrayContaining([id, otherRepo]));
    const widgets = await list(tokens.widgets);
    expect(widgets.length).toBeGreaterThan(0);
    expect(widgets.every((r: { repo: string }) => r.repo === "acme/widgets")).toBe(true);
    expect(await list(tokens.widgets, "&repo=other/repo")).toEqual([]);
    expect((await list(tokens.other)).map((r: { id: string }) => r.id)).toEqual([otherRepo]);
  });

  it("/metrics are server-wide: a repository's token is forbidden them", async () => {
    const r = await fetch(`${base}/metrics`, { headers: bearer(tokens.widgets) });
    expect(r.status).toBe(403);
    expect(await r.json()).toMatchObject({ ok: false, error: { code: "FORBIDDEN" } });
    expect((await get(`${base}/metrics`)).status).toBe(200);
  });

  it("/healthz stays open and says nothing about runs", async () => {
    const r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('{"ok":true}\n');
  });
});

describe("paths that are not ours", () => {
  it.each(["/", "/api/github/webhooks", "/hooks/acme/widgets/flow", "/api/v2/runs", "/runsx/1"])("%s is left to the next handler", async (path) => {
    const r = await fetch(`${base}${path}`);
    expect(r.status).toBe(404);
    expect(await r.text()).toBe("not ours");
  });

});
