/**
 * The composition root of local mode: a git checkout for flows, SQLite in `.sluice/` (or
 * `SLUICE_HOME`, or PostgreSQL with DATABASE_URL), content-addressed resources, secrets.
 *
 * A CLI start pays only for what its command uses: opening local mode finds the repository and
 * opens the store; git (simple-git), the runtime with its executors, the secrets and the GitHub
 * client load the first time a command asks for them.
 */
import { accessSync, constants, existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { SluiceError } from "../core/errors.js";
import type { RunStore } from "../ports/run-store.js";
import type { GitHubApi, ResolvedConnection } from "../ports/step-executor.js";
import type { SecretStore } from "../adapters/secrets/secrets.js";
import type { GitFlowSource } from "../adapters/sources/git-flow-source.js";
import type { Runtime } from "./runtime.js";

/** The port `sluice worker` serves `POST /callbacks/<token>` on when SLUICE_WORKER_PORT is not set. */
export const DEFAULT_WORKER_PORT = 3100;

/**
 * The owner of a repository that has no GitHub remote: `_local/<folder>`. No GitHub account can
 * be named `_local` (logins are letters, digits and inner hyphens), so such a run is told apart
 * from a GitHub repository's by its name alone, and the name still has the `owner/name` shape
 * everything else expects.
 */
export const LOCAL_OWNER = "_local";

export interface Local {
  /** The repository's root folder (the one holding `.git`). */
  root: string;
  home: string;
  store: RunStore;
  /** The base of the callback URLs runs hand out: `sluice worker` serves them. */
  publicUrl: string;
  /** `owner/name` of the `origin` remote, else `_local/<folder>`: the kv namespace and the run's repository. */
  repo(): Promise<string>;
  source(): Promise<GitFlowSource>;
  secrets(): Promise<SecretStore>;
  runtime(): Promise<Runtime>;
  close(): Promise<void>;
}

/** GitHub access in local mode: the first connection of type `github` (a token secret). */
export function localGitHub(connection: (name: string) => ResolvedConnection, names: string[]): GitHubApi | undefined {
  for (const name of names) {
    let conn: ResolvedConnection;
    try {
      conn = connection(name);
    } catch {
      continue;
    }
    if (conn.type !== "github" || !conn.secretValue) continue;
    const auth = conn.secretValue;
    // Octokit loads on the first request: most runs never make one.
    let octokit: Promise<{ request: (route: string, params?: Record<string, unknown>) => Promise<{ data: unknown }> }> | undefined;
    const client = () => (octokit ??= import("@octokit/rest").then(({ Octokit }) => new Octokit({ auth, ...(conn.base_url ? { baseUrl: conn.base_url } : {}) }) as never));
    let login: Promise<string> | undefined;
    return {
      request: async (route, params) => (await client()).request(route, params) as never,
      // The token's own user: what the run wrote itself is told apart by its author.
      identity: async () => ({ login: await (login ??= client().then((o) => o.request("GET /user")).then((r) => String((r.data as { login: unknown }).login))) }),
    };
  }
  return undefined;
}

/** The folder holding `.git` (a folder, or a file in a worktree) at or above `cwd`. */
export function findRepoRoot(cwd: string): string {
  let dir = resolve(cwd);
  while (true) {
    if (existsSync(join(dir, ".git"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new SluiceError("NOT_A_REPOSITORY", `${cwd} is not inside a git repository: Sluice reads flows from commits (git init, commit your flows, or run sluice init)`, { dir: cwd });
    dir = parent;
  }
}

/**
 * Makes the state folder, one level at a time: a path that cannot be made (`/proc/…`, a file in
 * the way, no permission) fails at once with STORE_ERROR naming it. (A recursive mkdir under
 * /proc never returns on Node 20.)
 */
export function ensureHome(home: string): void {
  const fail = (why: string): never => {
    throw new SluiceError("STORE_ERROR", `cannot use ${home} for Sluice's state (SLUICE_HOME): ${why}`, { home });
  };
  const make = (dir: string): void => {
    if (existsSync(dir)) {
      if (!statSync(dir).isDirectory()) fail(`${dir} is not a folder`);
      return;
    }
    const parent = dirname(dir);
    if (parent !== dir) make(parent);
    try {
      mkdirSync(dir);
    } catch (e) {
      fail(`${dir} cannot be created (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  };
  const fresh = !existsSync(home);
  make(home);
  try {
    accessSync(home, constants.W_OK);
  } catch {
    fail("the folder is not writable");
  }
  // The state folder ignores itself, so it never lands in a commit.
  if (fresh) writeFileSync(join(home, ".gitignore"), "*\n");
}

/** The local worker's port: SLUICE_WORKER_PORT, else 3100. */
export function workerPort(env: NodeJS.ProcessEnv): number {
  const text = env.SLUICE_WORKER_PORT;
  if (text === undefined || text === "") return DEFAULT_WORKER_PORT;
  const port = Number(text);
  if (!/^[0-9]+$/.test(text) || port < 1 || port > 65535) throw new SluiceError("USAGE", `SLUICE_WORKER_PORT must be a port number from 1 to 65535, not '${text}'`);
  return port;
}

/**
 * Where local runs' callback URLs point: SLUICE_PUBLIC_URL, else the local worker
 * (`http://127.0.0.1:<SLUICE_WORKER_PORT or 3100>`), which serves `POST /callbacks/<token>`.
 */
export function localPublicUrl(env: NodeJS.ProcessEnv): string {
  if (env.SLUICE_PUBLIC_URL) {
    let url: URL;
    try {
      url = new URL(env.SLUICE_PUBLIC_URL);
    } catch {
      throw new SluiceError("USAGE", `SLUICE_PUBLIC_URL must be an http(s) URL, not '${env.SLUICE_PUBLIC_URL}'`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new SluiceError("USAGE", `SLUICE_PUBLIC_URL must be an http(s) URL, not '${env.SLUICE_PUBLIC_URL}'`);
    return env.SLUICE_PUBLIC_URL.replace(/\/+$/, "");
  }
  return `http://127.0.0.1:${workerPort(env)}`;
}

/** A folder's name as a repository name GitHub would accept (letters, digits, `.`, `_`, `-`). */
export function localRepoName(root: string): string {
  const name = basename(root).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[.-]+/, "") || "repo";
  return `${LOCAL_OWNER}/${name.slice(0, 100)}`;
}

/** A checkout's repository: its GitHub origin's owner/name, else `_local/<folder>` (GitFlowSource names such a one by its folder alone). */
export function checkoutRepo(source: { repo: string }, root: string): string {
  return source.repo.includes("/") ? source.repo : localRepoName(root);
}

/** How long a one-shot command waits for an unreachable database (SLUICE_DB_DEADLINE overrides it). */
export const ONE_SHOT_DB_DEADLINE = "10s";

async function openStore(target: string, env: NodeJS.ProcessEnv, longRunning: boolean): Promise<RunStore> {
  // The SQLite adapter alone: loading the PostgreSQL client too would slow every start.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return (await import("../adapters/store/sqlite/sqlite-run-store.js")).openSqliteRunStore(target);
  // A worker rides out a database restart (SLUICE_DB_DEADLINE, 5 minutes by default); a person
  // running one command learns within seconds that the database is out of reach.
  const deadline = longRunning || env.SLUICE_DB_DEADLINE ? env : { ...env, SLUICE_DB_DEADLINE: ONE_SHOT_DB_DEADLINE };
  const [{ openRunStore }, { createLogger }] = await Promise.all([import("../adapters/store/index.js"), import("../adapters/logger.js")]);
  // A worker says when it loses the database and when it is back (one-shot commands just fail).
  return openRunStore(target, { env: deadline, ...(longRunning ? { logger: createLogger(env.LOG_LEVEL) } : {}) });
}

/** `longRunning`: a worker or an MCP server, which wait out a database restart. */
export async function openLocal(cwd: string, env: NodeJS.ProcessEnv, opts: { longRunning?: boolean } = {}): Promise<Local> {
  const root = findRepoRoot(cwd);
  const home = resolve(cwd, env.SLUICE_HOME ?? join(root, ".sluice"));
  ensureHome(home);
  const publicUrl = localPublicUrl(env);
  const store = await openStore(env.DATABASE_URL ?? join(home, "sluice.db"), env, opts.longRunning === true);

  let source: Promise<GitFlowSource> | undefined;
  let secrets: Promise<SecretStore> | undefined;
  let runtime: Promise<Runtime> | undefined;
  let repo: Promise<string> | undefined;
  const local: Local = {
    root,
    home,
    store,
    publicUrl,
    source: () => (source ??= import("../adapters/sources/git-flow-source.js").then((m) => m.GitFlowSource.open(root, env))),
    repo: () =>
      (repo ??= (async () => {
        return checkoutRepo(await local.source(), root);
      })()),
    secrets: () => (secrets ??= import("../adapters/secrets/secrets.js").then((m) => new m.SecretStore(join(home, "secrets.json"), env))),
    runtime: () =>
      (runtime ??= (async () => {
        const [{ Runtime }, { defaultExecutors }, { FileResourceStore }, { createLogger }] = await Promise.all([
          import("./runtime.js"),
          import("../adapters/steps/index.js"),
          import("../adapters/store/file-resource-store.js"),
          import("../adapters/logger.js"),
        ]);
        const s = await local.source();
        return new Runtime({
          store,
          resources: new FileResourceStore(join(home, "resources")),
          executors: defaultExecutors({ env }),
          secrets: await local.secrets(),
          logger: createLogger(env.LOG_LEVEL),
          mode: "local",
          ...(env.SLUICE_LEASE_MS ? { leaseMs: Number(env.SLUICE_LEASE_MS) } : {}),
          publicUrl,
          // Locally the worker serves callbacks, not run pages: a run carries no page URL.
          runPages: false,
          github: (_repo, connection, names) => localGitHub(connection, names),
          readFile: (_repo, sha, path) => s.readFile(sha, path),
        });
      })()),
    close: () => store.close(),
  };
  return local;
}

