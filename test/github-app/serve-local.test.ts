/**
 * The server without GitHub App credentials serves local use (a run's callback completes it, the
 * worker runs it; started in a checkout, the API starts its flows and its schedules tick) beside
 * Probot's setup flow (`/setup`); a malformed private key stops the server
 * with ENV_INVALID instead of falling back to the setup flow; LOG_FORMAT=json logs JSON lines
 * through one pino logger for Probot and Sluice, with no callback token in them.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { newToken } from "../../src/adapters/server/auth.js";
import { localRepoName } from "../../src/app/local.js";
import { readServerConfig, startServer } from "../../src/app/server.js";
import { SluiceError } from "../../src/core/errors.js";
import { DEFAULT_CONFIG, validateFlow } from "../../src/core/flow/validate.js";
import { makeRepo } from "../support/git-repo.js";
import { freePort } from "../support/net.js";
import { waitFor } from "./harness.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-serve-local-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FLOW = `name: hello
on: { manual: {} }
steps:
  - id: result
    wait:
      callback: { timeout: 1h }
  - id: greet
    function:
      code: return "hello " + input.who;
      input: { who: "\${{ steps.result.outputs.body.who }}" }
outputs:
  greeting: \${{ steps.greet.outputs.result }}
`;

function envProblem(env: Record<string, string>): string {
  try {
    readServerConfig(env, dir);
  } catch (e) {
    expect(e).toBeInstanceOf(SluiceError);
    expect((e as SluiceError).code).toBe("ENV_INVALID");
    return (e as SluiceError).message;
  }
  return "";
}

describe("the app's private key", () => {
  it("is checked before anything starts: a malformed one is ENV_INVALID, not the setup flow", async () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs1", format: "pem" }).toString();
    const good = { APP_ID: "1", WEBHOOK_SECRET: "s" };
    expect(readServerConfig({ ...good, PRIVATE_KEY: pem }, dir).credentials).toBe(true);
    // Probot's spellings: escaped newlines, base64.
    expect(readServerConfig({ ...good, PRIVATE_KEY: pem.replace(/\n/g, "\\n") }, dir).credentials).toBe(true);
    expect(readServerConfig({ ...good, PRIVATE_KEY: Buffer.from(pem).toString("base64") }, dir).credentials).toBe(true);

    expect(envProblem({ ...good, PRIVATE_KEY: "not a key" })).toContain("PRIVATE_KEY is not a PEM private key");
    const corrupt = "-----BEGIN RSA PRIVATE KEY-----\nAAAAB3NzaC1yc2E=\n-----END RSA PRIVATE KEY-----\n";
    expect(envProblem({ ...good, PRIVATE_KEY: corrupt })).toContain("PRIVATE_KEY is not a usable private key");
    writeFileSync(join(dir, "bad.pem"), corrupt);
    expect(envProblem({ ...good, PRIVATE_KEY_PATH: "bad.pem" })).toContain("PRIVATE_KEY_PATH bad.pem is not a usable private key");
    // The key itself is never in the message.
    expect(envProblem({ ...good, PRIVATE_KEY: corrupt })).not.toContain("AAAAB3NzaC1yc2E");

    const port = await freePort();
    await expect(startServer({ env: { ...good, PRIVATE_KEY: "not a key", PORT: String(port), HOST: "127.0.0.1", SLUICE_HOME: join(dir, "bad") }, cwd: dir })).rejects.toMatchObject({
      code: "ENV_INVALID",
    });
    // Nothing listens: the setup flow did not start in the key's place.
    await expect(fetch(`http://127.0.0.1:${port}/probot`)).rejects.toThrow();
  });

  it("LOG_FORMAT is json or pretty", () => {
    expect(readServerConfig({ LOG_FORMAT: "json" }, dir).logFormat).toBe("json");
    expect(readServerConfig({}, dir).logFormat).toBe("pretty");
    expect(readServerConfig({ NODE_ENV: "production" }, dir).logFormat).toBe("json");
    expect(envProblem({ LOG_FORMAT: "xml" })).toContain("LOG_FORMAT must be json or pretty, not 'xml'");
  });
});

describe("sluice serve without GitHub credentials", { timeout: 60_000 }, () => {
  it("serves the setup flow at /setup, and runs, callbacks and the worker for local use, logging JSON lines", async () => {
    process.env.NO_SMEE_SETUP = "true";
    const port = await freePort();
    const lines: string[] = [];
    const running = await startServer({
      env: { PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "info", LOG_FORMAT: "json", SLUICE_HOME: join(dir, "local"), SLUICE_PUBLIC_URL: `http://127.0.0.1:${port}` },
      cwd: dir,
      pollMs: 50,
      logWrite: (l) => lines.push(l),
    });
    try {
      const sluice = running.sluice!;
      expect(sluice).toBeDefined();
      expect(sluice.config.credentials).toBe(false);

      const setup = await fetch(`${running.url}/setup`, { redirect: "manual" });
      expect(setup.status).toBe(302);
      expect(setup.headers.get("location")).toBe("/probot");
      expect(await (await fetch(`${running.url}/probot`)).text()).toContain("https://github.com/settings/apps/new");

      // A local run (as `sluice run` records it in the same store) waits for its callback.
      const v = validateFlow(FLOW, { file: "hello.yml", config: DEFAULT_CONFIG });
      const id = await sluice.runtime.createRun({
        flow: v.flow!,
        config: DEFAULT_CONFIG,
        release: { sha: "b".repeat(40), ref: "main", kind: "live" },
        repo: "_local/demo",
        inputs: {},
        trigger: { type: "manual", actor: "ann" },
      });
      await waitFor("the run to wait", async () => (await sluice.store.getRun(id))?.status === "waiting");
      const url = (await sluice.runtime.load(id)).state.callbacks.result!;
      const token = url.split("/").pop()!;
      expect(url.startsWith(`${running.url}/callbacks/`)).toBe(true);
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ who: "world" }) });
      expect(res.status).toBe(200);
      await waitFor("the run to succeed", async () => (await sluice.store.getRun(id))?.status === "succeeded");
      expect((await sluice.runtime.load(id)).state.completed?.outputs).toEqual({ greeting: "hello world" });

      // One JSON log: Probot's request lines and Sluice's own, with the callback's token scrubbed.
      await waitFor("the callback's request line", () => lines.some((l) => l.includes("/callbacks/")));
      const parsed = lines.map((l) => JSON.parse(l) as { msg: string; name?: string; level: string });
      expect(parsed.some((p) => p.msg === "sluice is serving" && p.name === "sluice")).toBe(true);
      expect(parsed.some((p) => p.name === "http" && p.msg.startsWith("POST /callbacks/[redacted] 200"))).toBe(true);
      expect(parsed.every((p) => typeof p.level === "string")).toBe(true);
      expect(lines.join("")).not.toContain(token);
    } finally {
      await running.stop();
    }
  });
});

const SHIP = `name: ship
on: { manual: {} }
steps:
  - id: review
    wait: { approval: { title: Ship it? } }
  - id: done
    function: { code: "return 'shipped'" }
`;

const TICK = `name: tick
on:
  schedule:
    - cron: "* * * * * *"
steps:
  - id: hit
    function: { code: "return 1" }
`;

describe("sluice serve without GitHub credentials, in a checkout", { timeout: 60_000 }, () => {
  it("starts the checkout's flows through the API, decides as local mode does, and ticks its schedules", async () => {
    const repo = makeRepo({ ".github/flows/ship.yml": SHIP, ".github/flows/tick.yml": TICK });
    const port = await freePort();
    const running = await startServer({
      env: { PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "silent", SLUICE_HOME: join(dir, "checkout"), SLUICE_PUBLIC_URL: `http://127.0.0.1:${port}` },
      cwd: repo.dir,
      pollMs: 50,
    });
    try {
      const sluice = running.sluice!;
      const name = localRepoName(repo.dir);
      expect(sluice.checkout?.repo).toBe(name);
      const token = async (login: string) => {
        const t = newToken();
        await sluice.store.createToken({ id: t.id, hash: t.hash, login, repo: null, kind: "human", createdAt: Date.now(), expiresAt: null, revokedAt: null });
        return t.secret;
      };
      const [ann, bob] = [await token("ann"), await token("bob")];
      const post = async (path: string, as: string, body: unknown) => {
        const r = await fetch(`${running.url}/api/v1${path}`, { method: "POST", headers: { authorization: `Bearer ${as}`, "content-type": "application/json" }, body: JSON.stringify(body) });
        return { status: r.status, body: (await r.json()) as { ok: boolean; data: any; error: { code: string } | null } };
      };

      const started = await post("/runs", ann, { repo: name, flow: "ship" });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      expect(started.body.data).toMatchObject({ flow: "ship", status: "waiting", release: { kind: "live", sha: repo.git("rev-parse", "HEAD") } });
      const id = started.body.data.id as string;
      // The person who started it cannot approve it; anyone else can, as in local mode.
      const self = await post(`/runs/${id}/approve`, ann, {});
      expect(self.status).toBe(403);
      expect(self.body.error?.code).toBe("APPROVAL_NOT_ELIGIBLE");
      const approved = await post(`/runs/${id}/approve`, bob, {});
      expect(approved.status, JSON.stringify(approved.body)).toBe(200);
      await waitFor("the run to succeed", async () => (await sluice.store.getRun(id))?.status === "succeeded");
      // Only the checkout's repository is served.
      const elsewhere = await post("/runs", ann, { repo: "acme/widgets", flow: "ship" });
      expect(elsewhere.status).toBe(404);
      expect(elsewhere.body.error?.code).toBe("NOT_FOUND");

      // The live release's schedule ticks (counted from when the server first saw it).
      await waitFor("a scheduled run to succeed", async () => (await sluice.store.listRuns({ flow: "tick" })).some((r) => r.status === "succeeded"));
      const ticked = await sluice.store.listRuns({ flow: "tick" });
      expect(ticked.every((r) => r.repo === name)).toBe(true);
    } finally {
      await running.stop();
      repo.remove();
    }
  });
});
