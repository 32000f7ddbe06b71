/**
 * The SSRF guard of every outbound HTTP request a step makes (http, llm, search, notify).
 *
 * By default a request may only reach public unicast addresses: loopback, private, link-local
 * (cloud metadata included), CGNAT, unique-local, multicast, reserved and unspecified addresses
 * are refused, and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are
 * judged by that IPv4 address. The check runs on the address the name resolves to, and the
 * request then connects to that very address (no second lookup), on every redirect hop.
 *
 * Exceptions: a host the step's connection names, and a request matched by a
 * `policy.allow.http` rule. A `policy.deny.http` rule refuses a request whatever the address.
 * Rules are matched against the URL's normal form, which is then what is requested.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { NonRetriableError, SluiceError } from "../../core/errors.js";
import { firstHttpAllow, firstHttpDeny } from "../../core/policy/patterns.js";
import { normaliseHttpUrl } from "../../core/policy/url.js";

export interface SsrfOptions {
  /** Hosts (`hostname[:port]`, as URL.host spells them) that the step's connection names. */
  allowedHosts?: readonly string[];
  /** `policy.allow.http`: "METHOD url-glob" rules whose requests may reach any address. */
  allowRules?: readonly string[];
  /** `policy.deny.http`: rules whose requests are always refused. */
  denyRules?: readonly string[];
}

export interface AddressClass {
  /** The address as ipaddr.js prints it. */
  address: string;
  /** `unicast` for a public address; else the range that refuses it (loopback, private, …). */
  range: string;
  allowed: boolean;
}

/** Classifies an IP address in any form ipaddr.js reads (dotted, decimal, octal, hex, IPv6). */
export function classifyAddress(input: string): AddressClass | undefined {
  const text = input.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(text);
  } catch {
    return undefined;
  }
  if (addr.kind() === "ipv4") return classifyV4(addr as ipaddr.IPv4);
  const v6 = addr as ipaddr.IPv6;
  const embedded = embeddedV4(v6);
  if (embedded) {
    const inner = classifyV4(embedded);
    return { address: v6.toString(), range: inner.allowed ? inner.range : `${v6.range()}(${inner.range})`, allowed: inner.allowed };
  }
  const range = v6.range();
  return { address: v6.toString(), range, allowed: range === "unicast" };
}

function classifyV4(addr: ipaddr.IPv4): AddressClass {
  const range = addr.range();
  return { address: addr.toString(), range, allowed: range === "unicast" };
}

/** The IPv4 address an IPv6 address carries: mapped, compatible (::a.b.c.d), NAT64, 6to4. */
function embeddedV4(addr: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const p = addr.parts;
  const last32 = (): ipaddr.IPv4 =>
    new ipaddr.IPv4([(p[6]! >> 8) & 0xff, p[6]! & 0xff, (p[7]! >> 8) & 0xff, p[7]! & 0xff]);
  const range = addr.range();
  if (range === "ipv4Mapped" || range === "rfc6145" || range === "rfc6052") return last32();
  if (range === "6to4") return new ipaddr.IPv4([(p[1]! >> 8) & 0xff, p[1]! & 0xff, (p[2]! >> 8) & 0xff, p[2]! & 0xff]);
  // IPv4-compatible ::a.b.c.d (deprecated): the first 96 bits are zero, and it is not :: or ::1.
  if (p.slice(0, 6).every((x) => x === 0) && range !== "unspecified" && range !== "loopback") return last32();
  return undefined;
}

export interface GuardDecision {
  /** The URL to request: the normal form of the one asked for, which the rules were matched against. */
  url: URL;
  /** Why the address check is skipped, if it is: the connection's host or an allow rule. */
  bypass?: string;
}

/**
 * The checks that need no DNS: scheme, the URL's normal form (core/policy/url.ts), deny rules,
 * and whether the address check applies. The request must go to the returned `url`.
 */
export function checkRequest(method: string, url: URL, opts: SsrfOptions): GuardDecision {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw refused(`refused ${method} ${url.href}: only http and https URLs may be requested`, { url: url.href, rule: "scheme" });
  }
  const normal = normaliseHttpUrl(url);
  if (!normal.ok) throw new NonRetriableError("PARAM_INVALID", `refused ${method}: ${normal.reason}`, { url: url.href });
  const target = new URL(normal.url);
  const deny = firstHttpDeny(opts.denyRules, method, target.href);
  if (deny) {
    throw refused(`refused ${method} ${target.href}: policy.deny.http rule '${deny}' matches it`, {
      url: target.href,
      rule: `policy.deny.http: ${deny}`,
    });
  }
  const host = target.host;
  if (opts.allowedHosts?.some((h) => h.toLowerCase() === host)) return { url: target, bypass: `connection host ${host}` };
  const allow = firstHttpAllow(opts.allowRules, method, target.href);
  if (allow) return { url: target, bypass: `policy.allow.http: ${allow}` };
  return { url: target };
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

const systemResolver: Resolver = async (hostname) => {
  const all = await dnsLookup(hostname, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/**
 * Resolves the URL's host and checks every address it resolves to (unless the request is
 * bypassed). Returns the address to connect to.
 */
export async function resolveGuarded(
  method: string,
  url: URL,
  decision: Pick<GuardDecision, "bypass">,
  resolver: Resolver = systemResolver,
): Promise<ResolvedAddress> {
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: ResolvedAddress[];
  const literal = isIP(hostname);
  if (literal) addresses = [{ address: hostname, family: literal === 6 ? 6 : 4 }];
  else {
    try {
      addresses = await resolver(hostname);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      throw new SluiceError("CONNECTION_FAILED", `could not resolve ${hostname}: ${code || String(err)}`, {
        url: url.href,
        cause: code,
      });
    }
    if (addresses.length === 0) {
      throw new SluiceError("CONNECTION_FAILED", `could not resolve ${hostname}: no addresses`, { url: url.href });
    }
  }
  if (!decision.bypass) {
    for (const a of addresses) {
      const c = classifyAddress(a.address);
      if (!c || !c.allowed) {
        const range = c?.range ?? "unparseable";
        const via = literal ? `${hostname} is` : `${hostname} resolves to ${a.address},`;
        throw refused(
          `refused ${method} ${url.href}: ${via} a ${range} address, which steps may not reach ` +
            `(reach it through a connection, or allow the request in policy.allow.http)`,
          { url: url.href, address: a.address, rule: range },
        );
      }
    }
  }
  return addresses[0]!;
}

function refused(message: string, details: Record<string, unknown>): NonRetriableError {
  return new NonRetriableError("SSRF_REFUSED", message, details);
}
