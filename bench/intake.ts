/**
 * Webhook intake under load from another process (issue 12, row "webhook intake"): the real
 * server (`startServer`: Probot's verification, Sluice's intake, inbox, worker and loops) on
 * loopback, and signed `issue_comment` deliveries POSTed at a fixed rate by
 * bench/intake-load.mjs in a child process; the figure is the time from when a delivery was due
 * to when its 2xx arrived, p50 and p99. The server also handles what it took in (the inbox
 * runs), as in production. The repository's live release is recorded (as after its first push),
 * so handling a comment asks GitHub nothing.
 *
 * Yardstick, same load, same run: a bare node:http server in this process that reads the body,
 * checks its HMAC signature as Probot does, and answers 200.
 *
 *   npx tsx bench/intake.ts [--quick] [--profile] [--rates 100,250,500] [--stores sqlite,postgres]
 *
 * `--profile` adds the server's CPU profile at the highest rate (what bounds it).
 */
import { spawn } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setLiveRelease } from "../src/adapters/github/snapshot.js";
import { startServer } from "../src/app/server.js";
import type { Logger } from "../src/ports/step-executor.js";
import { startGitHub } from "../test/github/fixtures.js";
import { startPostgres, type TestPostgres } from "../test/support/postgres.js";
import { freePort } from "../test/support/net.js";
import { ms, quantile, sleep, table, until } from "./lib/measure.js";
import { profiled, type ProfileSummary } from "./lib/profile.js";

const { values } = parseArgs({
  options: { quick: { type: "boolean" }, profile: { type: "boolean" }, rates: { type: "string" }, stores: { type: "string" } },
});
const quick = values.quick === true;
const seconds = quick ? 3 : 10;
const rates = (values.rates ?? "100,250,500").split(",").map(Number);
const stores = (values.stores ?? "sqlite,postgres").split(",").map((s) => s.trim());
const REPO = "acme/widgets";
const HELLO = `name: hello\non:\n  manual:\nsteps:\n  - id: greet\n    kv: { get: greeting }\n`;

interface Load {
  sent: number;
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  latencies: number[];
}

function load(url: string, secret: string, payload: unknown, rate: number): Promise<Load> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(import.meta.dirname, "intake-load.mjs"), JSON.stringify({ url, secret, event: "issue_comment", payload, rate, seconds })], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as Load) : reject(new Error(`the load generator exited ${code}`))));
  });
}

/** The yardstick: read the body, check the signature, answer. */
function bareServer(secret: string): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const expected = Buffer.from(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
      const given = Buffer.from(String(req.headers["x-hub-signature-256"] ?? ""));
      const good = expected.length === given.length && timingSafeEqual(expected, given);
      JSON.parse(body.toString("utf8"));
      res.writeHead(good ? 200 : 400).end();
    });
  });
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r(server)));
}

const rows: string[][] = [["server", "store", "rate", "deliveries", "p50", "p99", "max", "not 2xx", "all handled after"]];
const profiles: string[] = [];
const gh = await startGitHub({ repo: REPO, files: { "README.md": "bench\n", ".github/flows/hello.yml": HELLO } });
gh.sim.setPermission(REPO, "ann", "write");
const issue = gh.sim.createIssue(REPO, { title: "busy", user: "ann" });
const payload = gh.sim.payloads.issueComment({ repo: REPO, issue: issue.number, sender: "ann", body: "Looks good to me." });

function row(server: string, store: string, rate: number, r: Load, drained: string): string[] {
  return [server, store, `${rate}/s`, String(r.sent), ms(quantile(r.latencies, 0.5)), ms(quantile(r.latencies, 0.99)), ms(r.latencies.at(-1) ?? NaN), String(r.failed), drained];
}

{
  const bare = await bareServer(gh.webhookSecret);
  const url = `http://127.0.0.1:${(bare.address() as AddressInfo).port}/`;
  for (const rate of rates) rows.push(row("bare node:http (yardstick)", "—", rate, await load(url, gh.webhookSecret, payload, rate), "—"));
  await new Promise((r) => bare.close(r));
}

let pg: TestPostgres | undefined;
for (const kind of stores) {
  const home = mkdtempSync(join(tmpdir(), "sluice-intake-"));
  if (kind === "postgres") pg ??= await startPostgres({ durable: true, maxConnections: 100 });
  let handled = 0;
  const quiet: Logger = {
    debug: (m) => {
      if (m === "delivery processed") handled++;
    },
    info: () => {},
    warn: () => {},
    error: (m, meta) => process.stderr.write(`${m} ${JSON.stringify(meta ?? {})}\n`),
  };
  const port = await freePort();
  const server = await startServer({
    env: {
      ...gh.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      SLUICE_HOME: home,
      SLUICE_PUBLIC_URL: `http://127.0.0.1:${port}`,
      NO_SMEE_SETUP: "true",
      LOG_LEVEL: "fatal",
      ...(kind === "postgres" && pg ? { DATABASE_URL: pg.url } : {}),
    },
    cwd: home,
    logger: quiet,
  });
  const sluice = server.sluice!;
  const now = Date.now();
  await setLiveRelease(sluice.store, REPO, { sha: gh.sim.branchSha(REPO, "main")!, ref: "main", at: now }, now);
  const url = `${server.url}/api/github/webhooks`;
  // Warm up: tokens, the bot's identity, the release's snapshot.
  await load(url, gh.webhookSecret, payload, 20);
  await until("the warm-up to be handled", () => handled >= 20, 60_000);
  for (const rate of rates) {
    const before = handled;
    const t = performance.now();
    const measure = () => load(url, gh.webhookSecret, payload, rate);
    let r: Load;
    if (values.profile && rate === Math.max(...rates)) {
      const p: { value: Load; summary: ProfileSummary } = await profiled(measure, 15);
      r = p.value;
      profiles.push(
        [
          `**${kind}, ${rate}/s**: ${ms(p.summary.totalMs)} sampled, idle ${(p.summary.idle * 100).toFixed(0)}%, GC ${(p.summary.gc * 100).toFixed(0)}%`,
          "",
          table([["function", "where", "self"], ...p.summary.top.map((f) => [f.fn, f.where, `${(f.share * 100).toFixed(1)}%`])]),
        ].join("\n"),
      );
    } else {
      r = await measure();
    }
    await until("every delivery to be handled", () => handled - before >= r.ok, 300_000, 20);
    rows.push(row("sluice serve", kind, rate, r, ms(performance.now() - t - seconds * 1000)));
    await sleep(500);
  }
  await server.stop();
  rmSync(home, { recursive: true, force: true });
}
await pg?.stop();
await gh.sim.stop();

console.log(
  [
    `Signed \`issue_comment\` deliveries from another process at a fixed rate for ${seconds} s each; latency from when each was due to its answer. "All handled after": how long after the last delivery was sent the inbox had processed them all.`,
    "",
    table(rows),
    ...(profiles.length ? ["", "Where the server's time goes at the highest rate (CPU profile, self time):", "", ...profiles] : []),
  ].join("\n"),
);
