/**
 * What GitHub says about a person, for commands and approvals: bot or human, their permission
 * on the repository (`GET /repos/{o}/{r}/collaborators/{u}/permission`), and which of a gate's
 * teams they are an active member of (`GET /orgs/{org}/teams/{slug}/memberships/{u}`), kept
 * briefly (a burst of commands from one person asks once).
 */
import type { ApprovalSignal } from "../../core/engine/events.js";
import { isBotLogin, normaliseLogin } from "../../core/engine/gates.js";
import { SluiceError } from "../../core/errors.js";
import type { GitHubApi } from "../../ports/step-executor.js";

export type Permission = NonNullable<ApprovalSignal["permission"]>;

const RANK: Record<Permission, number> = { none: 0, read: 1, triage: 2, write: 3, maintain: 4, admin: 5 };

export function atLeast(have: Permission, need: Permission): boolean {
  return RANK[have] >= RANK[need];
}

export interface Person {
  login: string;
  is_bot: boolean;
  permission: Permission;
  teams: string[];
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

/** Who sent an event: the login as GitHub spells it (trimmed) and the account type. */
export interface Sender {
  login: string;
  type?: string;
}

/**
 * The sender of an event from the first of `accounts` (payload.sender, then the comment's or
 * review's author) that has a login, trimmed so that " ann" is not a second ann; undefined
 * when none has one.
 */
export function senderOf(...accounts: unknown[]): Sender | undefined {
  for (const a of accounts) {
    const { login, type } = (a ?? {}) as { login?: unknown; type?: unknown };
    if (typeof login !== "string" || normaliseLogin(login) === "") continue;
    return { login: normaliseLogin(login), ...(typeof type === "string" ? { type } : {}) };
  }
  return undefined;
}

/** A sender is a bot when GitHub says so (type Bot), or when its login ends in [bot], in any case. */
export function isBot(sender: { login?: unknown; type?: unknown } | undefined): boolean {
  return sender?.type === "Bot" || (typeof sender?.login === "string" && isBotLogin(sender.login));
}

/**
 * What GitHub said of people, per API (one per installation): a person's permission and team
 * memberships are asked again after PEOPLE_TTL_MS. Commands take an answer up to that old; a
 * decision on a gate one at most FRESH_MS old (the one read for its command a moment before),
 * else asks again, as a conditional request that GitHub answers 304 when nothing changed (that
 * answer does not count against its rate limit).
 */
export const PEOPLE_TTL_MS = 30_000;
const FRESH_MS = 2_000;
const facts = new WeakMap<GitHubApi, Map<string, { at: number; value: Promise<unknown> }>>();

function remembered<T>(api: GitHubApi, key: string, fresh: boolean, load: () => Promise<T>): Promise<T> {
  const maxAge = fresh ? FRESH_MS : PEOPLE_TTL_MS;
  let cache = facts.get(api);
  if (!cache) {
    cache = new Map();
    facts.set(api, cache);
  }
  const now = Date.now();
  const hit = cache.get(key);
  if (hit && now - hit.at < maxAge) return hit.value as Promise<T>;
  const value = load();
  const entry = { at: now, value };
  cache.set(key, entry);
  // A failed read is not kept; and the cache does not grow past a few thousand people.
  value.catch(() => cache.get(key) === entry && cache.delete(key));
  if (cache.size > 5_000) for (const [k, e] of cache) if (now - e.at >= PEOPLE_TTL_MS) cache.delete(k);
  return value;
}

/** The person's permission on the repository: the role name when it is a known rank, else the permission. */
export function permissionOf(api: GitHubApi, repo: string, login: string, opts: { fresh?: boolean } = {}): Promise<Permission> {
  return remembered(api, `permission:${repo.toLowerCase()}:${login.toLowerCase()}`, opts.fresh === true, () => readPermission(api, repo, login));
}

async function readPermission(api: GitHubApi, repo: string, login: string): Promise<Permission> {
  const [owner, name] = repo.split("/");
  try {
    const r = await api.request("GET /repos/{owner}/{repo}/collaborators/{username}/permission", { owner, repo: name, username: login });
    const role = r.data?.role_name;
    if (typeof role === "string" && role in RANK) return role as Permission;
    const p = r.data?.permission;
    return typeof p === "string" && p in RANK ? (p as Permission) : "none";
  } catch (e) {
    if (statusOf(e) === 404) return "none";
    if (e instanceof SluiceError) throw e;
    throw new SluiceError("GITHUB_UNAVAILABLE", `could not read ${login}'s permission on ${repo}: ${e instanceof Error ? e.message : String(e)}`, { repo, login });
  }
}

/** The teams (`org/slug`) among `teams` that `login` is an active member of. */
export async function teamsOf(api: GitHubApi, login: string, teams: readonly string[], opts: { fresh?: boolean } = {}): Promise<string[]> {
  const out: string[] = [];
  for (const team of teams) {
    const [org, slug] = team.split("/");
    if (!org || !slug) continue;
    const member = await remembered(api, `team:${team.toLowerCase()}:${login.toLowerCase()}`, opts.fresh === true, async () => {
      try {
        const r = await api.request("GET /orgs/{org}/teams/{team_slug}/memberships/{username}", { org, team_slug: slug, username: login });
        return r.data?.state === "active";
      } catch (e) {
        if (statusOf(e) === 404) return false;
        if (e instanceof SluiceError) throw e;
        throw new SluiceError("GITHUB_UNAVAILABLE", `could not read ${login}'s membership of ${team}: ${e instanceof Error ? e.message : String(e)}`, { login, team });
      }
    });
    if (member) out.push(team);
  }
  return out;
}

/** Everything eligibility needs about the sender of an event, as GitHub says it now (a decision rests on it). */
export async function personOf(api: GitHubApi, repo: string, sender: Sender, teams: readonly string[] = []): Promise<Person> {
  const login = normaliseLogin(sender.login);
  if (isBot(sender)) return { login, is_bot: true, permission: "none", teams: [] };
  const [permission, memberOf] = await Promise.all([permissionOf(api, repo, login, { fresh: true }), teamsOf(api, login, teams, { fresh: true })]);
  return { login, is_bot: false, permission, teams: memberOf };
}
