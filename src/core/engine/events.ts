/**
 * The journal: the append-only list of a run's events, the source of truth for its state.
 * Every event carries `at` (epoch milliseconds, given by the shell's clock) and a `type`.
 * Old journals must keep their meaning: add event types and optional fields, never change one.
 */
import type { Config, Flow } from "../flow/types.js";

export interface Release {
  sha: string;
  ref: string;
  kind: "live" | "draft";
}

export interface Trigger {
  type: "manual" | "schedule" | "github" | "webhook" | "command";
  actor: string;
  /** The triggering event's payload, when there is one (the `github` context's `event`). */
  event?: unknown;
  /** The pull request or issue the run came from, if any. */
  issue?: number;
}

export interface StepErrorInfo {
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
}

export interface ApprovalSignal {
  login: string;
  via: "cli" | "comment" | "review" | "check_run" | "api" | "web";
  decision: "approve" | "reject";
  digest?: string;
  comment?: string;
  /** Facts about the person that eligibility needs: bot, permission, teams. Resolved by the shell. */
  is_bot?: boolean;
  permission?: "none" | "read" | "triage" | "write" | "maintain" | "admin";
  teams?: string[];
  /**
   * Where the decision was made, for the place rule (SPEC §5): the issue or pull request of a
   * comment or review, and the commit a review looked at (`review.commit_id`). Decisions from
   * the CLI, the API, the run page and the run's own check run carry none.
   */
  place?: { issue?: number; commit?: string };
}

/** Why a decision did not count; every refusal is journaled (`approval_refused`). */
export type RefusalReason = "self" | "bot" | "invalid_login" | "not_eligible" | "stale_digest" | "wrong_place";

export type JournalEvent =
  | {
      type: "run_created";
      at: number;
      run_id: string;
      flow: Flow;
      config: Config;
      release: Release;
      repo: string;
      inputs: Record<string, unknown>;
      trigger: Trigger;
      /** Callback URL per callback-wait step, known from the start. */
      callbacks: Record<string, string>;
      /** The run's page (the check run's details_url), when a server has a public URL. */
      run_url?: string;
    }
  | { type: "run_started"; at: number }
  | { type: "step_skipped"; at: number; step: string }
  /**
   * `atomic`: the attempt's effect commits in the same store transaction as its result (a `kv`
   * write), so a start with no result did nothing and the attempt may simply run again. Absent in
   * journals written before atomic steps existed: such a write's outcome stays unknown.
   */
  | { type: "step_started"; at: number; step: string; attempt: number; key: string; effect: string; atomic?: true }
  | { type: "step_succeeded"; at: number; step: string; attempt: number; outputs: Record<string, unknown> }
  | { type: "step_failed"; at: number; step: string; attempt: number; error: StepErrorInfo }
  /**
   * The attempt ran as a read and its executor found, before acting, that it can change state
   * (the database's own verdict, say): nothing was done, and the step is a write from now on.
   */
  | { type: "step_reclassified"; at: number; step: string; attempt: number; effect: "write"; reason: string }
  | { type: "timer_started"; at: number; step: string; until: number }
  | { type: "wait_started"; at: number; step: string; wait: "callback" | "event"; deadline: number | null }
  | { type: "gate_opened"; at: number; step: string; gate: GateInfo }
  | ({ type: "approval_received"; at: number; step: string } & ApprovalSignal)
  /** A decision that did not count, kept for the audit trail; it changes nothing else. */
  | { type: "approval_refused"; at: number; step: string; login: string; via: ApprovalSignal["via"]; decision: "approve" | "reject"; reason: RefusalReason; message: string; digest?: string }
  | { type: "gate_escalated"; at: number; step: string; level: number }
  /** An implicit gate reached its quorum: the write step it guards may run. */
  | { type: "gate_passed"; at: number; step: string; approvers: { login: string; via: string; at: string }[] }
  | { type: "callback_received"; at: number; step: string; body: unknown }
  | { type: "event_received"; at: number; step: string; payload: unknown }
  | { type: "unknown_outcome_resolved"; at: number; step: string; attempt: number; action: "retry" | "skip"; by: string }
  | { type: "run_cancel_requested"; at: number; by: string; reason?: string }
  | { type: "run_retry_requested"; at: number; by: string }
  | { type: "run_completed"; at: number; status: "succeeded" | "failed" | "cancelled" | "timed_out"; outputs: Record<string, unknown>; error?: StepErrorInfo };

export type JournalEventType = JournalEvent["type"];

/** A gate's identity and rules, frozen when it opens. */
export interface GateInfo {
  kind: "approval" | "implicit" | "unknown_outcome";
  /** For implicit and unknown-outcome gates: the step it guards. */
  title: string;
  summary?: string;
  digest: string;
  approvers: { users?: string[]; teams?: string[]; permission?: string; min: number };
  /**
   * The default branch's policy approvers when the gate opened: the floor every approver must
   * also meet, and the least quorum. Absent in journals written before the floor existed.
   */
  floor?: { users?: string[]; teams?: string[]; permission?: string; min: number };
  /** Self-approval in effect: the gate asked for it and the default branch's policy allows it. */
  allow_self_approval: boolean;
  deadline: number | null;
  escalate: { after_ms: number; approvers: { users?: string[]; teams?: string[]; permission?: string; min?: number } }[];
  on_timeout: "fail" | "cancel" | "continue";
  evidence: unknown[];
  pull_request?: number;
  /**
   * The pull request whose head the digest binds, and that head's SHA when the gate opened:
   * a review counts only on that pull request at that SHA, and a merge of it passes the SHA.
   */
  head?: { pull_request: number; sha: string };
}
