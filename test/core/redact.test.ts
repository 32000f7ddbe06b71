import { describe, expect, it } from "vitest";
import { REDACTED, createRedactor } from "../../src/core/redact.js";

const SECRET = "hunter2-Sup3r/Secret+Value";
const redact = createRedactor([SECRET]);
const b64 = (s: string) => Buffer.from(s).toString("base64");
const b64url = (s: string) => Buffer.from(s).toString("base64url");

describe("the redactor finds a secret in the forms it travels in", () => {
  const forms: [string, string][] = [
    ["as is", `token=${SECRET};`],
    ["base64", b64(SECRET)],
    ["base64 inside a longer value, each alignment", b64(`Authorization: Bearer ${SECRET}`)],
    ["base64 after one byte", b64(`x${SECRET}yz`)],
    ["base64 after two bytes", b64(`xy${SECRET}z`)],
    ["base64url", b64url(`:${SECRET}`)],
    ["URL-encoded", `https://h/?t=${encodeURIComponent(SECRET)}`],
    ["form-encoded", encodeURIComponent(`a ${SECRET}`).replace(/%20/g, "+")],
    ["hex", Buffer.from(SECRET).toString("hex")],
    ["HEX", Buffer.from(`..${SECRET}`).toString("hex").toUpperCase()],
  ];
  for (const [name, text] of forms) {
    it(name, () => {
      const out = redact(text);
      expect(out).toContain(REDACTED);
      // Whatever is left cannot spell the secret again in that form.
      expect(out).not.toContain(SECRET);
      const decoded = [Buffer.from(out, "base64").toString("latin1"), Buffer.from(out, "base64url").toString("latin1"), decodeURIComponent(out.replace(/\+/g, " ").replace(/%(?![0-9a-f]{2})/gi, "")), Buffer.from(out.replace(/[^0-9a-f]/gi, ""), "hex").toString("latin1")];
      for (const d of decoded) expect(d).not.toContain(SECRET);
    });
  }

  it("walks objects, arrays and keys; leaves other values alone", () => {
    expect(redact({ [SECRET]: [1, { a: `x${SECRET}` }], n: 3, ok: true, nil: null })).toEqual({ [REDACTED]: [1, { a: `x${REDACTED}` }], n: 3, ok: true, nil: null });
    expect(redact("nothing secret here")).toBe("nothing secret here");
  });

  it("a secret reassembled from parts is found in the final value", () => {
    const [a, b] = [SECRET.slice(0, 9), SECRET.slice(9)];
    expect(redact(a)).toBe(a);
    expect(redact(`${a}${b}`)).toBe(REDACTED);
  });

  it("short secrets are not redacted (they would shred text), and no secrets is the identity", () => {
    expect(createRedactor(["abc"])("abcabc")).toBe("abcabc");
    const same = { a: 1 };
    expect(createRedactor([])(same)).toBe(same);
  });
});
