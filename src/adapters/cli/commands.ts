/**
 * Every command's options, usage, description and examples: one table, from which the parser
 * takes its options and `sluice <command> --help` its text.
 */
import type { ParseArgsConfig } from "node:util";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in help (`--ref REF`). */
  value?: string;
  help: string;
}

export interface CommandSpec {
  usage: string[];
  summary: string;
  /** More lines of explanation, after the summary. */
  details?: string[];
  options: Record<string, OptionSpec>;
  examples: string[];
}

const AS: OptionSpec = { type: "string", value: "LOGIN", help: "act as this person (default: SLUICE_USER, else your OS user)" };
const JSON_OPT: OptionSpec = { type: "boolean", help: "print one sluice/v1 JSON document (schemas/cli/) instead of text" };
const HELP_OPT: OptionSpec = { type: "boolean", short: "h", help: "show this help" };
const SERVER_OPT: OptionSpec = { type: "string", value: "URL", help: "act on this Sluice server instead of the local store (or SLUICE_SERVER; the token in SLUICE_TOKEN)" };
/** With --server, the repository a command is about (default: SLUICE_REPO, else the token's own). */
const REPO_OPT: OptionSpec = { type: "string", value: "owner/name", help: "with --server: the repository (default SLUICE_REPO, else the token's own)" };

export const COMMON: Record<string, OptionSpec> = { json: JSON_OPT, help: HELP_OPT };

export const COMMANDS: Record<string, CommandSpec> = {
  init: {
    usage: ["sluice init"],
    summary: "scaffold .github/flows/hello.yml and .github/sluice.yml, and add .sluice/ to .gitignore",
    details: ["Existing files are left as they are. Commit what it writes: flows run from commits."],
    options: {},
    examples: ["sluice init && git add .github .gitignore && git commit -m 'Add Sluice' && sluice run hello"],
  },
  validate: {
    usage: ["sluice validate [path…]"],
    summary: "validate flows and config (default: .github/flows/ and .github/sluice.yml)",
    details: [
      "Flows are checked against the repository's .github/sluice.yml (its connections and deny rules),",
      "also when single files are named, as pre-commit hooks and editors do; the report names the config used.",
    ],
    options: {},
    examples: ["sluice validate", "sluice validate .github/flows/deploy.yml --json"],
  },
  schema: {
    usage: ["sluice schema flow|config"],
    summary: "print the JSON Schema of a flow file or of .github/sluice.yml",
    options: {},
    examples: ["sluice schema flow > flow.schema.json"],
  },
  flows: {
    usage: ["sluice flows list [--ref REF]"],
    summary: "the flows at a ref with their triggers, and each schedule's next times in its time zone",
    options: { server: SERVER_OPT, ref: { type: "string", value: "REF", help: "a branch, tag or commit (default: the head of the default branch)" }, repo: REPO_OPT },
    examples: ["sluice flows list", "sluice flows list --ref my-branch"],
  },
  run: {
    usage: ["sluice run <flow> [--ref REF] [--input k=v]… [--inputs-file F] [--detach] [--follow] [--as LOGIN]"],
    summary: "start a run and run it in this process until it ends or waits for a person or a callback",
    details: [
      "Live from the head of the default branch; --ref runs a draft. Sleeps and retry backoffs due within",
      "30 s are waited out here; longer ones are left to `sluice worker` (or --follow waits for everything).",
      "Exit 0 succeeded, 1 failed, 2 bad inputs, 3 waiting (a gate, a callback, a long sleep).",
    ],
    options: {
      server: SERVER_OPT,
      ref: { type: "string", value: "REF", help: "run the flow at this branch, tag or commit: a draft unless it is the default branch's head" },
      input: { type: "string", multiple: true, value: "k=v", help: "an input (repeatable); values are coerced to the input's type" },
      "inputs-file": { type: "string", value: "FILE", help: "inputs from a YAML or JSON mapping" },
      detach: { type: "boolean", help: "create the run and leave it to a worker (sluice worker)" },
      follow: { type: "boolean", help: "print the run id first, then each step as it goes; wait through sleeps" },
      as: AS,
      repo: REPO_OPT,
    },
    examples: ["sluice run hello --input who=you", "sluice run deploy --ref my-branch --input version=1.4.0 --follow"],
  },
  runs: {
    usage: ["sluice runs list [--flow F] [--status S] [--limit N]", "sluice runs show|events|cancel|retry <id> [--as LOGIN]"],
    summary: "history (list, show, events) and control (cancel, retry) of runs",
    options: {
      server: SERVER_OPT,
      flow: { type: "string", value: "F", help: "list: only runs of this flow" },
      status: { type: "string", value: "S", help: "list: only runs in these statuses (comma-separated: queued, running, waiting, succeeded, failed, cancelled, timed_out)" },
      limit: { type: "string", value: "N", help: "list: at most N runs (default 20)" },
      as: AS,
      repo: { ...REPO_OPT, help: "list, with --server: only this repository's runs" },
    },
    examples: ["sluice runs list --status waiting,failed", "sluice runs show <id>", "sluice runs cancel <id>"],
  },
  approve: {
    usage: ["sluice approve <run> [--step ID] [--as LOGIN] [--comment C] [--digest D]"],
    summary: "approve a run's open gate and continue the run in this process",
    details: ["You cannot approve a run you triggered unless the gate and the default branch's policy allow it."],
    options: {
      server: SERVER_OPT,
      step: { type: "string", value: "ID", help: "the gate's step, when several are open" },
      as: AS,
      comment: { type: "string", value: "C", help: "a comment kept with the decision" },
      digest: { type: "string", value: "D", help: "the evidence digest you saw (sluice gates explain); refused if the evidence changed" },
    },
    examples: ["sluice approve <run> --as reviewer", "sluice approve <run> --as reviewer --digest 3f2a…"],
  },
  reject: {
    usage: ["sluice reject <run> [--step ID] [--as LOGIN] [--comment C] [--digest D]"],
    summary: "reject a run's open gate: the run fails (or goes on as its flow says)",
    options: {
      server: SERVER_OPT,
      step: { type: "string", value: "ID", help: "the gate's step, when several are open" },
      as: AS,
      comment: { type: "string", value: "C", help: "why (kept with the decision)" },
      digest: { type: "string", value: "D", help: "the evidence digest you saw" },
    },
    examples: ["sluice reject <run> --as reviewer --comment 'wrong version'"],
  },
  gates: {
    usage: ["sluice gates list", "sluice gates explain <run>"],
    summary: "open gates; why a run is blocked: the evidence, who may still approve, quorum, deadline, stale approvals",
    options: { server: SERVER_OPT, repo: { ...REPO_OPT, help: "list, with --server: only this repository's gates" } },
    examples: ["sluice gates list", "sluice gates explain <run>"],
  },
  callback: {
    usage: ["sluice callback <run> <step> [--body JSON]"],
    summary: "complete a callback wait (checked against its schema; a second one is a no-op)",
    details: ["The same as POST <callback url> with the body; `sluice worker` serves those URLs locally."],
    options: { server: SERVER_OPT, body: { type: "string", value: "JSON", help: "the callback's JSON body (default {})" } },
    examples: [`sluice callback <run> result --body '{"ok": true}'`],
  },
  resources: {
    usage: ["sluice resources get <ref> [-o FILE]"],
    summary: "a large output kept as a resource (res://sha256/…)",
    options: {
      server: SERVER_OPT,
      output: { type: "string", short: "o", value: "FILE", help: "write it to FILE instead of printing it" },
      run: { type: "string", value: "ID", help: "with --server: the run it came from (needed with a token limited to one repository)" },
    },
    examples: ["sluice resources get res://sha256/9f86d0… -o out.json"],
  },
  kv: {
    usage: ["sluice kv get <key>", "sluice kv set <key> <value> [--ttl D] [--if-version N]", "sluice kv list [prefix]"],
    summary: "the repository's key-value store (what kv steps read and write); a missing key exits 4",
    options: {
      server: SERVER_OPT,
      ttl: { type: "string", value: "D", help: "set: expire after this duration (10m, 7d)" },
      "if-version": { type: "string", value: "N", help: "set: only if the key is at version N (0: only if absent)" },
      draft: { type: "boolean", help: "the drafts' namespace instead of the live one" },
      repo: REPO_OPT,
    },
    examples: ["sluice kv set counter 1", "sluice kv get counter --json", "sluice kv list --draft"],
  },
  secrets: {
    usage: ["sluice secrets set NAME", "sluice secrets list"],
    summary: "connection secrets, stored encrypted under SLUICE_MASTER_KEY (the value is read from standard input)",
    options: {},
    examples: [`printf %s "$TOKEN" | sluice secrets set GH_TOKEN`],
  },
  worker: {
    usage: ["sluice worker [--once] [--poll 1s]"],
    summary: "runs what waits on time or on the world, until stopped: timers, retries, detached runs, schedules, callbacks",
    details: [
      "Starts the live release's on.schedule triggers (each tick once), logs one line per step transition,",
      "and serves POST /callbacks/<token> on 127.0.0.1:SLUICE_WORKER_PORT (3100), where local runs' callback URLs point.",
    ],
    options: {
      once: { type: "boolean", help: "advance what is due now, then exit (no schedules, no port)" },
      poll: { type: "string", value: "D", help: "how often to look for due work when nothing wakes it (default 1s)" },
    },
    examples: ["sluice worker", "SLUICE_WORKER_PORT=4000 sluice worker"],
  },
  mcp: {
    usage: ["sluice mcp [--server URL]"],
    summary: "a Model Context Protocol server on stdio, so agents use Sluice natively",
    details: [
      "Tools: list_flows, validate, start_run, get_run, get_run_events, explain_gate, complete_callback, get_resource.",
      "No tool approves or rejects: agents request, humans decide. Runs it starts are triggered by SLUICE_MCP_ACTOR (default agent).",
      "With --server (or SLUICE_SERVER) and SLUICE_TOKEN the tools act on that server through its API, as the token's login",
      "(make it an agent's token: sluice tokens create --agent); validate still checks the local checkout.",
    ],
    options: { server: SERVER_OPT },
    examples: [`{"mcpServers": {"sluice": {"command": "sluice", "args": ["mcp"], "cwd": "/path/to/your/repo"}}}    (an MCP client's config)`],
  },
  serve: {
    usage: ["sluice serve"],
    summary: "the server: GitHub App (when APP_ID and PRIVATE_KEY are set), worker, scheduler, callbacks, HTTP API, run pages",
    options: {},
    examples: ["PORT=3000 SLUICE_PUBLIC_URL=https://sluice.example.com sluice serve"],
  },
  tokens: {
    usage: ["sluice tokens create --login L [--agent] [--repo owner/name] [--expires 90d]", "sluice tokens list", "sluice tokens revoke <id>"],
    summary: "API tokens for the server's API and run routes (printed once, stored hashed)",
    details: ["A person's token decides gates as that login, under the same rules as on GitHub; an agent's (--agent) starts runs and reads, never decides."],
    options: {
      login: { type: "string", value: "L", help: "create: the GitHub login the token acts as" },
      agent: { type: "boolean", help: "create: an agent's token: it may start runs and read, never approve or reject" },
      repo: { type: "string", value: "owner/name", help: "create: limit the token to one repository" },
      expires: { type: "string", value: "D", help: "create: expire after this duration (e.g. 90d)" },
    },
    examples: ["sluice tokens create --login alice --repo acme/app --expires 90d", "sluice tokens create --agent --login my-bot --repo acme/app"],
  },
};

/** The parser's options for a command, with --json and --help. */
export function parserOptions(command: string): NonNullable<ParseArgsConfig["options"]> {
  const spec = COMMANDS[command];
  const out: NonNullable<ParseArgsConfig["options"]> = {};
  for (const [name, o] of Object.entries({ ...COMMON, ...(spec?.options ?? {}) })) {
    out[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  }
  return out;
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const heads = Object.entries(options).map(([name, o]) => `${o.short ? `-${o.short}, ` : ""}--${name}${o.value ? ` ${o.value}` : ""}`);
  const width = Math.max(...heads.map((h) => h.length));
  return Object.values(options).map((o, i) => `  ${heads[i]!.padEnd(width)}  ${o.help}`);
}

/** `sluice <command> --help`. */
export function commandHelp(command: string): string {
  const spec = COMMANDS[command]!;
  return [
    `usage: ${spec.usage[0]}`,
    ...spec.usage.slice(1).map((u) => `       ${u}`),
    "",
    spec.summary,
    ...(spec.details ?? []),
    "",
    "options:",
    // --server last, beside --json: it changes where the command acts, not what it does.
    ...optionLines((({ server, ...own }) => ({ ...own, ...(server ? { server } : {}), ...COMMON }))(spec.options)),
    "",
    spec.examples.length === 1 ? "example:" : "examples:",
    ...spec.examples.map((e) => `  ${e}`),
  ].join("\n");
}

/** `sluice --help`: every command in a line. */
export function mainHelp(): string {
  const rows = Object.entries(COMMANDS).map(([name, spec]) => [name, spec.summary] as const);
  const width = Math.max(...rows.map(([n]) => n.length));
  return [
    "sluice — flows in .github/flows/, run by the same engine locally and in a GitHub App",
    "",
    "usage: sluice [--server URL] <command> [options] [--json]",
    "",
    ...rows.map(([n, s]) => `  ${n.padEnd(width)}  ${s}`),
    "",
    "`sluice <command> --help` shows a command's options and an example.",
    "exit codes: 0 ok, 1 failed, 2 usage, 3 waiting, 4 not found, 5 infrastructure",
    "environment: SLUICE_HOME (state, default .sluice/), DATABASE_URL (PostgreSQL), SLUICE_USER, SLUICE_WORKER_PORT, NO_COLOR, FORCE_COLOR,",
    "  SLUICE_SERVER (or --server) and SLUICE_TOKEN (act on a server: flows, run, runs, approve, reject, gates, callback, resources, kv), SLUICE_REPO",
  ].join("\n");
}
