/**
 * The write API, /api/v1, on a real node:http server on loopback with a real SQLite store and
 * Runtime (GitHub mode: eligibility rests on the permissions GitHub reports, here a fixed table
 * standing in for GitHub's answers). Every command is driven through HTTP, and every attack is
 * made for real: no token, a token of another repository, an agent's token approving, an
 * ineligible person, a stale digest; each checks that nothing happened to the run.
 * Every answer is kept and, at the end, validated against the OpenAPI document the server serves.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_ROUTES, type ApiGitHub, type PersonFacts } from "../../../src/adapters/server/api.js";
import { newToken } from "../../../src/adapters/server/auth.js";
import type { LoadedRelease } from "../../../src/app/releases.js";
import { pickFlow } from "../../../src/app/releases.js";
import { DEFAULT_CONFIG, validateFlow } from "../../../src/core/flow/validate.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import { BIG, DEPLOY, startApiServer, type ApiServer } from "./api-server.js";

const FAILS = `
name: fails
on: { manual: {} }
steps:
  - id: boom
    function: { code: "throw new Error('no')" }
`;

const LIVE = "a".repeat(40);
const DRAFT = "b".repeat(40);

/** What GitHub would say: the flows of acme/widgets at main (live) and at a branch (draft), and people's permissions. */
// my-bot has write access: only the token's kind keeps it from deciding.
const PERMISSIONS: Record<string, PersonFacts["permission"]> = { alice: "write", bob: "write", eve: "write", mallory: "read", "my-bot": "write" };
const asked: { repo: string; login: string }[] = [];
const github: ApiGitHub = {
  async flows(repo, ref) {
    if (repo !== "acme/widgets" && repo !== "other/repo") throw Object.assign(new Error("not installed"), {});
    const draft = ref !== undefined && ref !== "main";
    const texts = draft ? { deploy: DEPLOY.replace("Ship it?", "Ship the draft?") } : { deploy: DEPLOY, big: BIG, fails: FAILS };
    const loaded: LoadedRelease = {
      release: { sha: draft ? DRAFT : LIVE, ref: ref ?? "main", kind: draft ? "draft" : "live" },
      config: DEFAULT_CONFIG,
      flows: Object.entries(texts).map(([name, text]) => {
        const v = validateFlow(text);
        return { path: `.github/flows/${name}.yml`, ...(v.flow ? { flow: v.flow } : {}), diagnostics: v.diagnostics };
      }),
    };
    return loaded;
  },
  async flow(repo, name, ref) {
    const loaded = await this.flows(repo, ref);
    return { flow: pickFlow(loaded, name), config: loaded.config, release: loaded.release };
  },
  async person(repo, login) {
    asked.push({ repo, login });
    return { is_bot: false, permission: PERMISSIONS[login] ?? "none", teams: [] };
  },
};

let api: ApiServer;
let store: RunStore;
let base: string;

/** Tokens: people's, one limited to another repository, an agent's. */
const T = { alice: "", bob: "", mallory: "", aliceAll: "", eve: "", agent: "" };

interface Answer {
  status: number;
  body: any;
}
/** Every answer of the API, for the OpenAPI check at the end. */
const answers: { method: string; path: string; status: number; body: unknown }[] = [];

async function call(method: string, path: string, opts: { token?: string; body?: unknown; raw?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined || opts.raw !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`${base}${path}`, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : opts.raw !== undefined ? { body: opts.raw } : {}) });
  const body = await r.json();
  answers.push({ method, path: new URL(path, base).pathname, status: r.status, body });
  return { status: r.status, body };
}

async function journal(id: string) {
  return (await store.loadJournal(id)).map((s) => s.event);
}

beforeAll(async () => {
  api = await startApiServer(github);
  ({ store, base } = api);
  T.alice = await api.token("alice", "acme/widgets");
  T.bob = await api.token("bob", "acme/widgets");
  T.mallory = await api.token("mallory", "acme/widgets");
  T.aliceAll = await api.token("alice", null);
  T.eve = await api.token("eve", "other/repo");
  T.agent = await api.token("my-bot", "acme/widgets", "agent");
});

afterAll(async () => {
  await api.close();
});

/** A deploy run started by bob through the API, waiting at its gate. */
async function started(note = "v1"): Promise<string> {
  const r = await call("POST", "/api/v1/runs", { token: T.bob, body: { flow: "deploy", inputs: { note, times: "2" } } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.data.id;
}

async function digestOf(id: string): Promise<string> {
  const g = await call("GET", `/api/v1/runs/${id}/gates`, { token: T.alice });
  expect(g.status).toBe(200);
  return g.body.data.gates[0].digest;
}

describe("starting runs", () => {
  it("starts a live run as the token's login, with typed inputs, and runs it until it waits", async () => {
    const r = await call("POST", "/api/v1/runs", { token: T.bob, body: { flow: "deploy", inputs: { note: "first", times: "3" } } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ apiVersion: "sluice/v1", kind: "Run", ok: true, error: null });
    expect(r.body.data).toMatchObject({ flow: "deploy", status: "waiting", release: { sha: LIVE, kind: "live" }, inputs: { note: "first", times: 3 }, gate: { step: "review" }, url: `${base}/runs/${r.body.data.id}` });
    const created = (await journal(r.body.data.id))[0]!;
    expect(created).toMatchObject({ type: "run_created", repo: "acme/widgets", trigger: { type: "manual", actor: "bob" } });
  });

  it("starts a draft at a ref, and a detached run that it leaves to the worker", async () => {
    const draft = await call("POST", "/api/v1/runs", { token: T.bob, body: { flow: "deploy", ref: "my-branch" } });
    expect(draft.body.data).toMatchObject({ status: "waiting", release: { sha: DRAFT, ref: "my-branch", kind: "draft" } });
    const detached = await call("POST", "/api/v1/runs", { token: T.bob, body: { flow: "deploy", detach: true } });
    expect(detached.status).toBe(201);
    expect(detached.body.data.status).toBe("queued");
  });

  it("an agent's token starts runs", async () => {
    const r = await call("POST", "/api/v1/runs", { token: T.agent, body: { flow: "big" } });
    expect(r.status).toBe(201);
    expect(r.body.data.status).toBe("succeeded");
  });

  it("refuses a bad request with a clear code, and creates nothing", async () => {
    const before = (await store.listRuns({ limit: 1000 })).length;
    const cases: [unknown, number, string, RegExp][] = [
      [{ flow: "nope" }, 404, "FLOW_NOT_FOUND", /no flow 'nope'/],
      [{ flow: "deploy", inputs: { times: "many" } }, 400, "INPUT_INVALID", /times/],
      [{ flow: "deploy", inputs: { surprise: 1 } }, 400, "INPUT_INVALID", /surprise/],
      [{}, 400, "USAGE", /name the flow/],
      [{ flow: "deploy", extra: 1 }, 400, "USAGE", /unknown field 'extra'/],
      [{ flow: "deploy", repo: "other/repo" }, 404, "NOT_FOUND", /no repository 'other\/repo'/],
    ];
    for (const [body, status, code, message] of cases) {
      const r = await call("POST", "/api/v1/runs", { token: T.bob, body });
      expect([r.status, r.body.error?.code], JSON.stringify(body)).toEqual([status, code]);
      expect(r.body.error.message).toMatch(message);
    }
    const notJson = await call("POST", "/api/v1/runs", { token: T.bob, raw: "{flow" });
    expect([notJson.status, notJson.body.error.code]).toEqual([400, "USAGE"]);
    // A token of every repository must say which one.
    const unnamed = await call("POST", "/api/v1/runs", { token: T.aliceAll, body: { flow: "deploy" } });
    expect([unnamed.status, unnamed.body.error.code]).toEqual([400, "USAGE"]);
    expect((await store.listRuns({ limit: 1000 })).length).toBe(before);
  });
});

describe("credentials", () => {
  it("every route refuses a request without a token, or with a made-up one, with 401 and starts or decides nothing", async () => {
    const id = await started();
    const before = await journal(id);
    const runs = (await store.listRuns({ limit: 1000 })).length;
    for (const route of API_ROUTES.filter((r) => r.access !== "open")) {
      const path = route.path.replace("{id}", id).replace("{step}", "result").replace("{hex}", "0".repeat(64)).replace("{key}", "k");
      for (const token of [undefined, newToken().secret]) {
        const r = await call(route.method, path, { ...(token ? { token } : {}), ...(route.method === "GET" ? {} : { body: {} }) });
        expect([r.status, r.body.error?.code], `${route.method} ${path}`).toEqual([401, "UNAUTHORIZED"]);
        expect(r.body.kind).toBe(route.kind);
        expect(JSON.stringify(r.body)).not.toContain(id);
      }
    }
    expect(await journal(id)).toEqual(before);
    expect((await store.listRuns({ limit: 1000 })).length).toBe(runs);
  });

  it("a token of another repository finds no run of this one: every run route answers as for a missing run, and nothing happens", async () => {
    const id = await started();
    const before = await journal(id);
    const digest = await digestOf(id);
    for (const [method, path, body] of [
      ["GET", `/api/v1/runs/${id}`],
      ["GET", `/api/v1/runs/${id}/events`],
      ["GET", `/api/v1/runs/${id}/gates`],
      ["POST", `/api/v1/runs/${id}/approve`, { digest }],
      ["POST", `/api/v1/runs/${id}/reject`, {}],
      ["POST", `/api/v1/runs/${id}/cancel`, {}],
      ["POST", `/api/v1/runs/${id}/retry`, {}],
      ["POST", `/api/v1/runs/${id}/callbacks/result`, { ok: true }],
    ] as [string, string, unknown?][]) {
      const theirs = await call(method, path, { token: T.eve, ...(body ? { body } : {}) });
      const missing = await call(method, path.replace(id, "0nosuchrun00000"), { token: T.eve, ...(body ? { body } : {}) });
      expect([theirs.status, theirs.body.error?.code], `${method} ${path}`).toEqual([404, "RUN_NOT_FOUND"]);
      expect(theirs.body.error.message).toBe(`no run '${id}'`);
      expect([missing.status, missing.body.error.code]).toEqual([404, "RUN_NOT_FOUND"]);
    }
    expect(await journal(id)).toEqual(before);
    const list = await call("GET", "/api/v1/runs?limit=1000", { token: T.eve });
    expect(list.body.data.runs.map((r: { id: string }) => r.id)).not.toContain(id);
    const gates = await call("GET", "/api/v1/gates", { token: T.eve });
    expect(gates.body.data.gates.map((g: { run: string }) => g.run)).not.toContain(id);
    const kv = await call("GET", "/api/v1/kv/counter?repo=acme/widgets", { token: T.eve });
    expect([kv.status, kv.body.error.code]).toEqual([404, "NOT_FOUND"]);
  });
});

describe("decisions", () => {
  it("an agent's token cannot approve: refused with a clear code, journaled as a refused decision, the run still waits", async () => {
    const id = await started();
    const digest = await digestOf(id);
    const r = await call("POST", `/api/v1/runs/${id}/approve`, { token: T.agent, body: { digest } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ kind: "Run", ok: false, data: null, error: { code: "APPROVAL_NOT_ELIGIBLE", details: { token_kind: "agent", reason: "bot" } } });
    expect(r.body.error.message).toMatch(/agent's token.*only a person's token approves/);
    const refused = (await journal(id)).filter((e) => e.type === "approval_refused");
    expect(refused).toEqual([expect.objectContaining({ login: "my-bot", via: "api", decision: "approve", reason: "bot" })]);
    expect((await call("GET", `/api/v1/runs/${id}`, { token: T.alice })).body.data.status).toBe("waiting");
    // Rejecting is deciding too.
    expect((await call("POST", `/api/v1/runs/${id}/reject`, { token: T.agent, body: {} })).status).toBe(403);
    expect((await call("GET", `/api/v1/runs/${id}`, { token: T.alice })).body.data.status).toBe("waiting");
  });

  it("a person without the permission the gate needs is refused and journaled; GitHub is asked about them", async () => {
    const id = await started();
    asked.length = 0;
    const r = await call("POST", `/api/v1/runs/${id}/approve`, { token: T.mallory, body: { digest: await digestOf(id) } });
    expect([r.status, r.body.error.code]).toEqual([403, "APPROVAL_NOT_ELIGIBLE"]);
    expect(r.body.error.message).toMatch(/mallory has read permission; this needs write/);
    expect(asked).toEqual([{ repo: "acme/widgets", login: "mallory" }]);
    expect((await journal(id)).filter((e) => e.type === "approval_refused")).toEqual([expect.objectContaining({ login: "mallory", via: "api", reason: "not_eligible" })]);
    expect((await call("GET", `/api/v1/runs/${id}`, { token: T.alice })).body.data.status).toBe("waiting");
  });

  it("the person who started the run cannot approve it", async () => {
    const id = await started();
    const r = await call("POST", `/api/v1/runs/${id}/approve`, { token: T.bob, body: {} });
    expect([r.status, r.body.error.code, r.body.error.details.reason]).toEqual([403, "APPROVAL_NOT_ELIGIBLE", "self"]);
    expect((await call("GET", `/api/v1/runs/${id}`, { token: T.alice })).body.data.status).toBe("waiting");
  });

  it("a stale digest is refused with 409 APPROVAL_STALE and the current digest", async () => {
    const id = await started();
    const digest = await digestOf(id);
    const r = await call("POST", `/api/v1/runs/${id}/approve`, { token: T.alice, body: { digest: "0".repeat(64) } });
    expect([r.status, r.body.error.code]).toEqual([409, "APPROVAL_STALE"]);
    expect(r.body.error.details.digest).toBe(digest);
    expect((await journal(id)).filter((e) => e.type === "approval_refused")).toEqual([expect.objectContaining({ login: "alice", reason: "stale_digest" })]);
    expect((await call("GET", `/api/v1/runs/${id}`, { token: T.alice })).body.data.status).toBe("waiting");
  });

  it("an eligible person approves with the digest; the run goes on to its callback, which completes it", async () => {
    const id = await started();
    const digest = await digestOf(id);
    const r = await call("POST", `/api/v1/runs/${id}/approve`, { token: T.alice, body: { digest, comment: "looks right" } });
    expect(r.status).toBe(200);
    expect(r.body.data.status).toBe("waiting");
    expect((await journal(id)).find((e) => e.type === "approval_received")).toMatchObject({ login: "alice", via: "api", decision: "approve", comment: "looks right", digest });
    // A second decision on a gate that passed: NOT_WAITING.
    expect((await call("POST", `/api/v1/runs/${id}/approve`, { token: T.alice, body: {} })).body.error.code).toBe("NOT_WAITING");
    // The callback, checked against its schema; an agent's token may complete it.
    const bad = await call("POST", `/api/v1/runs/${id}/callbacks/result`, { token: T.agent, body: { ok: "yes" } });
    expect([bad.status, bad.body.error.code]).toEqual([422, "CALLBACK_INVALID"]);
    const unknown = await call("POST", `/api/v1/runs/${id}/callbacks/nope`, { token: T.agent, body: {} });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, "NOT_FOUND"]);
    const done = await call("POST", `/api/v1/runs/${id}/callbacks/result`, { token: T.agent, body: { ok: true } });
    expect(done.status).toBe(200);
    expect(done.body.data).toMatchObject({ status: "succeeded", outputs: { ok: true } });
    const again = await call("POST", `/api/v1/runs/${id}/callbacks/result`, { token: T.agent, body: { ok: false } });
    expect(again.body.data.notes).toEqual(["step result was already completed; the first body stands"]);
    const events = await call("GET", `/api/v1/runs/${id}/events`, { token: T.agent });
    expect(events.body.kind).toBe("EventList");
    expect(events.body.data.events.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(["run_created", "approval_received", "callback_received", "run_completed"]));
  });

  it("a person rejects: the run fails", async () => {
    const id = await started();
    const r = await call("POST", `/api/v1/runs/${id}/reject`, { token: T.alice, body: { comment: "not today" } });
    expect(r.status).toBe(200);
    expect(r.body.data.status).toBe("failed");
  });
});

describe("control, gates, flows, kv, resources", () => {
  it("cancel and retry: a person's token; an agent's is forbidden", async () => {
    const id = await started();
    const agent = await call("POST", `/api/v1/runs/${id}/cancel`, { token: T.agent, body: {} });
    expect([agent.status, agent.body.error.code]).toEqual([403, "FORBIDDEN"]);
    const c = await call("POST", `/api/v1/runs/${id}/cancel`, { token: T.alice });
    expect([c.status, c.body.ok, c.body.data.status]).toEqual([200, true, "cancelled"]);
    expect((await call("POST", `/api/v1/runs/${id}/cancel`, { token: T.alice })).body.error.code).toBe("NOT_WAITING");
    expect((await call("POST", `/api/v1/runs/${id}/retry`, { token: T.agent })).status).toBe(403);
    const retried = await call("POST", `/api/v1/runs/${id}/retry`, { token: T.alice });
    expect([retried.status, retried.body.data.status]).toEqual([200, "waiting"]);
  });

  it("a person's token starts, cancels, retries and sets kv only with write access, as the same comments need; nothing happens otherwise", async () => {
    const id = await started();
    const runs = (await store.listRuns({ limit: 1000 })).length;
    const before = await journal(id);
    for (const [method, path, body, what] of [
      ["POST", "/api/v1/runs", { flow: "deploy" }, "starting a run"],
      ["POST", `/api/v1/runs/${id}/cancel`, undefined, "cancelling a run"],
      ["POST", `/api/v1/runs/${id}/retry`, undefined, "retrying a run"],
      ["PUT", "/api/v1/kv/greeting", { value: "mine" }, "setting kv"],
    ] as [string, string, unknown, string][]) {
      const r = await call(method, path, { token: T.mallory, ...(body ? { body } : {}) });
      expect([r.status, r.body.error?.code], path).toEqual([403, "FORBIDDEN"]);
      expect(r.body.error.message).toBe(`${what} needs write access to acme/widgets, as the same command in a comment does; mallory has read`);
    }
    expect((await store.listRuns({ limit: 1000 })).length).toBe(runs);
    expect(await journal(id)).toEqual(before);
    expect((await call("GET", "/api/v1/kv/greeting", { token: T.mallory })).body.data?.value ?? null).not.toBe("mine");
  });

  it("a failed run is an answer, not an error: 200 with ok false and the run", async () => {
    const r = await call("POST", "/api/v1/runs", { token: T.bob, body: { flow: "fails" } });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ ok: false, data: { status: "failed" }, error: { code: expect.any(String) } });
  });

  it("gates list: the open gates of the token's repository", async () => {
    const id = await started();
    const r = await call("GET", "/api/v1/gates", { token: T.alice });
    expect(r.body.kind).toBe("GateList");
    const mine = r.body.data.gates.find((g: { run: string }) => g.run === id);
    expect(mine).toMatchObject({ flow: "deploy", step: "review", quorum: "0/1" });
  });

  it("flows list at the live release and at a ref", async () => {
    const live = await call("GET", "/api/v1/flows", { token: T.alice });
    expect(live.body).toMatchObject({ kind: "FlowList", ok: true, data: { release: { sha: LIVE, kind: "live" } } });
    expect(live.body.data.flows.map((f: { name: string }) => f.name).sort()).toEqual(["big", "deploy", "fails"]);
    const draft = await call("GET", "/api/v1/flows?ref=my-branch", { token: T.alice });
    expect(draft.body.data.release).toMatchObject({ kind: "draft", ref: "my-branch" });
    expect((await call("GET", "/api/v1/flows", { token: T.aliceAll })).body.error.code).toBe("USAGE");
    expect((await call("GET", "/api/v1/flows?repo=acme/widgets", { token: T.aliceAll })).status).toBe(200);
  });

  it("kv: get, set (a person's token), list, the drafts' namespace apart, versions checked", async () => {
    const set = await call("PUT", "/api/v1/kv/greeting", { token: T.alice, body: { value: { hello: "world" } } });
    expect(set.body).toMatchObject({ kind: "KvEntry", ok: true, data: { key: "greeting", value: { hello: "world" }, version: 1 } });
    const got = await call("GET", "/api/v1/kv/greeting", { token: T.agent });
    expect(got.body.data.value).toEqual({ hello: "world" });
    expect((await call("GET", "/api/v1/kv/greeting?draft=true", { token: T.alice })).status).toBe(404);
    const conflict = await call("PUT", "/api/v1/kv/greeting", { token: T.alice, body: { value: 2, if_version: 0 } });
    expect([conflict.status, conflict.body.error.code]).toEqual([409, "STATE_CONFLICT"]);
    const agent = await call("PUT", "/api/v1/kv/greeting", { token: T.agent, body: { value: "owned" } });
    expect([agent.status, agent.body.error.code]).toEqual([403, "FORBIDDEN"]);
    expect((await call("GET", "/api/v1/kv/greeting", { token: T.alice })).body.data.value).toEqual({ hello: "world" });
    const list = await call("GET", "/api/v1/kv?prefix=gr", { token: T.alice });
    expect(list.body.data.entries.map((e: { key: string }) => e.key)).toEqual(["greeting"]);
    // The runs' kv steps write the same namespace.
    expect((await call("GET", "/api/v1/kv/counter", { token: T.alice })).body.data.value).toBeGreaterThan(0);
  });

  it("resources: by hash for a token of every repository, through the run for a repository's token", async () => {
    const r = await call("POST", "/api/v1/runs", { token: T.bob, body: { flow: "big" } });
    const id = r.body.data.id;
    const hex = String(r.body.data.steps[0].outputs.result.$resource).split("/").pop()!;
    const all = await call("GET", `/api/v1/resources/${hex}`, { token: T.aliceAll });
    expect(all.body).toMatchObject({ kind: "Resource", ok: true, data: { ref: `res://sha256/${hex}`, size: 70000 } });
    const limited = await call("GET", `/api/v1/resources/${hex}`, { token: T.alice });
    expect([limited.status, limited.body.error.code]).toEqual([404, "NOT_FOUND"]);
    expect((await call("GET", `/api/v1/resources/${hex}?run=${id}`, { token: T.alice })).status).toBe(200);
    expect((await call("GET", `/api/v1/resources/${hex}?run=${id}`, { token: T.eve })).body.error.code).toBe("RUN_NOT_FOUND");
    const bytes = await fetch(`${base}/api/v1/resources/${hex}?run=${id}`, { headers: { authorization: `Bearer ${T.alice}`, accept: "application/octet-stream" } });
    expect(bytes.headers.get("content-type")).toBe("application/octet-stream");
    expect(await bytes.text()).toBe("x".repeat(70000));
  });

  it("an unknown path under /api/v1 is a 404, a wrong method a 405 naming the right ones", async () => {
    const r = await call("GET", "/api/v1/nothing", { token: T.alice });
    expect([r.status, r.body.error.code]).toEqual([404, "NOT_FOUND"]);
    const m = await fetch(`${base}/api/v1/runs`, { method: "DELETE" });
    expect(m.status).toBe(405);
    expect(m.headers.get("allow")).toBe("GET, POST");
  });
});

describe("the OpenAPI document", () => {
  let doc: any;
  beforeAll(async () => {
    const r = await fetch(`${base}/api/v1/openapi.json`);
    expect(r.status).toBe(200);
    doc = await r.json();
  });

  it("is OpenAPI 3.1 and documents exactly the routes the server serves", () => {
    expect(doc.openapi).toBe("3.1.0");
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    expect(documented).toEqual(API_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  });

  it("every answer given in these tests validates against the document's schema for its route and status", () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    for (const schema of Object.values(doc.components.schemas)) ajv.addSchema(schema as object);
    const resolve = (ref: string) => ref.split("/").slice(1).reduce((o: any, k) => o[k], doc);
    const templates = Object.keys(doc.paths).map((p) => ({ p, re: new RegExp(`^${p.replace(/\{\w+\}/g, "[^/]+")}$`) }));
    expect(answers.length).toBeGreaterThan(50);
    const seen = new Set<string>();
    for (const a of answers) {
      const template = templates.find((t) => t.re.test(a.path))?.p;
      if (!template) continue; // an unknown path: no route to hold it to
      seen.add(`${a.method} ${template}`);
      const responses = doc.paths[template][a.method.toLowerCase()].responses;
      let response = responses[String(a.status)] ?? responses[`${String(a.status)[0]}XX`];
      expect(response, `${a.method} ${template} ${a.status}`).toBeDefined();
      if (response.$ref) response = resolve(response.$ref);
      const ref = response.content["application/json"].schema.$ref as string;
      const validate = ajv.getSchema(resolve(ref).$id)!;
      expect(validate(a.body) ? [] : validate.errors, `${a.method} ${a.path} ${a.status}: ${JSON.stringify(a.body).slice(0, 300)}`).toEqual([]);
    }
    // Every route was exercised here, with an answer held to the document.
    expect([...seen].sort()).toEqual(API_ROUTES.filter((r) => r.access !== "open").map((r) => `${r.method} ${r.path}`).sort());
  });
});
