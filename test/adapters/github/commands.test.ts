import { describe, expect, it } from "vitest";
import { digestInText, looksLikeDigest, looksLikeRunId, parseCommand, parseRunArgs, tokenize } from "../../../src/adapters/github/commands.js";

describe("parseCommand", () => {
  it.each([
    ["/run deploy env=prod", { name: "run", args: ["deploy", "env=prod"], text: "deploy env=prod" }],
    ["  \n/approve 0mwu9w2nw0f9771 abc1234\nthanks", { name: "approve", args: ["0mwu9w2nw0f9771", "abc1234"], text: "0mwu9w2nw0f9771 abc1234\nthanks" }],
    ["/reject too risky\n\nsee the logs", { name: "reject", args: ["too", "risky"], text: "too risky\nsee the logs" }],
    ["/cancel", { name: "cancel", args: [], text: "" }],
    ["/retry\r\n", { name: "retry", args: [], text: "" }],
    ["/status", { name: "status", args: [], text: "" }],
    ['/run greet who="two words" note=\'a b\'', { name: "run", args: ["greet", "who=two words", "note=a b"], text: "greet who=\"two words\" note='a b'" }],
  ])("reads %j", (body, expected) => {
    expect(parseCommand(body)).toEqual(expected);
  });

  it.each([
    "",
    "looks good to me",
    "please /approve this",
    "> /approve\nquoted",
    "/approved",
    "/deploy now",
    "/Run deploy",
    "`/run deploy`",
  ])("finds no command in %j", (body) => {
    expect(parseCommand(body)).toBeUndefined();
  });
});

describe("parseRunArgs", () => {
  it("takes the flow and name=value inputs as text", () => {
    expect(parseRunArgs(["deploy", "env=prod", "n=3", "empty=", "eq=a=b"])).toEqual({ ok: true, flow: "deploy", inputs: { env: "prod", n: "3", empty: "", eq: "a=b" } });
  });
  it.each([
    [[], "name the flow"],
    [["env=prod"], "the first word after /run is the flow's name"],
    [["deploy", "oops"], "inputs are name=value, got 'oops'"],
    [["deploy", "=x"], "inputs are name=value, got '=x'"],
  ])("refuses %j", (args, message) => {
    const r = parseRunArgs(args);
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.error).toContain(message);
  });
});

describe("tokens", () => {
  it("tokenizes with quotes, keeping empty quoted words", () => {
    expect(tokenize(`a  "b c" '' d`)).toEqual(["a", "b c", "", "d"]);
  });
  it("tells run ids and digests apart by shape", () => {
    expect(looksLikeRunId("0mwu9w2nw0f9771")).toBe(true);
    expect(looksLikeRunId("0mwu9w2nw0f977")).toBe(false);
    expect(looksLikeDigest("abc1234")).toBe(true);
    expect(looksLikeDigest("abc123")).toBe(false);
    expect(looksLikeDigest("xyz12345")).toBe(false);
  });
  it("finds a digest named in a review's text", () => {
    expect(digestInText("LGTM, digest: ABCDEF1234")).toBe("abcdef1234");
    expect(digestInText("digest=`abcdef1`")).toBe("abcdef1");
    expect(digestInText("commit abcdef1234 looks fine")).toBeUndefined();
  });
});
