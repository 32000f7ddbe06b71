/**
 * Sessions of people signed in with GitHub (oauth.ts): a random id in an HttpOnly, SameSite=Lax
 * cookie (Secure when the public URL is https), and a record in the store's kv, so every server
 * on one database knows it, expiring by itself (kv TTL).
 *
 * The store holds the record under the SHA-256 of the id, never the id: reading the database
 * does not give anyone a working cookie. The person's GitHub token is kept encrypted with a key
 * derived from the id (AES-256-GCM), so the database alone does not reveal it either.
 * Each session has a CSRF token that the pages put in their forms and every POST must carry.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { RunStore } from "../../ports/run-store.js";
import type { GitHubUser } from "./oauth.js";

export const SESSIONS_NAMESPACE = "sluice:sessions";
export const SESSION_COOKIE = "sluice_session";
export const LOGIN_COOKIE = "sluice_login";
/** A working day: a session opened in the morning lasts until evening, then GitHub is asked again. */
export const SESSION_TTL_MS = 8 * 3600_000;
/** Time to sign in at GitHub between leaving the page and coming back. */
const LOGIN_TTL_S = 600;

export interface Session {
  login: string;
  /** The person's GitHub token (to ask what they may read). */
  token: string;
  csrf: string;
  expiresAt: number;
}

interface StoredSession {
  login: string;
  csrf: string;
  expiresAt: number;
  token: { iv: string; data: string; tag: string };
}

const ID_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (!(name in out)) out[name] = part.slice(i + 1).trim();
  }
  return out;
}

const keyOf = (id: string) => createHash("sha256").update(id).digest("hex");
const cipherKey = (id: string) => Buffer.from(hkdfSync("sha256", id, "", "sluice session token v1", 32));

function seal(id: string, token: string): StoredSession["token"] {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", cipherKey(id), iv);
  const data = Buffer.concat([c.update(token, "utf8"), c.final()]);
  return { iv: iv.toString("base64url"), data: data.toString("base64url"), tag: c.getAuthTag().toString("base64url") };
}

function open(id: string, t: StoredSession["token"]): string | undefined {
  try {
    const d = createDecipheriv("aes-256-gcm", cipherKey(id), Buffer.from(t.iv, "base64url"));
    d.setAuthTag(Buffer.from(t.tag, "base64url"));
    return Buffer.concat([d.update(Buffer.from(t.data, "base64url")), d.final()]).toString("utf8");
  } catch {
    return undefined;
  }
}

export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface SessionsOptions {
  store: RunStore;
  /** Secure cookies (the public URL is https). */
  secure: boolean;
  now: () => number;
  ttlMs?: number;
}

export class Sessions {
  private readonly ttlMs: number;
  constructor(private readonly opts: SessionsOptions) {
    this.ttlMs = opts.ttlMs ?? SESSION_TTL_MS;
  }

  private cookie(name: string, value: string, maxAgeS: number): string {
    return `${name}=${value}; Path=/; Max-Age=${maxAgeS}; HttpOnly; SameSite=Lax${this.opts.secure ? "; Secure" : ""}`;
  }

  /** Opens a session for `user`; answers the Set-Cookie header. */
  async create(user: GitHubUser): Promise<string> {
    const id = randomBytes(32).toString("base64url");
    const now = this.opts.now();
    const record: StoredSession = { login: user.login, csrf: randomBytes(32).toString("base64url"), expiresAt: now + this.ttlMs, token: seal(id, user.token) };
    await this.opts.store.kvSet(SESSIONS_NAMESPACE, keyOf(id), record, { now, ttlMs: this.ttlMs });
    return this.cookie(SESSION_COOKIE, id, Math.floor(this.ttlMs / 1000));
  }

  /** The request's live session, if any. */
  async read(req: IncomingMessage): Promise<Session | undefined> {
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (!id || !ID_SHAPE.test(id)) return undefined;
    const now = this.opts.now();
    const hit = await this.opts.store.kvGet(SESSIONS_NAMESPACE, keyOf(id), now);
    const rec = hit?.value as StoredSession | undefined;
    if (!rec || rec.expiresAt <= now) return undefined;
    const token = open(id, rec.token);
    if (token === undefined) return undefined;
    return { login: rec.login, token, csrf: rec.csrf, expiresAt: rec.expiresAt };
  }

  /** Ends the request's session; answers the Set-Cookie header that clears it. */
  async destroy(req: IncomingMessage): Promise<string> {
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (id && ID_SHAPE.test(id)) await this.opts.store.kvDelete(SESSIONS_NAMESPACE, keyOf(id));
    return this.cookie(SESSION_COOKIE, "", 0);
  }

  /** A login attempt: the OAuth state (also set in a cookie, against login CSRF) and where to go after. */
  beginLogin(next: string): { state: string; cookie: string } {
    const state = randomBytes(24).toString("base64url");
    return { state, cookie: this.cookie(LOGIN_COOKIE, `${state}.${Buffer.from(next).toString("base64url")}`, LOGIN_TTL_S) };
  }

  /** Where to go after a login whose `state` came back from GitHub, when it is this browser's; and the cookie that clears the attempt. */
  finishLogin(req: IncomingMessage, state: string | null): { next: string | undefined; clear: string } {
    const clear = this.cookie(LOGIN_COOKIE, "", 0);
    const [mine, next] = (parseCookies(req.headers.cookie)[LOGIN_COOKIE] ?? "").split(".");
    if (!state || !mine || !sameSecret(mine, state)) return { next: undefined, clear };
    return { next: Buffer.from(next ?? "", "base64url").toString("utf8") || "/runs", clear };
  }
}
