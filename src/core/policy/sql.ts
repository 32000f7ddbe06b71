/**
 * The static classification of a db step (at validation and in the engine): whether a SQL
 * statement looks like a read: SELECT, WITH … SELECT, EXPLAIN (without ANALYZE of a write),
 * VALUES, SHOW, TABLE. Anything else is a write. Looking is not knowing (`SELECT nextval(…)`
 * looks like a read): before a "read" runs, the db step asks the database itself (PostgreSQL's
 * function volatility, SQLite's read-only verdict) and turns it into a gated write if it can
 * change state; reads then run in a read-only transaction as a second line of defence.
 */
export function isReadQuery(sql: string): boolean {
  const text = stripComments(sql).trim().replace(/;\s*$/, "");
  if (text.includes(";")) return false;
  const first = /^[(\s]*([a-zA-Z]+)/.exec(text)?.[1]?.toLowerCase();
  switch (first) {
    case "select":
    case "values":
    case "show":
    case "table":
      return !/\binto\b/i.test(text.replace(/'(?:[^']|'')*'/g, "''")) || first !== "select";
    case "explain":
      return !/^explain\s*(\([^)]*\banalyze\b|\s+analyze\b)/i.test(text) || isReadQuery(text.replace(/^explain\s*(\([^)]*\)|\s+analyze(\s+verbose)?)?/i, ""));
    case "with":
      return !/\b(insert|update|delete|merge|truncate|drop|alter|create)\b/i.test(text.replace(/'(?:[^']|'')*'/g, "''"));
    default:
      return false;
  }
}

function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, " ").replace(/\/\*[\s\S]*?\*\//g, " ");
}

/**
 * Volatile PostgreSQL functions (pg_catalog only) that a read may still call: they read a clock or
 * a random source, or wait, and change no state that outlives the statement. Everything else that
 * PostgreSQL marks VOLATILE (nextval, setval, set_config, pg_notify, lo_*, pg_advisory_lock,
 * pg_terminate_backend, dblink, user functions, …) makes a query a possible write.
 */
export const HARMLESS_VOLATILE_FUNCTIONS: readonly string[] = [
  "random",
  "random_normal",
  "gen_random_uuid",
  "clock_timestamp",
  "timeofday",
  "pg_sleep",
  "pg_sleep_for",
  "pg_sleep_until",
];

/** PostgreSQL's whitespace (its lexer knows no other: a no-break space is part of an identifier). */
const WS = "[ \\t\\n\\r\\f\\v]";
const SHOW = new RegExp(
  `^${WS}*SHOW${WS}+(?:ALL|TIME${WS}+ZONE|TRANSACTION${WS}+ISOLATION${WS}+LEVEL|SESSION${WS}+AUTHORIZATION|[A-Za-z_][A-Za-z0-9_$]*(?:\\.[A-Za-z_][A-Za-z0-9_$]*)?)(?:${WS}|;)*$`,
  "i",
);

/**
 * Whether the text is exactly one SHOW of a setting (nothing else fits this grammar): it reads a
 * setting and can call no function.
 */
export function isShowStatement(sql: string): boolean {
  return SHOW.test(sql);
}

const EXPLAIN_OPTION = `(?:VERBOSE|COSTS|SETTINGS|BUFFERS|WAL|TIMING|SUMMARY|FORMAT|ANALYZE|ANALYSE)(?:${WS}+(?:TRUE|FALSE|ON|OFF|1|0|TEXT|XML|JSON|YAML))?`;
const EXPLAIN = new RegExp(
  `^${WS}*EXPLAIN(?:${WS}*\\((${WS}*${EXPLAIN_OPTION}(?:${WS}*,${WS}*${EXPLAIN_OPTION})*${WS}*)\\)|((?:${WS}+ANALY[SZ]E)?(?:${WS}+VERBOSE)?))${WS}+(?=(?:SELECT|WITH|VALUES|TABLE|INSERT|UPDATE|DELETE|MERGE)\\b)`,
  "i",
);

/**
 * An EXPLAIN whose prefix is spelt in plain words only (no comments, quotes or unknown options, so
 * that this reading and PostgreSQL's agree): whether it has ANALYZE, which runs the statement,
 * and the statement. Without ANALYZE, EXPLAIN only plans. Undefined for anything else.
 */
export function explainedStatement(sql: string): { analyze: boolean; statement: string } | undefined {
  const m = EXPLAIN.exec(sql);
  if (!m) return undefined;
  return { analyze: /ANALY[SZ]E/i.test(m[1] ?? m[2] ?? ""), statement: sql.slice(m[0].length) };
}

/**
 * The statement without trailing `;` and whitespace. Safe on any statement PostgreSQL accepts:
 * there, a trailing `;` ends the statement or sits in a trailing `--` comment (a literal, quoted
 * name or block comment ends in its own delimiter), so dropping it leaves the same tokens.
 */
export function withoutTrailingSemicolons(sql: string): string {
  return sql.replace(/[ \t\n\r\f\v;]+$/, "");
}
