import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EffectIsWriteError, NonRetriableError } from "../../../src/core/errors.js";
import { isReadQuery } from "../../../src/core/policy/sql.js";
import { dbExecutor, runSqlite, toSqlitePlaceholders } from "../../../src/adapters/steps/db.js";
import { startDeadline } from "../../../src/adapters/steps/deadline.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";

let postgres: TestPostgres;
let admin: pg.Client;
let dir: string;
let sqlitePath: string;

beforeAll(async () => {
  postgres = await startPostgres();
  admin = new pg.Client({ connectionString: postgres.url });
  await admin.connect();
  await admin.query(`
    CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE, made timestamptz, blob bytea, meta jsonb);
    INSERT INTO items (name, made, blob, meta) VALUES
      ('bolt', '2024-05-01T10:00:00Z', '\\x0102ff', '{"size": 3}'),
      ('nut', NULL, NULL, '{"size": 1}'),
      ('gear', NULL, NULL, NULL);
    CREATE TABLE audit (id serial PRIMARY KEY, what text);
    CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit (what) VALUES ('sneaky') RETURNING id $$;
    CREATE SEQUENCE tickets;
    -- Marked STABLE though it advances a sequence: PostgreSQL takes the mark at its word.
    CREATE FUNCTION liar() RETURNS bigint STABLE LANGUAGE plpgsql AS $$ BEGIN RETURN nextval('tickets'); END $$;
    CREATE VIEW next_ticket AS SELECT nextval('tickets') AS n;
    CREATE EXTENSION dblink;
  `);
  await admin.query("SELECT lo_create(5000)");
  dir = mkdtempSync(join(tmpdir(), "sluice-db-test-"));
  sqlitePath = join(dir, "app.db");
  const db = new Database(sqlitePath);
  db.exec(`
    CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, blob BLOB);
    INSERT INTO items (name, blob) VALUES ('bolt', x'0102ff'), ('nut', NULL), ('gear', NULL);
  `);
  db.close();
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await postgres?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function ctx(extra: Parameters<typeof makeStepContext>[0] = {}) {
  return makeStepContext({
    connections: {
      pg: { type: "postgres", secretValue: postgres.url },
      lite: { type: "sqlite", path: sqlitePath },
      relative: { type: "sqlite", path: relative(process.cwd(), sqlitePath) },
    },
    ...extra,
  });
}


async function activeSleeps(): Promise<number> {
  const res = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()");
  return res.rows[0].n as number;
}

async function eventually(cond: () => Promise<boolean>, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

describe("db executor: PostgreSQL", { timeout: 30_000 }, () => {
  it("reads with $1 parameters, as JSON values", async () => {
    const out = await dbExecutor.execute({ connection: "pg", query: "SELECT name, made, blob, meta FROM items WHERE name = $1", params: ["bolt"] }, ctx());
    expect(out.outputs).toEqual({
      rows: [{ name: "bolt", made: "2024-05-01T10:00:00.000Z", blob: Buffer.from([1, 2, 255]).toString("base64"), meta: { size: 3 } }],
      row_count: 1,
      truncated: false,
    });
  });

  it("a parameter is a value, never SQL", async () => {
    const out = await dbExecutor.execute({ connection: "pg", query: "SELECT count(*)::int AS n FROM items WHERE name = $1", params: ["x' OR '1'='1"] }, ctx());
    expect(out.outputs.rows).toEqual([{ n: 0 }]);
  });

  it("writes, and row_count counts the changed rows", async () => {
    const ins = await dbExecutor.execute({ connection: "pg", query: "INSERT INTO items (name) VALUES ($1), ($2) RETURNING name", params: ["washer", "spring"] }, ctx());
    expect(ins.outputs).toEqual({ rows: [{ name: "washer" }, { name: "spring" }], row_count: 2, truncated: false });
    const upd = await dbExecutor.execute({ connection: "pg", query: "UPDATE items SET meta = $1 WHERE name IN ('washer', 'spring')", params: [{ new: true }] }, ctx());
    expect(upd.outputs).toEqual({ rows: [], row_count: 2, truncated: false });
    const check = await admin.query("SELECT count(*)::int AS n FROM items WHERE meta = '{\"new\": true}'");
    expect(check.rows[0].n).toBe(2);
  });

  it("EXPLAIN runs as a read", async () => {
    const out = await dbExecutor.execute({ connection: "pg", query: "EXPLAIN SELECT * FROM items WHERE id = $1", params: [1] }, ctx());
    expect((out.outputs.rows as unknown[]).length).toBeGreaterThan(0);
  });

  it("returns at most max_rows rows, and says it truncated", async () => {
    const q = "SELECT g AS n FROM generate_series(1, $1::int) g";
    const some = await dbExecutor.execute({ connection: "pg", query: q, params: [5000], max_rows: 10 }, ctx());
    expect(some.outputs.rows).toHaveLength(10);
    expect(some.outputs.truncated).toBe(true);
    expect((some.outputs.rows as { n: number }[])[9]).toEqual({ n: 10 });
    const exact = await dbExecutor.execute({ connection: "pg", query: q, params: [10], max_rows: 10 }, ctx());
    expect(exact.outputs).toMatchObject({ row_count: 10, truncated: false });
    const dflt = await dbExecutor.execute({ connection: "pg", query: q, params: [1500] }, ctx());
    expect(dflt.outputs).toMatchObject({ row_count: 1000, truncated: true });
  });

  it("an SQL error is a non-retriable DB_ERROR with its SQLSTATE; so is a parameter count mismatch", async () => {
    const syntax = await failure(dbExecutor.execute({ connection: "pg", query: "SELEC 1" }, ctx()));
    expect(syntax).toBeInstanceOf(NonRetriableError);
    expect(syntax.code).toBe("DB_ERROR");
    expect(syntax.details.sqlstate).toBe("42601");
    const dup = await failure(dbExecutor.execute({ connection: "pg", query: "INSERT INTO items (name) VALUES ($1)", params: ["bolt"] }, ctx()));
    expect(dup.details.sqlstate).toBe("23505");
    const count = await failure(dbExecutor.execute({ connection: "pg", query: "SELECT $1::int", params: [1, 2] }, ctx()));
    expect(count.code).toBe("DB_ERROR");
    expect(count).toBeInstanceOf(NonRetriableError);
  });

  it("a broken connection URL is a clear CONNECTION_FAILED", async () => {
    const closedPort = `postgres://postgres@127.0.0.1:1/sluice_test`;
    const c = makeStepContext({
      connections: {
        closed: { type: "postgres", secretValue: closedPort },
        nodb: { type: "postgres", secretValue: postgres.url.replace(/sluice_test$/, "no_such_db") },
        garbage: { type: "postgres", secretValue: "postgres://user:pw@[not-a-host/db" },
      },
    });
    const closed = await failure(dbExecutor.execute({ connection: "closed", query: "SELECT 1" }, c));
    expect(closed.code).toBe("CONNECTION_FAILED");
    expect(closed).not.toBeInstanceOf(NonRetriableError);
    const nodb = await failure(dbExecutor.execute({ connection: "nodb", query: "SELECT 1" }, c));
    expect(nodb.code).toBe("CONNECTION_FAILED");
    expect(nodb).toBeInstanceOf(NonRetriableError);
    expect(nodb.message).toMatch(/no_such_db/);
    const garbage = await failure(dbExecutor.execute({ connection: "garbage", query: "SELECT 1" }, c));
    expect(garbage.code).toBe("CONNECTION_FAILED");
  });

  it("a statement that outlives the timeout is cancelled on the server: STEP_TIMEOUT", async () => {
    const err = await failure(dbExecutor.execute({ connection: "pg", query: "SELECT pg_sleep(30)" }, ctx({ timeoutMs: 300 })));
    expect(err.code).toBe("STEP_TIMEOUT");
    expect(await eventually(async () => (await activeSleeps()) === 0)).toBe(true);
  });

  it("an abort cancels the statement on the server: STEP_ABORTED", async () => {
    const controller = new AbortController();
    const run = failure(dbExecutor.execute({ connection: "pg", query: "SELECT pg_sleep(30)" }, ctx({ signal: controller.signal })));
    expect(await eventually(async () => (await activeSleeps()) === 1)).toBe(true);
    controller.abort();
    const err = await run;
    expect(err.code).toBe("STEP_ABORTED");
    expect(await eventually(async () => (await activeSleeps()) === 0)).toBe(true);
  });

  it("bad parameters are PARAM_INVALID", async () => {
    for (const params of [{ connection: "pg" }, { connection: "pg", query: "SELECT 1", params: "x" }, { connection: "pg", query: "SELECT 1", max_rows: 0 }]) {
      expect((await failure(dbExecutor.execute(params, ctx()))).code).toBe("PARAM_INVALID");
    }
    const c = makeStepContext({ connections: { web: { type: "http", base_url: "http://127.0.0.1:1" } } });
    expect((await failure(dbExecutor.execute({ connection: "web", query: "SELECT 1" }, c))).code).toBe("PARAM_INVALID");
  });
});

/** Runs `query` as the engine runs a step it classified as a read; returns the error it must fail with. */
async function asRead(query: string, params: unknown[] = []): Promise<EffectIsWriteError> {
  expect(isReadQuery(query)).toBe(true); // the static classification calls it a read
  const err = await failure(dbExecutor.execute({ connection: "pg", query, params }, ctx({ effect: "read" })));
  expect(err).toBeInstanceOf(EffectIsWriteError);
  expect(err.code).toBe("EFFECT_IS_WRITE");
  return err as EffectIsWriteError;
}

async function one<T>(sql: string): Promise<T> {
  return (await admin.query(sql)).rows[0] as T;
}

describe("db executor: PostgreSQL's verdict on reads that can change state", { timeout: 30_000 }, () => {
  it("pg_terminate_backend: EffectIsWriteError, and the backend lives", async () => {
    const victim = new pg.Client({ connectionString: postgres.url });
    await victim.connect();
    try {
      const pid = (await victim.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
      const err = await asRead("SELECT pg_terminate_backend($1)", [pid]);
      expect(err.message).toMatch(/pg_terminate_backend\(integer,bigint\).*VOLATILE/);
      expect(err.details.functions).toEqual(["pg_terminate_backend(integer,bigint)"]);
      expect((await victim.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
    } finally {
      await victim.end();
    }
  });

  it("lo_create and lo_unlink: no large object appears, none disappears", async () => {
    await asRead("SELECT lo_create(4242)");
    await asRead("SELECT lo_unlink(5000)");
    expect(await one("SELECT array_agg(oid::int ORDER BY oid) AS los FROM pg_largeobject_metadata")).toEqual({ los: [5000] });
  });

  it("pg_notify: no notification is delivered", async () => {
    const listener = new pg.Client({ connectionString: postgres.url });
    await listener.connect();
    const seen: string[] = [];
    listener.on("notification", (n) => seen.push(n.payload ?? ""));
    try {
      await listener.query("LISTEN sluice_chan");
      await asRead("SELECT pg_notify('sluice_chan', 'from the step')");
      // Notifications arrive in commit order: the sentinel comes first unless the step notified.
      await admin.query("NOTIFY sluice_chan, 'sentinel'");
      expect(await eventually(async () => seen.length > 0)).toBe(true);
      expect(seen[0]).toBe("sentinel");
    } finally {
      await listener.end();
    }
  });

  it("dblink_exec: nothing is written through a second connection", async () => {
    const target = `host=127.0.0.1 port=${postgres.port} dbname=sluice_test user=postgres`;
    await asRead(`SELECT dblink_exec('${target}', 'INSERT INTO audit (what) VALUES (''dblink'')')`);
    expect(await one("SELECT count(*)::int AS n FROM audit WHERE what = 'dblink'")).toEqual({ n: 0 });
  });

  it("nextval, setval, a view over nextval, a user function that writes: nothing runs", async () => {
    for (const query of ["SELECT nextval('tickets')", "SELECT setval('tickets', 100)", "SELECT * FROM next_ticket", "SELECT sneaky()"]) {
      await asRead(query);
    }
    expect(await one("SELECT last_value::int, is_called FROM tickets")).toEqual({ last_value: 1, is_called: false });
    expect(await one("SELECT count(*)::int AS n FROM audit")).toEqual({ n: 0 });
  });

  it("a data-modifying WITH disguised from the static check, and FOR UPDATE, are writes", async () => {
    const before = await one("SELECT count(*)::int AS n FROM items");
    // The `$$'$$` opens a "string" for the static check that hides the DELETE; PostgreSQL is not fooled.
    const err = await asRead("WITH a AS (SELECT $$'$$ AS x), d AS (DELETE FROM items RETURNING 1) SELECT '' FROM d");
    expect(err.message).toMatch(/not a plain query.*data-modifying/);
    const locks = await asRead("SELECT * FROM items FOR UPDATE");
    expect(locks.message).toMatch(/FOR UPDATE/);
    expect(await one("SELECT count(*)::int AS n FROM items")).toEqual(before);
  });

  it("a plain read runs, with parameters and harmless volatile functions, EXPLAIN and SHOW too", async () => {
    const read = ctx({ effect: "read" });
    const out = await dbExecutor.execute(
      { connection: "pg", query: "SELECT name, random() < 2 AS r, gen_random_uuid() IS NOT NULL AS u FROM items WHERE name = $1;", params: ["nut"] },
      read,
    );
    expect(out.outputs.rows).toEqual([{ name: "nut", r: true, u: true }]);
    const plan = await dbExecutor.execute({ connection: "pg", query: "EXPLAIN SELECT nextval('tickets')" }, read);
    expect((plan.outputs.rows as unknown[]).length).toBeGreaterThan(0);
    const show = await dbExecutor.execute({ connection: "pg", query: "SHOW search_path" }, read);
    expect(show.outputs.row_count).toBe(1);
    expect(await one("SELECT last_value::int, is_called FROM tickets")).toEqual({ last_value: 1, is_called: false });
  });

  it("the read-only transaction is the second line: a STABLE function that calls nextval is refused", async () => {
    const err = await failure(dbExecutor.execute({ connection: "pg", query: "SELECT liar()" }, ctx({ effect: "read" })));
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err).not.toBeInstanceOf(EffectIsWriteError);
    expect(err.code).toBe("DB_READ_ONLY");
    expect(err.details.sqlstate).toBe("25006");
    expect(await one("SELECT last_value::int, is_called FROM tickets")).toEqual({ last_value: 1, is_called: false });
  });

  it("run as an approved write, the same query runs", async () => {
    const out = await dbExecutor.execute({ connection: "pg", query: "SELECT sneaky() AS id" }, ctx({ effect: "write" }));
    expect(out.outputs.row_count).toBe(1);
    expect(await one("SELECT array_agg(what) AS w FROM audit")).toEqual({ w: ["sneaky"] });
    await admin.query("TRUNCATE audit");
  });
});

describe("db executor: SQLite", { timeout: 30_000 }, () => {
  it("reads with $1 parameters (translated to ?1), from a path relative to the working directory too", async () => {
    const out = await dbExecutor.execute({ connection: "relative", query: "SELECT name, blob FROM items WHERE name = $1 OR name = $2 ORDER BY id", params: ["bolt", "gear"] }, ctx());
    expect(out.outputs).toEqual({
      rows: [
        { name: "bolt", blob: Buffer.from([1, 2, 255]).toString("base64") },
        { name: "gear", blob: null },
      ],
      row_count: 2,
      truncated: false,
    });
  });

  it("writes, and row_count counts the changed rows", async () => {
    const out = await dbExecutor.execute({ connection: "lite", query: "INSERT INTO items (name) VALUES ($1), ($2)", params: ["washer", "spring"] }, ctx());
    expect(out.outputs).toEqual({ rows: [], row_count: 2, truncated: false });
    const ret = await dbExecutor.execute({ connection: "lite", query: "UPDATE items SET blob = $2 WHERE name = $1 RETURNING id", params: ["washer", "ab"] }, ctx());
    expect(ret.outputs.row_count).toBe(1);
  });

  it("a read that SQLite says can write is EffectIsWriteError before it runs, even disguised from the static check", async () => {
    // The `'` in the quoted name opens a "string" for the static check that hides the DELETE.
    const query = `WITH "x'" AS (SELECT 1) DELETE FROM items WHERE name <> 'none'`;
    expect(isReadQuery(query)).toBe(true);
    const err = await failure(dbExecutor.execute({ connection: "lite", query }, ctx({ effect: "read" })));
    expect(err).toBeInstanceOf(EffectIsWriteError);
    const deadline = startDeadline(makeStepContext());
    try {
      expect(await failure(runSqlite({ name: "lite", path: sqlitePath }, "DELETE FROM items", [], true, 10, deadline))).toBeInstanceOf(EffectIsWriteError);
    } finally {
      deadline.dispose();
    }
    const count = new Database(sqlitePath, { readonly: true });
    expect((count.prepare("SELECT count(*) AS n FROM items").get() as { n: number }).n).toBeGreaterThan(0);
    count.close();
    const read = await dbExecutor.execute({ connection: "lite", query: "SELECT count(*) AS n FROM items" }, ctx({ effect: "read" }));
    expect((read.outputs.rows as { n: number }[])[0]!.n).toBeGreaterThan(0);
  });

  it("returns at most max_rows rows", async () => {
    const q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
    const out = await dbExecutor.execute({ connection: "lite", query: q, max_rows: 25 }, ctx());
    expect(out.outputs).toMatchObject({ row_count: 25, truncated: true });
  });

  it("a runaway statement is stopped at the timeout, and an abort stops it too", async () => {
    const q = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
    const t = await failure(dbExecutor.execute({ connection: "lite", query: q }, ctx({ timeoutMs: 500 })));
    expect(t.code).toBe("STEP_TIMEOUT");
    const controller = new AbortController();
    const run = failure(dbExecutor.execute({ connection: "lite", query: q }, ctx({ signal: controller.signal })));
    controller.abort();
    expect((await run).code).toBe("STEP_ABORTED");
  });

  it("errors: SQL, parameter count, other placeholder styles, a missing file", async () => {
    const syntax = await failure(dbExecutor.execute({ connection: "lite", query: "SELEC 1" }, ctx()));
    expect(syntax.code).toBe("DB_ERROR");
    const count = await failure(dbExecutor.execute({ connection: "lite", query: "SELECT $1, $2", params: [1] }, ctx()));
    expect(count.code).toBe("PARAM_INVALID");
    const style = await failure(dbExecutor.execute({ connection: "lite", query: "SELECT * FROM items WHERE name = ?", params: ["x"] }, ctx()));
    expect(style.code).toBe("PARAM_INVALID");
    const missing = join(dir, "missing.db");
    const c = makeStepContext({ effect: "read", connections: { gone: { type: "sqlite", path: missing } } });
    const gone = await failure(dbExecutor.execute({ connection: "gone", query: "SELECT 1" }, c));
    expect(gone.code).toBe("CONNECTION_FAILED");
    expect(existsSync(missing)).toBe(false);
  });
});

describe("toSqlitePlaceholders", () => {
  it.each([
    ["SELECT $1, $2", "SELECT ?1, ?2", 2],
    ["SELECT '$1', \"$2\", [$3], `$4` -- $5\n, $1 /* $9 */", "SELECT '$1', \"$2\", [$3], `$4` -- $5\n, ?1 /* $9 */", 1],
    ["SELECT 'it''s $1', $10", "SELECT 'it''s $1', ?10", 10],
    ["SELECT 1", "SELECT 1", 0],
  ])("%s", (input, sql, count) => {
    expect(toSqlitePlaceholders(input)).toEqual({ sql, count });
  });
  it("refuses other placeholder styles", () => {
    for (const q of ["SELECT ?", "SELECT :name", "SELECT @name", "SELECT $name"]) expect(() => toSqlitePlaceholders(q)).toThrow(/placeholder/);
  });
});
