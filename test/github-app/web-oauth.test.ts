/**
 * Where the sign-in goes: github.com for api.github.com, the Enterprise host for GHE_HOST (the
 * web host of the API, without /api/v3), with the client id, the callback and the state.
 */
import { describe, expect, it } from "vitest";
import { createOAuthClient } from "../../src/adapters/server/oauth.js";

const client = (apiUrl: string) => createOAuthClient({ clientId: "Iv1.abc", clientSecret: "s3cret", apiUrl });

describe("the authorize URL", () => {
  it.each([
    ["https://api.github.com", "https://github.com/login/oauth/authorize"],
    ["https://github.example.com/api/v3", "https://github.example.com/login/oauth/authorize"],
    ["http://127.0.0.1:8080/api/v3", "http://127.0.0.1:8080/login/oauth/authorize"],
  ])("for the API at %s is %s", (api, expected) => {
    const u = new URL(client(api).authorizeUrl("https://sluice.example/login/callback", "st4te"));
    expect(`${u.origin}${u.pathname}`).toBe(expected);
    expect(u.searchParams.get("client_id")).toBe("Iv1.abc");
    expect(u.searchParams.get("redirect_uri")).toBe("https://sluice.example/login/callback");
    expect(u.searchParams.get("state")).toBe("st4te");
    // The secret never travels in the browser.
    expect(u.toString()).not.toContain("s3cret");
  });
});
