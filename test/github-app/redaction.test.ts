/**
 * What the app writes to GitHub is redacted too (SPEC §3): a peer hands back the connection's
 * secret split in two parts and base64-encoded; a flow reassembles the parts into a comment and
 * puts the encoding in its outputs. The comment the app posts, its check run's summary and text,
 * and its replies hold none of it, while the peer did receive the secret from the connection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sendJson, startHttpPeer, type HttpPeer } from "../support/http-peer.js";
import { startApp, type AppHarness } from "./harness.js";

const SECRET = "gh-app-s3cret-Value/42";
const LEAK = `name: leak
on:
  manual:
steps:
  - id: call
    http: { connection: echo, url: /echo }
  - id: tell
    notify:
      github_comment: { body: "token: \${{ steps.call.outputs.body.part1 }}\${{ steps.call.outputs.body.part2 }}" }
outputs:
  encoded: \${{ steps.call.outputs.body.b64 }}
  joined: "\${{ steps.call.outputs.body.part1 }}\${{ steps.call.outputs.body.part2 }}"
`;

let app: AppHarness;
let peer: HttpPeer;
const repo = "acme/widgets";

beforeAll(async () => {
  peer = await startHttpPeer((req, res) => {
    const token = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
    sendJson(res, 200, { part1: token.slice(0, 6), part2: token.slice(6), b64: Buffer.from(token).toString("base64") });
  });
  app = await startApp({
    files: {
      "README.md": "# widgets\n",
      ".github/sluice.yml": `connections:\n  echo: { type: http, base_url: "${peer.origin}", secret: ECHO }\n`,
      ".github/flows/leak.yml": LEAK,
    },
    env: { SLUICE_SECRET_ECHO: SECRET },
  });
  app.gh.sim.setPermission(repo, "ann", "write");
});
afterAll(async () => {
  await app?.stop();
  await peer?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

describe("redaction of what the app writes to GitHub", { timeout: 60_000 }, () => {
  it("a secret reassembled into a comment, or encoded in the outputs, reaches neither the comment nor the check run", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Leak it", user: "ann" });
    // The run is quick: its own comment may come before the reply to /run, so wait for the run itself.
    expect((await app.send("issue_comment", sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run leak" }))).status).toBe(200);
    const id = await app.waitFor("the run", async () => (await app.sluice.store.listRuns({ repo, flow: "leak" }))[0]?.id);
    expect((await app.ended(id)).status).toBe("succeeded");
    expect(peer.requests[0]?.headers.authorization).toBe(`Bearer ${SECRET}`);

    const told = await app.waitFor("the notify comment", () => sim.commentsOf(repo, issue.number).find((c) => c.body.startsWith("token:")));
    expect(told.body).toContain("token: ***");
    const check = await app.waitFor("the completed check run", () => [...sim.checkRuns.values()].find((c) => c.externalId === id && c.status === "completed"));
    const written = [...sim.commentsOf(repo, issue.number).map((c) => c.body), JSON.stringify(check)];
    for (const text of written) {
      for (const form of [SECRET, Buffer.from(SECRET).toString("base64").slice(0, -4), SECRET.slice(0, 6) + SECRET.slice(6)]) expect(text).not.toContain(form);
    }
    expect(JSON.stringify(check)).toContain("***");
  });
});
