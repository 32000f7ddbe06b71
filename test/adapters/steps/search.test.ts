import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetriableError } from "../../../src/core/errors.js";
import { githubQuery, searchExecutor } from "../../../src/adapters/steps/search.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { sendJson, sendText, startHttpPeer, type HttpPeer } from "../../support/http-peer.js";

/** A SearXNG-shaped server: 25 results for "sluice" in pages of 10, none for anything else. */
let searx: HttpPeer;
const ALL = Array.from({ length: 25 }, (_, i) => ({
  title: `Result ${i + 1}`,
  url: `https://example.org/r/${i + 1}`,
  content: `About   sluice,\n number ${i + 1}`,
  engine: "duckduckgo",
}));

beforeAll(async () => {
  searx = await startHttpPeer((req, res) => {
    if (req.url.pathname !== "/search") return sendText(res, 404, "no route");
    if (req.url.searchParams.get("format") !== "json") return sendText(res, 403, "format not allowed");
    const q = req.url.searchParams.get("q") ?? "";
    const page = Number(req.url.searchParams.get("pageno") ?? "1");
    switch (q) {
      case "sluice":
        return sendJson(res, 200, { query: q, number_of_results: 0, results: ALL.slice((page - 1) * 10, page * 10) });
      case "huge":
        return sendJson(res, 200, { query: q, results: [{ title: "x", url: "https://x", content: "y".repeat(11 * 1024 * 1024) }] });
      case "broken":
        return sendText(res, 500, "engine crashed");
      case "html":
        return sendText(res, 200, "<html></html>");
      case "hang":
        return;
      default:
        return sendJson(res, 200, { query: q, number_of_results: 0, results: [] });
    }
  });
});

afterAll(async () => {
  await searx.stop();
});

function ctx(extra: Parameters<typeof makeStepContext>[0] = {}) {
  return makeStepContext({ connections: { searx: { type: "search", base_url: searx.origin } }, ...extra });
}


describe("search executor: web", () => {
  it("normalises results and stops at the default limit of 10", async () => {
    const out = await searchExecutor.execute({ provider: "web", connection: "searx", query: "sluice" }, ctx());
    const results = out.outputs.results as { title: string; url: string; snippet: string }[];
    expect(results).toHaveLength(10);
    expect(results[0]).toEqual({ title: "Result 1", url: "https://example.org/r/1", snippet: "About sluice, number 1" });
    expect(searx.requests.at(-1)!.url.searchParams.get("q")).toBe("sluice");
  });

  it("pages for a larger limit and reports the total", async () => {
    const out = await searchExecutor.execute({ connection: "searx", query: "sluice", limit: 22 }, ctx());
    expect((out.outputs.results as unknown[]).length).toBe(22);
    const all = await searchExecutor.execute({ connection: "searx", query: "sluice", limit: 100 }, ctx());
    expect((all.outputs.results as unknown[]).length).toBe(25);
    expect(all.outputs.total).toBe(25);
  });

  it("an empty answer is an empty list", async () => {
    const out = await searchExecutor.execute({ connection: "searx", query: "nothing" }, ctx());
    expect(out.outputs).toEqual({ results: [], total: 0 });
  });

  it("a 5xx is retryable and a non-JSON answer says why", async () => {
    const err = await failure(searchExecutor.execute({ connection: "searx", query: "broken" }, ctx()));
    expect(err.code).toBe("HTTP_STATUS");
    expect(err).not.toBeInstanceOf(NonRetriableError);
    const html = await failure(searchExecutor.execute({ connection: "searx", query: "html" }, ctx()));
    expect(html.message).toMatch(/not JSON/);
  });

  it("an answer over 10 MiB is OUTPUT_TOO_LARGE", async () => {
    const err = await failure(searchExecutor.execute({ connection: "searx", query: "huge" }, ctx()));
    expect(err.code).toBe("OUTPUT_TOO_LARGE");
  });

  it("times out and aborts", async () => {
    const t = await failure(searchExecutor.execute({ connection: "searx", query: "hang" }, ctx({ timeoutMs: 200 })));
    expect(t.code).toBe("STEP_TIMEOUT");
    const controller = new AbortController();
    const arrived = searx.nextRequest();
    const run = failure(searchExecutor.execute({ connection: "searx", query: "hang" }, ctx({ signal: controller.signal })));
    await arrived;
    controller.abort();
    expect((await run).code).toBe("STEP_ABORTED");
  });

  it("a connection that does not answer is CONNECTION_FAILED, an unknown one CONNECTION_UNKNOWN", async () => {
    const closed = await startHttpPeer(() => undefined);
    await closed.stop();
    const c = makeStepContext({ connections: { down: { type: "search", base_url: closed.origin } } });
    expect((await failure(searchExecutor.execute({ connection: "down", query: "q" }, c))).code).toBe("CONNECTION_FAILED");
    expect((await failure(searchExecutor.execute({ connection: "nope", query: "q" }, c))).code).toBe("CONNECTION_UNKNOWN");
  });

  it("bad parameters are PARAM_INVALID", async () => {
    for (const params of [{ connection: "searx" }, { connection: "searx", query: "q", limit: 0 }, { provider: "bing", query: "q" }]) {
      expect((await failure(searchExecutor.execute(params, ctx()))).code).toBe("PARAM_INVALID");
    }
  });
});

describe("search executor: github", () => {
  it("needs GitHub access", async () => {
    const err = await failure(searchExecutor.execute({ provider: "github", type: "issues", query: "flaky" }, ctx()));
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
    expect(err).toBeInstanceOf(NonRetriableError);
  });

  it("checks the type", async () => {
    const err = await failure(searchExecutor.execute({ provider: "github", type: "wikis", query: "x" }, ctx()));
    expect(err.code).toBe("PARAM_INVALID");
  });

  it("adds is:pr for pull requests", () => {
    expect(githubQuery("pull_requests", "repo:acme/widgets flaky")).toBe("repo:acme/widgets flaky is:pr");
    expect(githubQuery("pull_requests", "is:pr flaky")).toBe("is:pr flaky");
    expect(githubQuery("issues", "flaky")).toBe("flaky");
  });
});
