/**
 * Golden journals: recorded runs kept in test/fixtures/journals/. Each is folded and decided
 * again on every test run; a change to the engine that would change what an old journal means
 * fails here. SLUICE_UPDATE_JOURNALS=1 rewrites the expectations after an intended change.
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { decide } from "../../../src/core/engine/decide.js";
import type { JournalEvent } from "../../../src/core/engine/events.js";
import { fold, type RunState } from "../../../src/core/engine/state.js";

const DIR = resolve(import.meta.dirname, "../../fixtures/journals");

interface Golden {
  description: string;
  /** The time decide() is asked at. */
  now: number;
  events: JournalEvent[];
  expected: unknown;
}

function summary(state: RunState, now: number) {
  const turn = decide(state, { now });
  return {
    completed: state.completed ?? null,
    attempt: state.attempt,
    steps: Object.fromEntries(
      Object.values(state.steps).map((s) => [
        s.id,
        { status: s.status, attempts: s.attempts, outputs: s.outputs ?? null, error: s.error?.code ?? null, gate: s.gate ? { kind: s.gate.info.kind, digest: s.gate.info.digest, level: s.gate.level, approvals: s.gate.approvals.length } : null },
      ]),
    ),
    next: turn.kind === "execute" ? { kind: turn.kind, step: turn.step.id, attempt: turn.attempt, key: turn.key, effect: turn.effect } : turn,
  };
}

describe("golden journals replay with the same meaning", () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".json")).sort();
  it("there are golden journals", () => expect(files.length).toBeGreaterThanOrEqual(5));
  for (const file of files) {
    it(file, () => {
      const path = join(DIR, file);
      const golden = JSON.parse(readFileSync(path, "utf8")) as Golden;
      const actual = summary(fold(golden.events), golden.now);
      if (process.env.SLUICE_UPDATE_JOURNALS === "1") {
        writeFileSync(path, JSON.stringify({ ...golden, expected: actual }, null, 2) + "\n");
        return;
      }
      expect(actual).toEqual(golden.expected);
    });
  }
});
