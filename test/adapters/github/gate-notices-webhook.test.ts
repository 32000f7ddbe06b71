/**
 * A gate's announcement to the policy's webhook is not lost when the webhook fails: the claim
 * lapses and a later scan posts it again (with the same Idempotency-Key), while the issue
 * comment, already recorded in the outbox, is not recorded twice. Real store (SQLite), real
 * runtime and engine, a Slack-shaped peer on loopback; the outbox is a recorder (it is tested on
 * its own, test/github-app/notify.test.ts tests the two together).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createGateNotices, NOTICES_NAMESPACE } from "../../../src/adapters/github/gate-notices.js";
import type { EnqueueOptions, OutboxWrite } from "../../../src/adapters/github/outbox.js";
import { createLogger } from "../../../src/adapters/logger.js";
import { SecretStore } from "../../../src/adapters/secrets/secrets.js";
import { defaultExecutors } from "../../../src/adapters/steps/index.js";
import { FileResourceStore } from "../../../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { Runtime } from "../../../src/app/runtime.js";
import { normaliseConfig, validateFlow } from "../../../src/core/flow/validate.js";
import { startHttpPeer } from "../../support/http-peer.js";

const dir = mkdtempSync(join(tmpdir(), "sluice-notices-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FLOW = `name: ship
on: { manual: {} }
steps:
  - id: review
    wait:
      approval:
        title: Ship?
        approvers: { users: [carol] }
`;

describe("the notification webhook", { timeout: 30_000 }, () => {
  it("is posted again after a failure, and the comment is recorded once", async () => {
    let fail = true;
    const peer = await startHttpPeer((_req, res) => {
      res.writeHead(fail ? 500 : 200, { "content-type": "text/plain" }).end(fail ? "down" : "ok");
    });
    const store = openSqliteRunStore(join(dir, "n.db"));
    let now = Date.now();
    const logs: string[] = [];
    const logger = createLogger("debug", (l) => logs.push(l));
    try {
      const config = normaliseConfig({ connections: { slack: { type: "webhook", secret: "SLACK_URL" } }, policy: { notify: { connection: "slack" } } });
      const runtime = new Runtime({
        store,
        resources: new FileResourceStore(join(dir, "resources")),
        executors: defaultExecutors(),
        secrets: new SecretStore(join(dir, "secrets.json"), { SLUICE_SECRET_SLACK_URL: `${peer.origin}/hook/s3cr3t` }),
        logger,
        mode: "github",
        clock: () => now,
      });
      const id = await runtime.createRun({
        flow: validateFlow(FLOW, { file: "ship.yml", config }).flow!,
        config,
        release: { sha: "c".repeat(40), ref: "main", kind: "live" },
        repo: "acme/widgets",
        inputs: {},
        trigger: { type: "command", actor: "ann", issue: 12 },
      });
      await runtime.advance(id);
      const enqueued: { write: OutboxWrite; opts: EnqueueOptions }[] = [];
      const notices = createGateNotices({
        store,
        runtime,
        outbox: { enqueue: async (write, opts) => (enqueued.push({ write, opts }), opts.once?.id ?? "x") },
        logger,
        clock: () => now,
        leaseMs: 60_000,
      });

      expect(await notices.scanOnce()).toBe(0);
      expect(peer.requests).toHaveLength(1);
      expect(enqueued).toHaveLength(1);
      expect(enqueued[0]).toMatchObject({ write: { kind: "comment", repo: "acme/widgets", issue: 12 }, opts: { priority: "gate", lane: "acme/widgets#12" } });
      expect((enqueued[0]!.write as { body: string }).body).toContain("@carol: run");

      // Within the claim, nothing is tried again; after it, the webhook is.
      expect(await notices.scanOnce()).toBe(0);
      expect(peer.requests).toHaveLength(1);
      fail = false;
      now += 61_000;
      expect(await notices.scanOnce()).toBe(1);
      expect(peer.requests).toHaveLength(2);
      expect(peer.requests[1]!.headers["idempotency-key"]).toBe(peer.requests[0]!.headers["idempotency-key"]);
      expect(enqueued).toHaveLength(1);
      const [record] = await store.kvList(NOTICES_NAMESPACE, now);
      expect(record?.value).toMatchObject({ commented: true, posted: true, done: true });

      // Done: nothing more, and the webhook's URL is in no log line.
      now += 61_000;
      expect(await notices.scanOnce()).toBe(0);
      expect(peer.requests).toHaveLength(2);
      expect(logs.join("")).toContain("the gate's notification webhook failed");
      expect(logs.join("")).not.toContain("s3cr3t");
    } finally {
      await store.close();
      await peer.stop();
    }
  });
});
