/**
 * A burst against GitHub's limits (issue 11, item 6): 300 `/run` comments in 300 issues sent
 * within 10 s to the real app (`sluice serve` on SQLite), against the GitHub simulator enforcing
 * GitHub's secondary limits as GitHub sets them (80 content-creating requests a minute, 500 an
 * hour, 100 in flight, a 60 s hold after a breach), each answer 30 ms away. Measured: when every
 * run had finished, when every check run was final, the requests and content-creating requests
 * per run, the most requests in flight, and the 403s GitHub answered (none is the target after
 * the first hold; the budget should keep the app from any).
 *
 *   npx tsx bench/github-burst.ts [--quick]      (--quick: 60 comments)
 */
import { parseArgs } from "node:util";
import { OUTBOX_NAMESPACE } from "../src/adapters/github/outbox.js";
import { metrics } from "../src/adapters/server/metrics.js";
import { isTerminal } from "../src/ports/run-store.js";
import { startGitHub } from "../test/github/fixtures.js";
import { isContentCreating } from "../test/github/limits.js";
import { startApp } from "../test/github-app/harness.js";
import { ms, pool, sleep, table } from "./lib/measure.js";

const { values } = parseArgs({ options: { quick: { type: "boolean" } } });
const COMMENTS = values.quick ? 60 : 300;
const REPO = "acme/widgets";
const COUNT = `name: count\non:\n  manual:\nsteps:\n  - id: add\n    kv: { incr: { key: runs, by: 1 } }\n`;

const gh = await startGitHub({ files: { "README.md": "bench\n", ".github/flows/count.yml": COUNT } });
gh.sim.setPermission(REPO, "ann", "write");
gh.sim.enforceLimits({});
gh.sim.latencyMs = 30;
const app = await startApp({ gh });
const token = `installation:${gh.installation.id}`;
const issues = Array.from({ length: COMMENTS }, (_, i) => gh.sim.createIssue(REPO, { title: `burst ${i}`, user: "ann" }).number);
const payloads = issues.map((issue) => gh.sim.payloads.issueComment({ repo: REPO, issue, sender: "ann", body: "/run count" }));

const from = gh.sim.requests.length;
const t0 = performance.now();
// Spread over 10 s: one comment every 10 s / COMMENTS, a few in flight at once.
await pool(16, payloads, async (payload, i) => {
  const due = t0 + (i * 10_000) / COMMENTS;
  const wait = due - performance.now();
  if (wait > 0) await sleep(wait);
  const res = await app.send("issue_comment", payload);
  if (res.status !== 200) throw new Error(`delivery answered ${res.status}`);
});
const sent = performance.now() - t0;

let runsDone: number | undefined;
let checksDone: number | undefined;
for (;;) {
  const runs = await app.sluice.store.listRuns({ repo: REPO, flow: "count", limit: 1000 });
  const now = performance.now() - t0;
  if (runsDone === undefined && runs.length === COMMENTS && runs.every((r) => isTerminal(r.status))) runsDone = now;
  const final = new Set(gh.sim.checkRunsOf(REPO).filter((c) => c.status === "completed").map((c) => c.externalId));
  if (runsDone !== undefined && checksDone === undefined && runs.every((r) => final.has(r.id))) checksDone = now;
  if (checksDone !== undefined && (await app.sluice.store.kvList(OUTBOX_NAMESPACE, Date.now())).length === 0) break;
  if (now > 75 * 60_000) throw new Error("gave up after 75 minutes");
  await sleep(250);
}
const drained = performance.now() - t0;

const log = gh.sim.requests.slice(from).filter((r) => r.auth === token);
const creates = log.filter((r) => isContentCreating(r.method, r.path));
const refused = log.filter((r) => r.status === 403 || r.status === 429);
const firstHold = gh.sim.limits.events[0];
const afterFirst = firstHold ? refused.filter((r) => (r.at ?? 0) > firstHold.holdUntil).length : 0;
const skipped = (await metrics.githubWritesSkipped.get()).values.reduce((a, v) => a + v.value, 0);
const replies = issues.filter((n) => app.replies(REPO, n).length > 0).length;
const checkRunCreates = creates.filter((r) => r.path === `/repos/${REPO}/check-runs`).length;
const byRoute = new Map<string, number>();
for (const r of log) {
  const route = `${r.method} ${r.path.replace(`/repos/${REPO}`, "").replace(/\/[0-9a-f]{40}/g, "/{sha}").replace(/\/[0-9]+(?=\/|$)/g, "/{n}")}${r.status === 304 ? " (304)" : ""}`;
  byRoute.set(route, (byRoute.get(route) ?? 0) + 1);
}
await app.stop();
await gh.sim.stop();

console.log(
  [
    `${COMMENTS} \`/run\` comments in ${COMMENTS} issues sent over ${ms(sent)} to \`sluice serve\` (SQLite), against the GitHub simulator enforcing GitHub's limits (80 content-creating requests a minute, 500 an hour, 100 in flight, 60 s hold), 30 ms per answer; the app's budget at its defaults (80/1m, 500/1h, 20 in flight).`,
    "",
    table([
      ["measure", "figure"],
      ["every run finished", ms(runsDone!)],
      ["every check run final", ms(checksDone!)],
      ["outbox empty (acknowledgements sent or skipped)", ms(drained)],
      ["requests per run", (log.length / COMMENTS).toFixed(2)],
      ["content-creating requests per run", (creates.length / COMMENTS).toFixed(2)],
      ["check runs created (once each, already final)", `${checkRunCreates} for ${COMMENTS} runs`],
      ["links replied in the issue / acknowledgements skipped under pressure", `${replies} / ${skipped}`],
      ["most requests in flight", String(gh.sim.limits.maxInFlightSeen.get(token) ?? 0)],
      ["403/429 answers (after the first hold)", `${refused.length} (${afterFirst})`],
    ]),
    "",
    `The requests: ${[...byRoute.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} × ${v}`).join(", ")}.`,
  ].join("\n"),
);
