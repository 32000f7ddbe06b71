import { describe, expect, it } from "vitest";
import { normaliseHttpUrl, resolveHttpTarget, urlReadings } from "../../../src/core/policy/url.js";

describe("normaliseHttpUrl", () => {
  const cases: [string, string][] = [
    ["https://h/safe/../danger", "https://h/danger"],
    ["https://h/safe/%2e%2e/danger", "https://h/danger"],
    ["https://h/safe/%2E%2E/danger", "https://h/danger"],
    ["https://h/safe/.%2e/danger", "https://h/danger"],
    ["https://h/safe/./x/../../danger", "https://h/danger"],
    ["https://h/safe\\..\\danger", "https://h/danger"],
    ["https://h//danger", "https://h/danger"],
    ["https://h/safe//x///y", "https://h/safe/x/y"],
    ["https://h/a/.//b", "https://h/a/b"],
    ["HTTPS://API.Example.COM/x", "https://api.example.com/x"],
    ["https://h:443/x", "https://h/x"],
    ["http://h:80/x", "http://h/x"],
    ["http://h:0080/x", "http://h/x"],
    ["https://h:8443/x", "https://h:8443/x"],
    ["https://h.example./x", "https://h.example/x"],
    ["http://0x7f.1/x", "http://127.0.0.1/x"],
    ["http://2130706433/x", "http://127.0.0.1/x"],
    ["https://h/%7euser/%41%2d%5F%2E", "https://h/~user/A-_."],
    ["https://h/a%2fb/c%3f", "https://h/a%2Fb/c%3F"],
    ["https://h/x?q=%41%2fz&r=%7e", "https://h/x?q=A%2Fz&r=~"],
    ["https://h/x#fragment", "https://h/x"],
    ["https://h", "https://h/"],
  ];
  it.each(cases)("%s -> %s", (input, normal) => {
    expect(normaliseHttpUrl(input)).toEqual({ ok: true, url: normal });
  });

  it("is a fixed point: normalising the normal form changes nothing", () => {
    for (const [input] of cases) {
      const once = normaliseHttpUrl(input);
      expect(once.ok && normaliseHttpUrl(once.url)).toEqual(once);
    }
  });

  it.each([
    ["not a url", /not an absolute http\(s\) URL/],
    ["/relative/path", /not an absolute/],
    ["ftp://h/x", /not an http\(s\) URL/],
    ["file:///etc/passwd", /not an http\(s\) URL/],
    ["https://user:pw@h/x", /carries credentials/],
    ["https://user@h/x", /carries credentials/],
  ])("refuses %s", (input, why) => {
    const r = normaliseHttpUrl(input);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe("PARAM_INVALID");
    expect(!r.ok && r.reason).toMatch(why);
  });
});

describe("urlReadings", () => {
  it("adds the reading of a server that decodes an encoded / or \\ before routing", () => {
    expect(urlReadings("https://h/safe/x")).toEqual(["https://h/safe/x"]);
    expect(urlReadings("https://h/safe/..%2Fadmin")).toEqual(["https://h/safe/..%2Fadmin", "https://h/admin"]);
    expect(urlReadings("https://h/safe/..%5Cadmin")).toEqual(["https://h/safe/..%5Cadmin", "https://h/admin"]);
    expect(urlReadings("https://h/a%2Fb")).toEqual(["https://h/a%2Fb", "https://h/a/b"]);
  });
});

describe("resolveHttpTarget", () => {
  const base = "http://h/api/v1";
  const under: [string, string][] = [
    ["items", "http://h/api/v1/items"],
    ["/items", "http://h/api/v1/items"],
    ["//items", "http://h/api/v1/items"],
    ["items/../other", "http://h/api/v1/other"],
    ["users:search", "http://h/api/v1/users:search"],
    ["", "http://h/api/v1/"],
    ["?q=1", "http://h/api/v1/?q=1"],
    ["http://h/api/v1/x", "http://h/api/v1/x"],
    ["HTTP://H:80/api/v1", "http://h/api/v1"],
  ];
  it.each(under)("%s stays under the base_url: %s", (url, out) => {
    expect(resolveHttpTarget({ url, baseUrl: base, connection: "inv" })).toEqual({ ok: true, url: out });
  });

  const outside = [
    "../admin",
    "%2e%2e/admin",
    "%2E%2E/%2e%2e/admin",
    "items/../../admin",
    "..%2Fadmin",
    "..\\admin",
    "http://h/admin",
    "http://h/api/v10",
    "https://h/api/v1/x",
    "http://other/api/v1/x",
    "http:/other/api/v1/x",
    "h\tttp://other/api/v1/x",
    " http://other/api/v1/x",
  ];
  it.each(outside)("%s leaves the base_url: POLICY_DENIED", (url) => {
    const r = resolveHttpTarget({ url, baseUrl: base, connection: "inv" });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe("POLICY_DENIED");
    expect(!r.ok && r.reason).toMatch(/outside connection 'inv' \(http:\/\/h\/api\/v1\)/);
  });

  it("a base_url of / lets every path of its origin through", () => {
    expect(resolveHttpTarget({ url: "../../x", baseUrl: "http://h/" })).toEqual({ ok: true, url: "http://h/x" });
  });

  it("appends query parameters, then normalises", () => {
    expect(resolveHttpTarget({ url: "https://h/x?a=1", query: { b: 2, c: ["x", "y"], d: null, e: "/%" } })).toEqual({
      ok: true,
      url: "https://h/x?a=1&b=2&c=x&c=y&e=%2F%25",
    });
    const bad = resolveHttpTarget({ url: "https://h/x", query: { a: { nested: true } } });
    expect(!bad.ok && bad.code).toBe("PARAM_INVALID");
  });

  it("a base_url that is not an http(s) URL is PARAM_INVALID", () => {
    const r = resolveHttpTarget({ url: "x", baseUrl: "not a url", connection: "inv" });
    expect(!r.ok && r.code).toBe("PARAM_INVALID");
    expect(!r.ok && r.reason).toMatch(/base_url of connection 'inv'/);
  });
});
