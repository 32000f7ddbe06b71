/**
 * Secrets reach steps only through connections and never leave the engine: an http peer that
 * echoes the bearer token back gets it, and the run's outputs show it redacted. Function steps
 * with `file` run the module at the run's pinned commit, not the work tree.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { startHttpPeer, type HttpPeer } from "../support/http-peer.js";

const TOKEN = "tok-3b9f1c2d7e";
let repo: TestRepo;
let peer: HttpPeer;
let env: Record<string, string>;

beforeAll(async () => {
  peer = await startHttpPeer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ seen: req.headers.authorization ?? null }));
  });
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  echo: { type: http, base_url: "${peer.origin}", secret: ECHO_TOKEN }\n`,
    ".github/flows/echo.yml": `
on: { manual: {} }
steps:
  - id: call
    http: { connection: echo, url: /whoami }
outputs: { seen: "\${{ steps.call.outputs.body.seen }}" }
`,
    ".github/flows/module.yml": `
on: { manual: {} }
steps:
  - id: calc
    function: { file: scripts/calc.js, input: { n: 6 } }
`,
    "scripts/calc.js": "export default function (input) { return { answer: input.n * 7 }; }\n",
  });
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_MASTER_KEY: "master-key-for-tests" };
});
afterAll(async () => {
  await peer.stop();
  repo.remove();
});

describe("secrets", () => {
  it("a missing secret is a clear, final step error", async () => {
    const r = await sluiceAsync(repo.dir, ["run", "echo", "--json"], env);
    expect(r.code).toBe(1);
    expect(r.json.data.steps[0].error).toMatchObject({ code: "SECRET_MISSING", message: expect.stringContaining("ECHO_TOKEN") });
    expect(peer.requests).toHaveLength(0);
  });

  it("a stored secret reaches the peer and is redacted from everything the run shows", async () => {
    const child = await new Promise<number>((resolve) => {
      const p = spawn(process.execPath, [CLI, "secrets", "set", "ECHO_TOKEN"], {
        cwd: repo.dir,
        env: { ...process.env, ...env },
      });
      p.stdin.end(`${TOKEN}\n`);
      p.on("close", (code) => resolve(code ?? -1));
    });
    expect(child).toBe(0);
    const r = await sluiceAsync(repo.dir, ["run", "echo", "--json"], env);
    expect(r.code).toBe(0);
    expect(peer.requests.at(-1)?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(r.json.data.outputs.seen).toBe("Bearer ***");
    const events = await sluiceAsync(repo.dir, ["runs", "events", r.json.data.id, "--json"], env);
    expect(events.stdout).not.toContain(TOKEN);
    expect(r.stdout).not.toContain(TOKEN);
    const list = await sluiceAsync(repo.dir, ["secrets", "list", "--json"], env);
    expect(list.json.data.secrets).toEqual([{ name: "ECHO_TOKEN", source: "file" }]);
    expect(list.stdout).not.toContain(TOKEN);
  });
});

describe("function steps with a file", () => {
  it("run the module as committed, whatever the work tree says", async () => {
    writeFileSync(join(repo.dir, "scripts/calc.js"), "export default function () { return { answer: -1 }; }\n");
    const r = await sluiceAsync(repo.dir, ["run", "module", "--json"], env);
    expect(r.code).toBe(0);
    expect(r.json.data.steps[0].outputs.result).toEqual({ answer: 42 });
  });
});
