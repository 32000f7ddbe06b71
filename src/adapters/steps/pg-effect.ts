/**
 * PostgreSQL's own verdict on whether a query can change state (SPEC §4): a query is a read only
 * if it is a plain query and every function it can run is, by PostgreSQL's `pg_proc.provolatile`,
 * not VOLATILE (a short list of harmless volatile functions aside). `BEGIN READ ONLY` alone stops
 * table writes, but not `pg_terminate_backend`, advisory locks, `set_config`, `dblink_exec` or a
 * writing function's non-transactional effects.
 *
 * How, using only the server, and executing nothing of the query:
 *
 * 1. `PREPARE` the statement: PostgreSQL infers its parameters' types (`pg_prepared_statements`).
 * 2. In a transaction that is always rolled back, create a temporary SQL function with those
 *    parameter types whose body is `RETURN EXISTS (<query>)`. PostgreSQL parses the query there
 *    exactly as it would run it (`$1…` are the function's arguments, of the inferred types), and
 *    refuses anything that is not a plain query: DML, a data-modifying WITH, SELECT INTO.
 * 3. Read the function's parse tree (`pg_proc.prosqlbody`, PostgreSQL's own serialisation) and
 *    collect every number in it (function, operator, type and relation OIDs among them; a few
 *    that are not OIDs, which can only add false alarms, never hide a function), then follow what
 *    running the query also runs: views' rules, row-security policies, domain constraints,
 *    operators' functions, aggregates' support functions and arguments' defaults.
 *    (`pg_depend` is no help: PostgreSQL records no dependency on its built-in functions, so a
 *    view over `nextval()` depends on nothing but its sequence.)
 * 4. Any VOLATILE function reached, or `FOR UPDATE/SHARE` anywhere (`hasForUpdate`), makes it a
 *    write. Functions that take `internal` are left out: SQL cannot call them, and small numbers
 *    in the tree would otherwise name access-method handlers.
 *
 * Four round trips on the query's own connection (about 2–3 ms on loopback). A server that cannot
 * run step 2 (a hot standby, a role without TEMP) gets "write", the safe answer.
 */
import type pg from "pg";
import {
  HARMLESS_VOLATILE_FUNCTIONS,
  explainedStatement,
  isShowStatement,
  withoutTrailingSemicolons,
} from "../../core/policy/sql.js";

export type QueryVerdict = { write: false } | { write: true; reason: string; functions: string[] };

const READ: QueryVerdict = { write: false };
const PROBE = "sluice_probe";

/**
 * The numbers in a parse tree, without character offsets and the bytes of constants. (No
 * backslashes reach the SQL: they would mean something else where standard_conforming_strings
 * is off. No [[:space:]] either: in a UTF-8 database its first use costs milliseconds.)
 */
const treeNumbers = (tree: string): string =>
  `SELECT DISTINCT tok::bigint::oid AS id
     FROM regexp_split_to_table(regexp_replace(${tree}, ':(?:location|stmt_location|stmt_len) -?[0-9]+|:constvalue [0-9]+ [[](?: -?[0-9]+)* []]', ' ', 'g'), '[ \t\n(){}]+') AS tok
    WHERE tok ~ '^[0-9]{1,10}$' AND tok::bigint <= 4294967295`;

const VERDICT_SQL = `
WITH RECURSIVE trees(tree) AS (
  SELECT f.prosqlbody::text FROM pg_proc f WHERE f.pronamespace = pg_my_temp_schema() AND f.proname = '${PROBE}'
  UNION
  SELECT run.tree FROM trees, LATERAL (${treeNumbers("trees.tree")}) n, LATERAL (
    SELECT r.ev_action::text FROM pg_rewrite r WHERE r.ev_class = n.id AND r.ev_type = '1'
    UNION ALL
    SELECT concat_ws(' ', p.polqual::text, p.polwithcheck::text)
      FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE p.polrelid = n.id AND c.relrowsecurity
    UNION ALL
    SELECT t.typbasetype::text FROM pg_type t WHERE t.oid = n.id AND t.typtype = 'd'
    UNION ALL
    SELECT k.conbin::text FROM pg_constraint k WHERE k.contypid = n.id AND k.conbin IS NOT NULL
    UNION ALL
    SELECT o.oprcode::oid::text FROM pg_operator o WHERE o.oid = n.id
    UNION ALL
    SELECT concat_ws(' ', a.aggtransfn::oid, a.aggfinalfn::oid, a.aggcombinefn::oid, a.aggserialfn::oid,
                          a.aggdeserialfn::oid, a.aggmtransfn::oid, a.aggminvtransfn::oid, a.aggmfinalfn::oid)
      FROM pg_aggregate a WHERE a.aggfnoid = n.id
    UNION ALL
    SELECT f.proargdefaults::text FROM pg_proc f WHERE f.oid = n.id AND f.proargdefaults IS NOT NULL
  ) run(tree)
), reached AS (
  SELECT DISTINCT n.id FROM trees, LATERAL (${treeNumbers("trees.tree")}) n
)
SELECT
  ARRAY(SELECT f.oid::regprocedure::text FROM pg_proc f JOIN reached ON reached.id = f.oid
         WHERE f.provolatile = 'v'
           AND NOT (f.pronamespace = 'pg_catalog'::regnamespace AND f.proname = ANY ('{${HARMLESS_VOLATILE_FUNCTIONS.join(",")}}'::name[]))
           AND NOT 'internal'::regtype = ANY (f.proargtypes::oid[])
         ORDER BY 1) AS functions,
  (SELECT bool_or(tree ~ ':hasForUpdate true') FROM trees) AS locks`;

interface PgError {
  code?: string;
  message?: string;
}

/** A SQL error of the probe is PostgreSQL's answer about the query; a broken connection is not. */
function isAnswer(err: unknown): boolean {
  const code = (err as PgError).code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && !/^(08|53|57|40|55P03|XX)/.test(code);
}

function message(err: unknown): string {
  return (err as PgError).message ?? String(err);
}

/** Multi-statement simple queries answer with one result per statement. */
function results(r: unknown): pg.QueryResult[] {
  return Array.isArray(r) ? (r as pg.QueryResult[]) : [r as pg.QueryResult];
}

/**
 * Whether `sql` can change state, by PostgreSQL's own knowledge. Runs on `client` (connected, no
 * transaction open) and leaves it as it found it; executes nothing of the query.
 */
export async function postgresVerdict(client: pg.Client, sql: string): Promise<QueryVerdict> {
  if (isShowStatement(sql)) return READ;
  const explained = explainedStatement(sql);
  if (explained && !explained.analyze) return READ; // EXPLAIN without ANALYZE only plans
  const text = withoutTrailingSemicolons(explained ? explained.statement : sql);
  try {
    // The extended protocol refuses more than one statement: the query cannot add its own.
    await client.query({ text: `PREPARE ${PROBE} AS ${text}`, queryMode: "extended" } as pg.QueryConfig);
  } catch (err) {
    if (!isAnswer(err)) throw err;
    return { write: true, reason: `PostgreSQL does not take it as one plain query (${message(err)})`, functions: [] };
  }
  let clean = false;
  let stage: "parse" | "classify" = "classify";
  try {
    // JIT would spend tens of milliseconds compiling the catalog query below for nothing.
    const begun = results(
      await client.query(
        `BEGIN READ WRITE; SET LOCAL jit = off; SELECT coalesce(parameter_types::text[], '{}') AS types FROM pg_prepared_statements WHERE name = '${PROBE}'`,
      ),
    );
    const types = (begun[2]?.rows[0] as { types: string[] } | undefined)?.types ?? [];
    stage = "parse";
    await client.query({
      text: `CREATE FUNCTION pg_temp.${PROBE}(${types.join(", ")}) RETURNS boolean LANGUAGE sql RETURN EXISTS (\n${text}\n)`,
      queryMode: "extended",
    } as pg.QueryConfig);
    stage = "classify";
    const verdict = results(await client.query(`SET LOCAL search_path = pg_catalog, pg_temp; ${VERDICT_SQL}; ROLLBACK; DEALLOCATE ${PROBE}`));
    clean = true;
    const row = verdict[1]?.rows[0] as { functions: string[]; locks: boolean | null } | undefined;
    if (!row) return { write: true, reason: "PostgreSQL gave no verdict on it", functions: [] };
    if (row.functions.length > 0) {
      return {
        write: true,
        reason: `it calls ${row.functions.join(", ")}, which PostgreSQL marks VOLATILE (it may change state)`,
        functions: row.functions,
      };
    }
    if (row.locks) return { write: true, reason: "it locks rows (FOR UPDATE/SHARE)", functions: [] };
    return READ;
  } catch (err) {
    if (!isAnswer(err)) throw err;
    // 42501: no TEMP privilege; anything else while parsing is about the query itself.
    const reason =
      stage === "parse" && (err as PgError).code !== "42501"
        ? `it is not a plain query that PostgreSQL can read without effects (${message(err)})`
        : `PostgreSQL could not classify it on this server (${message(err)})`;
    return { write: true, reason, functions: [] };
  } finally {
    if (!clean) await client.query(`ROLLBACK; DEALLOCATE ${PROBE}`).catch(() => undefined);
  }
}
