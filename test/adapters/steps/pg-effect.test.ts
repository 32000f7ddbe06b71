/**
 * PostgreSQL's verdict on queries, against a real server: which can change state (by the
 * volatility of every function they can run), which only read, and that asking runs nothing.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postgresVerdict } from "../../../src/adapters/steps/pg-effect.js";
import { startPostgres, type TestPostgres } from "../../support/postgres.js";

let postgres: TestPostgres;
let client: pg.Client;

beforeAll(async () => {
  postgres = await startPostgres();
  client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  await client.query(`
    CREATE TABLE t (id int, v text);
    INSERT INTO t VALUES (1, 'a');
    CREATE TABLE audit (what text);
    CREATE SEQUENCE s;
    CREATE FUNCTION w() RETURNS int LANGUAGE sql AS $$ INSERT INTO audit VALUES ('w') RETURNING 1 $$;
    CREATE FUNCTION calm(int) RETURNS int STABLE LANGUAGE sql AS 'SELECT $1';
    CREATE FUNCTION step_nextval(state int, x int) RETURNS int LANGUAGE sql AS $$ SELECT coalesce(state, 0) + nextval('s')::int $$;
    CREATE AGGREGATE sum_tickets(int) (sfunc = step_nextval, stype = int);
    CREATE FUNCTION with_default(a int DEFAULT nextval('s')::int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT a';
    CREATE DOMAIN checked AS int CHECK (VALUE > w());
    CREATE DOMAIN checked_twice AS checked;
    CREATE VIEW tickets AS SELECT nextval('s') AS n;
    CREATE VIEW on_tickets AS SELECT * FROM tickets;
    CREATE VIEW locked AS SELECT * FROM t FOR UPDATE;
    CREATE TABLE guarded (id int);
    ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
    CREATE POLICY p ON guarded USING (w() > 0);
    CREATE FUNCTION loud_eq(int, int) RETURNS bool LANGUAGE sql AS $$ SELECT pg_notify('x', 'y') IS NOT NULL $$;
    CREATE OPERATOR === (leftarg = int, rightarg = int, procedure = loud_eq);
    CREATE FUNCTION "$1"(int) RETURNS int LANGUAGE sql AS $$ SELECT nextval('s')::int $$;
  `);
}, 120_000);

afterAll(async () => {
  await client?.end();
  await postgres?.stop();
});

const writes: [string, RegExp][] = [
  ["SELECT nextval('s')", /nextval\(regclass\)/],
  ["SELECT setval('s', 10)", /setval/],
  ["SELECT pg_terminate_backend(pg_backend_pid())", /pg_terminate_backend/],
  ["SELECT pg_cancel_backend(1)", /pg_cancel_backend/],
  ["SELECT lo_create(0)", /lo_create/],
  ["SELECT lo_unlink(1)", /lo_unlink/],
  ["SELECT pg_notify('c', 'x')", /pg_notify/],
  ["SELECT pg_advisory_lock(1)", /pg_advisory_lock\(bigint\)/],
  ["SELECT pg_try_advisory_xact_lock(1, 2)", /pg_try_advisory_xact_lock/],
  ["SELECT set_config('a.b', 'c', false)", /set_config/],
  ["SELECT w()", /w\(\)/],
  ["SELECT id FROM t WHERE id = $1 AND w() > $2", /w\(\)/],
  ["SELECT sum_tickets(id) FROM t", /step_nextval/],
  ["SELECT with_default()", /nextval/],
  ["SELECT 1::checked", /w\(\)/],
  ["SELECT $1::checked_twice", /w\(\)/],
  ["SELECT * FROM tickets", /nextval/],
  ["SELECT * FROM on_tickets", /nextval/],
  ["SELECT * FROM guarded", /w\(\)/],
  ["SELECT 1 === 2", /loud_eq/],
  ["SELECT (SELECT nextval('s'))", /nextval/],
  ["SELECT * FROM t WHERE id IN (SELECT nextval('s'))", /nextval/],
  ["SELECT pg_catalog.nextval('s'::regclass);", /nextval/],
  // A parameter and a function named like one are told apart by PostgreSQL's own parse.
  [`SELECT "$1"($1)`, /"\$1"\(integer\)/],
  ["SELECT * FROM t FOR UPDATE", /FOR UPDATE/],
  ["SELECT * FROM t FOR KEY SHARE", /FOR UPDATE/],
  ["SELECT * FROM locked", /FOR UPDATE/],
  ["WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", /data-modifying/],
  ["SELECT 1 INTO x", /INTO/],
  ["SELECT 1; SELECT 2", /multiple commands/],
  ["SELECT 1; DELETE FROM t", /multiple commands/],
  ["DELETE FROM t", /plain query/],
  ["EXPLAIN ANALYZE SELECT nextval('s')", /nextval/],
  ["EXPLAIN /* a comment */ SELECT 1", /plain query/],
  ["SELECT no_such_function()", /does not exist/],
  ["SELECT 1; -- a comment after the end", /plain query/],
];

const reads = [
  "SELECT 1",
  "SELECT 1 ;  ",
  "select * from t where id = $1 and v = $2",
  "SELECT $1",
  "SELECT '$1', $$ $1 $$, 1 AS \"$1\" -- $1",
  "VALUES (1), ($1)",
  "TABLE t",
  "WITH a AS (SELECT 1 AS x) SELECT * FROM a",
  "SELECT count(*) FROM generate_series(1, $1::int)",
  "SELECT calm(id) FROM t",
  "SELECT now(), statement_timestamp(), clock_timestamp(), random(), gen_random_uuid(), timeofday()",
  "SELECT pg_sleep(0)",
  "SELECT * FROM pg_stat_activity",
  "EXPLAIN SELECT nextval('s')",
  "EXPLAIN (FORMAT JSON) SELECT * FROM tickets",
  "EXPLAIN ANALYZE SELECT * FROM t",
  "SHOW search_path",
  "SELECT 1 -- a trailing comment",
];

describe("postgresVerdict", { timeout: 30_000 }, () => {
  for (const [sql, why] of writes) {
    it(`${sql} can change state`, async () => {
      const v = await postgresVerdict(client, sql);
      expect(v.write).toBe(true);
      expect(v.write && v.reason).toMatch(why);
    });
  }

  for (const sql of reads) {
    it(`${sql} only reads`, async () => {
      expect(await postgresVerdict(client, sql)).toEqual({ write: false });
    });
  }

  it("runs nothing of the query and leaves the session as it found it", async () => {
    const verdict = await postgresVerdict(client, "SELECT nextval('s'), w(), pg_notify('c', 'x'), set_config('a.b', 'changed', false)");
    expect(verdict.write && [...verdict.functions].sort()).toEqual(["nextval(regclass)", "pg_notify(text,text)", "public.w()", "set_config(text,text,boolean)"]);
    const state = await client.query(
      `SELECT (SELECT last_value FROM s)::int AS last, (SELECT is_called FROM s) AS called, (SELECT count(*)::int FROM audit) AS audit,
              current_setting('a.b', true) AS setting, (SELECT count(*)::int FROM pg_prepared_statements) AS prepared,
              (SELECT count(*)::int FROM pg_proc WHERE pronamespace = pg_my_temp_schema()) AS temp_functions`,
    );
    expect(state.rows[0]).toEqual({ last: 1, called: false, audit: 0, setting: null, prepared: 0, temp_functions: 0 });
    expect((await client.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
  });

  it("a server that cannot classify (no TEMP privilege) answers write", async () => {
    await client.query("CREATE ROLE reader LOGIN; GRANT SELECT ON t TO reader; REVOKE TEMP ON DATABASE sluice_test FROM PUBLIC");
    const reader = new pg.Client({ connectionString: postgres.url.replace("postgres@", "reader@") });
    await reader.connect();
    try {
      const v = await postgresVerdict(reader, "SELECT * FROM t");
      expect(v.write).toBe(true);
      expect(v.write && v.reason).toMatch(/permission denied/);
    } finally {
      await reader.end();
      await client.query("GRANT TEMP ON DATABASE sluice_test TO PUBLIC");
    }
  });
});
