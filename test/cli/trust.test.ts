/**
 * The promise, attacked through the CLI with a real peer on loopback: a draft cannot approve its
 * own writes (the default branch's policy is the floor), an approval covers only the writes it
 * covers, refused decisions are journaled, logins are normalised, and drafts cannot touch live
 * kv or concurrency groups. Each test checks what the peer received, not only what Sluice says.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { sendJson, startHttpPeer, type HttpPeer } from "../support/http-peer.js";

let peer: HttpPeer;
const repos: TestRepo[] = [];

beforeAll(async () => {
  peer = await startHttpPeer((_req, res) => sendJson(res, 200, { ok: true }));
});
afterAll(async () => {
  for (const r of repos) r.remove();
  await peer.stop();
});

const config = (policy = "") => `connections:
  target: { type: http, base_url: "${peer.origin}" }
${policy}`;

function repo(files: Record<string, string>): { repo: TestRepo; cli: (args: string[], as?: string) => ReturnType<typeof sluiceAsync> } {
  const r = makeRepo(files);
  repos.push(r);
  const env = { SLUICE_HOME: join(r.dir, ".state") };
  return { repo: r, cli: (args, as = "alice") => sluiceAsync(r.dir, [...args, "--json"], { ...env, SLUICE_USER: as }) };
}

const hits = (path: string) => peer.requests.filter((q) => q.url.pathname === path).length;

describe("a draft cannot name its own approvers", () => {
  const EVIL = `on: { manual: {} }
steps:
  - id: ok
    wait:
      approval:
        title: Trust me
        approvers: { users: [alice] }
        allow_self_approval: true
  - id: write
    http: { method: POST, connection: target, url: /evil-write, body: { drop: everything } }
`;

  it("the author's self-approval on a branch is refused, journaled, and the write never reaches the peer", async () => {
    const { repo: r, cli } = repo({ ".github/sluice.yml": config() });
    r.git("checkout", "-q", "-b", "evil");
    r.commit({ ".github/flows/evil.yml": EVIL }, "a flow that approves itself");
    r.git("checkout", "-q", "main");

    const started = await cli(["run", "evil", "--ref", "evil"]);
    expect(started.code).toBe(3);
    expect(started.json.data.release.kind).toBe("draft");
    const id = started.json.data.id;

    const self = await cli(["approve", id]);
    expect(self.code).toBe(1);
    expect(self.json.error).toMatchObject({ code: "APPROVAL_NOT_ELIGIBLE", details: { reason: "self" } });
    // Someone else meets the policy (write, locally) but not the gate's own list: the gate adds requirements.
    const other = await cli(["approve", id], "bob");
    expect(other.json.error).toMatchObject({ code: "APPROVAL_NOT_ELIGIBLE", details: { reason: "not_eligible" } });

    expect(hits("/evil-write")).toBe(0);
    const shown = await cli(["runs", "show", id]);
    expect(shown.json.data.status).toBe("waiting");
    expect(shown.json.data.gate).toMatchObject({ floor: { permission: "write" }, refused: [{ login: "alice", reason: "self" }, { login: "bob", reason: "not_eligible" }] });
    const events = (await cli(["runs", "events", id])).json.data.events;
    expect(events.filter((e: { type: string }) => e.type === "approval_refused").map((e: { login: string; via: string; reason: string }) => [e.login, e.via, e.reason])).toEqual([
      ["alice", "cli", "self"],
      ["bob", "cli", "not_eligible"],
    ]);
    expect(events.some((e: { type: string }) => e.type === "approval_received")).toBe(false);
  });

  it("self-approval counts where the default branch's policy allows it", async () => {
    const { repo: r, cli } = repo({ ".github/sluice.yml": config("policy:\n  allow_self_approval: true\n") });
    r.git("checkout", "-q", "-b", "evil");
    r.commit({ ".github/flows/evil.yml": EVIL.replace("/evil-write", "/allowed-write") }, "self-approval, allowed by policy");
    r.git("checkout", "-q", "main");
    const id = (await cli(["run", "evil", "--ref", "evil"])).json.data.id;
    const approved = await cli(["approve", id]);
    expect(approved.code).toBe(0);
    expect(approved.json.data.status).toBe("succeeded");
    expect(hits("/allowed-write")).toBe(1);
  });
});

describe("an approval covers the writes it covers, no more", () => {
  const FLOW = `on: { manual: {} }
steps:
  - id: first
    wait: { approval: { title: One } }
  - id: one
    http: { method: POST, connection: target, url: /cover-one }
  - id: second
    wait: { approval: { title: Three only, covers: [three] } }
  - id: two
    http: { method: POST, connection: target, url: /cover-two }
  - id: three
    http: { method: POST, connection: target, url: /cover-three }
`;

  it("a write after the next approval step waits for its own gate", async () => {
    const { cli } = repo({ ".github/sluice.yml": config(), ".github/flows/covered.yml": FLOW });
    const id = (await cli(["run", "covered"])).json.data.id;
    expect((await cli(["approve", id], "bob")).json.data.gate.step).toBe("second");
    expect([hits("/cover-one"), hits("/cover-two"), hits("/cover-three")]).toEqual([1, 0, 0]);
    const atTwo = await cli(["approve", id], "bob");
    expect(atTwo.json.data.gate).toMatchObject({ step: "two", kind: "implicit" });
    expect(atTwo.json.data.steps.find((s: { id: string }) => s.id === "three").covered_by).toBe("covered by 'second'");
    expect([hits("/cover-one"), hits("/cover-two"), hits("/cover-three")]).toEqual([1, 0, 0]);
    expect((await cli(["approve", id], "bob")).json.data.status).toBe("succeeded");
    expect([hits("/cover-one"), hits("/cover-two"), hits("/cover-three")]).toEqual([1, 1, 1]);
  });

  it("validate says which gate covers which write", async () => {
    const { cli } = repo({ ".github/sluice.yml": config(), ".github/flows/covered.yml": FLOW });
    const report = await cli(["validate"]);
    expect(report.code).toBe(0);
    const flow = report.json.data.files.find((f: { kind: string }) => f.kind === "flow");
    expect(flow.writes).toEqual([
      { step: "one", gate: "approval", by: ["first"], text: "covered by 'first'" },
      { step: "two", gate: "implicit", text: "its own gate" },
      { step: "three", gate: "approval", by: ["second"], text: "covered by 'second'" },
    ]);
  });
});

describe("who decides: logins normalised", () => {
  it("a case or space variant of the trigger actor, a bot in any case and a malformed login are refused and journaled", async () => {
    const { cli } = repo({
      ".github/sluice.yml": config(),
      ".github/flows/gated.yml": `on: { manual: {} }
steps:
  - id: write
    http: { method: PUT, connection: target, url: /identity-write }
`,
    });
    const id = (await cli(["run", "gated"], "alice")).json.data.id;
    const tries: [string, string][] = [
      ["  ALICE ", "self"],
      ["Renovate[BOT]", "bot"],
      ["not a login!", "invalid_login"],
    ];
    for (const [login, reason] of tries) {
      const r = await cli(["approve", id, "--as", login]);
      expect(r.json.error.details.reason, login).toBe(reason);
    }
    expect(hits("/identity-write")).toBe(0);
    const refused = (await cli(["gates", "explain", id])).json.data.gates[0].refused;
    expect(refused.map((x: { reason: string }) => x.reason)).toEqual(["self", "bot", "invalid_login"]);
    expect((await cli(["approve", id, "--as", " Bob "])).json.data.status).toBe("succeeded");
    expect(hits("/identity-write")).toBe(1);
  });
});

describe("drafts stay drafts", () => {
  it("a draft reads and writes its own kv namespace, never the live one", async () => {
    const { repo: r, cli } = repo({
      ".github/flows/setk.yml": `on: { manual: {} }
steps:
  - id: set
    kv: { set: { key: shared, value: live } }
`,
    });
    expect((await cli(["run", "setk"])).json.data.status).toBe("succeeded");
    r.git("checkout", "-q", "-b", "draft");
    r.commit({
      ".github/flows/peek.yml": `on: { manual: {} }
steps:
  - id: read
    kv: { get: shared }
  - id: write
    kv: { set: { key: shared, value: draft } }
outputs:
  seen: \${{ steps.read.outputs.value }}
`,
    });
    r.git("checkout", "-q", "main");
    const draft = await cli(["run", "peek", "--ref", "draft"]);
    expect(draft.json.data).toMatchObject({ status: "succeeded", release: { kind: "draft" }, outputs: { seen: null } });
    expect((await cli(["kv", "get", "shared"])).json.data.value).toBe("live");
    expect((await cli(["kv", "get", "shared", "--draft"])).json.data.value).toBe("draft");
  });

  it("a draft's concurrency group is its own: it cannot cancel a live run", async () => {
    const HOLD = (conflict: string) => `on: { manual: {} }
concurrency: { group: deploy, on_conflict: ${conflict} }
steps:
  - id: hold
    wait: { approval: { title: Hold } }
`;
    const { repo: r, cli } = repo({ ".github/flows/hold.yml": HOLD("queue") });
    const live = (await cli(["run", "hold"])).json.data.id;
    r.git("checkout", "-q", "-b", "draft");
    r.commit({ ".github/flows/hold.yml": HOLD("cancel_running") });
    r.git("checkout", "-q", "main");
    const draft = await cli(["run", "hold", "--ref", "draft"]);
    expect(draft.json.data.status).toBe("waiting");
    expect((await cli(["runs", "show", live])).json.data.status).toBe("waiting");
    // A second live run of the group still queues behind the first: live groups work as before.
    expect((await cli(["run", "hold"])).json.data.status).toBe("queued");
  });
});
