/**
 * End to end through the simulator: `on.github` triggers with `actions` and `if`, `wait.event`
 * steps completed by a matching event, `on.schedule` ticks (one run per tick, a missed tick
 * run once), and `POST /hooks/<owner>/<repo>/<flow>` with its HMAC signature over a timestamp
 * and the body, attacked for real: probing for flows, forging, replaying, racing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { hookHeaders, HOOK_WINDOW_MS, signHook } from "../../src/adapters/github/hooks-route.js";
import { scheduleDeliveryId } from "../../src/adapters/github/scheduler.js";
import { setLiveRelease } from "../../src/adapters/github/snapshot.js";
import { startApp, type AppHarness } from "./harness.js";

const ON_LABEL = `name: on-label
on:
  github:
    - event: issues
      actions: [labeled]
      if: \${{ github.event.label.name == 'flaky' }}
steps:
  - id: note
    function:
      input: "\${{ github.event.issue.number }}"
      code: return input;
outputs:
  issue: \${{ steps.note.outputs.result }}
`;

const WAIT_FOR_LABEL = `name: wait-for-label
on:
  manual:
steps:
  - id: wait
    wait:
      event:
        github:
          event: issues
          actions: [labeled]
          if: \${{ github.event.label.name == 'go' }}
        timeout: 1h
  - id: after
    function:
      input: "\${{ steps.wait.outputs.payload.label.name }}"
      code: return input;
outputs:
  label: \${{ steps.after.outputs.result }}
`;

const HOOKED = `name: hooked
on:
  webhook:
    secret: HOOK_SECRET
  manual:
    inputs:
      who: { type: string, required: true }
steps:
  - id: hi
    function:
      input: "\${{ inputs.who }}"
      code: return "hi " + input;
outputs:
  said: \${{ steps.hi.outputs.result }}
`;

const HOOKED_UNSET = `name: hooked-unset
on:
  webhook:
    secret: NOT_ON_THE_SERVER
steps:
  - id: hi
    function:
      code: return "hi";
`;

const NIGHTLY = `name: nightly
on:
  schedule:
    - cron: "0 3 1 1 *"
      timezone: Europe/Berlin
steps:
  - id: tick
    function:
      code: return "tock";
`;

let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({
    files: {
      ".github/flows/on-label.yml": ON_LABEL,
      ".github/flows/wait-for-label.yml": WAIT_FOR_LABEL,
      ".github/flows/hooked.yml": HOOKED,
      ".github/flows/hooked-unset.yml": HOOKED_UNSET,
      ".github/flows/nightly.yml": NIGHTLY,
    },
    env: { SLUICE_SECRET_HOOK_SECRET: "hook-s3cret" },
  });
  app.gh.sim.setPermission(repo, "ann", "write");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

async function runsOf(flow: string) {
  return app.sluice.store.listRuns({ repo, flow });
}

const ended = (id: string) => app.ended(id);

describe("event triggers", { timeout: 60_000 }, () => {
  it("starts a live flow on a matching event; `actions` and `if` filter; the app's own events never trigger", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Flaky test", user: "ann" });
    const ignored = [
      await app.send("issues", sim.payloads.issues({ repo, issue: issue.number, sender: "ann", action: "labeled", label: "bug" })),
      await app.send("issues", sim.payloads.issues({ repo, issue: issue.number, sender: "ann", action: "opened" })),
      await app.send("issues", sim.payloads.issues({ repo, issue: issue.number, sender: "sluice[bot]", action: "labeled", label: "flaky" })),
    ];
    await app.send("issues", sim.payloads.issues({ repo, issue: issue.number, sender: "ann", action: "labeled", label: "flaky" }));
    const [run] = await app.waitFor("a run of on-label", async () => {
      const runs = await runsOf("on-label");
      return runs.length ? runs : undefined;
    });
    expect((await ended(run!.id)).status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(run!.id);
    expect(state.completed?.outputs).toEqual({ issue: issue.number });
    expect(state.trigger).toMatchObject({ type: "github", actor: "ann", issue: issue.number });
    expect(state.release.kind).toBe("live");
    // The other deliveries were processed and started nothing.
    for (const d of ignored) await app.waitFor(`delivery ${d.deliveryId}`, () => app.logs.some((l) => l.includes("delivery processed") && l.includes(d.deliveryId)));
    expect(await runsOf("on-label")).toHaveLength(1);
  });

  it("completes a wait.event step with the first matching event", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Wait for go", user: "ann" });
    await app.send("issue_comment", sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run wait-for-label" }));
    const id = await app.waitFor("the run to wait", async () => {
      const [r] = await runsOf("wait-for-label");
      return r?.status === "waiting" ? r.id : undefined;
    });
    await app.send("issues", sim.payloads.issues({ repo, issue: issue.number, sender: "ann", action: "labeled", label: "later" }));
    await app.send("issues", sim.payloads.issues({ repo, issue: issue.number, sender: "ann", action: "labeled", label: "go" }));
    expect((await ended(id)).status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(id);
    expect(state.completed?.outputs).toEqual({ label: "go" });
  });
});

describe("schedules", { timeout: 60_000 }, () => {
  it("records each tick once, runs a missed tick once, in the schedule's time zone", async () => {
    const { sim } = app.gh;
    const sha = sim.branchSha(repo, "main")!;
    const releasedAt = Date.parse("2027-01-01T00:00:00Z");
    await setLiveRelease(app.sluice.store, repo, { sha, ref: "main", at: releasedAt }, releasedAt);
    const atThree = Date.parse("2027-01-01T02:00:30Z"); // 03:00:30 in Berlin
    expect((await app.sluice.scheduler.tickOnce(atThree)).recorded).toBe(1);
    expect((await app.sluice.scheduler.tickOnce(atThree)).recorded).toBe(0);
    expect((await app.sluice.scheduler.tickOnce(atThree + 60_000)).recorded).toBe(0);
    // Down for three years: the ticks of 2028, 2029 and 2030 were missed; one run, for the latest.
    const later = Date.parse("2030-01-01T06:00:00Z");
    expect((await app.sluice.scheduler.tickOnce(later)).recorded).toBe(1);
    expect(await app.sluice.store.recordDelivery({ id: scheduleDeliveryId(repo, "nightly", new Date("2027-01-01T02:00:00.000Z")), event: "schedule", payload: {}, receivedAt: 0 })).toBe(false);
    expect(await app.sluice.store.recordDelivery({ id: scheduleDeliveryId(repo, "nightly", new Date("2030-01-01T02:00:00.000Z")), event: "schedule", payload: {}, receivedAt: 0 })).toBe(false);
    const runs = await app.waitFor("two scheduled runs", async () => {
      const r = await runsOf("nightly");
      return r.length === 2 && r.every((x) => x.status === "succeeded") ? r : undefined;
    });
    const ats = [];
    for (const r of runs) {
      const { state } = await app.sluice.runtime.load(r.id);
      expect(state.trigger.type).toBe("schedule");
      ats.push((state.trigger.event as { at: string }).at);
    }
    expect(ats.sort()).toEqual(["2027-01-01T02:00:00.000Z", "2030-01-01T02:00:00.000Z"]);
  });
});

describe("POST /hooks/<owner>/<repo>/<flow>", { timeout: 60_000 }, () => {
  const SECRET = "hook-s3cret";
  const post = (path: string, body: string, headers: Record<string, string>) =>
    fetch(`${app.server.url}/hooks/${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  const nowS = () => Math.floor(Date.now() / 1000);
  let deliveries = 0;
  const signed = (body: string, over: { secret?: string; timestamp?: number; delivery?: string } = {}) =>
    hookHeaders(over.secret ?? SECRET, body, { timestamp: over.timestamp ?? nowS(), delivery: over.delivery ?? `d-${++deliveries}` });
  const answer = async (r: Response) => ({ status: r.status, body: await r.text() });

  it("starts the flow with the JSON body as its inputs when the signature verifies", async () => {
    const body = JSON.stringify({ who: "world" });
    const res = await post("acme/widgets/hooked", body, signed(body));
    expect(res.status).toBe(201);
    const out = (await res.json()) as { ok: boolean; data: { id: string; url: string } };
    expect(out.ok).toBe(true);
    // The signed link opens the run for the sender, who proved the secret.
    expect(out.data.url).toMatch(new RegExp(`^${app.server.url}/runs/${out.data.id}\\?exp=[0-9]+&sig=[A-Za-z0-9_-]{43}$`));
    expect((await fetch(out.data.url, { headers: { accept: "application/json" } })).status).toBe(200);
    expect((await ended(out.data.id)).status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(out.data.id);
    expect(state.completed?.outputs).toEqual({ said: "hi world" });
    expect(state.trigger).toMatchObject({ type: "webhook" });
  });

  it("answers every refusal alike: unknown repository, flow, no on.webhook, no secret, bad or stale signature", async () => {
    const before = (await app.sluice.store.listRuns()).length;
    const body = JSON.stringify({ who: "mallory" });
    const refusal = await answer(await post("acme/widgets/hooked", body, signed(body, { secret: "not-the-secret" })));
    expect(refusal.status).toBe(401);
    expect(JSON.parse(refusal.body)).toMatchObject({ ok: false, error: { code: "UNAUTHORIZED" } });
    const { [`x-sluice-signature-256`]: _sig, ...unsigned } = signed(body);
    const { [`x-sluice-delivery`]: _d, ...noDelivery } = signed(body);
    const probes: [string, Promise<Response>][] = [
      ["an unknown repository", post("acme/nope/hooked", body, signed(body))],
      ["a repository the app is not installed on", post("someone/else/hooked", body, signed(body))],
      ["an unknown flow", post("acme/widgets/nope", body, signed(body))],
      ["a flow without on.webhook", post("acme/widgets/nightly", body, signed(body))],
      ["a flow whose secret the server lacks", post("acme/widgets/hooked-unset", body, signed(body))],
      ["a malformed path", post("acme/widgets/%E0%A4%A", body, signed(body))],
      ["no signature", post("acme/widgets/hooked", body, unsigned)],
      ["a garbled signature", post("acme/widgets/hooked", body, { ...signed(body), "x-sluice-signature-256": "sha256=zz" })],
      ["a signature over another body", post("acme/widgets/hooked", body, signed(JSON.stringify({ who: "x" })))],
      ["a signature over the body without the timestamp", post("acme/widgets/hooked", body, { ...signed(body), "x-sluice-signature-256": signHook(SECRET, body) })],
      ["a timestamp 6 minutes old", post("acme/widgets/hooked", body, signed(body, { timestamp: nowS() - (HOOK_WINDOW_MS / 1000 + 60) }))],
      ["a timestamp 6 minutes ahead", post("acme/widgets/hooked", body, signed(body, { timestamp: nowS() + HOOK_WINDOW_MS / 1000 + 60 }))],
      ["a timestamp that is not a number", post("acme/widgets/hooked", body, { ...signed(body), "x-sluice-timestamp": "soon" })],
      ["no delivery id", post("acme/widgets/hooked", body, noDelivery)],
    ];
    for (const [what, p] of probes) expect(await answer(await p), what).toEqual(refusal);
    expect((await app.sluice.store.listRuns()).length).toBe(before);
    expect(app.logs.some((l) => l.includes("webhook trigger refused") && l.includes("no on.webhook trigger"))).toBe(true);
  });

  it("accepts a signed request once: a replay, under its delivery id or a new one, is refused like a forgery", async () => {
    const body = JSON.stringify({ who: "once" });
    const headers = signed(body);
    const first = await post("acme/widgets/hooked", body, headers);
    expect(first.status).toBe(201);
    const forged = await answer(await post("acme/widgets/hooked", body, signed(body, { secret: "not-the-secret" })));
    // The captured request as it was, then under a new delivery id (the id is not signed).
    expect(await answer(await post("acme/widgets/hooked", body, headers))).toEqual(forged);
    expect(await answer(await post("acme/widgets/hooked", body, { ...headers, "x-sluice-delivery": "fresh-id" }))).toEqual(forged);
    expect(await answer(await post("acme/widgets/hooked", body, { ...headers, "x-sluice-signature-256": headers["x-sluice-signature-256"]!.toUpperCase().replace("SHA256=", "sha256=") }))).toEqual(forged);
    // The path's case names the same repository: no second run through it.
    expect(await answer(await post("ACME/Widgets/hooked", body, headers))).toEqual(forged);
    // A sender re-signing one delivery (a retry) does not start it twice.
    expect(await answer(await post("acme/widgets/hooked", body, signed(body, { delivery: headers["x-sluice-delivery"]!, timestamp: nowS() + 1 })))).toEqual(forged);
    const once = [];
    for (const r of await runsOf("hooked")) if ((await app.sluice.runtime.load(r.id)).state.inputs.who === "once") once.push(r.id);
    expect(once).toHaveLength(1);
  });

  it("of one signed request sent many times at once, exactly one starts a run", async () => {
    const body = JSON.stringify({ who: "race" });
    const headers = signed(body);
    const answers = await Promise.all(Array.from({ length: 8 }, () => post("acme/widgets/hooked", body, headers).then((r) => r.status)));
    expect(answers.filter((s) => s === 201)).toHaveLength(1);
    expect(answers.filter((s) => s === 401)).toHaveLength(7);
    const raced = [];
    for (const r of await runsOf("hooked")) if ((await app.sluice.runtime.load(r.id)).state.inputs.who === "race") raced.push(r.id);
    expect(raced).toHaveLength(1);
  });

  it("tells a signed sender what is wrong with its inputs", async () => {
    const bad = JSON.stringify({ whom: "x" });
    const invalid = await post("acme/widgets/hooked", bad, signed(bad));
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { error: { code: string } }).error.code).toBe("INPUT_INVALID");
    const notJson = "{who:";
    const r = await post("acme/widgets/hooked", notJson, signed(notJson));
    expect(r.status).toBe(400);
  });
});
