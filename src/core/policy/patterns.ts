/**
 * Allow and deny rules of the policy (SPEC §3). `ssh` entries are regular expressions matched
 * against the command; `http` entries are "METHOD url-glob" where METHOD may be `*`, `*` in the
 * URL matches within one path segment and `**` matches anything.
 *
 * Rules match what will actually run (SPEC §4): http rules the normalised URL (./url.ts), ssh
 * rules the evaluated command with its whitespace normalised. An allow rule turns a write into
 * an ungated read, so it must match every way the request could be understood; a deny rule
 * refuses a request, so it matches if any way does.
 */
import { isAmbiguousUrl, normaliseHttpUrl, urlReadings } from "./url.js";

export function compileUrlGlob(glob: string): RegExp {
  const text = normaliseGlob(glob);
  let re = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === "*") {
      if (text[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += "[^/]*";
    } else re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

/**
 * A glob in the URL's normal form, so that `POST https://API.example.com:443/a%2Db/**` matches
 * what `https://api.example.com/a-b/…` normalises to: scheme and host lower-cased, a trailing dot
 * of the host and a default port dropped, runs of `/` made one, unreserved escapes decoded.
 */
function normaliseGlob(glob: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s.exec(glob);
  if (!m) return glob;
  const scheme = m[1]!.toLowerCase();
  let authority = m[2]!.toLowerCase();
  const port = /:([0-9]+)$/.exec(authority);
  if (port && ((scheme === "https" && Number(port[1]) === 443) || (scheme === "http" && Number(port[1]) === 80))) {
    authority = authority.slice(0, -port[0].length);
  }
  authority = authority.replace(/\.+$/, "");
  const rest = m[3]!.replace(/\/{2,}/g, "/").replace(/%([0-9A-Fa-f]{2})/g, (_x, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${hex.toUpperCase()}`;
  });
  return `${scheme}://${authority}${rest}`;
}

/** Whether "METHOD url" is matched by a rule "METHOD url-glob" (METHOD `*` for any); `url` is normalised. */
export function matchesHttpRule(rule: string, method: string, url: string): boolean {
  const space = rule.indexOf(" ");
  const [ruleMethod, glob] = space < 0 ? ["*", rule] : [rule.slice(0, space), rule.slice(space + 1).trim()];
  if (ruleMethod !== "*" && ruleMethod.toUpperCase() !== method.toUpperCase()) return false;
  return compileUrlGlob(glob).test(url);
}

/**
 * The first allow rule that matches the request, if any. A URL that does not normalise, or whose
 * path holds an encoded `/` or `\` (which a server may read as a separator), is allowed by none.
 */
export function firstHttpAllow(rules: readonly string[] | undefined, method: string, url: string): string | undefined {
  const n = normaliseHttpUrl(url);
  if (!n.ok || isAmbiguousUrl(n.url)) return undefined;
  return rules?.find((r) => matchesHttpRule(r, method, n.url));
}

/** The first deny rule that matches any reading of the request (the raw text, when it does not normalise). */
export function firstHttpDeny(rules: readonly string[] | undefined, method: string, url: string): string | undefined {
  const n = normaliseHttpUrl(url);
  const readings = n.ok ? urlReadings(n.url) : [url];
  return rules?.find((r) => readings.some((u) => matchesHttpRule(r, method, u)));
}

/** A command with every run of whitespace made one space, trimmed: what ssh rules are matched against. */
export function normaliseCommand(command: string): string {
  return command.replace(/\s+/g, " ").trim();
}

/**
 * Whether a command is one simple command: no list or pipeline (`;` `&&` `||` `|` `&`, a newline
 * or carriage return), no substitution (backticks, `$(`, `<(`, `>(`), no redirection (`<` `>`),
 * no subshell or zsh glob qualifier (parentheses), no NUL, and no leading variable assignment
 * (`BASH_ENV=… cmd`, `LD_PRELOAD=… cmd`). Only such a command can be what an allow rule names.
 */
export function isSimpleCommand(command: string): boolean {
  return !/[;&|`<>()\n\r\0]/.test(command) && !/^\s*[A-Za-z_][A-Za-z0-9_]*=/.test(command);
}

function matchesSshRule(rule: string, command: string): boolean {
  try {
    return new RegExp(rule).test(command);
  } catch {
    return command.includes(rule);
  }
}

/**
 * The first allow rule that makes this ssh step a read, if any: only a single simple command,
 * matched with its whitespace normalised, and only without `env` (BASH_ENV, SHELL, PATH,
 * LD_PRELOAD and the like change what a command does).
 */
export function firstSshAllow(rules: readonly string[] | undefined, command: string, env?: unknown): string | undefined {
  if (env !== undefined && env !== null && !(typeof env === "object" && Object.keys(env).length === 0)) return undefined;
  if (!isSimpleCommand(command)) return undefined;
  const text = normaliseCommand(command);
  return rules?.find((r) => matchesSshRule(r, text));
}

/**
 * The first deny rule that matches any reading of the command: as given; with its whitespace
 * normalised; and as the shell would mostly see it, with line continuations joined, `$NAME` and
 * `${NAME}` replaced by the step's `env` values, `$IFS` read as a space and quotes and backslashes
 * dropped (`r''m  -rf${IFS}"/"` is `rm -rf /`). A deny list cannot be complete (see the README).
 */
export function firstSshDeny(rules: readonly string[] | undefined, command: string, env?: unknown): string | undefined {
  const vars = env !== null && typeof env === "object" ? (env as Record<string, unknown>) : {};
  const shell = command
    .replace(/\\\r?\n/g, "")
    .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, braced?: string, bare?: string) => {
      const value = vars[(braced ?? bare)!];
      return typeof value === "string" || typeof value === "number" || typeof value === "boolean" ? String(value) : m;
    })
    .replace(/\$\{IFS\}|\$IFS(?![A-Za-z0-9_])/g, " ")
    .replace(/["'\\]/g, "");
  const readings = [command, normaliseCommand(command), normaliseCommand(shell)];
  return rules?.find((r) => readings.some((c) => matchesSshRule(r, c)));
}

/** A policy regex that does not compile: the config's validation reports it. */
export function regexError(pattern: string): string | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
