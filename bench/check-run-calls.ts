/**
 * What a run costs in GitHub API requests (issue 11, "fewer requests per run"): the real app
 * (`sluice serve`: intake, inbox, runtime, reporter, outbox, budget) against the GitHub
 * simulator, a `/run` comment in an issue for runs of 1, 20 and 200 `kv` steps, without and
 * with an approval gate in the middle approved by an `/approve` comment. Requests are counted
 * from the simulator's log (the installation's token only), from the comment until the check run
 * is final and nothing is left in the outbox. Each measurement has its own issue and people, so
 * nothing is cached from the one before (the repository's default branch head is asked again,
 * as a conditional request).
 *
 *   npx tsx bench/check-run-calls.ts [--quick]
 */
import { parseArgs } from "node:util";
import { OUTBOX_NAMESPACE } from "../src/adapters/github/outbox.js";
import { isTerminal } from "../src/ports/run-store.js";
import { isContentCreating } from "../test/github/limits.js";
import { startApp } from "../test/github-app/harness.js";
import { table } from "./lib/measure.js";

const { values } = parseArgs({ options: { quick: { type: "boolean" } } });
const sizes = values.quick ? [1, 20] : [1, 20, 200];
const REPO = "acme/widgets";

function flow(n: number, gated: boolean): string {
  const steps: string[] = [];
  for (let i = 0; i < n; i++) {
    if (gated && i === Math.floor(n / 2)) steps.push(`  - id: review\n    wait:\n      approval:\n        title: Go on?`);
    steps.push(`  - id: s${i}\n    kv: { incr: { key: counter, by: 1 } }`);
  }
  return `name: bench-${n}${gated ? "-gated" : ""}\non:\n  manual:\nsteps:\n${steps.join("\n")}\n`;
}

const files: Record<string, string> = { "README.md": "bench\n" };
for (const n of [1, 20, 200]) for (const gated of [false, true]) files[`.github/flows/bench-${n}${gated ? "-gated" : ""}.yml`] = flow(n, gated);
const app = await startApp({ files });
const { sim } = app.gh;
const token = `installation:${app.gh.installation.id}`;

/** A short name for a request: method and the route's last words. */
function what(r: { method: string; path: string; status: number }): string {
  const p = r.path.replace(`/repos/${REPO}`, "").replace(/\/[0-9a-f]{40}/g, "/{sha}").replace(/\/[0-9]+(?=\/|$)/g, "/{n}");
  return `${r.method} ${p}${r.status === 304 ? " (304)" : ""}`;
}

// The first comment reads the release's flows (cached by SHA from then on): not part of a run's cost.
{
  const warm = sim.createIssue(REPO, { title: "warm up", user: "acme" }).number;
  const before = sim.requests.length;
  await app.send("issue_comment", sim.payloads.issueComment({ repo: REPO, issue: warm, sender: "acme", body: "Hello" }));
  await app.waitFor("the release's flows to be read", () => sim.requests.slice(before).some((r) => r.path.includes("/git/blobs/")) && sim.requests.length - before >= 8);
  await new Promise((r) => setTimeout(r, 500));
}

const rows: string[][] = [["steps", "gate", "requests", "content-creating", "reads (of them 304)", "updates", "the requests"]];
let person = 0;
for (const n of sizes) {
  for (const gated of [false, true]) {
    const name = `bench-${n}${gated ? "-gated" : ""}`;
    const runner = `runner${++person}`;
    const approver = `approver${person}`;
    sim.setPermission(REPO, runner, "write");
    sim.setPermission(REPO, approver, "write");
    const issue = sim.createIssue(REPO, { title: name, user: runner }).number;
    const from = sim.requests.length;
    await app.send("issue_comment", sim.payloads.issueComment({ repo: REPO, issue, sender: runner, body: `/run ${name}` }));
    const id = await app.waitFor(`the run of ${name}`, async () => (await app.sluice.store.listRuns({ repo: REPO, flow: name }))[0]?.id);
    if (gated) {
      await app.waitingRun(REPO, issue);
      // A person reads the check run before deciding.
      await app.waitFor("the gate on the check run", () => sim.checkRunsOf(REPO).some((c) => c.externalId === id && c.output.title?.startsWith("waiting")));
      await app.send("issue_comment", sim.payloads.issueComment({ repo: REPO, issue, sender: approver, body: "/approve" }));
    }
    const run = await app.ended(id);
    if (run.status !== "succeeded") throw new Error(`${name} ended ${run.status}`);
    await app.waitFor(
      "the check run to be final and the outbox empty",
      async () =>
        sim.checkRunsOf(REPO).some((c) => c.externalId === id && c.status === "completed") &&
        (await app.sluice.store.getReport(id))?.reportedSeq === (await app.sluice.store.getRun(id))?.seq &&
        (await app.sluice.store.kvList(OUTBOX_NAMESPACE, Date.now())).length === 0,
      60_000,
    );
    const log = sim.requests.slice(from).filter((r) => r.auth === token);
    const reads = log.filter((r) => r.method === "GET");
    rows.push([
      String(n),
      gated ? "yes, by /approve" : "no",
      String(log.length),
      String(log.filter((r) => isContentCreating(r.method, r.path)).length),
      `${reads.length} (${reads.filter((r) => r.status === 304).length})`,
      String(log.filter((r) => r.method === "PATCH").length),
      log.map(what).join(", "),
    ]);
    if (!isTerminal(run.status)) throw new Error("unreachable");
  }
}
await app.stop();
if (sim.violations.length) throw new Error(JSON.stringify(sim.violations));

console.log(
  [
    "A `/run` comment in an issue (and an `/approve` comment for the gated runs) against the GitHub simulator, through the real app; every request the installation made until the check run was final and the outbox empty. Content-creating: POST and PUT (GitHub's secondary limit counts those: 80 a minute, 500 an hour).",
    "",
    table(rows),
  ].join("\n"),
);
