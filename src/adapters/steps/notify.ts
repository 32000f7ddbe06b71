/**
 * The `notify` step: `github_comment {issue?, body}` comments on an issue or pull request (the
 * run's own by default), once per run and step (a hidden marker in the comment, trusted only in
 * comments Sluice itself wrote); `webhook {connection, text | body}` POSTs JSON to a webhook whose URL is
 * the connection's secret (Slack-compatible `{text}`, or the given body), with the attempt's
 * Idempotency-Key so that a receiver that deduplicates sees one message. Output `id`. On the
 * server, the comment spends the installation's GitHub write budget like every other write
 * (it waits for a token or a hold GitHub asked for; see src/adapters/github/budget.ts).
 */
import { sameLogin } from "../../core/engine/gates.js";
import { NonRetriableError, RetryAfterError, SluiceError } from "../../core/errors.js";
import type { StepContext, StepExecutor } from "../../ports/step-executor.js";
import { withDeadline } from "./deadline.js";
import { githubError, requireGitHub } from "./github-errors.js";
import { decodeBody, httpRequest, ssrfOptions, statusError } from "./http-client.js";
import { isRecord, optNumber, optString, paramError, reqString, typeName, type Params } from "./params.js";

const KIND = "notify";
/** How far back a comment posted by an earlier attempt of the same step is looked for. */
const DEDUP_WINDOW_MS = 30 * 24 * 3600 * 1000;
/** A webhook's answer is only read for an id: larger answers are cut, not an error. */
const ANSWER_BYTES = 64 * 1024;

export const notifyExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const channels = ["github_comment", "webhook"].filter((k) => params[k] !== undefined && params[k] !== null);
    if (channels.length !== 1) {
      throw paramError(KIND, "github_comment", "or 'webhook': give exactly one of them");
    }
    const spec = params[channels[0]!];
    if (!isRecord(spec)) throw paramError(KIND, channels[0]!, `must be a map, not ${typeName(spec)}`);
    return channels[0] === "webhook" ? webhook(spec, ctx) : githubComment(spec, ctx);
  },
};

async function githubComment(spec: Params, ctx: StepContext) {
  const body = reqString(KIND, spec, "body");
  const issue = optNumber(KIND, spec, "issue", { min: 1, integer: true }) ?? ctx.issue;
  if (issue === undefined) {
    throw paramError(KIND, "github_comment.issue", "is required: the run did not come from a pull request or an issue");
  }
  const [owner, repo] = ctx.repo.split("/");
  if (!owner || !repo) throw new NonRetriableError("INTERNAL", `the run's repository '${ctx.repo}' is not owner/name`);
  const github = requireGitHub(ctx, "notify github_comment");
  // GitHub takes no idempotency key for comments: a hidden marker naming the run and step lets a
  // later attempt of the same step (after a crash or a retry) find the comment instead of
  // posting it again. Anyone can type the marker (the run id is on the check run), so only a
  // comment whose author is the identity Sluice acts as counts; where that identity is not
  // known, no comment does (a retry may then post twice, never zero times).
  const marker = `<!-- sluice:notify ${ctx.runId}:${ctx.stepId} -->`;
  return withDeadline(ctx, async (deadline) => {
    const ownComment = async (login: string) => {
      const recent = await github.request("GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
        owner,
        repo,
        issue_number: issue,
        since: new Date(ctx.now() - DEDUP_WINDOW_MS).toISOString(),
        per_page: 100,
        request: { signal: deadline.signal },
      });
      return (recent.data as { id?: unknown; html_url?: unknown; body?: unknown; user?: { login?: unknown } | null }[]).find(
        (c) => typeof c.body === "string" && c.body.includes(marker) && typeof c.user?.login === "string" && sameLogin(c.user.login, login),
      );
    };
    try {
      const me = await github.identity?.();
      const found = me ? await ownComment(me.login) : undefined;
      const data = (found ??
        (
          await github.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
            owner,
            repo,
            issue_number: issue,
            body: `${body}\n\n${marker}`,
            request: { signal: deadline.signal },
          })
        ).data) as { id?: unknown; html_url?: unknown };
      return { outputs: { id: data.id, url: typeof data.html_url === "string" ? data.html_url : undefined, issue } };
    } catch (err) {
      if (deadline.signal.aborted) throw deadline.error();
      throw githubError("notify github_comment", err, ctx.now());
    }
  });
}

async function webhook(spec: Params, ctx: StepContext) {
  const conn = ctx.connection(reqString(KIND, spec, "connection"));
  if (conn.type !== "webhook") {
    throw paramError(KIND, "webhook.connection", `names '${conn.name}' of type ${conn.type}; a webhook needs type webhook`);
  }
  const target = conn.secretValue ?? conn.base_url;
  if (!target) throw paramError(KIND, "webhook.connection", `'${conn.name}' has no secret holding the webhook URL`);
  const text = optString(KIND, spec, "text");
  const hasBody = spec.body !== undefined && spec.body !== null;
  if ((text === undefined) === !hasBody) throw paramError(KIND, "webhook.text", "or 'webhook.body': give exactly one of them");
  const payload = hasBody ? spec.body : { text };
  const label = `webhook '${conn.name}'`;
  const hide = [target];
  try {
    hide.push(new URL(target).href);
  } catch {
    throw new NonRetriableError("PARAM_INVALID", `notify: the secret of connection '${conn.name}' is not a URL`, {
      connection: conn.name,
    });
  }
  return withDeadline(ctx, async (deadline) => {
    try {
      const reply = await httpRequest({
        method: "POST",
        url: target,
        headers: {
          "content-type": "application/json",
          "idempotency-key": ctx.idempotencyKey,
          "user-agent": "sluice",
        },
        body: JSON.stringify(payload),
        maxBytes: ANSWER_BYTES,
        oversize: "truncate",
        signal: deadline.signal,
        ssrf: ssrfOptions(ctx.policy, [target]),
      });
      if (reply.status < 200 || reply.status > 299) throw statusError(`notify ${label}`, reply, ctx.now());
      const answer = reply.truncated ? undefined : decodeBody(reply);
      const id = isRecord(answer) && (typeof answer.id === "string" || typeof answer.id === "number") ? answer.id
        : isRecord(answer) && typeof answer.ts === "string" ? answer.ts
        : ctx.idempotencyKey;
      return { outputs: { id, status: reply.status } };
    } catch (err) {
      throw scrub(err, hide, label);
    }
  });
}

/** The webhook URL is a secret: keep it out of messages and details, whatever its spelling. */
function scrub(err: unknown, secrets: string[], label: string): unknown {
  if (!(err instanceof SluiceError)) return err;
  const clean = (s: string): string => secrets.reduce((acc, sec) => acc.split(sec).join(`<${label}>`), s);
  const details: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err.details)) {
    if (k === "url") continue;
    details[k] = typeof v === "string" ? clean(v) : v;
  }
  const message = clean(err.message);
  if (err instanceof RetryAfterError) return new RetryAfterError(err.code, message, err.retryAfterMs, details);
  if (err instanceof NonRetriableError) return new NonRetriableError(err.code, message, details);
  return new SluiceError(err.code, message, details);
}
