/**
 * `sluice init`: a first flow, the config, the JSON Schemas editors complete them with, and the
 * `.gitignore` entry for the local state. Existing flows and config are left alone; the schema
 * copies are Sluice's own files and are brought up to date.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { findRepoRoot } from "../../app/local.js";
import { CONFIG_PATH, FLOWS_DIR } from "../../ports/flow-source.js";
import { schemasDir } from "./data.js";
import { EXIT, type Io, type Report } from "./output.js";

/** Where the schema copies go, next to the config: `$schema` lines point at them, so editors work offline. */
export const SCHEMAS_AT = ".github/sluice";

export const HELLO_FLOW = `# yaml-language-server: $schema=../sluice/flow.schema.json
# Your first flow: compute a greeting, ask a person, then remember it.
# Run it with: sluice run hello --input who=you
# It stops at the approval (exit 3); someone other than you approves:
#   sluice gates explain <run>      # the evidence, who may approve, the digest
#   sluice approve <run> --as <login>
name: hello
description: Greet someone, with a person's approval before it is remembered.
on:
  manual:
    inputs:
      who: { type: string, default: world, description: Whom to greet }
steps:
  - id: greet
    function:
      input: { who: "\${{ inputs.who }}" }
      code: |
        return { message: \`Hello, \${input.who}!\` };
  - id: review
    wait:
      approval:
        title: Remember this greeting?
        summary: "\${{ steps.greet.outputs.result.message }}"
        evidence: ["\${{ steps.greet.outputs.result.message }}"]
  - id: remember
    kv:
      set: { key: last-greeting, value: "\${{ steps.greet.outputs.result.message }}" }
outputs:
  message: \${{ steps.greet.outputs.result.message }}
`;

export const CONFIG = `# yaml-language-server: $schema=sluice/config.schema.json
# Sluice's configuration, read only from the default branch (drafts too).
# Connections name external systems; their secrets live outside the repository
# (SLUICE_SECRET_<NAME>, or sluice secrets set NAME).
connections: {}
  # api: { type: http, base_url: https://api.example.com, secret: API_TOKEN }
policy:
  auto_approve: [read, notify, kv]    # never gated
  require_approval: [write]           # gated unless an approval in the run covers it
  approvers: { permission: write, min: 1 }
  allow_self_approval: false
`;

type Action = "created" | "kept" | "updated";

export function initCommand(io: Io): Report {
  const root = findRepoRoot(io.cwd);
  const files: { path: string; action: Action }[] = [];
  const write = (path: string, text: string, opts: { overwrite: boolean }) => {
    const abs = join(root, path);
    let action: Action = "created";
    if (existsSync(abs)) {
      if (!opts.overwrite || readFileSync(abs, "utf8") === text) {
        files.push({ path, action: "kept" });
        return;
      }
      action = "updated";
    }
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, text);
    files.push({ path, action });
  };
  write(`${FLOWS_DIR}/hello.yml`, HELLO_FLOW, { overwrite: false });
  write(CONFIG_PATH, CONFIG, { overwrite: false });
  for (const which of ["flow", "config"]) {
    write(`${SCHEMAS_AT}/${which}.schema.json`, readFileSync(join(schemasDir(), `${which}.schema.json`), "utf8"), { overwrite: true });
  }

  const ignore = join(root, ".gitignore");
  const current = existsSync(ignore) ? readFileSync(ignore, "utf8") : "";
  const ignored = current.split(/\r?\n/).some((l) => /^\/?\.sluice\/?$/.test(l.trim()));
  if (!ignored) appendFileSync(ignore, `${current && !current.endsWith("\n") ? "\n" : ""}# Sluice's local state (runs, kv, secrets)\n.sluice/\n`);
  files.push({ path: ".gitignore", action: ignored ? "kept" : current ? "updated" : "created" });

  const lines = files.map((f) => `${f.action.padEnd(7)}  ${f.path}`);
  lines.push(
    "",
    "next: commit them (flows run from commits), then try the flow:",
    "  git add .github .gitignore && git commit -m 'Add Sluice'",
    "  sluice validate",
    "  sluice run hello --input who=you",
  );
  return { kind: "Init", ok: true, data: { root, files }, exitCode: EXIT.ok, human: lines.join("\n") };
}
