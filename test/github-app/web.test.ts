/**
 * The pages for people, over plain HTTP against the real app and the GitHub simulator: signing
 * in with GitHub's OAuth web flow, a session cookie, only readable repositories, the Approve /
 * Reject buttons (CSRF-protected, digest-bound, through the same eligibility as GitHub), a signed
 * link without buttons, signing out, and tokens made on a page.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Sessions } from "../../src/adapters/server/session.js";
import { readServerConfig } from "../../src/app/server.js";
import { startApp, type AppHarness } from "./harness.js";

const SHIP = `name: ship
on:
  manual:
steps:
  - id: review
    wait:
      approval:
        title: Ship it?
        evidence:
          - |
            --- a/app.txt
            +++ b/app.txt
            @@ -1 +1 @@
            -old
            +new
            +<img src=x onerror=alert(1)>
        approvers: { permission: write, min: 1 }
  - id: done
    function:
      code: return "shipped";
`;

const URGENT = `name: urgent
on:
  manual:
steps:
  - id: review
    wait:
      approval:
        title: Hotfix?
        approvers: { users: [carol], min: 1 }
        escalate: [{ after: 1s, approvers: { users: [dave] } }]
`;

const CLIENT = { clientId: "Iv1.simclient", clientSecret: "sim-client-secret" };
let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({ files: { ".github/flows/ship.yml": SHIP, ".github/flows/urgent.yml": URGENT }, env: { GITHUB_CLIENT_ID: CLIENT.clientId, GITHUB_CLIENT_SECRET: CLIENT.clientSecret } });
  const { sim } = app.gh;
  sim.oauth.addClient(CLIENT);
  sim.repo(repo).private = true;
  for (const login of ["ann", "bob", "carol", "dave"]) sim.setPermission(repo, login, "write");
  sim.setPermission(repo, "rita", "read");
  sim.addUser("eve");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

const url = (path: string) => `${app.server.url}${path}`;
const cookieOf = (res: Response, name: string) => res.headers.getSetCookie().find((c) => c.startsWith(`${name}=`));
const unescape = (s: string) => s.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))).replace(/&amp;/g, "&");

/** Signs `login` in through GitHub's web flow as a browser would; answers the session cookie. */
async function signIn(login: string, next = "/runs"): Promise<{ cookie: string; setCookie: string }> {
  app.gh.sim.oauth.signIn(login);
  const start = await fetch(url(`/login?next=${encodeURIComponent(next)}`), { redirect: "manual" });
  expect(start.status).toBe(302);
  const authorize = new URL(start.headers.get("location")!);
  expect(authorize.origin).toBe(app.gh.sim.url);
  expect(authorize.pathname).toBe("/login/oauth/authorize");
  const loginCookie = cookieOf(start, "sluice_login")!.split(";")[0]!;
  const page = await (await fetch(authorize)).text();
  const back = unescape(/id="authorize" href="([^"]+)"/.exec(page)![1]!);
  const done = await fetch(back, { redirect: "manual", headers: { cookie: loginCookie } });
  expect(done.status).toBe(303);
  expect(done.headers.get("location")).toBe(url(next));
  const setCookie = cookieOf(done, "sluice_session")!;
  return { cookie: setCookie.split(";")[0]!, setCookie };
}

async function waitingRun(flow = "ship"): Promise<string> {
  const { sim } = app.gh;
  const issue = sim.createIssue(repo, { title: flow, user: "ann" });
  await app.command(repo, issue.number, "ann", `/run ${flow}`);
  return app.waitingRun(repo, issue.number);
}

const journal = async (id: string) => (await app.sluice.store.loadJournal(id)).map((s) => s.event);
const csrfOf = (html: string) => unescape(/name="csrf" value="([^"]+)"/.exec(html)![1]!);
const digestOf = (html: string) => /name="digest" value="([0-9a-f]+)"/.exec(html)![1]!;

function post(path: string, cookie: string, fields: Record<string, string>) {
  return fetch(url(path), { method: "POST", redirect: "manual", headers: { cookie, "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString() });
}

describe("signing in", { timeout: 90_000 }, () => {
  it("opens a session in an HttpOnly, SameSite=Lax cookie (not Secure on http), and signing out ends it", async () => {
    const { cookie, setCookie } = await signIn("bob");
    expect(setCookie).toMatch(/; HttpOnly/);
    expect(setCookie).toMatch(/; SameSite=Lax/);
    expect(setCookie).toMatch(/; Max-Age=\d+/);
    expect(setCookie).not.toMatch(/Secure/);
    const runs = await fetch(url("/runs"), { headers: { cookie } });
    expect(runs.status).toBe(200);
    const html = await runs.text();
    expect(html).toContain("bob");
    // The store keeps neither the cookie's id nor the person's GitHub token in the clear.
    const stored = JSON.stringify(await app.sluice.store.kvList("sluice:sessions", Date.now()));
    expect(stored).not.toContain(cookie.split("=")[1]);
    expect(stored).not.toMatch(/ghp_/);

    const out = await post("/logout", cookie, { csrf: csrfOf(html) });
    expect(out.status).toBe(303);
    expect(cookieOf(out, "sluice_session")).toMatch(/Max-Age=0/);
    // The old cookie no longer opens anything: the list sends the browser to sign in again.
    const after = await fetch(url("/runs"), { headers: { cookie }, redirect: "manual" });
    expect(after.status).toBe(303);
    expect(after.headers.get("location")).toBe(url("/login?next=%2Fruns"));
  });

  it("refuses a callback whose state this browser did not start (login CSRF), and a forged session cookie", async () => {
    app.gh.sim.oauth.signIn("eve");
    const start = await fetch(url("/login"), { redirect: "manual" });
    const page = await (await fetch(start.headers.get("location")!)).text();
    const back = unescape(/id="authorize" href="([^"]+)"/.exec(page)![1]!);
    // The victim's browser has no (or another) login cookie: no session comes of the attacker's code.
    const res = await fetch(back, { redirect: "manual", headers: { cookie: "sluice_login=someoneelse.L3J1bnM" } });
    expect(res.status).toBe(400);
    expect(cookieOf(res, "sluice_session")).toBeUndefined();
    const forged = await fetch(url("/runs"), { redirect: "manual", headers: { cookie: `sluice_session=${"A".repeat(43)}` } });
    expect(forged.status).toBe(303);
  });

  it("never redirects outside the server after signing in", async () => {
    const start = await fetch(url(`/login?next=${encodeURIComponent("//evil.example/x")}`), { redirect: "manual" });
    const loginCookie = cookieOf(start, "sluice_login")!.split(";")[0]!;
    app.gh.sim.oauth.signIn("bob");
    const page = await (await fetch(start.headers.get("location")!)).text();
    const done = await fetch(unescape(/id="authorize" href="([^"]+)"/.exec(page)![1]!), { redirect: "manual", headers: { cookie: loginCookie } });
    expect(done.headers.get("location")).toBe(url("/runs"));
  });

  it("marks the cookie Secure when the public URL is https", async () => {
    const secure = await new Sessions({ store: app.sluice.store, secure: true, now: Date.now }).create({ login: "bob", token: "ghu_x" });
    expect(secure).toMatch(/^sluice_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/);
  });

  it("GITHUB_CLIENT_ID without GITHUB_CLIENT_SECRET (or the reverse) is ENV_INVALID", () => {
    expect(() => readServerConfig({ GITHUB_CLIENT_ID: "x" }, "/tmp")).toThrow(/GITHUB_CLIENT_ID is set but GITHUB_CLIENT_SECRET is not/);
    expect(() => readServerConfig({ GITHUB_CLIENT_SECRET: "x" }, "/tmp")).toThrow(/GITHUB_CLIENT_SECRET is set but GITHUB_CLIENT_ID is not/);
    expect(readServerConfig({ GITHUB_CLIENT_ID: "a", GITHUB_CLIENT_SECRET: "b" }, "/tmp").oauth).toEqual({ clientId: "a", clientSecret: "b" });
  });
});

describe("the run page for a signed-in person", { timeout: 90_000 }, () => {
  it("a person who cannot read the repository sees nothing of it: the run is as absent as a missing one", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("eve");
    const list = await (await fetch(url("/runs"), { headers: { cookie } })).text();
    expect(list).not.toContain(id);
    expect(list).not.toContain(repo);
    for (const accept of ["text/html", "application/json"]) {
      const hidden = await fetch(url(`/runs/${id}`), { headers: { cookie, accept } });
      const missing = await fetch(url("/runs/0nosuchrun0"), { headers: { cookie, accept } });
      expect([hidden.status, missing.status]).toEqual([404, 404]);
      expect((await hidden.text()).replaceAll(id, "X")).toBe((await missing.text()).replaceAll("0nosuchrun0", "X"));
    }
    expect((await fetch(url(`/runs/${id}/events`), { headers: { cookie } })).status).toBe(404);
    const waiting = await (await fetch(url("/waiting"), { headers: { cookie } })).text();
    expect(waiting).not.toContain(id);
    // Nor can they decide it, even with a valid form of their own.
    const before = (await journal(id)).length;
    const html = await (await fetch(url("/runs"), { headers: { cookie } })).text();
    const res = await post(`/runs/${id}/decision`, cookie, { csrf: csrfOf(html), decision: "approve", digest: "0".repeat(64) });
    expect(res.status).toBe(404);
    expect((await journal(id)).length).toBe(before);
  });

  it("an eligible person gets the buttons, a diff shown as a diff, and approves with them; the run completes", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("bob");
    const waiting = await (await fetch(url("/waiting"), { headers: { cookie } })).text();
    expect(waiting).toContain(id);
    const res = await fetch(url(`/runs/${id}`), { headers: { cookie } });
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9_-]+'/);
    const html = await res.text();
    expect(html).toContain('<button class="approve" type="submit">Approve</button>');
    expect(html).toContain('<span class="add">+new</span>');
    expect(html).toContain('<span class="del">-old</span>');
    // Evidence is text: markup in it is shown, never run.
    expect(html).toContain('<span class="add">+&lt;img src=x onerror=alert(1)&gt;</span>');
    expect(html).not.toContain("<img src=x");
    expect(html).toMatch(/<svg class="timeline" role="img" aria-label="timeline"/);
    expect(html).toContain(`/runs/${id}/events`);

    const ok = await post(`/runs/${id}/decision`, cookie, { csrf: csrfOf(html), decision: "approve", digest: digestOf(html), step: "review" });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe(url(`/runs/${id}`));
    expect((await app.ended(id)).status).toBe("succeeded");
    expect((await journal(id)).find((e) => e.type === "approval_received")).toMatchObject({ login: "bob", via: "web", decision: "approve", permission: "write" });
  });

  it("rejects with the Reject button, the reason kept in the journal", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("bob");
    const html = await (await fetch(url(`/runs/${id}`), { headers: { cookie } })).text();
    expect(html).toContain('<button class="reject" type="submit">Reject</button>');
    const res = await post(`/runs/${id}/decision`, cookie, { csrf: csrfOf(html), decision: "reject", digest: digestOf(html), comment: "  not today  " });
    expect(res.status).toBe(303);
    expect((await app.ended(id)).status).not.toBe("succeeded");
    expect((await journal(id)).find((e) => e.type === "approval_received")).toMatchObject({ login: "bob", via: "web", decision: "reject", comment: "not today" });
  });

  it("a POST without the session's CSRF token, or with a wrong one, is refused and nothing is journaled", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("bob");
    const html = await (await fetch(url(`/runs/${id}`), { headers: { cookie } })).text();
    const before = (await journal(id)).length;
    const none = await post(`/runs/${id}/decision`, cookie, { decision: "approve", digest: digestOf(html) });
    const wrong = await post(`/runs/${id}/decision`, cookie, { csrf: "x".repeat(43), decision: "approve", digest: digestOf(html) });
    // Another session's token is a wrong one too.
    const other = await signIn("ann");
    const otherCsrf = csrfOf(await (await fetch(url("/runs"), { headers: { cookie: other.cookie } })).text());
    const crossed = await post(`/runs/${id}/decision`, cookie, { csrf: otherCsrf, decision: "approve", digest: digestOf(html) });
    expect([none.status, wrong.status, crossed.status]).toEqual([403, 403, 403]);
    expect((await journal(id)).length).toBe(before);
    expect((await app.sluice.store.getRun(id))!.status).toBe("waiting");
  });

  it("a stale digest from the page is refused and journaled", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("bob");
    const html = await (await fetch(url(`/runs/${id}`), { headers: { cookie } })).text();
    const res = await post(`/runs/${id}/decision`, cookie, { csrf: csrfOf(html), decision: "approve", digest: "f".repeat(64) });
    expect(res.status).toBe(409);
    expect(await res.text()).toContain("APPROVAL_STALE");
    expect((await journal(id)).filter((e) => e.type === "approval_refused")).toEqual([expect.objectContaining({ login: "bob", reason: "stale_digest" })]);
    expect((await app.sluice.store.getRun(id))!.status).toBe("waiting");
    // The refusal shows in the page's journal.
    expect(await (await fetch(url(`/runs/${id}`), { headers: { cookie } })).text()).toMatch(/<tr class="failed"><td>\d+<\/td><td>[^<]+<\/td><td><code>approval_refused<\/code>/);
  });

  it("an ineligible person sees why instead of buttons, and a decision they post anyway is refused and journaled", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("rita");
    const html = await (await fetch(url(`/runs/${id}`), { headers: { cookie } })).text();
    expect(html).not.toContain("Approve</button>");
    expect(html).toContain("cannot decide this gate");
    const digest = (await app.sluice.runtime.load(id)).state.steps.review!.gate!.info.digest;
    const res = await post(`/runs/${id}/decision`, cookie, { csrf: csrfOf(html), decision: "approve", digest });
    expect(res.status).toBe(403);
    expect((await journal(id)).filter((e) => e.type === "approval_refused")).toEqual([expect.objectContaining({ login: "rita", reason: "not_eligible" })]);
    // The trigger actor cannot approve their own run from the page either.
    const ann = await signIn("ann");
    const own = await (await fetch(url(`/runs/${id}`), { headers: { cookie: ann.cookie } })).text();
    expect(own).not.toContain("Approve</button>");
  });

  it("the check run's signed link opens the page read-only: no buttons, no CSRF token", async () => {
    const id = await waitingRun();
    const check = await app.waitFor("the run's check run", () => app.gh.sim.checkRunsOf(repo).find((c) => c.externalId === id && c.detailsUrl));
    const res = await fetch(check.detailsUrl!);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain(`<code>${id}</code>`);
    expect(html).not.toContain("Approve</button>");
    expect(html).not.toContain('name="csrf"');
    expect(html).toContain("Sign in</a> to approve or reject here");
    // Its live updates use the link's own signature.
    const details = new URL(check.detailsUrl!);
    expect(html).toContain(`/runs/${id}/events?exp=${details.searchParams.get("exp")}&sig=${details.searchParams.get("sig")}`);
    // Without credentials, nothing.
    expect((await fetch(url(`/runs/${id}`))).status).toBe(401);
    expect((await fetch(url(`/runs/${id}/events`))).status).toBe(401);
  });

  it("the live stream sends the page's sections, and ends when the run does", async () => {
    const id = await waitingRun();
    const { cookie } = await signIn("bob");
    const controller = new AbortController();
    const res = await fetch(url(`/runs/${id}/events`), { headers: { cookie }, signal: controller.signal });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const readUntil = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      return pattern.test(text);
    };
    expect(await readUntil(/event: run\ndata: .*run-gate/)).toBe(true);
    const html = await (await fetch(url(`/runs/${id}`), { headers: { cookie } })).text();
    await post(`/runs/${id}/decision`, cookie, { csrf: csrfOf(html), decision: "approve", digest: digestOf(html) });
    expect(await readUntil(/event: end/)).toBe(true);
    expect(text).toMatch(/run-status\\">succeeded/);
    controller.abort();
  });
});

describe("stopping the server", { timeout: 60_000 }, () => {
  it("ends the live streams it serves, so a page left open does not hold the server up", async () => {
    const other = await startApp({ gh: app.gh, env: { GITHUB_CLIENT_ID: CLIENT.clientId, GITHUB_CLIENT_SECRET: CLIENT.clientSecret } });
    const id = await (async () => {
      const issue = app.gh.sim.createIssue(repo, { title: "held", user: "ann" });
      await other.command(repo, issue.number, "ann", "/run ship");
      return other.waitingRun(repo, issue.number);
    })();
    const signed = other.sluice.links.sign(id, Date.now());
    const res = await fetch(`${other.server.url}/runs/${id}/events?exp=${signed.exp}&sig=${signed.sig}`);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^event: run/);
    await other.stop();
    // The stream was ended by the server, not by us.
    for (;;) if ((await reader.read()).done) break;
  });
});

describe("gates after an escalation, and the runs list", { timeout: 90_000 }, () => {
  it("shows the approvers of the current level, and gives the buttons to whoever the escalation added", async () => {
    const id = await waitingRun("urgent");
    const dave = await signIn("dave");
    const carol = await signIn("carol");
    await app.waitFor("the gate to escalate", async () => (await journal(id)).some((e) => e.type === "gate_escalated"));
    const html = await (await fetch(url(`/runs/${id}`), { headers: { cookie: dave.cookie } })).text();
    expect(html).toContain("users <code>carol</code>, <code>dave</code> <span class=\"muted\">(escalated, level 1)</span>");
    expect(html).toContain("Approve</button>");
    expect(await (await fetch(url("/waiting"), { headers: { cookie: dave.cookie } })).text()).toContain(id);
    expect(await (await fetch(url(`/runs/${id}`), { headers: { cookie: carol.cookie } })).text()).toContain("Approve</button>");
  });

  it("filters runs by flow, status and repository", async () => {
    const id = await waitingRun("urgent");
    const { cookie } = await signIn("bob");
    const list = async (q: string) => (await fetch(url(`/runs?${q}`), { headers: { cookie } })).text();
    expect(await list("flow=urgent")).toContain(id);
    expect(await list("flow=ship")).not.toContain(id);
    expect(await list("status=waiting&repo=acme%2Fwidgets")).toContain(id);
    expect(await list("status=succeeded")).not.toContain(id);
    expect(await list("repo=other%2Frepo")).not.toContain(id);
    const bad = await fetch(url("/runs?status=sleeping"), { headers: { cookie } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("unknown status &#39;sleeping&#39;");
  });
});

describe("tokens made on a page", { timeout: 60_000 }, () => {
  it("are shown once, act as the person, are listed without their secret and can be revoked", async () => {
    const { cookie } = await signIn("bob");
    const page = await (await fetch(url("/tokens"), { headers: { cookie } })).text();
    const made = await post("/tokens", cookie, { csrf: csrfOf(page), repo, expires: "30" });
    expect(made.status).toBe(200);
    const html = await made.text();
    const secret = /<pre>(sluice_[A-Za-z0-9_-]{43})<\/pre>/.exec(html)![1]!;
    const tokenId = /Your new token <code>(tok_[A-Za-z0-9_-]+)<\/code>/.exec(html)![1]!;
    const api = await fetch(url(`/api/v1/runs?repo=${repo}`), { headers: { authorization: `Bearer ${secret}` } });
    expect(api.status).toBe(200);
    const stored = (await app.sluice.store.listTokens()).find((t) => t.id === tokenId)!;
    expect(stored).toMatchObject({ login: "bob", repo, kind: "human", revokedAt: null });
    const listed = await (await fetch(url("/tokens"), { headers: { cookie } })).text();
    expect(listed).toContain(tokenId);
    expect(listed).not.toContain(secret);
    // Someone else cannot revoke it; bob can.
    const eve = await signIn("eve");
    const evePage = await (await fetch(url("/tokens"), { headers: { cookie: eve.cookie } })).text();
    expect(evePage).not.toContain(tokenId);
    await post(`/tokens/${tokenId}/revoke`, eve.cookie, { csrf: csrfOf(evePage) });
    expect((await fetch(url(`/api/v1/runs?repo=${repo}`), { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    await post(`/tokens/${tokenId}/revoke`, cookie, { csrf: csrfOf(listed) });
    expect((await fetch(url(`/api/v1/runs?repo=${repo}`), { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);
  });
});
