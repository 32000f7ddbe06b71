/**
 * The run page in a real browser: Debian's Chromium, headless, driven by playwright-core, against
 * the real app and the GitHub simulator. A person signs in with GitHub (the simulator's OAuth
 * pages), opens a run that waits at a gate, approves it with the page's button, and watches the
 * run complete live: the page changes without being reloaded. A screenshot of each stage is kept
 * in test-artifacts/browser/ (git-ignored) at the repository's root.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApp, type AppHarness } from "../github-app/harness.js";

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
            @@ -1,2 +1,2 @@
             keep
            -old
            +new
        approvers: { permission: write, min: 1 }
  - id: deployed
    wait: { callback: {} }
  - id: done
    function:
      code: return "shipped";
`;

const CLIENT = { clientId: "Iv1.browserclient", clientSecret: "browser-client-secret" };
const ARTIFACTS = resolve(import.meta.dirname, "../../test-artifacts/browser");
const repo = "acme/widgets";

let app: AppHarness;
let context: BrowserContext;
let profile: string;

beforeAll(async () => {
  app = await startApp({ files: { ".github/flows/ship.yml": SHIP }, env: { GITHUB_CLIENT_ID: CLIENT.clientId, GITHUB_CLIENT_SECRET: CLIENT.clientSecret } });
  app.gh.sim.oauth.addClient(CLIENT);
  app.gh.sim.repo(repo).private = true;
  app.gh.sim.setPermission(repo, "ann", "write");
  app.gh.sim.setPermission(repo, "bob", "write");
  mkdirSync(ARTIFACTS, { recursive: true });
  profile = mkdtempSync(join(tmpdir(), "sluice-chromium-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 390, height: 844 },
  });
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app?.logs.join(""));
  await context?.close();
  await app?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

describe("the run page in Chromium", { timeout: 120_000 }, () => {
  it("signs in with GitHub, approves a waiting run with the button, and shows it complete live", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "ship it", user: "ann" });
    await app.command(repo, issue.number, "ann", "/run ship");
    const id = await app.waitingRun(repo, issue.number);
    const page = await context.newPage();

    // 1. Not signed in: the run page asks for credentials.
    const first = await page.goto(`${app.server.url}/runs/${id}`);
    expect(first!.status()).toBe(401);
    await shot(page, "1-signed-out");

    // 2. Sign in at "GitHub" (the simulator's authorize page) and come back to the run.
    sim.oauth.signIn("bob");
    await page.goto(`${app.server.url}/login?next=${encodeURIComponent(`/runs/${id}`)}`);
    await page.waitForSelector("#authorize");
    await shot(page, "2-github-authorize");
    await page.click("#authorize");
    await page.waitForURL(`${app.server.url}/runs/${id}`);
    await expect.poll(() => page.textContent("#run-status")).toBe("waiting");
    expect(await page.textContent("nav")).toContain("bob");
    expect(await page.locator(".diff .add").textContent()).toBe("+new");
    expect(await page.locator("svg[aria-label=timeline] rect.bar").count()).toBe(1);
    await shot(page, "3-waiting-at-the-gate");

    // The run is on bob's "waiting for me" page, and in the runs list; both lead back to it.
    await page.goto(`${app.server.url}/runs?status=waiting`);
    expect(await page.locator(`#runs a[href$="/runs/${id}"]`).count()).toBe(1);
    await page.goto(`${app.server.url}/waiting`);
    await shot(page, "3b-waiting-for-me");
    await page.click(`#waiting a[href$="/runs/${id}"]`);
    await page.waitForURL(`${app.server.url}/runs/${id}`);

    // 3. Approve with the button: the decision is journaled as bob's, the run moves on to its callback.
    await page.click("button.approve");
    await page.waitForURL(`${app.server.url}/runs/${id}`);
    await expect.poll(async () => (await app.sluice.store.loadJournal(id)).some((s) => s.event.type === "approval_received" && s.event.login === "bob")).toBe(true);
    await expect.poll(() => page.locator("#step-deployed .s").textContent()).toBe("waiting");
    await shot(page, "4-approved-waiting-for-deploy");

    // 4. The deploy reports back; the page shows the run succeed without a reload.
    await page.evaluate(() => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true));
    const created = (await app.sluice.store.loadJournal(id)).find((s) => s.event.type === "run_created")!.event as { callbacks: Record<string, string> };
    const token = created.callbacks.deployed!.split("/").pop()!;
    const cb = await fetch(`${app.server.url}/callbacks/${token}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ok: true }) });
    expect(cb.status).toBe(200);
    await expect.poll(() => page.textContent("#run-status"), { timeout: 30_000 }).toBe("succeeded");
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    expect(await page.locator("#step-done .s").textContent()).toBe("succeeded");
    expect(await page.locator("#run-gate").innerHTML()).toBe("");
    await shot(page, "5-succeeded-live");
  });
});
