/**
 * A worker process for the two-process lease test: opens the SQLite store on the file named by
 * argv[2], waits for "go" on stdin, then claims due runs one at a time until none is left, and
 * prints the ids it claimed as one JSON line. Bundled with esbuild by sqlite.test.ts.
 */
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";

const [file, owner, nowText] = process.argv.slice(2);
if (!file || !owner || !nowText) throw new Error("usage: claim-worker <file> <owner> <now>");
const store = openSqliteRunStore(file);
const now = Number(nowText);

process.stdin.once("data", async () => {
  // Claim until nothing is left, holding every lease (a run stays due while it is leased), then
  // append to each claimed run: a run claimed twice shows up twice here and fails its second CAS.
  const claimed: { id: string; seq: number }[] = [];
  const cap = Number(process.argv[5] ?? 1000);
  while (claimed.length < cap) {
    const got = await store.claimDue(owner, now, 600_000, 1);
    if (got.length === 0) break;
    for (const r of got) claimed.push({ id: r.id, seq: r.seq });
  }
  let conflicts = 0;
  for (const r of claimed) {
    try {
      await store.append(r.id, r.seq, [{ type: "run_started", at: now }], { status: "running", wakeAt: null });
    } catch {
      conflicts++;
    }
  }
  await store.close();
  process.stdout.write(`${JSON.stringify({ owner, claimed: claimed.map((r) => r.id), conflicts })}\n`);
  process.exit(0);
});
process.stdout.write("ready\n");
