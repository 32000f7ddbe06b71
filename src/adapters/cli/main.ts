/** The `sluice` command line: parse, dispatch to one module per command, print the report. */
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { Local } from "../../app/local.js";
import { SluiceError } from "../../core/errors.js";
import { parseDuration } from "../../core/flow/duration.js";
import { EXIT, errorReport, print, usage, type Io, type Report } from "./output.js";

export const HELP = `sluice — flows in .github/flows/, run by the same engine locally and in a GitHub App

usage: sluice <command> [--json]

  validate [path…]                       validate flows and config
  schema flow|config                     print a JSON Schema
  flows list [--ref REF]                 flows at a ref with their triggers
  run <flow> [--ref REF] [--input k=v]… [--inputs-file F] [--detach] [--follow] [--as LOGIN]
  runs list [--flow F] [--status S] [--limit N]
  runs show|events|cancel|retry <id>
  approve <run> [--step ID] [--as LOGIN] [--comment C] [--digest D]
  reject <run> [--step ID] [--as LOGIN] [--comment C]
  gates list | gates explain <run>
  callback <run> <step> [--body JSON]
  resources get <ref> [-o FILE]
  kv get <key> | kv set <key> <value> [--ttl D] [--if-version N] | kv list [prefix]   (--draft: drafts' namespace)
  secrets set NAME | secrets list
  worker [--once] [--poll 1s]            timers, retries, detached runs
  serve                                  the GitHub App server
  tokens create --login L [--repo owner/name] [--expires 90d]
                                         an API token for the server (printed once, stored hashed)
  tokens list | tokens revoke <id>

exit codes: 0 ok, 1 failed, 2 usage, 3 waiting, 4 not found, 5 infrastructure`;

const COMMON = { json: { type: "boolean" }, help: { type: "boolean", short: "h" } } as const;

const OPTIONS: Record<string, ParseArgsConfig["options"]> = {
  validate: {},
  schema: {},
  flows: { ref: { type: "string" } },
  run: {
    ref: { type: "string" },
    input: { type: "string", multiple: true },
    "inputs-file": { type: "string" },
    detach: { type: "boolean" },
    follow: { type: "boolean" },
    as: { type: "string" },
  },
  runs: { flow: { type: "string" }, status: { type: "string" }, limit: { type: "string" }, as: { type: "string" } },
  approve: { step: { type: "string" }, as: { type: "string" }, comment: { type: "string" }, digest: { type: "string" } },
  reject: { step: { type: "string" }, as: { type: "string" }, comment: { type: "string" }, digest: { type: "string" } },
  gates: {},
  callback: { body: { type: "string" } },
  resources: { output: { type: "string", short: "o" } },
  kv: { ttl: { type: "string" }, "if-version": { type: "string" }, draft: { type: "boolean" } },
  secrets: {},
  worker: { once: { type: "boolean" }, poll: { type: "string" } },
  serve: {},
  tokens: { login: { type: "string" }, repo: { type: "string" }, expires: { type: "string" } },
};


type Values = Record<string, string | boolean | string[] | undefined>;

export async function main(argv: string[], io: Io): Promise<number> {
  const command = argv[0];
  const wantsJson = argv.includes("--json");
  if (!command || command === "--help" || command === "-h" || command === "help") {
    io.stdout(HELP + "\n");
    return command ? EXIT.ok : EXIT.usage;
  }
  if (command === "--version") {
    io.stdout("sluice 0.1.0\n");
    return EXIT.ok;
  }
  const spec = OPTIONS[command];
  if (!spec) return print(errorReport(usage(`unknown command '${command}'; see sluice --help`)), io, wantsJson);
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv.slice(1), options: { ...COMMON, ...spec }, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] });
  } catch (e) {
    return print(errorReport(usage(e instanceof Error ? e.message : String(e))), io, wantsJson);
  }
  const json = values.json === true;
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  let local: Local | undefined;
  const needLocal = async () => (local ??= await (await import("../../app/local.js")).openLocal(io.cwd, io.env));
  try {
    const report = await dispatch(command, positionals, values, io, needLocal, json);
    return print(report, io, json);
  } catch (e) {
    // An unexpected error's stack helps only whoever debugs Sluice itself.
    if (!(e instanceof SluiceError) && io.env.LOG_LEVEL === "debug") io.stderr(`${e instanceof Error ? e.stack : String(e)}\n`);
    return print(errorReport(e), io, json);
  } finally {
    await local?.close();
  }
}

function durationArg(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch {
    throw usage(`${flag} takes a duration such as 500ms or 2s, got '${text}'`);
  }
}

function str(v: Values[string]): string | undefined {
  return typeof v === "string" ? v : undefined;
}

async function dispatch(command: string, args: string[], v: Values, io: Io, needLocal: () => Promise<Local>, json: boolean): Promise<Report> {
  // Command modules load on demand: \`sluice validate\` never loads the store or the executors.
  const { flowsList, kvCommand, resourcesGet, schemaCommand, secretsCommand } = await import("./data.js");
  const { validateCommand } = await import("./validate.js");
  const one = (what: string) => {
    const x = args[1] ?? args[0];
    if (!x) throw usage(`sluice ${command} needs ${what}`);
    return x;
  };
  switch (command) {
    case "validate":
      return validateCommand(args, io);
    case "schema":
      return schemaCommand(args[0]);
    case "flows":
      if (args[0] !== "list") throw usage("sluice flows list [--ref REF]");
      return flowsList(await needLocal(), str(v.ref));
    case "run": {
      const { runCommand } = await import("./runs.js");
      if (!args[0]) throw usage("sluice run <flow> [--ref REF] [--input k=v]…");
      return runCommand(
        await needLocal(),
        {
          flow: args[0],
          ...(str(v.ref) ? { ref: str(v.ref) } : {}),
          inputs: (v.input as string[] | undefined) ?? [],
          ...(str(v["inputs-file"]) ? { inputsFile: str(v["inputs-file"]) } : {}),
          detach: v.detach === true,
          follow: v.follow === true,
          json,
          ...(str(v.as) ? { as: str(v.as) } : {}),
        },
        io,
      );
    }
    case "runs": {
      const { actor, runsCancel, runsEvents, runsList, runsRetry, runsShow } = await import("./runs.js");
      const rt = (await needLocal()).runtime;
      const sub = args[0];
      const id = () => {
        if (!args[1]) throw usage(`sluice runs ${sub} <id>`);
        return args[1];
      };
      switch (sub) {
        case "list": {
          const limit = str(v.limit) === undefined ? undefined : Number(v.limit);
          if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw usage("--limit takes a positive whole number");
          return runsList(rt, { ...(str(v.flow) ? { flow: str(v.flow) } : {}), ...(str(v.status) ? { status: str(v.status) } : {}), ...(limit ? { limit } : {}) });
        }
        case "show":
          return runsShow(rt, id());
        case "events":
          return runsEvents(rt, id());
        case "cancel":
          return runsCancel(rt, id(), actor(str(v.as), io.env));
        case "retry":
          return runsRetry(rt, id(), actor(str(v.as), io.env));
        default:
          throw usage("sluice runs list|show|events|cancel|retry");
      }
    }
    case "approve":
    case "reject": {
      const { actor, decideCommand } = await import("./runs.js");
      if (!args[0]) throw usage(`sluice ${command} <run> [--step ID] [--as LOGIN]`);
      const rt = (await needLocal()).runtime;
      return decideCommand(rt, args[0], command, {
        as: actor(str(v.as), io.env),
        ...(str(v.step) ? { step: str(v.step) } : {}),
        ...(str(v.comment) ? { comment: str(v.comment) } : {}),
        ...(str(v.digest) ? { digest: str(v.digest) } : {}),
      });
    }
    case "gates": {
      const { gatesExplain, gatesList } = await import("./runs.js");
      const rt = (await needLocal()).runtime;
      if (args[0] === "list") return gatesList(rt);
      if (args[0] === "explain") return gatesExplain(rt, one("a run id"));
      throw usage("sluice gates list | gates explain <run>");
    }
    case "callback": {
      const { callbackCommand } = await import("./runs.js");
      if (!args[0] || !args[1]) throw usage("sluice callback <run> <step> [--body JSON]");
      return callbackCommand((await needLocal()).runtime, args[0], args[1], str(v.body));
    }
    case "resources":
      if (args[0] !== "get" || !args[1]) throw usage("sluice resources get <ref> [-o FILE]");
      return resourcesGet(await needLocal(), args[1], str(v.output));
    case "kv":
      return kvCommand(await needLocal(), args[0], args.slice(1), { ...(str(v.ttl) ? { ttl: str(v.ttl) } : {}), ...(str(v["if-version"]) ? { ifVersion: str(v["if-version"]) } : {}), draft: v.draft === true });
    case "secrets":
      return secretsCommand(await needLocal(), args[0], args.slice(1), io);
    case "worker":
      return (await import("./worker.js")).workerCommand(await needLocal(), { once: v.once === true, ...(str(v.poll) ? { pollMs: durationArg("--poll", str(v.poll)!) } : {}) }, io);
    case "serve":
      return (await import("./serve.js")).serveCommand(io);
    case "tokens":
      return (await import("./tokens.js")).tokensCommand(args[0], args.slice(1), {
        ...(str(v.login) !== undefined ? { login: str(v.login) } : {}),
        ...(str(v.repo) !== undefined ? { repo: str(v.repo) } : {}),
        ...(str(v.expires) !== undefined ? { expires: str(v.expires) } : {}),
      }, io);
    default:
      throw usage(`unknown command '${command}'`);
  }
}
