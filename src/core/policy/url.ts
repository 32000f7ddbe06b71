/**
 * The one normal form of the URL an http step requests (SPEC §4, "Effects cannot be disguised").
 * Policy rules are matched against it, and the http executor requests exactly it, so what was
 * matched is what is requested: `POST https://h/safe/../danger` is `POST https://h/danger`
 * everywhere, never a `safe/**` request to the policy and a `danger` request on the wire.
 *
 * The form: parsed by WHATWG URL rules (scheme and host lower-cased, IPv4 shorthands expanded,
 * default port dropped, `\` read as `/`, dot segments removed, `%2e` spellings of them too), the
 * fragment dropped, a trailing dot of the host dropped, runs of `/` in the path made one (a server
 * that merges slashes would otherwise see `/admin` where a rule saw `//admin`), percent-escapes of
 * unreserved characters (ALPHA DIGIT - . _ ~) decoded and every other escape upper-cased.
 * Credentials in the URL (`user:pass@`) are refused: they belong in a connection's secret.
 */

export type UrlResult =
  | { ok: true; url: string }
  | { ok: false; code: "PARAM_INVALID" | "POLICY_DENIED"; reason: string };

/** The normal form of an absolute http(s) URL. */
export function normaliseHttpUrl(input: string | URL): UrlResult {
  let u: URL;
  try {
    u = new URL(String(input));
  } catch {
    return { ok: false, code: "PARAM_INVALID", reason: `'${String(input)}' is not an absolute http(s) URL` };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return { ok: false, code: "PARAM_INVALID", reason: `'${u.href}' is not an http(s) URL` };
  }
  if (u.username !== "" || u.password !== "") {
    return {
      ok: false,
      code: "PARAM_INVALID",
      reason: `'${u.protocol}//…@${u.host}${u.pathname}' carries credentials; give them to a connection's secret instead`,
    };
  }
  u.hash = "";
  const host = u.hostname.replace(/\.+$/, "");
  if (host === "") return { ok: false, code: "PARAM_INVALID", reason: `'${u.href}' names no host` };
  if (host !== u.hostname) u.hostname = host;
  // Each edit below can only shorten the text or turn `%2E` into `.`, which the URL parser has
  // already resolved where it formed a dot segment; repeating until nothing changes makes the form
  // a fixed point (normalising it again changes nothing) without relying on that argument.
  for (let i = 0; i < 4; i++) {
    const before = u.href;
    const path = decodeUnreserved(u.pathname.replace(/\/{2,}/g, "/"));
    if (path !== u.pathname) u.pathname = path;
    const search = decodeUnreserved(u.search);
    if (search !== u.search) u.search = search;
    if (u.href === before) return { ok: true, url: u.href };
  }
  return { ok: false, code: "PARAM_INVALID", reason: `'${String(input)}' has no stable normal form` };
}

function decodeUnreserved(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${hex.toUpperCase()}`;
  });
}

/**
 * The readings of a normalised URL that a server might route: the URL itself, and, when its path
 * holds an encoded `/` or `\` (`%2F`, `%5C`), the URL with those decoded and normalised again,
 * since some servers decode them before routing (`/safe/..%2Fadmin` is `/admin` to them).
 */
export function urlReadings(url: string): string[] {
  const u = new URL(url);
  if (!/%2F|%5C/i.test(u.pathname)) return [url];
  u.pathname = u.pathname.replace(/%2F/gi, "/").replace(/%5C/gi, "/");
  const decoded = normaliseHttpUrl(u);
  return decoded.ok && decoded.url !== url ? [url, decoded.url] : [url];
}

/** Whether a normalised URL has a reading other than itself (an encoded path separator). */
export function isAmbiguousUrl(url: string): boolean {
  return urlReadings(url).length > 1;
}

/** Where an http step's request goes: its `url` (under its connection's `base_url`), and `query`. */
export interface HttpTargetInput {
  url: string;
  /** The connection's base_url, when the step names a connection. */
  baseUrl?: string;
  /** The connection's name, for messages. */
  connection?: string;
  /** The step's `query` map (scalars or lists of scalars), appended in order. */
  query?: Record<string, unknown>;
}

const ABSOLUTE_HTTP = /^https?:/i;

/**
 * The normalised URL an http step requests. With a connection, `url` is a path relative to the
 * connection's `base_url` (a leading `/` included: `/items` is `{base_url}/items`), or an absolute
 * URL; either way the result must stay under `base_url` (same origin, path at or below its path),
 * so `../admin`, `%2e%2e/admin` or another host is refused with POLICY_DENIED before any request.
 */
export function resolveHttpTarget(input: HttpTargetInput): UrlResult {
  let target: UrlResult;
  // The URL parser ignores tabs and newlines anywhere, and spaces and controls at the ends.
  const text = input.url.replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
  if (input.baseUrl === undefined) target = normaliseHttpUrl(text);
  else {
    const base = normaliseHttpUrl(input.baseUrl);
    const conn = input.connection ? `connection '${input.connection}'` : "the connection";
    if (!base.ok) return { ok: false, code: "PARAM_INVALID", reason: `the base_url of ${conn}: ${base.reason}` };
    const dir = new URL(base.url);
    dir.search = "";
    if (!dir.pathname.endsWith("/")) dir.pathname += "/";
    if (ABSOLUTE_HTTP.test(text)) target = normaliseHttpUrl(text);
    else {
      // `./` keeps a first segment with a colon (`users:search`) a path, not a scheme.
      let joined: URL;
      try {
        joined = new URL(`./${text.replace(/^[/\\]+/, "")}`, dir);
      } catch {
        return { ok: false, code: "PARAM_INVALID", reason: `'${input.url}' is not a path under ${dir.href}` };
      }
      target = normaliseHttpUrl(joined);
    }
    // Every reading must stay under it: `..%2Fadmin` is `../admin` to a server that decodes `%2F`.
    if (target.ok && !urlReadings(target.url).every((r) => isUnder(new URL(r), dir))) {
      return {
        ok: false,
        code: "POLICY_DENIED",
        reason: `url '${input.url}' resolves to ${target.url}, outside ${conn} (${base.url}); a step's url must stay under its connection's base_url`,
      };
    }
  }
  if (!target.ok || input.query === undefined) return target;
  const u = new URL(target.url);
  for (const [k, v] of Object.entries(input.query)) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item === undefined || item === null) continue;
      if (typeof item === "object") return { ok: false, code: "PARAM_INVALID", reason: `query.${k} must be a string, number or boolean` };
      u.searchParams.append(k, String(item));
    }
  }
  return normaliseHttpUrl(u);
}

/** Same origin, and the path is the directory's path (without its final `/`) or below it. */
function isUnder(url: URL, dir: URL): boolean {
  if (url.origin !== dir.origin) return false;
  return url.pathname.startsWith(dir.pathname) || url.pathname === dir.pathname.slice(0, -1);
}
