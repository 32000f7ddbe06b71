/**
 * `sluice tokens create|list|revoke`: API tokens for the server's API and run routes (Authorization:
 * Bearer). They work on the server's store, found as `sluice serve` finds it: DATABASE_URL, else
 * SQLite in SLUICE_HOME, else in `.sluice/` (of the git checkout's root when in one, as local mode
 * does, else of the working directory, as `sluice serve` does). A token is printed once, by
 * `create`; the store keeps its SHA-256 only.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { SluiceError } from "../../core/errors.js";
import { parseDuration } from "../../core/flow/duration.js";
import type { ApiToken, RunStore } from "../../ports/run-store.js";
import { newToken, tokenIsLive } from "../server/auth.js";
import { openRunStore } from "../store/index.js";
import { EXIT, table, usage, type Io, type Report } from "./output.js";

export interface TokenOptions {
  login?: string;
  repo?: string;
  expires?: string;
  /** An agent's token: starts runs and reads, never decides. */
  agent?: boolean;
}

/** A GitHub login: letters, digits and single hyphens, at most 39 characters. */
const LOGIN = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
const REPO = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/;

function gitRoot(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, ".git"))) return d;
    if (dirname(d) === d) return undefined;
  }
}

/** The store the server in this directory and environment uses. */
export async function openServerStore(cwd: string, env: NodeJS.ProcessEnv): Promise<RunStore> {
  if (env.DATABASE_URL) return openRunStore(env.DATABASE_URL);
  const home = resolve(cwd, env.SLUICE_HOME ?? join(gitRoot(cwd) ?? cwd, ".sluice"));
  if (!existsSync(home)) {
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, ".gitignore"), "*\n");
  }
  return openRunStore(join(home, "sluice.db"));
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

function statusOf(t: ApiToken, now: number): "active" | "revoked" | "expired" {
  if (tokenIsLive(t, now)) return "active";
  return t.revokedAt !== null ? "revoked" : "expired";
}

function tokenData(t: ApiToken, now: number) {
  return { id: t.id, login: t.login, repo: t.repo, kind: t.kind, status: statusOf(t, now), created_at: iso(t.createdAt)!, expires_at: iso(t.expiresAt), revoked_at: iso(t.revokedAt) };
}

const reach = (t: ApiToken) => (t.repo ? `${t.repo} only` : "every repository");

/** The token `create` would make, checked before the store is opened. */
function draft(opts: TokenOptions, now: number): ApiToken {
  const { login, repo } = opts;
  if (!login) throw usage("sluice tokens create --login LOGIN [--agent] [--repo owner/name] [--expires 90d]: --login names the GitHub login the token acts as");
  if (!LOGIN.test(login)) throw usage(`--login takes a GitHub login (letters, digits and single hyphens, at most 39), not '${login}'`);
  if (repo !== undefined && !REPO.test(repo)) throw usage(`--repo takes a repository as owner/name, not '${repo}'`);
  let expiresAt: number | null = null;
  if (opts.expires !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(opts.expires);
    } catch (e) {
      throw usage(`--expires: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (ms <= 0) throw usage("--expires takes a duration longer than zero");
    expiresAt = now + ms;
  }
  return { id: "", login, repo: repo ?? null, kind: opts.agent ? "agent" : "human", createdAt: now, expiresAt, revokedAt: null };
}

async function create(store: RunStore, drafted: ApiToken, now: number): Promise<Report> {
  const made = newToken();
  const token: ApiToken = { ...drafted, id: made.id };
  await store.createToken({ ...token, hash: made.hash });
  return {
    kind: "Token",
    ok: true,
    data: { ...tokenData(token, now), token: made.secret },
    exitCode: EXIT.ok,
    human: [
      `token ${token.id}: ${token.kind === "agent" ? "an agent's: starts runs and reads as" : "acts as"} ${token.login} on ${reach(token)}${token.expiresAt ? `, until ${iso(token.expiresAt)}` : ""}`,
      "",
      `  ${made.secret}`,
      "",
      "It is shown this once: keep it now (the server keeps only its hash). Send it as 'Authorization: Bearer <token>'.",
    ].join("\n"),
  };
}

async function list(store: RunStore, now: number): Promise<Report> {
  const tokens = (await store.listTokens()).map((t) => tokenData(t, now));
  return {
    kind: "TokenList",
    ok: true,
    data: { tokens },
    exitCode: EXIT.ok,
    human: tokens.length
      ? table([["id", "login", "kind", "repository", "status", "created", "expires"], ...tokens.map((t) => [t.id, t.login, t.kind, t.repo ?? "(every)", t.status, t.created_at, t.expires_at ?? "never"])])
      : "no tokens",
  };
}

async function revoke(store: RunStore, id: string | undefined, now: number): Promise<Report> {
  if (!id) throw usage("sluice tokens revoke <id>   (the id from 'sluice tokens list', tok_…)");
  const t = await store.revokeToken(id, now);
  if (!t) throw new SluiceError("NOT_FOUND", `no token '${id}' (see sluice tokens list)`, { id });
  return { kind: "Token", ok: true, data: tokenData(t, now), exitCode: EXIT.ok, human: `token ${t.id} (${t.login}) is revoked${t.revokedAt !== now ? " (it was already)" : ""}` };
}

export async function tokensCommand(sub: string | undefined, args: string[], opts: TokenOptions, io: Io): Promise<Report> {
  if (sub !== "create" && sub !== "list" && sub !== "revoke") {
    throw usage("sluice tokens create --login LOGIN [--agent] [--repo owner/name] [--expires 90d] | tokens list | tokens revoke <id>");
  }
  const now = Date.now();
  const drafted = sub === "create" ? draft(opts, now) : undefined;
  if (!drafted && (opts.login !== undefined || opts.repo !== undefined || opts.expires !== undefined || opts.agent)) throw usage(`--login, --agent, --repo and --expires are options of 'sluice tokens create', not of 'tokens ${sub}'`);
  const store = await openServerStore(io.cwd, io.env);
  try {
    if (drafted) return await create(store, drafted, now);
    if (sub === "list") return await list(store, now);
    return await revoke(store, args[0], now);
  } finally {
    await store.close();
  }
}
