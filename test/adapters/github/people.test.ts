/**
 * Who sent an event, as the approval paths see it: logins from payloads trimmed, bots known by
 * their type or by `[bot]` in any case, and the person's facts read from the GitHub simulator
 * under the trimmed login.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isBot, personOf, senderOf } from "../../../src/adapters/github/people.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

const repo = "acme/widgets";
let gh: GitHubFixture;

beforeAll(async () => {
  gh = await startGitHub();
  gh.sim.setPermission(repo, "Carol", "write");
});
afterAll(async () => {
  await gh.sim.stop();
});
afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
});

describe("senderOf", () => {
  it("takes the first account with a login, trimmed, and keeps its type", () => {
    expect(senderOf({ login: "  ann\t", type: "User" })).toEqual({ login: "ann", type: "User" });
    expect(senderOf(undefined, { login: "bob" })).toEqual({ login: "bob" });
    expect(senderOf({ login: "   " }, { login: "dave", type: "User" })).toEqual({ login: "dave", type: "User" });
    expect(senderOf({ id: 1 }, null, { login: 7 })).toBeUndefined();
  });
});

describe("isBot", () => {
  it.each([
    [{ login: "renovate[bot]" }, true],
    [{ login: "Renovate[BOT]", type: "User" }, true],
    [{ login: "dependabot[Bot] " }, true],
    [{ login: "some-app", type: "Bot" }, true],
    [{ login: "bot" }, false],
    [{ login: "robot", type: "User" }, false],
    [{ login: "[bot]x" }, false],
    [undefined, false],
  ])("%j is a bot: %s", (sender, expected) => {
    expect(isBot(sender)).toBe(expected);
  });
});

describe("personOf", () => {
  it("reads the facts of the trimmed login, and answers with it", async () => {
    const api = gh.githubApi();
    expect(await personOf(api, repo, { login: " Carol " })).toEqual({ login: "Carol", is_bot: false, permission: "write", teams: [] });
    const calls = gh.sim.requests.filter((r) => r.operationId === "repos/get-collaborator-permission-level").map((r) => r.path);
    expect(calls).toEqual([`/repos/${repo}/collaborators/Carol/permission`]);
    expect(await personOf(api, repo, { login: "Sneaky[Bot] ", type: "User" })).toEqual({ login: "Sneaky[Bot]", is_bot: true, permission: "none", teams: [] });
  });
});
