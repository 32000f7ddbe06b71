import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_POLICY, type Policy } from "../../../src/core/flow/types.js";
import { NonRetriableError, RetryAfterError } from "../../../src/core/errors.js";
import { effectUnder } from "../../../src/core/policy/effects.js";
import { httpExecutor, isSafeMethod, parseExpect } from "../../../src/adapters/steps/http.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { sendJson, sendText, startHttpPeer, type HttpPeer } from "../../support/http-peer.js";

let api: HttpPeer;
let other: HttpPeer;
let hang: HttpPeer;
/** The target of disguised requests: it records every request, and /safe/bounce redirects to /danger. */
let site: HttpPeer;
let flaky = 0;

beforeAll(async () => {
  site = await startHttpPeer((req, res) => {
    if (req.url.pathname === "/safe/bounce") {
      res.writeHead(307, { location: "/danger" });
      return void res.end();
    }
    return sendJson(res, 200, { method: req.method, path: req.path });
  });
  other = await startHttpPeer((_req, res) => sendText(res, 200, "you should not see this"));
  hang = await startHttpPeer(() => {
    /* never answers */
  });
  api = await startHttpPeer((req, res) => {
    switch (req.url.pathname) {
      case "/items":
        return sendJson(res, req.method === "POST" ? 201 : 200, { method: req.method, query: Object.fromEntries(req.url.searchParams), got: req.text ? req.json() : null });
      case "/text":
        return sendText(res, 200, "plain words");
      case "/big":
        return sendText(res, 200, "x".repeat(5000));
      case "/chunked": {
        res.writeHead(200, { "content-type": "text/plain" });
        for (let i = 0; i < 10; i++) res.write("y".repeat(1000));
        return void res.end();
      }
      case "/missing":
        return sendJson(res, 404, { error: "not here" });
      case "/throttled":
        return sendJson(res, 429, { error: "slow down" }, { "retry-after": "7" });
      case "/broken":
        return sendText(res, 502, "bad gateway");
      case "/flaky":
        flaky++;
        return sendText(res, 503, "later", { "retry-after": "2" });
      case "/redirect-inside":
        res.writeHead(302, { location: "/items?from=redirect" });
        return void res.end();
      case "/redirect-loopback":
        res.writeHead(302, { location: `${other.origin}/secret` });
        return void res.end();
      case "/redirect-localhost":
        res.writeHead(307, { location: `http://localhost:${other.port}/secret` });
        return void res.end();
      case "/redirect-metadata":
        res.writeHead(301, { location: "http://169.254.169.254/latest/meta-data/" });
        return void res.end();
      case "/loop":
        res.writeHead(302, { location: "/loop" });
        return void res.end();
      case "/created-elsewhere":
        res.writeHead(303, { location: "/items" });
        return void res.end();
      default:
        return sendText(res, 404, "no route");
    }
  });
});

afterAll(async () => {
  await Promise.all([api.stop(), other.stop(), hang.stop(), site.stop()]);
});

function withConnection(extra: Partial<Parameters<typeof makeStepContext>[0]> = {}) {
  return makeStepContext({
    connections: { inventory: { type: "http", base_url: `${api.origin}/`, secretValue: "tok-123" } },
    ...extra,
  });
}

function policyAllowing(...rules: string[]): Policy {
  return { ...DEFAULT_POLICY, allow: { http: rules } };
}


describe("http executor: success", () => {
  it("GETs through a connection with the Bearer secret, a query, and parses JSON", async () => {
    const out = await httpExecutor.execute({ connection: "inventory", url: "items", query: { a: 1, tag: ["x", "y"] } }, withConnection());
    expect(out.outputs.status).toBe(200);
    expect(out.outputs.body).toEqual({ method: "GET", query: { a: "1", tag: "y" }, got: null });
    const req = api.requests.at(-1)!;
    expect(req.path).toBe("/items?a=1&tag=x&tag=y");
    expect(req.headers.authorization).toBe("Bearer tok-123");
    expect(req.headers["idempotency-key"]).toBeUndefined();
    expect((out.outputs.headers as Record<string, string>)["content-type"]).toBe("application/json");
  });

  it("POSTs a JSON body with the Idempotency-Key and accepts the listed status", async () => {
    const ctx = withConnection({ idempotencyKey: "run-9:create:2" });
    const out = await httpExecutor.execute(
      { connection: "inventory", url: "/items", method: "post", body: { name: "bolt" }, expect: [201] },
      ctx,
    );
    expect(out.outputs.status).toBe(201);
    expect(out.outputs.body).toMatchObject({ method: "POST", got: { name: "bolt" } });
    const req = api.requests.at(-1)!;
    expect(req.headers["idempotency-key"]).toBe("run-9:create:2");
    expect(req.headers["content-type"]).toBe("application/json");
  });

  it("reaches a loopback URL that a policy.allow.http rule matches, and returns text bodies as text", async () => {
    const ctx = makeStepContext({ policy: policyAllowing(`GET ${api.origin}/*`) });
    const out = await httpExecutor.execute({ url: `${api.origin}/text` }, ctx);
    expect(out.outputs.body).toBe("plain words");
  });

  it("follows a redirect on the connection's host, and a 303 turns a POST into a GET", async () => {
    const out = await httpExecutor.execute({ connection: "inventory", url: "redirect-inside" }, withConnection());
    expect(out.outputs.body).toMatchObject({ query: { from: "redirect" } });
    expect(out.outputs.url).toBe(`${api.origin}/items?from=redirect`);
    const out2 = await httpExecutor.execute({ connection: "inventory", url: "created-elsewhere", method: "POST", body: "x" }, withConnection());
    expect(out2.outputs.body).toMatchObject({ method: "GET", got: null });
  });

  it("returns a redirect without following it when expect names it", async () => {
    const out = await httpExecutor.execute({ connection: "inventory", url: "redirect-inside", expect: ["3xx"] }, withConnection());
    expect(out.outputs.status).toBe(302);
    expect((out.outputs.headers as Record<string, string>).location).toBe("/items?from=redirect");
  });
});

describe("http executor: failures", () => {
  it("a 404 is non-retriable HTTP_STATUS with the status in the details", async () => {
    const err = await failure(httpExecutor.execute({ connection: "inventory", url: "missing" }, withConnection()));
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("HTTP_STATUS");
    expect(err.details.status).toBe(404);
  });

  it("a 429 with Retry-After is a RetryAfterError", async () => {
    const err = await failure(httpExecutor.execute({ connection: "inventory", url: "throttled" }, withConnection()));
    expect(err).toBeInstanceOf(RetryAfterError);
    expect((err as RetryAfterError).retryAfterMs).toBe(7000);
  });

  it("a 503 with Retry-After is a RetryAfterError and a bare 502 is retryable", async () => {
    const err = await failure(httpExecutor.execute({ connection: "inventory", url: "flaky" }, withConnection()));
    expect(err).toBeInstanceOf(RetryAfterError);
    const err2 = await failure(httpExecutor.execute({ connection: "inventory", url: "broken" }, withConnection()));
    expect(err2.code).toBe("HTTP_STATUS");
    expect(err2).not.toBeInstanceOf(NonRetriableError);
    expect(err2.details.status).toBe(502);
  });

  it("stops after 5 redirects", async () => {
    const before = api.requests.length;
    const err = await failure(httpExecutor.execute({ connection: "inventory", url: "loop" }, withConnection()));
    expect(err.message).toMatch(/more than 5 redirects/);
    expect(api.requests.length - before).toBe(6);
  });

  it("a body larger than max_bytes is OUTPUT_TOO_LARGE, declared or streamed", async () => {
    const err = await failure(httpExecutor.execute({ connection: "inventory", url: "big", max_bytes: 1000 }, withConnection()));
    expect(err.code).toBe("OUTPUT_TOO_LARGE");
    const err2 = await failure(httpExecutor.execute({ connection: "inventory", url: "chunked", max_bytes: 4096 }, withConnection()));
    expect(err2.code).toBe("OUTPUT_TOO_LARGE");
    const ok = await httpExecutor.execute({ connection: "inventory", url: "chunked", max_bytes: 10_000 }, withConnection());
    expect((ok.outputs.body as string).length).toBe(10_000);
  });

  it("a connection refused is a retryable CONNECTION_FAILED", async () => {
    const closed = await startHttpPeer(() => undefined);
    const origin = closed.origin;
    await closed.stop();
    const ctx = makeStepContext({ connections: { gone: { type: "http", base_url: origin } } });
    const err = await failure(httpExecutor.execute({ connection: "gone", url: "x" }, ctx));
    expect(err.code).toBe("CONNECTION_FAILED");
    expect(err).not.toBeInstanceOf(NonRetriableError);
  });

  it("bad parameters are non-retriable PARAM_INVALID", async () => {
    const ctx = withConnection();
    for (const params of [
      {},
      { url: "not a url" },
      { connection: "inventory", url: "items", expect: "ok" },
      { connection: "inventory", url: "items", max_bytes: -1 },
      { connection: "inventory", url: "items", headers: { x: { nested: true } } },
    ]) {
      const err = await failure(httpExecutor.execute(params, ctx));
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("PARAM_INVALID");
    }
    const unknown = await failure(httpExecutor.execute({ connection: "nope", url: "x" }, ctx));
    expect(unknown.code).toBe("CONNECTION_UNKNOWN");
  });
});

describe("http executor: timeout and abort", () => {
  it("times out with STEP_TIMEOUT", async () => {
    const ctx = makeStepContext({ timeoutMs: 200, connections: { slow: { type: "http", base_url: hang.origin } } });
    const err = await failure(httpExecutor.execute({ connection: "slow", url: "wait" }, ctx));
    expect(err.code).toBe("STEP_TIMEOUT");
  });

  it("aborts with STEP_ABORTED once the request is in flight", async () => {
    const controller = new AbortController();
    const ctx = makeStepContext({ signal: controller.signal, connections: { slow: { type: "http", base_url: hang.origin } } });
    const arrived = hang.nextRequest();
    const run = failure(httpExecutor.execute({ connection: "slow", url: "wait" }, ctx));
    await arrived;
    controller.abort();
    const err = await run;
    expect(err.code).toBe("STEP_ABORTED");
    expect(err).toBeInstanceOf(NonRetriableError);
  });
});

describe("http executor: SSRF guard", () => {
  const refusedUrls = [
    "http://127.0.0.1:9/",
    "http://10.0.0.1/",
    "http://192.168.0.1/admin",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:9/",
    "http://[::ffff:127.0.0.1]:9/",
    "http://2130706433:9/",
    "http://0x7f.0.0.1:9/",
    "http://0177.0.0.1:9/",
    "http://100.64.0.1/",
    "http://[fd00::1]/",
    "http://0.0.0.0:9/",
  ];
  it.each(refusedUrls)("refuses %s", async (url) => {
    const err = await failure(httpExecutor.execute({ url }, makeStepContext()));
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("SSRF_REFUSED");
    expect(err.details.address).toBeDefined();
  });

  it("refuses a DNS name that resolves to loopback (localhost), before any request", async () => {
    const before = other.requests.length;
    const err = await failure(httpExecutor.execute({ url: `http://localhost:${other.port}/secret` }, makeStepContext()));
    expect(err.code).toBe("SSRF_REFUSED");
    expect(err.message).toMatch(/localhost resolves to .*loopback/);
    expect(other.requests.length).toBe(before);
  });

  it("refuses a redirect from an allowed host to another loopback host, and drops nothing there", async () => {
    const before = other.requests.length;
    for (const path of ["redirect-loopback", "redirect-localhost", "redirect-metadata"]) {
      const err = await failure(httpExecutor.execute({ connection: "inventory", url: path }, withConnection()));
      expect(err.code).toBe("SSRF_REFUSED");
    }
    expect(other.requests.length).toBe(before);
  });

  it("an allow rule covers only the requests it matches: the redirect target is checked again", async () => {
    const ctx = makeStepContext({ policy: policyAllowing(`GET ${api.origin}/redirect-loopback`) });
    const err = await failure(httpExecutor.execute({ url: `${api.origin}/redirect-loopback` }, ctx));
    expect(err.code).toBe("SSRF_REFUSED");
    expect(err.details.url).toBe(`${other.origin}/secret`);
    const post = await failure(httpExecutor.execute({ url: `${api.origin}/redirect-loopback`, method: "POST" }, ctx));
    expect(post.details.url).toBe(`${api.origin}/redirect-loopback`);
  });

  it("a redirect to another origin that policy allows does not carry the connection's secret", async () => {
    const ctx = withConnection({ policy: policyAllowing(`GET ${other.origin}/**`) });
    const out = await httpExecutor.execute({ connection: "inventory", url: "redirect-loopback" }, ctx);
    expect(out.outputs.body).toBe("you should not see this");
    const req = other.requests.at(-1)!;
    expect(req.path).toBe("/secret");
    expect(req.headers.authorization).toBeUndefined();
    expect(api.requests.at(-1)!.headers.authorization).toBe("Bearer tok-123");
  });

  it("a deny rule refuses even the connection's host", async () => {
    const ctx = withConnection({ policy: { ...DEFAULT_POLICY, deny: { http: [`* ${api.origin}/**`] } } });
    const err = await failure(httpExecutor.execute({ connection: "inventory", url: "items" }, ctx));
    expect(err.code).toBe("SSRF_REFUSED");
    expect(err.message).toContain("policy.deny.http");
  });
});

describe("http helpers", () => {
  it("classifies methods for the policy", () => {
    expect(isSafeMethod("get")).toBe(true);
    expect(isSafeMethod("OPTIONS")).toBe(true);
    expect(isSafeMethod("POST")).toBe(false);
  });
  it("parses expect", () => {
    expect(parseExpect(undefined)).toEqual(["2xx"]);
    expect(parseExpect("2XX")).toEqual(["2xx"]);
    expect(parseExpect([200, "404"])).toEqual([200, 404]);
    expect(() => parseExpect("fine")).toThrow(/expect/);
  });
});

describe("http executor: effects cannot be disguised", () => {
  const reached = (path: string) => site.requests.filter((r) => r.url.pathname === path);
  const siteCtx = (policy: Partial<Policy> = {}, extra: Parameters<typeof makeStepContext>[0] = {}) =>
    makeStepContext({
      connections: { site: { type: "http", base_url: `${site.origin}/` }, api: { type: "http", base_url: `${site.origin}/api/v1` } },
      policy: { ...DEFAULT_POLICY, ...policy },
      ...extra,
    });

  it("POST safe/../danger under an allow rule for safe/** is a write, and runs (approved) on /danger exactly", async () => {
    const policy = { ...DEFAULT_POLICY, allow: { http: [`POST ${site.origin}/safe/**`] } };
    const config = { policy, connections: { site: { type: "http" as const, base_url: `${site.origin}/` } } };
    for (const url of ["safe/../danger", "safe/%2e%2e/danger", "safe/%2E%2E/danger", "safe/x/../../danger", "safe/..%2Fdanger"]) {
      // The engine gates a write: before approval, nothing reaches the peer.
      expect(effectUnder({ kind: "http", params: { method: "POST", connection: "site", url } }, config)).toBe("write");
    }
    expect(effectUnder({ kind: "http", params: { method: "POST", connection: "site", url: "safe/x" } }, config)).toBe("read");
    expect(reached("/danger")).toHaveLength(0);
    const out = await httpExecutor.execute({ method: "POST", connection: "site", url: "safe/%2e%2e/danger" }, siteCtx({ allow: policy.allow }));
    expect(out.outputs.url).toBe(`${site.origin}/danger`);
    expect(site.requests.at(-1)!.path).toBe("/danger");
    site.requests.length = 0;
  });

  it("requests the normal form: unreserved escapes decoded, slashes merged, dots resolved", async () => {
    const out = await httpExecutor.execute({ connection: "site", url: "safe/%7Ex//y/./z", query: { q: "%" } }, siteCtx());
    expect(out.outputs.url).toBe(`${site.origin}/safe/~x/y/z?q=%25`);
    expect(site.requests.at(-1)!.path).toBe("/safe/~x/y/z?q=%25");
  });

  it("a deny rule cannot be slipped past with //, an encoded /, or case and default port", async () => {
    const ctx = siteCtx({ allow: { http: [`GET ${site.origin}/**`] }, deny: { http: [`* ${site.origin}/admin/**`] } });
    const before = site.requests.length;
    for (const url of [`${site.origin}//admin/x`, `${site.origin}/safe/..%2Fadmin/x`, `${site.origin}/safe/../admin/x`, `${site.origin.toUpperCase()}/admin/x`]) {
      const err = await failure(httpExecutor.execute({ url }, ctx));
      expect(err.code).toBe("SSRF_REFUSED");
      expect(err.message).toContain("policy.deny.http");
    }
    const viaConnection = await failure(httpExecutor.execute({ connection: "site", url: "x/..//admin/y" }, ctx));
    expect(viaConnection.code).toBe("SSRF_REFUSED");
    expect(site.requests.length).toBe(before);
  });

  it("a url that leaves its connection's base_url is refused before any request", async () => {
    const before = site.requests.length;
    for (const url of ["../admin", "%2e%2e/admin", "..%2Fadmin", "items/../../admin", `${site.origin}/admin`, `${other.origin}/api/v1/x`]) {
      const err = await failure(httpExecutor.execute({ connection: "api", url, method: "POST" }, siteCtx()));
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("POLICY_DENIED");
      expect(err.message).toMatch(/outside connection 'api'/);
    }
    expect(site.requests.length).toBe(before);
    const ok = await httpExecutor.execute({ connection: "api", url: "/items" }, siteCtx());
    expect(ok.outputs.url).toBe(`${site.origin}/api/v1/items`);
  });

  it("a Host header is refused before any request", async () => {
    const before = site.requests.length;
    const err = await failure(httpExecutor.execute({ connection: "site", url: "safe/x", headers: { Host: "admin.internal" } }, siteCtx()));
    expect(err.code).toBe("POLICY_DENIED");
    expect(err.message).toMatch(/cannot set the Host header/);
    expect(site.requests.length).toBe(before);
  });

  it("a POST that runs as a read under an allow rule does not follow a 307 to a URL no rule allows", async () => {
    const allow = { http: [`POST ${site.origin}/safe/**`] };
    const err = await failure(httpExecutor.execute({ method: "POST", connection: "site", url: "safe/bounce", body: "x" }, siteCtx({ allow }, { effect: "read" })));
    expect(err.code).toBe("POLICY_DENIED");
    expect(err.message).toMatch(/redirected it to POST .*\/danger/);
    expect(reached("/safe/bounce")).toHaveLength(1);
    expect(reached("/danger")).toHaveLength(0);
    // Approved as a write, the same request follows the redirect.
    const out = await httpExecutor.execute({ method: "POST", connection: "site", url: "safe/bounce", body: "x" }, siteCtx({ allow }, { effect: "write" }));
    expect(out.outputs.body).toEqual({ method: "POST", path: "/danger" });
  });
});
