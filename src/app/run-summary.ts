/**
 * A run in a list (`RunList`): the record without its journal. Apart from the run view, so a
 * listing (`sluice runs list`, `GET /api/v1/runs`) loads no engine code.
 */
import type { RunRecord } from "../ports/run-store.js";

export function runSummary(r: RunRecord) {
  return {
    id: r.id,
    flow: r.flow,
    repo: r.repo,
    status: r.status,
    release: r.release,
    created_at: new Date(r.createdAt).toISOString(),
    updated_at: new Date(r.updatedAt).toISOString(),
  };
}
