/** Throwaway git repositories for tests: files committed on main, branches for drafts. */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface TestRepo {
  dir: string;
  git(...args: string[]): string;
  write(files: Record<string, string>): void;
  commit(files: Record<string, string>, message?: string): string;
  remove(): void;
}

const GIT_ENV = {
  GIT_AUTHOR_NAME: "Test",
  GIT_AUTHOR_EMAIL: "test@sluice.invalid",
  GIT_COMMITTER_NAME: "Test",
  GIT_COMMITTER_EMAIL: "test@sluice.invalid",
};

export function makeRepo(files: Record<string, string> = {}): TestRepo {
  const dir = mkdtempSync(join(tmpdir(), "sluice-repo-"));
  const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, env: { ...process.env, ...GIT_ENV }, encoding: "utf8" }).trim();
  git("init", "-q", "-b", "main");
  const write = (f: Record<string, string>) => {
    for (const [path, text] of Object.entries(f)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
  };
  const commit = (f: Record<string, string>, message = "change") => {
    write(f);
    git("add", "-A");
    git("commit", "-q", "--allow-empty", "-m", message);
    return git("rev-parse", "HEAD");
  };
  commit({ "README.md": "test\n", ...files }, "initial");
  return { dir, git, write, commit, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
