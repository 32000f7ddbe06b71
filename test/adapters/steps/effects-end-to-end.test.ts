/**
 * Effects that cannot be disguised, end to end: flows run by the built CLI (engine, runtime,
 * executors) against a real HTTP peer and a real sshd. A step disguised as a read is gated like
 * any write, and nothing reaches the peer or the host before a human approves; a deny rule that
 * validation could not see (an expression) still refuses the command after approval.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluiceAsync } from "../../support/cli.js";
import { makeRepo, type TestRepo } from "../../support/git-repo.js";
import { sendJson, startHttpPeer, type HttpPeer } from "../../support/http-peer.js";
import pg from "pg";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";
import { startSshd, type TestSshd } from "../../support/sshd.js";

let site: HttpPeer;
let sshd: TestSshd;
let db: TestPostgres;
let repo: TestRepo;
let scratch: string;
let env: Record<string, string>;

const flow = (name: string, step: string, inputs = "{}") => `
name: ${name}
on: { manual: { inputs: ${inputs} } }
steps:
  - id: act
    ${step}
`;

beforeAll(async () => {
  site = await startHttpPeer((req, res) => sendJson(res, 200, { method: req.method, path: req.path }));
  [sshd, db] = await Promise.all([startSshd(), startPostgres()]);
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  await admin.query("CREATE SEQUENCE tickets");
  await admin.end();
  scratch = mkdtempSync(join(tmpdir(), "sluice-effects-"));
  mkdirSync(join(scratch, "victim"));
  writeFileSync(join(scratch, "victim", "keep"), "still here\n");
  const config = `
connections:
  site: { type: http, base_url: "${site.origin}" }
  vm: { type: ssh, host: ${sshd.host}, port: ${sshd.port}, user: ${sshd.user}, host_key: "${sshd.hostKeyFingerprint}", secret: VM_KEY }
  app: { type: postgres, secret: APP_DB }
policy:
  allow: { http: ["POST ${site.origin}/safe/**"], ssh: ["^uptime"] }
  deny: { ssh: ["rm -rf ${join(scratch, "victim")}"] }
`;
  repo = makeRepo({
    ".github/sluice.yml": config,
    ".github/flows/allowed.yml": flow("allowed", "http: { method: POST, connection: site, url: safe/ok }"),
    ".github/flows/traverse.yml": flow("traverse", "http: { method: POST, connection: site, url: safe/%2e%2e/danger }"),
    ".github/flows/override.yml": flow("override", "http: { connection: site, url: safe/ok, headers: { X-HTTP-Method-Override: DELETE } }"),
    ".github/flows/uptime.yml": flow("uptime", "ssh: { connection: vm, run: uptime }"),
    ".github/flows/chain.yml": flow("chain", `ssh: { connection: vm, run: "uptime; touch ${join(scratch, "marker")}" }`),
    ".github/flows/wipe.yml": flow("wipe", 'ssh: { connection: vm, run: "${{ inputs.cmd }}" }', "{ cmd: { type: string, required: true } }"),
    ".github/flows/ticket.yml": flow("ticket", `db: { connection: app, query: "select nextval('tickets') as n" }`),
  });
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_SECRET_VM_KEY: sshd.privateKey, SLUICE_SECRET_APP_DB: db.url };
}, 60_000);

afterAll(async () => {
  await site?.stop();
  await sshd?.stop();
  await db?.stop();
  repo?.remove();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

// Not spawnSync: the HTTP peer answers from this very process.
const run = (args: string[]) => sluiceAsync(repo.dir, [...args, "--json"], env);
const paths = () => site.requests.map((r) => `${r.method} ${r.path}`);

describe("effects cannot be disguised, end to end", { timeout: 60_000 }, () => {
  it("an allowed POST runs ungated (the control)", async () => {
    const r = await run(["run", "allowed"]);
    expect(r.json.data.status).toBe("succeeded");
    expect(r.json.data.steps[0].effect).toBe("read");
    expect(paths()).toEqual(["POST /safe/ok"]);
  });

  it("POST safe/%2e%2e/danger under the allow rule for safe/** waits at a gate; danger got nothing", async () => {
    const r = await run(["run", "traverse"]);
    expect(r.code).toBe(3);
    expect(r.json.data.status).toBe("waiting");
    expect(r.json.data.steps[0]).toMatchObject({ id: "act", effect: "write" });
    expect(r.json.data.gate.step).toBe("act");
    expect(paths()).toEqual(["POST /safe/ok"]);
  });

  it("a GET with X-HTTP-Method-Override waits at a gate; nothing was sent", async () => {
    const r = await run(["run", "override"]);
    expect(r.json.data.status).toBe("waiting");
    expect(r.json.data.gate.step).toBe("act");
    expect(paths()).toEqual(["POST /safe/ok"]);
  });

  it("`uptime` runs ungated under allow.ssh (the control); `uptime; touch marker` waits at a gate and touches nothing", async () => {
    const up = await run(["run", "uptime"]);
    expect(up.json.data.status).toBe("succeeded");
    expect(up.json.data.steps[0].effect).toBe("read");
    const chain = await run(["run", "chain"]);
    expect(chain.json.data.status).toBe("waiting");
    expect(chain.json.data.steps[0].effect).toBe("write");
    expect(existsSync(join(scratch, "marker"))).toBe(false);
  });

  it("a denied command that comes from an input is refused at run time, after approval; the files stay", async () => {
    const victim = join(scratch, "victim");
    const started = await run(["run", "wipe", "--input", `cmd=rm  -rf   ${victim}`]);
    expect(started.json.data.status).toBe("waiting");
    const approved = await run(["approve", started.json.data.id, "--as", "bob"]);
    expect(approved.json.data.status).toBe("failed");
    expect(approved.json.data.steps[0].error).toMatchObject({ code: "POLICY_DENIED" });
    expect(approved.json.data.steps[0].error.message).toContain(`deny.ssh rule 'rm -rf ${victim}'`);
    expect(readFileSync(join(victim, "keep"), "utf8")).toBe("still here\n");
  });

  it("a SELECT that advances a sequence, a read at validation, is found to write before it runs and is gated; approved, it runs once", async () => {
    const sequence = async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        return (await c.query("SELECT last_value, is_called FROM tickets")).rows[0];
      } finally {
        await c.end();
      }
    };
    const started = await run(["run", "ticket"]);
    expect(started.code).toBe(3);
    expect(started.json.data.steps[0]).toMatchObject({ id: "act", effect: "write", status: "waiting" });
    expect(started.json.data.gate).toMatchObject({ step: "act", kind: "implicit" });
    expect(await sequence()).toEqual({ last_value: "1", is_called: false });
    const events = (await run(["runs", "events", started.json.data.id])).json.data.events;
    expect(events.filter((e: { type: string }) => e.type === "step_reclassified")).toMatchObject([{ step: "act", attempt: 1, effect: "write" }]);
    const approved = await run(["approve", started.json.data.id, "--as", "bob"]);
    expect(approved.json.data.status).toBe("succeeded");
    expect(approved.json.data.steps[0].outputs.rows).toEqual([{ n: "1" }]);
    expect(await sequence()).toEqual({ last_value: "1", is_called: true });
  });
});
