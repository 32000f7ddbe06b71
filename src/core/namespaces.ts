/** Where a run's state lives, by repository and release kind (SPEC §4: drafts stay drafts). */
import type { Release } from "./engine/events.js";

/**
 * The `kv` namespace of a run: its repository's, or, for a draft, the repository's draft
 * namespace (`owner/name#draft`, a name no repository can have), so a draft reads and writes
 * its own keys and never a live one's.
 */
export function kvNamespace(repo: string, kind: Release["kind"]): string {
  return kind === "draft" ? `${repo}#draft` : repo;
}

/** An `owner/name` GitHub could have; a local run's `_local/<folder>` is none (no account starts with `_`). */
const GITHUB_REPO = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}\/[A-Za-z0-9._-]{1,100}$/;

/** Whether a run's repository is one on GitHub (else the app makes no call about it). */
export function isGitHubRepo(repo: string): boolean {
  return GITHUB_REPO.test(repo);
}
