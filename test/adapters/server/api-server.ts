/**
 * A Sluice server for tests of the API and its clients (the remote CLI, MCP with --server): the
 * routes on loopback with a real SQLite store and Runtime in GitHub mode, and tokens of each kind.
 * What GitHub would say is given, or made from a git checkout: its flows, and people's permissions
 * from a fixed table standing in for GitHub's answers (mallory reads, everyone else writes). Its
 * store is `sluice.db` in `dir`, so `SLUICE_HOME=<dir> sluice tokens …` works on it.
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

/** Flows the API and remote-client tests start: a deploy that waits for a person and a callback, and one with a big output. */
export const DEPLOY = `
name: deploy
on:
  manual:
    inputs:
      note: { type: string, default: "" }
      times: { type: number, default: 1 }
steps:
  - id: count
    kv: { incr: { key: counter, by: "\${{ inputs.times }}" } }
  - id: review
    wait:
      approval:
        title: Ship it?
        evidence: ["\${{ inputs.note }}"]
        approvers: { permission: write, min: 1 }
  - id: result
    wait:
      callback:
        timeout: 1h
        schema: { type: object, required: [ok], properties: { ok: { type: boolean } } }
outputs:
  ok: \${{ steps.result.outputs.body.ok }}
`;

export const BIG = `
name: big
on: { manual: {} }
steps:
  - id: make
    function: { code: "return 'x'.repeat(70000)" }
`;

export interface ApiServer {
  base: string;
  store: RunStore;
  /** A scratch folder, removed by close(). */
  dir: string;
  token(login: string, repo: string | null, kind?: TokenKind): Promise<string>;
  close(): Promise<void>;
}

/** What GitHub would say of any repository: the flows of a git checkout, and a fixed table of permissions. */
async function checkoutGitHub(checkout: string): Promise<ApiGitHub> {
  const source = await GitFlowSource.open(checkout, { SLUICE_DEFAULT_BRANCH: "main" });
  return {
    flows: (_repo, ref) => loadRelease(source, ref),
    flow: (_repo, name, ref) => loadFlow(source, name, ref),
    person: async (_repo, login) => ({ is_bot: false, permission: login === "mallory" ? "read" : "write", teams: [] }),
  };
}

/**
 * `from`: a git checkout's folder, or what GitHub says. `worker`: a worker loop works the queued
 * runs, as a real server's does (without it a detached run stays queued, as in local mode).
 */
export async function startApiServer(from: string | ApiGitHub, opts: { worker?: boolean } = {}): Promise<ApiServer> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-api-server-"));
  const store = openSqliteRunStore(join(dir, "sluice.db"));
  const github = typeof from === "string" ? await checkoutGitHub(from) : from;
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
  const worker = new AbortController();
  const working = opts.worker ? runtime.work(worker.signal, 50) : Promise.resolve();
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
      worker.abort();
      await working;
      await new Promise((r) => server.close(r));
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
