/**
 * The real app on loopback, against the simulator: what it serves about runs needs credentials.
 * The check run's details_url is a signed link that opens its run's page and outputs (the bare
 * page URL does not); a token made with the built `sluice tokens create` on the server's store
 * reads the API and the metrics until it is revoked; /healthz stays open.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LINK_TTL_MS } from "../../src/adapters/server/auth.js";
import { sluiceAsync } from "../support/cli.js";
import { startApp, type AppHarness } from "./harness.js";

const BIG = `name: big
on:
  manual:
steps:
  - id: make
    function:
      code: return "x".repeat(70000);
`;

let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({ files: { ".github/flows/big.yml": BIG } });
  app.gh.sim.setPermission(repo, "ann", "write");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

/** Starts `big` from an issue comment and waits for its completed check run. */
async function finishedCheckRun() {
  const { sim } = app.gh;
  const issue = sim.createIssue(repo, { title: "make it big", user: "ann" });
  const before = new Set(sim.checkRunsOf(repo).map((c) => c.id));
  await app.send("issue_comment", sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run big" }));
  return app.waitFor("the run's completed check run", () => sim.checkRunsOf(repo).find((c) => !before.has(c.id) && c.name === "sluice: big" && c.status === "completed"));
}

const tokensCli = (args: string[]) => sluiceAsync(app.sluice.config.home, ["tokens", ...args, "--json"], { SLUICE_HOME: app.sluice.config.home });

describe("the run page and its outputs", { timeout: 60_000 }, () => {
  it("open from the check run's signed details_url, and not from the bare URL", async () => {
    const check = await finishedCheckRun();
    const id = check.externalId;
    const details = new URL(check.detailsUrl!);
    expect(`${details.origin}${details.pathname}`).toBe(`${app.server.url}/runs/${id}`);
    // Signed for 30 days from the report.
    const exp = Number(details.searchParams.get("exp"));
    expect(exp * 1000 - Date.now()).toBeGreaterThan(LINK_TTL_MS - 600_000);
    // (exp is in whole seconds, rounded up: the check run may be reported within the second the test reads it.)
    expect(exp * 1000 - Date.now()).toBeLessThanOrEqual(LINK_TTL_MS + 1000);

    const page = await fetch(details, { headers: { accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`<code>${id}</code>`);
    const bare = await fetch(`${app.server.url}/runs/${id}`, { headers: { accept: "text/html" } });
    expect(bare.status).toBe(401);
    expect(bare.headers.get("www-authenticate")).toBe('Bearer realm="sluice"');

    // The summary's link to the large output is signed too, and serves it.
    const output = /\((http[^)]+\/resources\/[0-9a-f]{64}\?exp=[0-9]+&sig=[A-Za-z0-9_-]+)\)/.exec(check.output.summary ?? "");
    expect(output).not.toBeNull();
    const res = await fetch(output![1]!);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("x".repeat(70000));

    // The link is for this run only: not another run, not the API.
    const other = await finishedCheckRun();
    expect((await fetch(`${app.server.url}/runs/${other.externalId}${details.search}`)).status).toBe(401);
    expect((await fetch(`${app.server.url}/api/v1/runs/${id}${details.search}`)).status).toBe(401);
  });
});

describe("API tokens from `sluice tokens`", { timeout: 60_000 }, () => {
  it("read the API and the metrics as their login, within their repository, until revoked", async () => {
    const check = await finishedCheckRun();
    const id = check.externalId;
    const made = await tokensCli(["create", "--login", "ann"]);
    expect(made.code).toBe(0);
    const token = made.json.data.token as string;
    const auth = { authorization: `Bearer ${token}` };

    expect((await fetch(`${app.server.url}/api/v1/runs`)).status).toBe(401);
    expect((await fetch(`${app.server.url}/metrics`)).status).toBe(401);
    const list = await fetch(`${app.server.url}/api/v1/runs?repo=${repo}`, { headers: auth });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { data: { runs: { id: string }[] } }).data.runs.map((r) => r.id)).toContain(id);
    expect((await fetch(`${app.server.url}/api/v1/runs/${id}`, { headers: auth })).status).toBe(200);
    const metrics = await fetch(`${app.server.url}/metrics`, { headers: auth });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain("sluice_runs_completed_total");

    // A token for another repository: the run is as absent as a run that does not exist.
    const elsewhere = (await tokensCli(["create", "--login", "eve", "--repo", "other/repo"])).json.data.token as string;
    const hidden = await fetch(`${app.server.url}/api/v1/runs/${id}`, { headers: { authorization: `Bearer ${elsewhere}` } });
    const none = await fetch(`${app.server.url}/api/v1/runs/0nosuchrun0`, { headers: { authorization: `Bearer ${elsewhere}` } });
    expect([hidden.status, none.status]).toEqual([404, 404]);
    expect((await fetch(`${app.server.url}/metrics`, { headers: { authorization: `Bearer ${elsewhere}` } })).status).toBe(403);

    const revoked = await tokensCli(["revoke", made.json.data.id]);
    expect(revoked.json.data).toMatchObject({ id: made.json.data.id, status: "revoked" });
    expect(revoked.stdout).not.toContain(token);
    const after = await fetch(`${app.server.url}/api/v1/runs/${id}`, { headers: auth });
    expect(after.status).toBe(401);
    expect(((await after.json()) as { error: { code: string } }).error.code).toBe("UNAUTHORIZED");
  });

  it("/healthz stays open", async () => {
    const r = await fetch(`${app.server.url}/healthz`);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ok: true });
  });
});
