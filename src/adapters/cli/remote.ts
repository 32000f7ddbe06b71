/**
 * The CLI against a server (`--server URL`, or SLUICE_SERVER with SLUICE_TOKEN): each command
 * becomes a request to the server's /api/v1, whose answer is the sluice/v1 envelope local mode
 * prints for the same command; the exit code is read from it as local mode derives its own, so
 * a script cannot tell the two apart. The person is the token's login (there is no --as).
 */
import { writeFileSync } from "node:fs";
import { SluiceError } from "../../core/errors.js";
import type { RunView } from "../../app/run-view.js";
import { formatRun, gateLines, localTime, statusText, type GateExplanation } from "./format.js";
import { EXIT, exitCodeFor, paint, table, usage, type Io, type Report } from "./output.js";

type Values = Record<string, string | boolean | string[] | undefined>;

export interface Remote {
  /** The server's base URL, without a trailing slash. */
  server: string;
  token: string;
}

/** The server and token to use: --server, else SLUICE_SERVER; the token from SLUICE_TOKEN. */
export function remoteOf(server: string, env: NodeJS.ProcessEnv): Remote {
  let url: URL;
  try {
    url = new URL(server);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    throw usage(`--server (or SLUICE_SERVER) takes the server's http(s) URL, not '${server}'`);
  }
  const token = env.SLUICE_TOKEN;
  if (!token) throw usage(`acting on ${url.origin} needs an API token: set SLUICE_TOKEN (made on the server with 'sluice tokens create')`);
  return { server: server.replace(/\/+$/, ""), token };
}

interface Envelope {
  apiVersion: string;
  kind: string;
  ok: boolean;
  data: any;
  error: { code: string; message: string; details: Record<string, unknown> } | null;
}

/** One API request; the envelope it answers with (whatever the status: the envelope says what happened). */
async function request(remote: Remote, method: string, path: string, body?: unknown, raw?: string): Promise<Envelope> {
  let r: Response;
  try {
    r = await fetch(remote.server + path, {
      method,
      headers: { authorization: `Bearer ${remote.token}`, accept: "application/json", ...(body !== undefined || raw !== undefined ? { "content-type": "application/json" } : {}) },
      ...(raw !== undefined ? { body: raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message;
    throw new SluiceError("CONNECTION_FAILED", `cannot reach the server at ${remote.server}: ${cause ?? (e instanceof Error ? e.message : String(e))}`, { server: remote.server });
  }
  const text = await r.text();
  try {
    const doc = JSON.parse(text) as Envelope;
    if (doc && typeof doc === "object" && doc.apiVersion === "sluice/v1") return doc;
  } catch {
    // not JSON: said below
  }
  throw new SluiceError("CONNECTION_FAILED", `${remote.server} is not a Sluice server, or not this version (${method} ${path} answered ${r.status} without a sluice/v1 envelope)`, { server: remote.server, status: r.status });
}

const q = (params: Record<string, string | undefined | false>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) s.set(k, v);
  const text = s.toString();
  return text ? `?${text}` : "";
};
const seg = encodeURIComponent;

function str(v: Values[string]): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** What a person reads of an answer: as local mode shows the same kind. */
function humanOf(doc: Envelope, io: Io): string {
  const p = paint(io.colour);
  if (!doc.ok && doc.data === null) return `error ${doc.error?.code}: ${doc.error?.message}`;
  const d = doc.data;
  switch (doc.kind) {
    case "Run":
      return [...((d.notes as string[] | undefined) ?? []).map((n) => `note: ${n}`), formatRun(d as RunView, { colour: io.colour })].join("\n");
    case "RunList":
      return d.runs.length
        ? table([["id", "flow", "status", "release", "created"].map((h) => p.dim(h)), ...d.runs.map((r: any) => [r.id, r.flow, statusText(r.status, p), `${r.release.kind} ${String(r.release.sha).slice(0, 7)}`, localTime(r.created_at)])])
        : "no runs";
    case "EventList":
      return table(d.events.map((e: any) => [String(e.seq), localTime(e.at), e.type]));
    case "GateList":
      return d.gates.length
        ? table([["run", "flow", "step", "quorum", "deadline", "title"], ...d.gates.map((g: any) => [g.run, g.flow, g.step, g.quorum, g.deadline ? localTime(g.deadline) : "none", g.title])])
        : "no open gates";
    case "GateExplanation":
      return d.gates.length ? d.gates.flatMap((g: GateExplanation) => gateLines(d.run, g, p, "")).join("\n") : `run ${d.run} has no open gate (status ${d.status})`;
    case "FlowList":
      return [`${d.release.kind} release ${d.release.ref} @ ${String(d.release.sha).slice(0, 7)}`, d.flows.length ? table([["flow", "triggers", "steps", "file"], ...d.flows.map((f: any) => [f.name, f.triggers.join(", "), String(f.steps), f.path])]) : "no flows in .github/flows/"].join("\n");
    case "KvEntry":
      return JSON.stringify(d.value);
    case "KvList":
      return d.entries.length ? table([["key", "version", "value"], ...d.entries.map((e: any) => [e.key, String(e.version), JSON.stringify(e.value).slice(0, 80)])]) : "no keys";
    case "Resource":
      return d.file ? `wrote ${d.size} bytes to ${d.file}` : String(d.content);
    default:
      return JSON.stringify(d, null, 2);
  }
}

/** Local mode's exit code for the same answer. */
function exitOf(doc: Envelope, command: string, sub: string | undefined, detach: boolean): number {
  if (!doc.ok && doc.data === null) return exitCodeFor(doc.error?.code ?? "INTERNAL");
  if (doc.kind === "Run") {
    // A cancel that was done is success, whatever the run's status says; a detached run was created.
    if ((command === "runs" && sub === "cancel") || (command === "run" && detach)) return EXIT.ok;
    const status = String(doc.data?.status);
    return status === "succeeded" ? EXIT.ok : status === "waiting" || status === "queued" || status === "running" ? EXIT.waiting : EXIT.failed;
  }
  return doc.ok ? EXIT.ok : exitCodeFor(doc.error?.code ?? "INTERNAL");
}

/** One request, as the report the same command makes in local mode (for the MCP server's tools too). */
export async function remoteCall(
  remote: Remote,
  io: Io,
  req: { method: string; path: string; body?: unknown },
  as: { command: string; sub?: string; detach?: boolean },
): Promise<Report> {
  const doc = await request(remote, req.method, req.path, req.body);
  return report(doc, io, exitOf(doc, as.command, as.sub, as.detach === true));
}

function report(doc: Envelope, io: Io, exitCode: number): Report {
  // The API names the route's kind on a failure too; the CLI's failure without data is kind Error.
  return {
    kind: !doc.ok && doc.data === null ? "Error" : doc.kind,
    ok: doc.ok,
    data: doc.data ?? null,
    ...(doc.error ? { error: doc.error } : {}),
    exitCode,
    human: humanOf(doc, io),
    ...(!doc.ok && doc.data === null ? { errorLine: true } : {}),
  };
}

/** `sluice <command> --server URL`: the same command, done by the server. */
export async function remoteCommand(command: string, args: string[], v: Values, io: Io, remote: Remote): Promise<Report> {
  if (str(v.as) !== undefined) throw usage("--as is for local mode: against a server you act as your token's login");
  const repo = str(v.repo) ?? io.env.SLUICE_REPO;
  const sub = args[0];
  const need = (x: string | undefined, line: string) => {
    if (!x) throw usage(line);
    return x;
  };
  let doc: Envelope;
  switch (command) {
    case "flows":
      if (sub !== "list") throw usage("sluice flows list [--ref REF]");
      doc = await request(remote, "GET", `/api/v1/flows${q({ repo, ref: str(v.ref) })}`);
      break;
    case "run": {
      const flow = need(sub, "sluice run <flow> [--ref REF] [--input k=v]… (see sluice run --help)");
      const follow = v.follow === true && v.detach !== true;
      const { parseInputs } = await import("./runs.js");
      const inputs = parseInputs((v.input as string[] | undefined) ?? [], str(v["inputs-file"]), io.cwd);
      // Followed, the server's worker runs it and this process watches its journal.
      doc = await request(remote, "POST", "/api/v1/runs", { flow, inputs, ...(repo ? { repo } : {}), ...(str(v.ref) ? { ref: str(v.ref) } : {}), ...(v.detach === true || follow ? { detach: true } : {}) });
      if (follow && doc.ok && doc.kind === "Run") doc = await followRun(remote, doc.data as RunView, io, v.json === true);
      break;
    }
    case "runs": {
      if (sub === "list") {
        doc = await request(remote, "GET", `/api/v1/runs${q({ flow: str(v.flow), status: str(v.status), limit: str(v.limit), repo })}`);
        break;
      }
      const id = need(args[1], `sluice runs ${sub ?? "show"} <id>`);
      if (sub === "show") doc = await request(remote, "GET", `/api/v1/runs/${seg(id)}`);
      else if (sub === "events") doc = await request(remote, "GET", `/api/v1/runs/${seg(id)}/events`);
      else if (sub === "cancel" || sub === "retry") doc = await request(remote, "POST", `/api/v1/runs/${seg(id)}/${sub}`);
      else throw usage("sluice runs list|show|events|cancel|retry (see sluice runs --help)");
      break;
    }
    case "approve":
    case "reject": {
      const id = need(sub, `sluice ${command} <run> [--step ID] [--comment C] [--digest D] (see sluice ${command} --help)`);
      doc = await request(remote, "POST", `/api/v1/runs/${seg(id)}/${command}`, {
        ...(str(v.step) ? { step: str(v.step) } : {}),
        ...(str(v.comment) ? { comment: str(v.comment) } : {}),
        ...(str(v.digest) ? { digest: str(v.digest) } : {}),
      });
      break;
    }
    case "gates":
      if (sub === "list") doc = await request(remote, "GET", `/api/v1/gates${q({ repo })}`);
      else if (sub === "explain") doc = await request(remote, "GET", `/api/v1/runs/${seg(need(args[1], "sluice gates explain <run>"))}/gates`);
      else throw usage("sluice gates list | gates explain <run>");
      break;
    case "callback": {
      if (!sub || !args[1]) throw usage("sluice callback <run> <step> [--body JSON]");
      doc = await request(remote, "POST", `/api/v1/runs/${seg(sub)}/callbacks/${seg(args[1])}`, undefined, str(v.body) ?? "{}");
      break;
    }
    case "resources":
      if (sub !== "get" || !args[1]) throw usage("sluice resources get <ref> [-o FILE]");
      return resourcesGet(remote, args[1], str(v.output), str(v.run), io);
    case "kv":
      doc = await kv(remote, sub, args.slice(1), v, repo);
      break;
    default:
      throw usage(`sluice ${command} does not act on a server`);
  }
  return report(doc, io, exitOf(doc, command, sub, v.detach === true));
}

/** Whether a run needs nobody but the server to go on: not ended, and waiting for no person, callback or event. */
function goesOn(run: RunView): boolean {
  if (run.status === "succeeded" || run.status === "failed" || run.status === "cancelled" || run.status === "timed_out") return false;
  return !run.gate && !run.steps.some((s) => s.kind === "wait" && s.status === "waiting");
}

/**
 * `run --follow` against a server: its journal as it grows (a RunEvent line per event with
 * --json, else a line per event after the run's id), until the run ends or waits for a person, a
 * callback or an event, as local mode follows it; then the run, as local mode ends.
 */
async function followRun(remote: Remote, started: RunView, io: Io, json: boolean): Promise<Envelope> {
  const id = started.id;
  if (!json) io.stdout(`run ${id}  ${started.flow}  ${started.release.kind} ${started.release.ref} @ ${started.release.sha.slice(0, 7)}\n`);
  // From the first event after the run's creation (seq 1), as local mode prints them.
  let seen = 1;
  for (let pause = 100; ; pause = Math.min(pause * 2, 1_000)) {
    // The run first: the journal read after it holds every event up to the state it shows.
    const run = await request(remote, "GET", `/api/v1/runs/${seg(id)}`);
    if (!run.ok) return run;
    const events = await request(remote, "GET", `/api/v1/runs/${seg(id)}/events`);
    if (!events.ok) return events;
    for (const { seq, at, ...e } of (events.data.events as { seq: number; at: string; type: string }[]).slice(seen)) {
      seen = seq;
      pause = 100;
      if (json) io.stdout(JSON.stringify({ apiVersion: "sluice/v1", kind: "RunEvent", run: id, event: { ...e, at: Date.parse(at) } }) + "\n");
      else io.stdout(`${localTime(at)}  ${e.type}${"step" in e ? ` ${String(e.step)}` : ""}\n`);
    }
    if (!goesOn(run.data as RunView)) return run;
    await new Promise((r) => setTimeout(r, pause));
  }
}

async function kv(remote: Remote, sub: string | undefined, args: string[], v: Values, repo: string | undefined): Promise<Envelope> {
  const where = { repo, draft: v.draft === true && "true" };
  switch (sub) {
    case "get":
      if (!args[0]) throw usage("sluice kv get <key>");
      return request(remote, "GET", `/api/v1/kv/${seg(args[0])}${q(where)}`);
    case "list":
      return request(remote, "GET", `/api/v1/kv${q({ ...where, prefix: args[0] })}`);
    case "set": {
      const { key, value } = (await import("./data.js")).kvSetArgs(args);
      const ifVersion = str(v["if-version"]);
      if (ifVersion !== undefined && !/^-?[0-9]+$/.test(ifVersion)) throw usage("--if-version takes a whole number");
      return request(remote, "PUT", `/api/v1/kv/${seg(key)}${q(where)}`, { value, ...(str(v.ttl) ? { ttl: str(v.ttl) } : {}), ...(ifVersion !== undefined ? { if_version: Number(ifVersion) } : {}) });
    }
    default:
      throw usage("sluice kv get <key> | set <key> <value> [--ttl 10m] [--if-version N] | list [prefix]  (--draft: the drafts' namespace)");
  }
}

/** `resources get`: the envelope, or with -o the bytes as they are, written to the file. */
async function resourcesGet(remote: Remote, ref: string, out: string | undefined, run: string | undefined, io: Io): Promise<Report> {
  const hex = /^res:\/\/sha256\/([0-9a-f]{64})$/.exec(ref)?.[1];
  if (!hex) throw new SluiceError("NOT_FOUND", `no resource ${ref}`, { ref });
  const path = `/api/v1/resources/${hex}${q({ run })}`;
  if (!out) {
    const doc = await request(remote, "GET", path);
    return report(doc, io, exitOf(doc, "resources", "get", false));
  }
  const r = await fetch(remote.server + path, { headers: { authorization: `Bearer ${remote.token}`, accept: "application/octet-stream" } }).catch((e: unknown) => {
    throw new SluiceError("CONNECTION_FAILED", `cannot reach the server at ${remote.server}: ${e instanceof Error ? e.message : String(e)}`);
  });
  if (r.headers.get("content-type") !== "application/octet-stream") {
    const doc = (await r.json().catch(() => undefined)) as Envelope | undefined;
    if (!doc?.apiVersion) throw new SluiceError("CONNECTION_FAILED", `${remote.server} answered ${r.status} without a sluice/v1 envelope`);
    return report(doc, io, exitOf(doc, "resources", "get", false));
  }
  const data = new Uint8Array(await r.arrayBuffer());
  writeFileSync(out, data);
  const doc: Envelope = { apiVersion: "sluice/v1", kind: "Resource", ok: true, data: { ref, size: data.byteLength, media_type: r.headers.get("x-sluice-media-type") ?? "application/octet-stream", file: out }, error: null };
  return report(doc, io, EXIT.ok);
}
