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
