/**
 * A Sluice server for tests of API clients (the remote CLI, MCP with --server): the routes on
 * loopback with a real SQLite store and Runtime in GitHub mode, the flows read from a git
 * checkout, people's permissions from a fixed table standing in for GitHub's answers (mallory
 * reads, everyone else writes), and tokens of each kind. Its store is `sluice.db` in `dir`, so
 * `SLUICE_HOME=<dir> sluice tokens …` works on it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ApiGitHub } from "../../../src/adapters/server/api.js";
import { newToken, openLinkSigner } from "../../../src/adapters/server/auth.js";
import { createMetrics } from "../../../src/adapters/server/metrics.js";
import { createRoutes, type RouteHandler } from "../../../src/adapters/server/routes.js";
import { GitFlowSource } from "../../../src/adapters/sources/git-flow-source.js";
import { defaultExecutors } from "../../../src/adapters/steps/index.js";
import { FileResourceStore } from "../../../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { loadFlow, loadRelease } from "../../../src/app/releases.js";
import { Runtime } from "../../../src/app/runtime.js";
import type { RunStore, TokenKind } from "../../../src/ports/run-store.js";

export interface ApiServer {
  base: string;
  store: RunStore;
  /** A scratch folder, removed by close(). */
  dir: string;
  token(login: string, repo: string | null, kind?: TokenKind): Promise<string>;
  close(): Promise<void>;
}

export async function startApiServer(checkout: string): Promise<ApiServer> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-api-server-"));
  const store = openSqliteRunStore(join(dir, "sluice.db"));
  const source = await GitFlowSource.open(checkout, { SLUICE_DEFAULT_BRANCH: "main" });
  const github: ApiGitHub = {
    flows: (_repo, ref) => loadRelease(source, ref),
    flow: (_repo, name, ref) => loadFlow(source, name, ref),
    person: async (_repo, login) => ({ is_bot: false, permission: login === "mallory" ? "read" : "write", teams: [] }),
  };
  let h: RouteHandler = async () => false;
  const server = createServer((req, res) => {
    void h(req, res).then((ours) => {
      if (!ours) {
        res.writeHead(404);
        res.end("not ours");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
  const runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(dir, "resources")),
    executors: defaultExecutors(),
    secrets: { get: () => undefined, values: () => [] },
    logger,
    mode: "github",
    publicUrl: base,
  });
  h = createRoutes({ runtime, store, publicUrl: base, links: await openLinkSigner(store), logger, metrics: createMetrics({ defaultMetrics: false }), advance: "inline", github });
  return {
    base,
    store,
    dir,
    async token(login, repo, kind = "human") {
      const t = newToken();
      await store.createToken({ id: t.id, hash: t.hash, login, repo, kind, createdAt: Date.now(), expiresAt: null, revokedAt: null });
      return t.secret;
    },
    async close() {
      await new Promise((r) => server.close(r));
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
