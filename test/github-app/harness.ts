/**
 * The real app (`startServer`: Probot's `run()`, its webhook verification, Sluice's loops)
 * on a loopback port, pointed at the GitHub simulator with GHE_HOST and GHE_PROTOCOL=http, with
 * SQLite in a temp dir, with functions that send signed webhooks and wait for what the app does.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/adapters/logger.js";
import { OUTBOX_NAMESPACE } from "../../src/adapters/github/outbox.js";
import { startServer, type RunningServer, type Sluice } from "../../src/app/server.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import type { RunRecord } from "../../src/ports/run-store.js";
import { isTerminal } from "../../src/ports/run-store.js";
import type { FileInput } from "../github/simulator.js";
import type { WebhookResult } from "../github/webhooks.js";
import { freePort } from "../support/net.js";

export interface AppHarness {
  gh: GitHubFixture;
  server: RunningServer;
  sluice: Sluice;
  /** The lines Sluice logged. */
  logs: string[];
  hookUrl: string;
  send(event: string, payload: unknown, opts?: { deliveryId?: string; forge?: boolean; headers?: Record<string, string> }): Promise<WebhookResult>;
  /** Polls until `fn` returns a value other than undefined/false; fails with `what` after a long while. */
  waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, limitMs?: number): Promise<T>;
  /**
   * Posts a comment as `sender` on an issue of `repo` and waits for the app's acknowledgement of
   * it: a reply (`reply`, its text without the hidden marker) or a reaction (`reactions`).
   */
  command(repo: string, issue: number, sender: string, body: string, opts?: { deliveryId?: string }): Promise<{ reply: string | undefined; reactions: string[]; payload: Record<string, any> }>;
  /** The app's replies in an issue, without their hidden markers. */
  replies(repo: string, issue: number): string[];
  /** Waits until the app's outbox is empty: every reply and reaction recorded so far was sent (or skipped). */
  outboxEmpty(): Promise<void>;
  /** The id of the run started from `issue` of `repo`, once it waits. */
  waitingRun(repo: string, issue: number): Promise<string>;
  /** A run's record once it has ended. */
  ended(id: string): Promise<RunRecord>;
  stop(): Promise<void>;
}


/** A reply's text without the hidden marker that lets a retry find it. */
export function unmarked(body: string): string {
  return body.replace(/\n*<!-- sluice:reply [^>]* -->$/, "");
}

export async function waitFor<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, limitMs = 20_000): Promise<T> {
  const until = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startApp(opts: { files?: Record<string, FileInput>; env?: Record<string, string>; gh?: GitHubFixture } = {}): Promise<AppHarness> {
  const ownSimulator = !opts.gh;
  const gh = opts.gh ?? (await startGitHub(opts.files ? { files: opts.files } : {}));
  const home = mkdtempSync(join(tmpdir(), "sluice-app-"));
  const port = await freePort();
  const logs: string[] = [];
  const logger = createLogger("debug", (line) => logs.push(line));
  const env = {
    ...gh.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    SLUICE_HOME: home,
    SLUICE_PUBLIC_URL: `http://127.0.0.1:${port}`,
    NO_SMEE_SETUP: "true" as const,
    ...opts.env,
  };
  const server = await startServer({ env, cwd: home, logger, pollMs: 50 });
  if (!server.sluice) throw new Error("the server started in setup mode");
  const sluice = server.sluice;
  const hookUrl = `${server.url}/api/github/webhooks`;
  const send: AppHarness["send"] = (event, payload, o = {}) => gh.sim.sendWebhook(hookUrl, event, payload, { secret: gh.webhookSecret, ...o });
  return {
    gh,
    server,
    sluice,
    logs,
    hookUrl,
    send,
    waitFor,
    async command(repo, issue, sender, body, o = {}) {
      const bot = (await sluice.installations.bot()).login;
      const replies = () => gh.sim.commentsOf(repo, issue).filter((c) => c.user === bot);
      const before = replies().length;
      const payload = gh.sim.payloads.issueComment({ repo, issue, sender, body });
      const res = await send("issue_comment", payload, o.deliveryId ? { deliveryId: o.deliveryId } : {});
      if (res.status !== 200) throw new Error(`the comment '${body}' was answered ${res.status}`);
      const comment = () => gh.sim.comments.get(Number(payload.comment.id));
      const ack = await waitFor(`the acknowledgement of ${body}`, () => replies()[before] ?? (comment()?.reactions.length ? "reaction" : undefined));
      return { reply: ack === "reaction" ? undefined : unmarked(ack.body), reactions: comment()?.reactions.map((r) => r.content) ?? [], payload };
    },
    outboxEmpty: () => waitFor("the outbox to be empty", async () => (await sluice.store.kvList(OUTBOX_NAMESPACE, Date.now())).length === 0).then(() => undefined),
    replies: (repo, issue) => gh.sim.commentsOf(repo, issue).filter((c) => c.user === "sluice[bot]").map((c) => unmarked(c.body)),
    waitingRun: (repo, issue) =>
      waitFor(`a waiting run of #${issue}`, async () => {
        for (const r of await sluice.store.listRuns({ repo, status: ["waiting"] })) {
          if ((await sluice.runtime.load(r.id)).state.trigger.issue === issue) return r.id;
        }
        return undefined;
      }),
    ended: (id) =>
      waitFor(`run ${id} to end`, async () => {
        const r = await sluice.store.getRun(id);
        return r && isTerminal(r.status) ? r : undefined;
      }),
    async stop() {
      await server.stop();
      if (ownSimulator) await gh.sim.stop();
      rmSync(home, { recursive: true, force: true });
    },
  };
}
