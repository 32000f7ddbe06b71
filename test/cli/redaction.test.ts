/**
 * Secrets and callback tokens stay secret (SPEC §3): a peer hands the connection's secret back in
 * every form it travels in (base64, hex, URL-encoded, split in two parts reassembled by the flow,
 * inside a large output kept as a resource, in an error), and the callback URL the flow handed
 * it. Everything the run shows — outputs, the gate's summary and evidence, errors, the journal,
 * resources — holds none of them, while the peer did receive what the flow handed on.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { sendJson, startHttpPeer, type HttpPeer } from "../support/http-peer.js";

const SECRET = "s3cr3t/plus+Token-0123";
let repo: TestRepo;
let peer: HttpPeer;
let env: Record<string, string>;

const forms = (s: string) => [s, Buffer.from(s).toString("base64").slice(0, -4), Buffer.from(s).toString("hex"), encodeURIComponent(s)];

beforeAll(async () => {
  peer = await startHttpPeer((req, res) => {
    const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
    if (req.url.pathname === "/fail") return sendJson(res, 400, { error: `bad token ${token}` });
    sendJson(res, 200, {
      b64: Buffer.from(`Bearer ${token}`).toString("base64"),
      hex: Buffer.from(token).toString("hex"),
      url: `https://elsewhere.example/?t=${encodeURIComponent(token)}`,
      part1: token.slice(0, 8),
      part2: token.slice(8),
      cb: req.url.searchParams.get("cb"),
      ...(req.url.pathname === "/big" ? { big: `${"x".repeat(70_000)}${token}` } : {}),
    });
  });
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  echo: { type: http, base_url: "${peer.origin}", secret: ECHO }\n`,
    ".github/flows/leak.yml": `on: { manual: {} }
steps:
  - id: call
    http: { connection: echo, url: /echo, query: { cb: "\${{ callbacks.hold.url }}" } }
  - id: large
    http: { connection: echo, url: /big }
  - id: review
    wait:
      approval:
        title: Look at this
        summary: "joined: \${{ steps.call.outputs.body.part1 }}\${{ steps.call.outputs.body.part2 }}"
        evidence: ["\${{ steps.call.outputs.body.b64 }}", "\${{ steps.call.outputs.body.url }}", "\${{ steps.call.outputs.body.cb }}"]
  - id: hold
    wait: { callback: {} }
outputs:
  joined: "\${{ steps.call.outputs.body.part1 }}\${{ steps.call.outputs.body.part2 }}"
  hex: \${{ steps.call.outputs.body.hex }}
`,
    ".github/flows/fails.yml": `on: { manual: {} }
steps:
  - id: call
    http: { connection: echo, url: /fail }
`,
  });
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_SECRET_ECHO: SECRET };
});
afterAll(async () => {
  await peer.stop();
  repo.remove();
});

const cli = (args: string[], as = "alice") => sluiceAsync(repo.dir, [...args, "--json"], { ...env, SLUICE_USER: as });

describe("redaction of everything that leaves the engine", () => {
  it("secrets in any form and callback tokens are redacted from outputs, gates, journal and resources; the peer got what was handed on", async () => {
    const run = await cli(["run", "leak"]);
    expect(run.code).toBe(3);
    const id = run.json.data.id;
    const echo = peer.requests.find((r) => r.url.pathname === "/echo")!;
    expect(echo.headers.authorization).toBe(`Bearer ${SECRET}`);
    const callbackUrl = echo.url.searchParams.get("cb")!;
    expect(callbackUrl).toMatch(/\/callbacks\/[A-Za-z0-9_-]{20,}$/);
    const callbackToken = callbackUrl.slice(callbackUrl.lastIndexOf("/") + 1);

    const gate = (await cli(["gates", "explain", id])).json.data.gates[0];
    expect(gate.summary).toBe("joined: ***");
    expect(gate.evidence[1]).toBe("https://elsewhere.example/?t=***");
    expect(gate.evidence[2]).toMatch(/\/callbacks\/\*\*\*$/);

    const approved = await cli(["approve", id], "bob");
    expect(approved.json.data.status).toBe("waiting");
    const done = await cli(["callback", id, "hold", "--body", "{}"]);
    expect(done.json.data.status).toBe("succeeded");
    expect(done.json.data.outputs).toEqual({ joined: "***", hex: "***" });

    const shown = [run.stdout, done.stdout, (await cli(["runs", "events", id])).stdout, (await cli(["gates", "explain", id])).stdout, (await cli(["runs", "show", id])).stdout];
    // The large answer became a resource; its content is redacted too.
    expect(done.json.data.steps[1].outputs.body).toMatchObject({ $resource: expect.stringMatching(/^res:\/\/sha256\//) });
    const refs = JSON.stringify(done.json.data).match(/res:\/\/sha256\/[0-9a-f]{64}/g) ?? [];
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) shown.push((await sluiceAsync(repo.dir, ["resources", "get", ref], env)).stdout);
    for (const text of shown) {
      for (const f of [...forms(SECRET), callbackToken]) expect(text).not.toContain(f);
    }
  });

  it("an error that quotes the secret is redacted", async () => {
    const r = await cli(["run", "fails"]);
    expect(r.code).toBe(1);
    expect(peer.requests.at(-1)?.url.pathname).toBe("/fail");
    expect(r.stdout).not.toContain(SECRET);
    expect((await cli(["runs", "events", r.json.data.id])).stdout).not.toContain(SECRET);
  });
});
