import { describe, expect, it } from "vitest";
import { NonRetriableError } from "../../../src/core/errors.js";
import { checkRequest, classifyAddress, resolveGuarded, type Resolver } from "../../../src/adapters/steps/ssrf.js";

describe("classifyAddress", () => {
  const refused: [string, string][] = [
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "linkLocal"],
    ["169.254.0.1", "linkLocal"],
    ["100.64.0.1", "carrierGradeNat"],
    ["0.0.0.0", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["224.0.0.1", "multicast"],
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["::", "unspecified"],
    ["fe80::1", "linkLocal"],
    ["fe80::1%eth0", "linkLocal"],
    ["fc00::1", "uniqueLocal"],
    ["fd12:3456::1", "uniqueLocal"],
    ["ff02::1", "multicast"],
    // IPv4-mapped and compatible IPv6 forms
    ["::ffff:127.0.0.1", "ipv4Mapped(loopback)"],
    ["::ffff:7f00:1", "ipv4Mapped(loopback)"],
    ["::ffff:a9fe:a9fe", "ipv4Mapped(linkLocal)"],
    ["::ffff:10.0.0.1", "ipv4Mapped(private)"],
    ["::127.0.0.1", "ipv4Mapped(loopback)"],
    ["64:ff9b::7f00:1", "rfc6052(loopback)"],
    ["2002:c0a8:101::1", "6to4(private)"],
    // decimal, octal and hex IPv4 forms
    ["2130706433", "loopback"],
    ["017700000001", "loopback"],
    ["0x7f000001", "loopback"],
    ["0177.0.0.1", "loopback"],
    ["0x7f.0.0.1", "loopback"],
    ["127.1", "loopback"],
    ["0xa9.0xfe.0xa9.0xfe", "linkLocal"],
    ["2852039166", "linkLocal"],
    ["012.0.0.1", "private"],
  ];
  it.each(refused)("refuses %s (%s)", (input, range) => {
    const c = classifyAddress(input);
    expect(c).toBeDefined();
    expect(c!.allowed).toBe(false);
    expect(c!.range).toBe(range);
  });

  it("treats ::7f00:1 (IPv4-compatible form of 127.0.0.1) as embedding 127.0.0.1", () => {
    const c = classifyAddress("::7f00:1")!;
    expect(c.allowed).toBe(false);
    expect(c.range).toContain("loopback");
  });

  it.each(["8.8.8.8", "1.1.1.1", "140.82.112.3", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "172.32.0.1", "100.128.0.1"])(
    "allows the public address %s",
    (input) => {
      const c = classifyAddress(input)!;
      expect(c.allowed).toBe(true);
      expect(c.range).toBe("unicast");
    },
  );

  it("returns undefined for a name", () => {
    expect(classifyAddress("example.com")).toBeUndefined();
    expect(classifyAddress("localhost")).toBeUndefined();
  });
});

describe("checkRequest", () => {
  it("refuses schemes other than http and https", () => {
    expect(() => checkRequest("GET", new URL("file:///etc/passwd"), {})).toThrow(/only http and https/);
    expect(() => checkRequest("GET", new URL("ftp://example.com/"), {})).toThrow(NonRetriableError);
  });

  it("bypasses the address check for a connection's host (port included)", () => {
    expect(checkRequest("POST", new URL("http://10.0.0.9:8080/x"), { allowedHosts: ["10.0.0.9:8080"] }).bypass).toMatch(/connection/);
    expect(checkRequest("POST", new URL("http://10.0.0.9:9090/x"), { allowedHosts: ["10.0.0.9:8080"] }).bypass).toBeUndefined();
  });

  it("bypasses for a policy.allow.http rule, by method and glob", () => {
    const opts = { allowRules: ["GET http://10.0.0.9/api/*", "* http://10.0.0.10/**"] };
    expect(checkRequest("GET", new URL("http://10.0.0.9/api/items"), opts).bypass).toMatch(/allow/);
    expect(checkRequest("GET", new URL("http://10.0.0.9/api/items/1"), opts).bypass).toBeUndefined();
    expect(checkRequest("POST", new URL("http://10.0.0.9/api/items"), opts).bypass).toBeUndefined();
    expect(checkRequest("DELETE", new URL("http://10.0.0.10/a/b/c"), opts).bypass).toMatch(/allow/);
  });

  it("refuses a request a policy.deny.http rule matches, even on an allowed host", () => {
    const err = (() => {
      try {
        checkRequest("GET", new URL("http://169.254.169.254/latest/meta-data"), {
          allowedHosts: ["169.254.169.254"],
          denyRules: ["* http://169.254.169.254/**"],
        });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(NonRetriableError);
    expect((err as NonRetriableError).code).toBe("SSRF_REFUSED");
    expect((err as NonRetriableError).message).toContain("policy.deny.http");
  });
});

describe("resolveGuarded", () => {
  const resolverOf =
    (map: Record<string, string[]>): Resolver =>
    async (host) =>
      (map[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

  it("refuses a name that resolves to a private address, naming the rule and the address", async () => {
    const resolver = resolverOf({ "internal.example": ["93.184.216.34", "10.0.0.5"] });
    const url = new URL("http://internal.example/");
    await expect(resolveGuarded("GET", url, {}, resolver)).rejects.toMatchObject({
      code: "SSRF_REFUSED",
      details: { address: "10.0.0.5", rule: "private" },
    });
  });

  it("returns the checked address to connect to", async () => {
    const resolver = resolverOf({ "public.example": ["93.184.216.34"] });
    await expect(resolveGuarded("GET", new URL("https://public.example/"), {}, resolver)).resolves.toEqual({
      address: "93.184.216.34",
      family: 4,
    });
  });

  it("does not consult DNS for an IP literal and refuses it by its range", async () => {
    const resolver: Resolver = async () => {
      throw new Error("no lookup expected");
    };
    await expect(resolveGuarded("GET", new URL("http://[::ffff:169.254.169.254]/"), {}, resolver)).rejects.toMatchObject({
      code: "SSRF_REFUSED",
    });
    await expect(resolveGuarded("GET", new URL("http://0x7f.1/"), {}, resolver)).rejects.toMatchObject({
      code: "SSRF_REFUSED",
      details: { rule: "loopback" },
    });
  });

  it("skips the check when bypassed", async () => {
    await expect(resolveGuarded("GET", new URL("http://127.0.0.1:1/"), { bypass: "connection host" })).resolves.toEqual({
      address: "127.0.0.1",
      family: 4,
    });
  });

  it("resolves localhost through the system resolver and refuses it", async () => {
    await expect(resolveGuarded("GET", new URL("http://localhost:9/"), {})).rejects.toMatchObject({
      code: "SSRF_REFUSED",
      details: { rule: expect.stringMatching(/loopback/) },
    });
  });
});
