/**
 * Who may read what the server says about runs (SPEC §7). The server faces the internet (GitHub
 * must reach it), so every run route asks for one of two credentials:
 *
 * - an API token, `Authorization: Bearer sluice_…`, made by `sluice tokens create`: it acts as a
 *   GitHub login and may be restricted to one repository. A person's token may decide gates (as
 *   that person, under the same rules as on GitHub); an agent's (`--agent`) starts runs and reads. The store keeps only its SHA-256: the
 *   token is 256 random bits, so a plain hash is as good as a slow one, and it is looked up by
 *   that hash (an index lookup on a hash leaks nothing about the token itself);
 * - a signed, expiring link to one run (the check run's details_url): `?exp=<unix s>&sig=<HMAC>`
 *   over the run id and the expiry. It opens that run's page and that run's resources, nothing
 *   else. The key is random, kept in the store under one name and created once by whichever
 *   process comes first, so every process sharing a database signs and verifies alike, with
 *   nothing for the operator to configure or leak; rotating it (deleting the row) voids every link.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ApiToken, RunStore, TokenKind } from "../../ports/run-store.js";
import { resourceUrl, runPageUrl, type RunLinks } from "../github/check-run-summary.js";

/** What a request proved. */
export type Credential =
  | { kind: "token"; tokenId: string; login: string; repo: string | null; tokenKind: TokenKind }
  | { kind: "link"; runId: string; exp: number; sig: string };

const TOKEN_PREFIX = "sluice_";
const TOKEN_SHAPE = /^sluice_[A-Za-z0-9_-]{43}$/;

/**
 * How long a signed link opens its run: 30 days from the check run's last update, which is
 * the run's end. Long enough to review a run and come back to it in a post-mortem weeks later;
 * short enough that a link pasted into a chat or left in a browser's history stops working.
 */
export const LINK_TTL_MS = 30 * 86_400_000;

/** The store's name for the key signing run links. */
export const LINK_KEY_NAME = "run-links-v1";

export function hashToken(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** A new token: its public id, the secret to print once, and the hash to store. */
export function newToken(): { id: string; secret: string; hash: string } {
  const secret = TOKEN_PREFIX + randomBytes(32).toString("base64url");
  return { id: `tok_${randomBytes(9).toString("base64url")}`, secret, hash: hashToken(secret) };
}

/** Whether a stored token works at `now` (not revoked, not expired). */
export function tokenIsLive(t: ApiToken, now: number): boolean {
  return t.revokedAt === null && (t.expiresAt === null || t.expiresAt > now);
}

/** The token in `Authorization: Bearer <token>`, when it is one of ours and live. */
export async function tokenCredential(store: RunStore, authorization: string | undefined, now: number): Promise<Credential | undefined> {
  const m = /^Bearer +(\S+) *$/i.exec(authorization ?? "");
  // A malformed token costs no store lookup: it cannot be one of ours.
  if (!m || !TOKEN_SHAPE.test(m[1]!)) return undefined;
  const t = await store.findToken(hashToken(m[1]!));
  if (!t || !tokenIsLive(t, now)) return undefined;
  return { kind: "token", tokenId: t.id, login: t.login, repo: t.repo, tokenKind: t.kind };
}

/** Signs and verifies links to one run with the server's key. */
export class LinkSigner {
  constructor(
    private readonly key: Buffer,
    readonly ttlMs: number = LINK_TTL_MS,
  ) {}

  private mac(runId: string, exp: number): string {
    return createHmac("sha256", this.key).update(`sluice run link v1\n${runId}\n${exp}`).digest("base64url");
  }

  /** A signature for `runId` that works until `now + ttl` (whole seconds). */
  sign(runId: string, now: number): { exp: number; sig: string } {
    const exp = Math.ceil((now + this.ttlMs) / 1000);
    return { exp, sig: this.mac(runId, exp) };
  }

  /** The link credential for `runId` when `exp` and `sig` sign it and have not expired. */
  verify(runId: string, exp: string | null, sig: string | null, now: number): Credential | undefined {
    if (!exp || !sig || !/^[0-9]{1,12}$/.test(exp) || !/^[A-Za-z0-9_-]{43}$/.test(sig)) return undefined;
    const at = Number(exp);
    if (at * 1000 <= now) return undefined;
    const expected = Buffer.from(this.mac(runId, at));
    const given = Buffer.from(sig);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    return { kind: "link", runId, exp: at, sig };
  }
}

/** The signer on the store's shared key, creating the key if this is the first process. */
export async function openLinkSigner(store: RunStore, ttlMs: number = LINK_TTL_MS): Promise<LinkSigner> {
  const key = await store.serverKey(LINK_KEY_NAME, randomBytes(32).toString("base64url"));
  return new LinkSigner(Buffer.from(key, "base64url"), ttlMs);
}

/** Links that carry a signature: `sig` when given (a page opened by a link keeps its expiry), else a fresh one. */
export function signedRunLinks(publicUrl: string, signer: LinkSigner, now: number, sig?: { exp: number; sig: string }): RunLinks {
  const query = (runId: string) => {
    const s = sig ?? signer.sign(runId, now);
    return `?exp=${s.exp}&sig=${s.sig}`;
  };
  return {
    page: (runId) => runPageUrl(publicUrl, runId) + query(runId),
    resource: (runId, hex) => resourceUrl(publicUrl, runId, hex) + query(runId),
  };
}
