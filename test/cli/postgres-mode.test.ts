/** DATABASE_URL puts local mode on PostgreSQL: the same run, gate and kv, on a real server. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { startPostgres } from "../support/postgres.js";

let repo: TestRepo;
let pg: Awaited<ReturnType<typeof startPostgres>>;
let env: Record<string, string>;

beforeAll(async () => {
  pg = await startPostgres();
  repo = makeRepo({
    ".github/flows/pg.yml": `
on: { manual: {} }
steps:
  - id: count
    kv: { incr: { key: visits, by: 1 } }
  - id: review
    wait: { approval: { approvers: { users: [bob] } } }
outputs: { visits: "\${{ steps.count.outputs.value }}" }
`,
  });
  env = { DATABASE_URL: pg.url };
});
afterAll(async () => {
  repo.remove();
  await pg.stop();
});

describe("local mode on PostgreSQL", () => {
  it("runs, waits, is approved and finishes with its state in PostgreSQL", () => {
    const first = sluice(repo.dir, ["run", "pg", "--json"], env);
    expect(first.code).toBe(3);
    const id = first.json.data.id;
    const done = sluice(repo.dir, ["approve", id, "--as", "bob", "--json"], env);
    expect(done.code).toBe(0);
    expect(done.json.data.outputs).toEqual({ visits: 1 });
    expect(sluice(repo.dir, ["kv", "get", "visits", "--json"], env).json.data.value).toBe(1);
    // Nothing went to the SQLite default: without DATABASE_URL the run is unknown.
    expect(sluice(repo.dir, ["runs", "show", id, "--json"], { SLUICE_HOME: `${repo.dir}/.other` }).code).toBe(4);
  });

  it("an unreachable database is an infrastructure error, exit 5", () => {
    const r = sluice(repo.dir, ["runs", "list", "--json"], { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" });
    expect(r.code).toBe(5);
    expect(r.json.error.code).toBe("STORE_ERROR");
  });
});
