/**
 * The composition root of local mode: a git checkout for flows, SQLite in `.sluice/` (or
 * `SLUICE_HOME`, or PostgreSQL with DATABASE_URL), content-addressed resources, secrets.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Octokit } from "@octokit/rest";
import { createLogger } from "../adapters/logger.js";
import { SecretStore } from "../adapters/secrets/secrets.js";
import { GitFlowSource } from "../adapters/sources/git-flow-source.js";
import { defaultExecutors } from "../adapters/steps/index.js";
import { FileResourceStore } from "../adapters/store/file-resource-store.js";
import { openRunStore } from "../adapters/store/index.js";
import type { RunStore } from "../ports/run-store.js";
import type { GitHubApi, ResolvedConnection } from "../ports/step-executor.js";
import { Runtime } from "./runtime.js";

export interface Local {
  source: GitFlowSource;
  home: string;
  store: RunStore;
  secrets: SecretStore;
  runtime: Runtime;
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
    const octokit = new Octokit({ auth: conn.secretValue, ...(conn.base_url ? { baseUrl: conn.base_url } : {}) });
    let login: Promise<string> | undefined;
    return {
      request: (route, params) => octokit.request(route, params) as never,
      // The token's own user: what the run wrote itself is told apart by its author.
      identity: async () => ({ login: await (login ??= octokit.request("GET /user").then((r) => String(r.data.login))) }),
    };
  }
  return undefined;
}

export async function openLocal(cwd: string, env: NodeJS.ProcessEnv): Promise<Local> {
  const source = await GitFlowSource.open(cwd, env);
  const home = resolve(cwd, env.SLUICE_HOME ?? join(source.root, ".sluice"));
  if (!existsSync(home)) {
    mkdirSync(home, { recursive: true });
    // The state folder ignores itself, so it never lands in a commit.
    writeFileSync(join(home, ".gitignore"), "*\n");
  }
  const store = await openRunStore(env.DATABASE_URL ?? join(home, "sluice.db"));
  const secrets = new SecretStore(join(home, "secrets.json"), env);
  const runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(home, "resources")),
    executors: defaultExecutors({ env }),
    secrets,
    logger: createLogger(env.LOG_LEVEL),
    mode: "local",
    ...(env.SLUICE_LEASE_MS ? { leaseMs: Number(env.SLUICE_LEASE_MS) } : {}),
    ...(env.SLUICE_PUBLIC_URL ? { publicUrl: env.SLUICE_PUBLIC_URL } : {}),
    github: (_repo, connection, names) => localGitHub(connection, names),
    readFile: (_repo, sha, path) => source.readFile(sha, path),
  });
  return { source, home, store, secrets, runtime, close: () => store.close() };
}
