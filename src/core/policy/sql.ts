/**
 * Whether a SQL statement only reads: SELECT, WITH … SELECT, EXPLAIN (without ANALYZE of a
 * write), VALUES, SHOW, TABLE. Anything else is a write. The db step also runs reads in a
 * read-only transaction, so a misclassified write still fails rather than writing.
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
