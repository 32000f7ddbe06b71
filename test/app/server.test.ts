/** The server's environment, and Probot's setup flow (at /setup) beside local use when there are no app credentials. */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readServerConfig, startServer } from "../../src/app/server.js";
import { SluiceError } from "../../src/core/errors.js";
import { freePort } from "../support/net.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-server-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
/** A real key: a malformed one is refused (ENV_INVALID). */
const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs1", format: "pem" }).toString();

function problems(env: Record<string, string>): string[] {
  try {
    readServerConfig(env, dir);
  } catch (e) {
    expect(e).toBeInstanceOf(SluiceError);
    expect((e as SluiceError).code).toBe("ENV_INVALID");
    return (e as SluiceError).details.problems as string[];
  }
  return [];
}

describe("readServerConfig", () => {
  it("has defaults for everything but the credentials", () => {
    expect(readServerConfig({}, dir)).toEqual({
      credentials: false,
      port: 3000,
      publicUrl: "http://localhost:3000",
      logLevel: "info",
      home: join(dir, ".sluice"),
      githubApiUrl: "https://api.github.com",
      logFormat: "pretty",
      retention: { runsMs: 90 * 86_400_000, deliveriesMs: 14 * 86_400_000 },
    });
  });

  it("reads the credentials, GitHub Enterprise Server, the public URL and the store", () => {
    const c = readServerConfig(
      { APP_ID: "12", PRIVATE_KEY: pem, WEBHOOK_SECRET: "s", GHE_HOST: "ghe.example.com:8443", GHE_PROTOCOL: "http", PORT: "8080", HOST: "0.0.0.0", SLUICE_PUBLIC_URL: "https://sluice.example.com/", LOG_LEVEL: "debug", DATABASE_URL: "postgres://db/sluice", SLUICE_HOME: "/var/lib/sluice" },
      dir,
    );
    expect(c).toEqual({
      credentials: true,
      appId: 12,
      port: 8080,
      host: "0.0.0.0",
      publicUrl: "https://sluice.example.com",
      logLevel: "debug",
      databaseUrl: "postgres://db/sluice",
      home: "/var/lib/sluice",
      githubApiUrl: "http://ghe.example.com:8443/api/v3",
      logFormat: "pretty",
      retention: { runsMs: 90 * 86_400_000, deliveriesMs: 14 * 86_400_000 },
    });
  });

  it("names every problem at once", () => {
    expect(
      problems({ APP_ID: "twelve", PORT: "99999", LOG_LEVEL: "loud", GHE_PROTOCOL: "ftp", GHE_HOST: "https://ghe.example.com", SLUICE_PUBLIC_URL: "sluice.example.com", SLUICE_LEASE_MS: "soon" }),
    ).toEqual([
      "LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, not 'loud'",
      "PORT must be a port number from 1 to 65535, not '99999'",
      "APP_ID must be the app's numeric id, not 'twelve'",
      "APP_ID is set but neither PRIVATE_KEY nor PRIVATE_KEY_PATH is: set the app's private key (or unset APP_ID to register the app)",
      "GHE_PROTOCOL must be http or https, not 'ftp'",
      "GHE_HOST is a host name (and port), without a scheme or path, not 'https://ghe.example.com'",
      "SLUICE_PUBLIC_URL must be an http(s) URL, not 'sluice.example.com'",
      "SLUICE_LEASE_MS must be a whole number of milliseconds (100 or more), not 'soon'",
    ]);
  });

  it("wants a webhook secret with credentials, and a readable key file", () => {
    expect(problems({ APP_ID: "1", PRIVATE_KEY: pem })).toEqual(["WEBHOOK_SECRET is required with app credentials: without it no delivery could be verified"]);
    expect(problems({ APP_ID: "1", PRIVATE_KEY_PATH: "missing.pem", WEBHOOK_SECRET: "s" })[0]).toMatch(/^PRIVATE_KEY_PATH missing.pem cannot be read/);
    expect(problems({ PRIVATE_KEY: pem })).toEqual(["a private key is set but APP_ID is not: set the app's numeric id"]);
  });
});

describe("without credentials", () => {
  it("serves local use, with Probot's setup flow at /setup, which registers the app from app.yml", async () => {
    process.env.NO_SMEE_SETUP = "true";
    const port = await freePort();
    const running = await startServer({ env: { PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "fatal", SLUICE_HOME: join(dir, "setup") }, cwd: dir });
    try {
      expect(running.config.credentials).toBe(false);
      const setup = await fetch(`${running.url}/setup`, { redirect: "manual" });
      expect(setup.status).toBe(302);
      expect(setup.headers.get("location")).toBe("/probot");
      const root = await fetch(`${running.url}/`, { redirect: "manual" });
      expect(root.status).toBe(302);
      expect(root.headers.get("location")).toBe("/probot");
      const page = await (await fetch(`${running.url}/probot`)).text();
      expect(page).toContain("https://github.com/settings/apps/new");
      // The manifest posted to GitHub is app.yml's: Sluice's name, events and permissions.
      const manifest = JSON.parse(/name="manifest" id="manifest" value='([^']*)'/.exec(page)?.[1] ?? "null") as Record<string, any>;
      expect(manifest).toMatchObject({ name: "Sluice", public: false, hook_attributes: { url: `${running.url}/` } });
      expect(manifest.default_events).toEqual(["check_run", "issue_comment", "issues", "pull_request", "pull_request_review", "push"]);
      expect(manifest.default_permissions).toEqual({ checks: "write", contents: "write", issues: "write", pull_requests: "write", actions: "write", metadata: "read", members: "read" });
    } finally {
      await running.stop();
    }
  });
});
