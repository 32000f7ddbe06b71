/**
 * The API on the real app (`startServer`, Probot, the installation) against the GitHub
 * simulator: a run started through /api/v1 reads its flow from GitHub (the live release, and a
 * branch as a draft), its trigger actor is the token's login; a decision through the API counts
 * with the permission and teams GitHub reports now (a reader is refused, a team member counts),
 * and an agent's token is refused and journaled. The simulator checks every request the app makes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newToken } from "../../src/adapters/server/auth.js";
import type { TokenKind } from "../../src/ports/run-store.js";
import { startApp, type AppHarness } from "./harness.js";

const SHIP = `name: ship
on:
  manual:
    inputs:
      version: { type: string, required: true }
steps:
  - id: review
    wait:
      approval:
        title: Ship \${{ inputs.version }}?
        approvers: { teams: [acme/release], permission: admin, min: 1 }
  - id: done
    function:
      code: return "shipped";
`;

let app: AppHarness;
const repo = "acme/widgets";

async function token(login: string, kind: TokenKind = "human"): Promise<string> {
  const t = newToken();
  await app.sluice.store.createToken({ id: t.id, hash: t.hash, login, repo, kind, createdAt: Date.now(), expiresAt: null, revokedAt: null });
  return t.secret;
}

async function call(method: string, path: string, tok: string, body?: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(`${app.server.url}${path}`, { method, headers: { authorization: `Bearer ${tok}`, "content-type": "application/json" }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: r.status, body: await r.json() };
}

beforeAll(async () => {
  app = await startApp({ files: { "README.md": "# widgets\n", ".github/flows/ship.yml": SHIP } });
  app.gh.sim.setPermission(repo, "ann", "write");
  app.gh.sim.setPermission(repo, "rita", "read");
  app.gh.sim.setPermission(repo, "tom", "write");
  app.gh.sim.addTeamMember("acme", "release", "tom");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

describe("the API on the app", { timeout: 90_000 }, () => {
  it("starts a run from the flows on GitHub, as the token's login; GitHub's permissions and teams decide who counts", async () => {
    const ann = await token("ann");
    const started = await call("POST", "/api/v1/runs", ann, { flow: "ship", inputs: { version: "1.2" } });
    expect(started.status).toBe(201);
    expect(started.body.data).toMatchObject({ flow: "ship", status: "waiting", release: { kind: "live" }, trigger: { actor: "ann" }, gate: { step: "review" } });
    const id = started.body.data.id as string;

    const flows = await call("GET", "/api/v1/flows", ann);
    expect(flows.body).toMatchObject({ kind: "FlowList", ok: true, data: { flows: [{ name: "ship" }] } });

    // An agent's token: refused, journaled, the run waits.
    const bot = await call("POST", `/api/v1/runs/${id}/approve`, await token("ship-bot", "agent"), {});
    expect([bot.status, bot.body.error.code]).toEqual([403, "APPROVAL_NOT_ELIGIBLE"]);
    // A reader: GitHub says read, the gate needs the team or admin.
    const rita = await call("POST", `/api/v1/runs/${id}/approve`, await token("rita"), {});
    expect([rita.status, rita.body.error.code]).toEqual([403, "APPROVAL_NOT_ELIGIBLE"]);
    const refused = (await app.sluice.store.loadJournal(id)).filter((s) => s.event.type === "approval_refused").map((s) => s.event);
    expect(refused).toEqual([expect.objectContaining({ login: "ship-bot", via: "api", reason: "bot" }), expect.objectContaining({ login: "rita", via: "api", reason: "not_eligible" })]);
    expect((await app.sluice.store.getRun(id))?.status).toBe("waiting");

    // A member of the team GitHub reports counts; the run completes.
    const tom = await call("POST", `/api/v1/runs/${id}/approve`, await token("tom"), { comment: "go" });
    expect(tom.status).toBe(200);
    const run = await app.ended(id);
    expect(run.status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(id);
    expect(state.steps.review?.outputs).toMatchObject({ approvers: [{ login: "tom", via: "api" }] });
  });

  it("starts a draft from a branch, with the live release's config", async () => {
    app.gh.sim.pushCommit(repo, "try-it", { ".github/flows/ship.yml": SHIP.replace("Ship ", "Try ") }, { author: "ann" });
    const r = await call("POST", "/api/v1/runs", await token("ann"), { flow: "ship", ref: "try-it", inputs: { version: "2" } });
    expect(r.status).toBe(201);
    expect(r.body.data).toMatchObject({ release: { kind: "draft", ref: "try-it" }, gate: { title: "Try 2?" } });
  });
});
