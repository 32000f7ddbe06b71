/**
 * The simulator's state: users, apps, installations, tokens, repositories with their git
 * objects, issues, pull requests, comments, reviews and check runs.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { KeyObject } from "node:crypto";
import type { ObjectStore } from "./git-model.js";
import type { Operation } from "./openapi.js";

export type Permission = "none" | "read" | "triage" | "write" | "maintain" | "admin";
export const PERMISSION_ORDER: Permission[] = ["none", "read", "triage", "write", "maintain", "admin"];

export interface SimUser {
  id: number;
  login: string;
  type: "User" | "Bot" | "Organization";
  name: string | null;
  email: string | null;
  siteAdmin: boolean;
}

export interface SimApp {
  id: number;
  slug: string;
  name: string;
  owner: string;
  publicKey: KeyObject;
  /** The `<slug>[bot]` user the app acts as with an installation token. */
  bot: SimUser;
  permissions: Record<string, string>;
  events: string[];
  createdAt: string;
}

export interface SimInstallation {
  id: number;
  appId: number;
  account: string;
  repositorySelection: "all" | "selected";
  repositories: Set<string>;
  createdAt: string;
}

export type SimToken =
  | { kind: "installation"; token: string; installationId: number; expiresAt: number; repositories?: Set<string> }
  | { kind: "user"; token: string; login: string };

export interface SimLabel {
  id: number;
  nodeId: string;
  name: string;
  color: string;
  description: string | null;
  isDefault: boolean;
}

export interface SimReaction {
  id: number;
  nodeId: string;
  user: string;
  content: string;
  createdAt: string;
}

export interface SimComment {
  id: number;
  nodeId: string;
  repo: string;
  issueNumber: number;
  user: string;
  body: string;
  createdAt: string;
  updatedAt: string;
  reactions: SimReaction[];
}

export type ReviewState = "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" | "DISMISSED" | "PENDING";

export interface SimReview {
  id: number;
  nodeId: string;
  user: string;
  body: string;
  state: ReviewState;
  commitId: string;
  submittedAt: string;
}

export interface SimPull {
  id: number;
  nodeId: string;
  headRef: string;
  /** "owner/name" of the head repository (the same repository unless a fork was named). */
  headRepo: string;
  /** The head SHA, kept up to date while the PR is open and frozen when it closes. */
  headSha: string;
  baseRef: string;
  draft: boolean;
  merged: boolean;
  mergedAt: string | null;
  mergedBy: string | null;
  mergeCommitSha: string | null;
  /** null: computed from a three-way merge; a boolean forces the answer. */
  mergeableOverride: boolean | null;
  /** The merge base recorded when the PR merged, so its files and commits stay listable. */
  frozenMergeBase: string | null;
  reviews: SimReview[];
  maintainerCanModify: boolean;
}

export interface SimIssue {
  id: number;
  nodeId: string;
  number: number;
  title: string;
  body: string | null;
  user: string;
  state: "open" | "closed";
  stateReason: string | null;
  labels: string[];
  assignees: string[];
  locked: boolean;
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  closedBy: string | null;
  pull?: SimPull;
  reactions: SimReaction[];
}

export interface SimAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: "notice" | "warning" | "failure";
  message: string;
  title?: string;
  raw_details?: string;
  blob_href: string;
}

export interface SimCheckAction {
  label: string;
  description: string;
  identifier: string;
}

export interface SimCheckRun {
  id: number;
  nodeId: string;
  repo: string;
  headSha: string;
  name: string;
  status: "queued" | "in_progress" | "completed" | "waiting" | "requested" | "pending";
  conclusion: string | null;
  externalId: string;
  detailsUrl: string | null;
  startedAt: string;
  completedAt: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  annotations: SimAnnotation[];
  actions: SimCheckAction[];
  appId: number | null;
  checkSuiteId: number;
  /** How many times the run was created or updated through the API. */
  writes: number;
}

export interface SimRepo {
  id: number;
  nodeId: string;
  owner: string;
  name: string;
  fullName: string;
  private: boolean;
  description: string | null;
  defaultBranch: string;
  createdAt: string;
  updatedAt: string;
  pushedAt: string;
  git: ObjectStore;
  /** Full ref name ("refs/heads/main") → commit SHA. */
  refs: Map<string, string>;
  permissions: Map<string, Permission>;
  labels: Map<string, SimLabel>;
  issues: Map<number, SimIssue>;
  nextNumber: number;
}

export interface WorkflowDispatch {
  repo: string;
  workflow: string;
  ref: string;
  inputs: Record<string, unknown>;
  actor: string;
  at: string;
}

export interface LoggedRequest {
  method: string;
  /** The path without the /api/v3 prefix and without the query, percent-decoded. */
  path: string;
  query: Record<string, string | string[]>;
  body: unknown;
  status: number;
  /** The OpenAPI operation the request was mapped to, if any. */
  operationId?: string;
  /** The auth the request carried: "app", "installation:<id>", "user:<login>" or "none". */
  auth: string;
  /** When it arrived (epoch ms). */
  at?: number;
}

export interface Violation {
  kind: "unknown-route" | "not-implemented" | "invalid-json" | "path" | "query" | "body" | "response";
  method: string;
  path: string;
  operationId?: string;
  message: string;
}

export type Auth =
  | { kind: "none" }
  | { kind: "app"; app: SimApp }
  | { kind: "installation"; app: SimApp; installation: SimInstallation; token: Extract<SimToken, { kind: "installation" }> }
  | { kind: "user"; user: SimUser };

export interface Req {
  op: Operation;
  /** The base URL the request came in on (with or without /api/v3), for Link headers. */
  base: string;
  method: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, string | string[]>;
  body: any;
  headers: IncomingHttpHeaders;
  auth: Auth;
}

export interface Res {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** A non-JSON body (raw file contents, a bare SHA). */
  raw?: string | Buffer;
}

/** An error answer, GitHub style: `{ message, documentation_url, status, errors? }`. */
export class HttpError extends Error {
  readonly status: number;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
    this.headers = headers;
  }
}

export function notFound(): HttpError {
  return new HttpError(404, "Not Found");
}

export function validationFailed(resource: string, message: string, code = "custom", field?: string): HttpError {
  return new HttpError(422, "Validation Failed", {
    errors: [{ resource, code, ...(field ? { field } : {}), message }],
  });
}
