/** `sluice runs list`: kept apart from the other run commands, so a listing loads only the store. */
import { runSummary } from "../../app/run-summary.js";
import type { RunStatus, RunStore } from "../../ports/run-store.js";
import { localTime, statusText } from "./format.js";
import { EXIT, paint, table, type Io, type Report } from "./output.js";

export async function runsList(store: RunStore, opts: { flow?: string; status?: string[]; limit?: number }, io: Io): Promise<Report> {
  const runs = await store.listRuns({ ...(opts.flow ? { flow: opts.flow } : {}), ...(opts.status ? { status: opts.status as RunStatus[] } : {}), limit: opts.limit ?? 20 });
  const data = runs.map(runSummary);
  const p = paint(io.colour);
  return {
    kind: "RunList",
    ok: true,
    data: { runs: data },
    exitCode: EXIT.ok,
    human: data.length
      ? table([["id", "flow", "status", "release", "created"].map((h) => p.dim(h)), ...data.map((r) => [r.id, r.flow, statusText(r.status, p), `${r.release.kind} ${r.release.sha.slice(0, 7)}`, localTime(r.created_at)])])
      : "no runs",
  };
}
