/**
 * The built CLI against a server (`--server`, SLUICE_SERVER + SLUICE_TOKEN): a real server on
 * loopback (test/adapters/server/api-server.ts: its flows read from the same git repository the
 * local CLI uses). Every command that acts on a server is run both ways, in the same
 * situation, and must give the same JSON kind, the same error code and the same exit code.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken } from "../../src/adapters/server/auth.js";
import { BIG, DEPLOY, startApiServer, type ApiServer } from "../adapters/server/api-server.js";
import { sluiceAsync, type CliResult } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

let repo: TestRepo;
let api: ApiServer;
let stateDir: string;
let base: string;
const T = { bob: "", alice: "", mallory: "", agent: "", eve: "" };

beforeAll(async () => {
  repo = makeRepo({ ".github/flows/deploy.yml": DEPLOY, ".github/flows/big.yml": BIG });
  repo.git("remote", "add", "origin", "https://github.com/acme/widgets.git");
  api = await startApiServer(repo.dir);
  ({ base, dir: stateDir } = api);
  T.bob = await api.token("bob", "acme/widgets");
  T.alice = await api.token("alice", "acme/widgets");
  T.mallory = await api.token("mallory", "acme/widgets");
  T.agent = await api.token("my-bot", "acme/widgets", "agent");
  T.eve = await api.token("eve", "other/repo");
});

afterAll(async () => {
  await api.close();
  repo.remove();
});

const LOCAL_ENV = () => ({ SLUICE_HOME: join(stateDir, "local"), SLUICE_USER: "bob", SLUICE_SERVER: "" });

/** The CLI in local mode, as `who` (--as), with --json. */
const local = (args: string[], who?: string) => sluiceAsync(repo.dir, [...args, ...(who ? ["--as", who] : []), "--json"], LOCAL_ENV());
/** The CLI against the server with a token, with --json; from a folder that is no checkout. */
const remote = (args: string[], token: string, env: Record<string, string> = {}) =>
  sluiceAsync(stateDir, [...args, "--json"], { SLUICE_SERVER: base, SLUICE_TOKEN: token, SLUICE_HOME: join(stateDir, "nowhere"), ...env });

/** What must agree: exit code, kind, ok, error code. */
const shape = (r: CliResult) => ({ code: r.code, kind: r.json?.kind, ok: r.json?.ok, error: r.json?.error?.code ?? null });

async function both(name: string, l: Promise<CliResult>, r: Promise<CliResult>): Promise<[CliResult, CliResult]> {
  const [a, b] = [await l, await r];
  expect(shape(b), `${name}: remote ${b.stdout.slice(0, 300)} ${b.stderr.slice(0, 300)}`).toEqual(shape(a));
  return [a, b];
}

describe("the CLI against a server gives local mode's JSON and exit codes", () => {
  it("run, show, gates, refused and counted decisions, callbacks, cancel, retry, events, lists, kv, resources, flows", async () => {
    // Start: waiting at the gate (exit 3), inputs typed, the trigger actor is the person (bob).
    const [l, r] = await both("run", local(["run", "deploy", "--input", "note=v1", "--input", "times=2"]), remote(["run", "deploy", "--input", "note=v1", "--input", "times=2"], T.bob));
    expect(shape(r)).toEqual({ code: 3, kind: "Run", ok: true, error: null });
    expect(r.json.data).toMatchObject({ flow: "deploy", status: "waiting", inputs: { note: "v1", times: 2 }, release: { kind: "live" } });
    const [lid, rid] = [l.json.data.id as string, r.json.data.id as string];

    await both("runs show", local(["runs", "show", lid]), remote(["runs", "show", rid], T.bob));
    const [, explained] = await both("gates explain", local(["gates", "explain", lid]), remote(["gates", "explain", rid], T.bob));
    const [ld, rd] = [(await local(["gates", "explain", lid])).json.data.gates[0].digest, explained.json.data.gates[0].digest];
    await both("gates list", local(["gates", "list"]), remote(["gates", "list"], T.bob));

    // Refused decisions: self-approval, a stale digest (exit 1 each, the run still waits).
    const [, self] = await both("approve self", local(["approve", lid], "bob"), remote(["approve", rid], T.bob));
    expect(self.json.error.code).toBe("APPROVAL_NOT_ELIGIBLE");
    const [, stale] = await both("approve stale", local(["approve", lid, "--digest", "0".repeat(64)], "alice"), remote(["approve", rid, "--digest", "0".repeat(64)], T.alice));
    expect(stale.json.error.code).toBe("APPROVAL_STALE");
    // A person without the permission and an agent's token: refused over the server (local mode knows no permissions nor agents).
    const mallory = await remote(["approve", rid, "--digest", rd], T.mallory);
    expect(shape(mallory)).toEqual({ code: 1, kind: "Error", ok: false, error: "APPROVAL_NOT_ELIGIBLE" });
    const agent = await remote(["approve", rid, "--digest", rd], T.agent);
    expect(shape(agent)).toEqual({ code: 1, kind: "Error", ok: false, error: "APPROVAL_NOT_ELIGIBLE" });
    expect(agent.json.error.message).toMatch(/agent's token/);
    expect((await remote(["runs", "show", rid], T.bob)).json.data.status).toBe("waiting");
    // --as is local mode's: against a server the token says who you are.
    expect(shape(await remote(["approve", rid, "--as", "alice"], T.bob))).toMatchObject({ code: 2, error: "USAGE" });

    // A counted approval: the run goes on to its callback (exit 3).
    const [, approved] = await both("approve", local(["approve", lid, "--digest", ld, "--comment", "ok"], "alice"), remote(["approve", rid, "--digest", rd, "--comment", "ok"], T.alice));
    expect(approved.json.data.status).toBe("waiting");
    const events = (await remote(["runs", "events", rid], T.bob)).json.data.events;
    expect(events.find((e: { type: string }) => e.type === "approval_received")).toMatchObject({ login: "alice", via: "api" });
    expect(events.filter((e: { type: string }) => e.type === "approval_refused").map((e: { login: string }) => e.login)).toEqual(["bob", "alice", "mallory", "my-bot"]);
    await both("runs events", local(["runs", "events", lid]), remote(["runs", "events", rid], T.bob));

    // Callbacks: not JSON (2), against the schema (1), done (0); an agent's token completes it.
    await both("callback not json", local(["callback", lid, "result", "--body", "{nope"]), remote(["callback", rid, "result", "--body", "{nope"], T.agent));
    await both("callback invalid", local(["callback", lid, "result", "--body", '{"ok":"yes"}']), remote(["callback", rid, "result", "--body", '{"ok":"yes"}'], T.agent));
    const [, done] = await both("callback", local(["callback", lid, "result", "--body", '{"ok":true}']), remote(["callback", rid, "result", "--body", '{"ok":true}'], T.agent));
    expect(done.json.data.status).toBe("succeeded");
    await both("approve after the end", local(["approve", lid], "alice"), remote(["approve", rid], T.alice));

    // Cancel (0), cancel again (1), retry (3); not found (4).
    const [l2, r2] = await both("run 2", local(["run", "deploy"]), remote(["run", "deploy"], T.bob));
    await both("cancel", local(["runs", "cancel", l2.json.data.id]), remote(["runs", "cancel", r2.json.data.id], T.bob));
    await both("cancel again", local(["runs", "cancel", l2.json.data.id]), remote(["runs", "cancel", r2.json.data.id], T.bob));
    await both("retry", local(["runs", "retry", l2.json.data.id]), remote(["runs", "retry", r2.json.data.id], T.bob));
    await both("show missing", local(["runs", "show", "0nosuchrun00000"]), remote(["runs", "show", "0nosuchrun00000"], T.bob));
    await both("run missing flow", local(["run", "nope"]), remote(["run", "nope"], T.bob));
    await both("run bad input", local(["run", "deploy", "--input", "times=many"]), remote(["run", "deploy", "--input", "times=many"], T.bob));
    await both("run detached", local(["run", "deploy", "--detach"]), remote(["run", "deploy", "--detach"], T.bob));
    await both("runs list", local(["runs", "list", "--status", "waiting"]), remote(["runs", "list", "--status", "waiting"], T.bob));
    await both("flows list", local(["flows", "list"]), remote(["flows", "list"], T.bob));

    // kv: set (0), get (0), missing (4), list (0), a version conflict (1).
    await both("kv set", local(["kv", "set", "greeting", '{"hello":1}']), remote(["kv", "set", "greeting", '{"hello":1}'], T.bob));
    const [, got] = await both("kv get", local(["kv", "get", "greeting"]), remote(["kv", "get", "greeting"], T.bob));
    expect(got.json.data).toMatchObject({ key: "greeting", value: { hello: 1 }, version: 1 });
    await both("kv missing", local(["kv", "get", "nope"]), remote(["kv", "get", "nope"], T.bob));
    await both("kv draft", local(["kv", "get", "greeting", "--draft"]), remote(["kv", "get", "greeting", "--draft"], T.bob));
    await both("kv list", local(["kv", "list"]), remote(["kv", "list"], T.bob));
    await both("kv conflict", local(["kv", "set", "greeting", "2", "--if-version", "0"]), remote(["kv", "set", "greeting", "2", "--if-version", "0"], T.bob));

    // Resources: printed, and written to a file byte for byte.
    const [l3, r3] = await both("run big", local(["run", "big"]), remote(["run", "big"], T.bob));
    const ref = r3.json.data.steps[0].outputs.result.$resource as string;
    expect(l3.json.data.steps[0].outputs.result.$resource).toBe(ref);
    await both("resources get", local(["resources", "get", ref]), remote(["resources", "get", ref, "--run", r3.json.data.id], T.bob));
    const file = join(stateDir, "out.txt");
    const written = await remote(["resources", "get", ref, "--run", r3.json.data.id, "-o", file], T.bob);
    expect(shape(written)).toEqual({ code: 0, kind: "Resource", ok: true, error: null });
    expect(readFileSync(file, "utf8")).toBe("x".repeat(70000));
  }, 120_000);

  it("no token, a made-up token, a token of another repository, a server that is not there", async () => {
    const started = (await remote(["run", "deploy"], T.bob)).json.data.id as string;
    const none = await sluiceAsync(stateDir, ["runs", "show", started, "--json"], { SLUICE_SERVER: base, SLUICE_TOKEN: "" });
    expect(shape(none)).toEqual({ code: 2, kind: "Error", ok: false, error: "USAGE" });
    expect(none.json.error.message).toMatch(/SLUICE_TOKEN/);
    const madeUp = await remote(["runs", "show", started], newToken().secret);
    expect(shape(madeUp)).toEqual({ code: 1, kind: "Error", ok: false, error: "UNAUTHORIZED" });
    const other = await remote(["runs", "show", started], T.eve);
    expect(shape(other)).toEqual({ code: 4, kind: "Error", ok: false, error: "RUN_NOT_FOUND" });
    expect(shape(await remote(["approve", started], T.eve))).toEqual({ code: 4, kind: "Error", ok: false, error: "RUN_NOT_FOUND" });
    const away = await sluiceAsync(stateDir, ["runs", "list", "--server", "http://127.0.0.1:9", "--json"], { SLUICE_TOKEN: T.bob });
    expect(shape(away)).toEqual({ code: 5, kind: "Error", ok: false, error: "CONNECTION_FAILED" });
    // Commands without an API stay local, and say so when pointed at a server.
    expect(shape(await remote(["secrets", "list", "--server", base], T.bob))).toMatchObject({ code: 2, error: "USAGE" });
  }, 60_000);

  it("prints text for people too, as local mode does", async () => {
    const id = (await remote(["run", "deploy", "--input", "note=release notes"], T.bob)).json.data.id as string;
    const r = await sluiceAsync(stateDir, ["runs", "list", "--server", base], { SLUICE_TOKEN: T.bob });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(id);
    const explained = await sluiceAsync(stateDir, ["gates", "explain", id, "--server", base], { SLUICE_TOKEN: T.bob });
    expect(explained.code).toBe(0);
    expect(explained.stdout).toContain("gate at review (approval): Ship it?");
    expect(explained.stdout).toContain("release notes");
    expect(explained.stdout).toContain("who may approve: anyone with write permission");
    expect(explained.stdout).toMatch(new RegExp(`approve: sluice approve ${id} --digest [0-9a-f]{64}`));
    const missing = await sluiceAsync(stateDir, ["runs", "show", "0nosuchrun00000", "--server", base], { SLUICE_TOKEN: T.bob });
    expect([missing.code, missing.stderr.trim()]).toEqual([4, "error RUN_NOT_FOUND: no run '0nosuchrun00000'"]);
    // --server before the command, as a global flag, means the same.
    for (const flag of [["--server", base], [`--server=${base}`]]) {
      const first = await sluiceAsync(stateDir, [...flag, "runs", "list"], { SLUICE_TOKEN: T.bob });
      expect([first.code, first.stdout]).toEqual([0, r.stdout]);
    }
    const local = await sluiceAsync(stateDir, ["--server", base, "validate"], { SLUICE_TOKEN: T.bob });
    expect([local.code, local.stderr]).toEqual([2, expect.stringContaining("--server")]);
  }, 60_000);
});

const NAP = `
name: nap
on: { manual: {} }
steps:
  - id: rest
    sleep: 300ms
  - id: review
    wait: { approval: { title: Go on? } }
  - id: after
    function: { code: "return 'done'" }
`;

describe("run --follow against a server", () => {
  let napRepo: TestRepo;
  let followed: ApiServer;
  let token: string;
  beforeAll(async () => {
    napRepo = makeRepo({ ".github/flows/nap.yml": NAP });
    napRepo.git("remote", "add", "origin", "https://github.com/acme/widgets.git");
    // A server whose worker runs what is queued, as every real server's does.
    followed = await startApiServer(napRepo.dir, { worker: true });
    token = await followed.token("bob", "acme/widgets");
  });
  afterAll(async () => {
    await followed.close();
    napRepo.remove();
  });
  const env = () => ({ SLUICE_SERVER: followed.base, SLUICE_TOKEN: token, SLUICE_HOME: join(followed.dir, "nowhere") });
  const ndjson = (out: string) => out.trim().split("\n").map((l) => JSON.parse(l) as { kind: string; run?: string; event?: { type: string; at: number }; data?: any });

  it("prints the journal as it grows, through the sleep, up to the gate, then the run, as local mode does", async () => {
    const l = await sluiceAsync(napRepo.dir, ["run", "nap", "--follow", "--json", "--as", "bob"], { SLUICE_HOME: join(followed.dir, "local"), SLUICE_SERVER: "" });
    const r = await sluiceAsync(followed.dir, ["run", "nap", "--follow", "--json"], env());
    expect([r.code, l.code], r.stderr).toEqual([3, 3]);
    const [locally, remotely] = [ndjson(l.stdout), ndjson(r.stdout)];
    const run = remotely.at(-1)!;
    expect(run).toMatchObject({ kind: "Run", ok: true, data: { flow: "nap", status: "waiting" } });
    const events = remotely.slice(0, -1);
    expect(events.every((e) => e.kind === "RunEvent" && e.run === run.data.id && typeof e.event?.at === "number")).toBe(true);
    expect(events.map((e) => e.event!.type)).toContain("timer_started");
    expect(events.map((e) => e.event!.type)).toEqual(locally.slice(0, -1).map((e) => e.event!.type));
    // Every line is what schemas/cli says.
    const ajv = new Ajv2020({ strict: false });
    const validate = ajv.compile(JSON.parse(readFileSync(join(import.meta.dirname, "../../schemas/cli/run-event.schema.json"), "utf8")));
    for (const e of events) expect(validate(e), JSON.stringify(validate.errors)).toBe(true);

    // For people: the run's id first, a line per event, then the run.
    const text = await sluiceAsync(followed.dir, ["run", "nap", "--follow"], env());
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(/^run \S+  nap  live main @ [0-9a-f]{7}\n/);
    expect(text.stdout).toContain("timer_started rest");
    expect(text.stdout).toContain("gate_opened review");
  }, 60_000);
});
