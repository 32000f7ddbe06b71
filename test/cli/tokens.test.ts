/**
 * `sluice tokens create|list|revoke` as the built CLI: the token is printed once and stored as
 * its hash only, on the store the server uses (SLUICE_HOME's SQLite, `.sluice/` of the checkout or
 * of the working directory, or DATABASE_URL's PostgreSQL); every document matches its schema.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../src/adapters/server/auth.js";
import { openRunStore } from "../../src/adapters/store/index.js";
import { sluice } from "../support/cli.js";
import { makeRepo } from "../support/git-repo.js";
import { startPostgres } from "../support/postgres.js";

const SCHEMAS = resolve(import.meta.dirname, "../../schemas/cli");
const ajv = new Ajv2020({ strict: true, allErrors: true });
for (const f of readdirSync(SCHEMAS)) ajv.addSchema(JSON.parse(readFileSync(join(SCHEMAS, f), "utf8")));
function matchesSchema(doc: { kind: string }): void {
  const validate = ajv.getSchema(`https://sluice.dev/schemas/cli/${doc.kind.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase()}.schema.json`);
  expect(validate, `a schema for kind ${doc.kind}`).toBeDefined();
  expect(validate!(doc) ? [] : validate!.errors).toEqual([]);
}

const dir = mkdtempSync(join(tmpdir(), "sluice-tokens-"));
const home = join(dir, "state");
const env = { SLUICE_HOME: home };
const tokens = (args: string[], e: Record<string, string> = env, cwd = dir) => sluice(cwd, ["tokens", ...args, "--json"], e);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every byte SQLite wrote for the store (the database and its write-ahead log). */
function storeBytes(): string {
  return readdirSync(home)
    .filter((f) => f.startsWith("sluice.db"))
    .map((f) => readFileSync(join(home, f)).toString("latin1"))
    .join("");
}

describe("sluice tokens on the server's SQLite store", () => {
  it("create prints the token once; the store keeps its hash, not the token", async () => {
    const made = tokens(["create", "--login", "ann", "--repo", "acme/widgets"]);
    expect(made.code).toBe(0);
    matchesSchema(made.json);
    const { token, id } = made.json.data;
    expect(made.json.data).toMatchObject({ login: "ann", repo: "acme/widgets", status: "active", expires_at: null, revoked_at: null });
    expect(token).toMatch(/^sluice_[A-Za-z0-9_-]{43}$/);
    expect(id).toMatch(/^tok_/);
    expect(storeBytes()).not.toContain(token);
    const store = await openRunStore(join(home, "sluice.db"));
    try {
      expect(await store.findToken(hashToken(token))).toMatchObject({ id, login: "ann", repo: "acme/widgets" });
    } finally {
      await store.close();
    }
    // Without --json, for people: the token and how to use it.
    const human = sluice(dir, ["tokens", "create", "--login", "bob"], env);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/\n {2}sluice_[A-Za-z0-9_-]{43}\n/);
    expect(human.stdout).toContain("Authorization: Bearer");
  });

  it("list shows every token without its secret; revoke revokes once, by id", () => {
    const made = tokens(["create", "--login", "carol", "--expires", "1d"]);
    expect(Date.parse(made.json.data.expires_at) - Date.now()).toBeGreaterThan(86_400_000 - 60_000);
    const listed = tokens(["list"]);
    expect(listed.code).toBe(0);
    matchesSchema(listed.json);
    const mine = listed.json.data.tokens.find((t: { id: string }) => t.id === made.json.data.id);
    expect(mine).toMatchObject({ login: "carol", repo: null, status: "active" });
    expect(listed.stdout).not.toContain(made.json.data.token);

    const revoked = tokens(["revoke", made.json.data.id]);
    expect(revoked.code).toBe(0);
    matchesSchema(revoked.json);
    expect(revoked.json.data).toMatchObject({ id: made.json.data.id, status: "revoked" });
    expect(revoked.json.data.token).toBeUndefined();
    const again = tokens(["revoke", made.json.data.id]);
    expect(again.json.data.revoked_at).toBe(revoked.json.data.revoked_at);
    expect(tokens(["list"]).json.data.tokens.find((t: { id: string }) => t.id === made.json.data.id).status).toBe("revoked");

    const unknown = tokens(["revoke", "tok_nope"]);
    expect(unknown.code).toBe(4);
    expect(unknown.json.error.code).toBe("NOT_FOUND");
  });

  it.each([
    [["create"], /--login/],
    [["create", "--login", "ann--x"], /--login takes a GitHub login/],
    [["create", "--login=-ann"], /--login takes a GitHub login/],
    [["create", "--login", "ann", "--repo", "widgets"], /--repo takes a repository as owner\/name/],
    [["create", "--login", "ann", "--expires", "soon"], /--expires/],
    [["list", "--login", "ann"], /options of 'sluice tokens create'/],
    [["revoke"], /sluice tokens revoke <id>/],
    [["show"], /sluice tokens create/],
  ])("%j is a usage error (exit 2)", (args, message) => {
    const r = tokens(args as string[]);
    expect(r.code).toBe(2);
    matchesSchema(r.json);
    expect(r.json.error.code).toBe("USAGE");
    expect(r.json.error.message).toMatch(message);
  });
});

describe("where the tokens go", () => {
  it("without SLUICE_HOME: .sluice/ at the checkout's root, as local mode, else of the working directory, as sluice serve", () => {
    const repo = makeRepo({ "README.md": "hi\n" });
    try {
      mkdirSync(join(repo.dir, "sub"));
      expect(tokens(["create", "--login", "ann"], {}, join(repo.dir, "sub")).code).toBe(0);
      expect(existsSync(join(repo.dir, ".sluice", "sluice.db"))).toBe(true);
      expect(readFileSync(join(repo.dir, ".sluice", ".gitignore"), "utf8")).toBe("*\n");
    } finally {
      repo.remove();
    }
    const plain = join(dir, "plain");
    mkdirSync(plain);
    expect(tokens(["create", "--login", "ann"], {}, plain).code).toBe(0);
    expect(existsSync(join(plain, ".sluice", "sluice.db"))).toBe(true);
  });

  describe("with DATABASE_URL", () => {
    let pg: Awaited<ReturnType<typeof startPostgres>>;
    beforeAll(async () => {
      pg = await startPostgres();
    });
    afterAll(async () => {
      await pg?.stop();
    });

    it("on PostgreSQL, shared by every server process", async () => {
      const made = tokens(["create", "--login", "dave"], { DATABASE_URL: pg.url });
      expect(made.code).toBe(0);
      const store = await openRunStore(pg.url);
      try {
        expect(await store.findToken(hashToken(made.json.data.token))).toMatchObject({ id: made.json.data.id, login: "dave" });
      } finally {
        await store.close();
      }
      expect(tokens(["list"], { DATABASE_URL: pg.url }).json.data.tokens.map((t: { id: string }) => t.id)).toEqual([made.json.data.id]);
    });
  });
});
