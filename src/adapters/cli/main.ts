/**
 * The `sluice` command line: parse, dispatch to one module per command, print the report.
 * Command modules load on demand, so a start pays only for the command it runs.
 */
import { parseArgs } from "node:util";
import type { Local } from "../../app/local.js";
import { SluiceError } from "../../core/errors.js";
import { parseDuration } from "../../core/flow/duration.js";
import { RUN_STATUSES } from "../../ports/run-store.js";
import { COMMANDS, commandHelp, mainHelp, parserOptions } from "./commands.js";
import { EXIT, errorReport, print, usage, type Io, type Report } from "./output.js";

export const VERSION = "0.1.0";

/** Whether a command acts on a server with --server: those whose options take it (mcp serves its own way). */
const actsRemotely = (command: string) => command !== "mcp" && "server" in (COMMANDS[command]?.options ?? {});

type Values = Record<string, string | boolean | string[] | undefined>;

/** node:util's parse errors, as one line of Sluice's own. */
function parseError(command: string, e: unknown): SluiceError {
  const message = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string }).code;
  const option = /'(-{1,2}[^' ]+)/.exec(message)?.[1];
  const see = `see sluice ${command} --help`;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return usage(`sluice ${command}: unknown option '${option ?? message}' (${see})`);
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    return usage(/argument missing/.test(message) ? `sluice ${command}: ${option ?? "an option"} needs a value (${see})` : `sluice ${command}: ${option ?? "an option"} takes no value (${see})`);
  }
  return usage(`sluice ${command}: ${message} (${see})`);
}

/**
 * `sluice --server URL <command> …`, a global flag before the command as `gh` and `kubectl` take
 * one, is `sluice <command> --server URL …` (a command without a remote mode then says so).
 */
function serverFirst(argv: string[]): string[] {
  const [first, second] = argv;
  if (first === "--server" && argv.length > 2) return [argv[2]!, "--server", second!, ...argv.slice(3)];
  if (first?.startsWith("--server=") && second !== undefined) return [second, first, ...argv.slice(2)];
  return argv;
}

export async function main(args: string[], io: Io): Promise<number> {
  const argv = serverFirst(args);
  const command = argv[0];
  const wantsJson = argv.includes("--json");
  if (!command || command === "--help" || command === "-h") {
    io.stdout(mainHelp() + "\n");
    return command ? EXIT.ok : EXIT.usage;
  }
  if (command === "help") {
    const topic = argv[1];
    if (topic && COMMANDS[topic]) io.stdout(commandHelp(topic) + "\n");
    else if (topic) return print(errorReport(usage(`unknown command '${topic}'; see sluice --help`)), io, wantsJson);
    else io.stdout(mainHelp() + "\n");
    return EXIT.ok;
  }
  if (command === "--version" || command === "-V") {
    io.stdout(`sluice ${VERSION}\n`);
    return EXIT.ok;
  }
  if (!COMMANDS[command]) return print(errorReport(usage(`unknown command '${command}'; see sluice --help`)), io, wantsJson);
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv.slice(1), options: parserOptions(command), allowPositionals: true, strict: true }) as { values: Values; positionals: string[] });
  } catch (e) {
    return print(errorReport(parseError(command, e)), io, wantsJson);
  }
  const json = values.json === true;
  if (values.help) {
    io.stdout(commandHelp(command) + "\n");
    return EXIT.ok;
  }
  // Against a server (--server, or SLUICE_SERVER): the commands that have an API go there; the
  // others take no --server and work on the checkout (validate, init) or the server's own machine.
  const server = actsRemotely(command) ? (str(values.server) ?? (io.env.SLUICE_SERVER || undefined)) : undefined;
  if (server !== undefined) {
    try {
      const remote = await import("./remote.js");
      return print(await remote.remoteCommand(command, positionals, values, io, remote.remoteOf(server, io.env)), io, json);
    } catch (e) {
      return print(errorReport(e), io, json);
    }
  }
  let local: Local | undefined;
  const longRunning = command === "worker" || command === "mcp";
  const needLocal = async () => (local ??= await (await import("../../app/local.js")).openLocal(io.cwd, io.env, { longRunning }));
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
  const one = (what: string) => {
    const x = args[1] ?? args[0];
    if (!x) throw usage(`sluice ${command} needs ${what}`);
    return x;
  };
  const runtime = async () => (await needLocal()).runtime();
  switch (command) {
    case "init":
      return (await import("./init.js")).initCommand(io);
    case "validate":
      return (await import("./validate.js")).validateCommand(args, io);
    case "schema":
      return (await import("./data.js")).schemaCommand(args[0]);
    case "flows":
      if (args[0] !== "list") throw usage("sluice flows list [--ref REF]");
      return (await import("./data.js")).flowsList(await needLocal(), str(v.ref));
    case "run": {
      if (!args[0]) throw usage("sluice run <flow> [--ref REF] [--input k=v]… (see sluice run --help)");
      const { runCommand } = await import("./runs.js");
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
      const sub = args[0];
      const id = () => {
        if (!args[1]) throw usage(`sluice runs ${sub} <id>`);
        return args[1];
      };
      if (sub === "list") {
        const limit = str(v.limit) === undefined ? undefined : Number(v.limit);
        if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw usage("--limit takes a positive whole number");
        const statuses = str(v.status)?.split(",").map((s) => s.trim());
        const bad = statuses?.filter((s) => !(RUN_STATUSES as readonly string[]).includes(s));
        if (bad?.length) throw usage(`--status: unknown status ${bad.map((s) => `'${s}'`).join(", ")} (one or more of ${RUN_STATUSES.join(", ")}, comma-separated)`);
        const { runsList } = await import("./runs-list.js");
        return runsList((await needLocal()).store, { ...(str(v.flow) ? { flow: str(v.flow) } : {}), ...(statuses ? { status: statuses } : {}), ...(limit ? { limit } : {}) }, io);
      }
      const { actor, runsCancel, runsEvents, runsRetry, runsShow } = await import("./runs.js");
      switch (sub) {
        case "show":
          return runsShow(await runtime(), id(), io);
        case "events":
          return runsEvents(await runtime(), id());
        case "cancel":
          return runsCancel(await runtime(), id(), actor(str(v.as), io.env), io);
        case "retry":
          return runsRetry(await runtime(), id(), actor(str(v.as), io.env), io);
        default:
          throw usage("sluice runs list|show|events|cancel|retry (see sluice runs --help)");
      }
    }
    case "approve":
    case "reject": {
      if (!args[0]) throw usage(`sluice ${command} <run> [--step ID] [--as LOGIN] (see sluice ${command} --help)`);
      const { actor, decideCommand } = await import("./runs.js");
      return decideCommand(
        await runtime(),
        args[0],
        command,
        {
          as: actor(str(v.as), io.env),
          ...(str(v.step) ? { step: str(v.step) } : {}),
          ...(str(v.comment) ? { comment: str(v.comment) } : {}),
          ...(str(v.digest) ? { digest: str(v.digest) } : {}),
        },
        io,
      );
    }
    case "gates": {
      const { gatesExplain, gatesList } = await import("./runs.js");
      if (args[0] === "list") return gatesList(await runtime());
      if (args[0] === "explain") return gatesExplain(await runtime(), one("a run id"), io);
      throw usage("sluice gates list | gates explain <run>");
    }
    case "callback": {
      if (!args[0] || !args[1]) throw usage("sluice callback <run> <step> [--body JSON]");
      const { callbackCommand } = await import("./runs.js");
      return callbackCommand(await runtime(), args[0], args[1], str(v.body), io);
    }
    case "resources":
      if (args[0] !== "get" || !args[1]) throw usage("sluice resources get <ref> [-o FILE]");
      return (await import("./data.js")).resourcesGet(await needLocal(), args[1], str(v.output));
    case "kv":
      return (await import("./data.js")).kvCommand(await needLocal(), args[0], args.slice(1), {
        ...(str(v.ttl) ? { ttl: str(v.ttl) } : {}),
        ...(str(v["if-version"]) ? { ifVersion: str(v["if-version"]) } : {}),
        draft: v.draft === true,
      });
    case "secrets":
      return (await import("./data.js")).secretsCommand(await needLocal(), args[0], args.slice(1), io);
    case "worker":
      return (await import("./worker.js")).workerCommand(await needLocal(), { once: v.once === true, ...(str(v.poll) ? { pollMs: durationArg("--poll", str(v.poll)!) } : {}) }, io);
    case "mcp": {
      const server = str(v.server) ?? (io.env.SLUICE_SERVER || undefined);
      const remote = server === undefined ? undefined : (await import("./remote.js")).remoteOf(server, io.env);
      return (await import("../mcp/server.js")).mcpCommand(needLocal, io, remote);
    }
    case "serve":
      return (await import("./serve.js")).serveCommand(io);
    case "tokens":
      return (await import("./tokens.js")).tokensCommand(
        args[0],
        args.slice(1),
        {
          ...(str(v.login) !== undefined ? { login: str(v.login) } : {}),
          ...(str(v.repo) !== undefined ? { repo: str(v.repo) } : {}),
          ...(str(v.expires) !== undefined ? { expires: str(v.expires) } : {}),
          ...(v.agent === true ? { agent: true } : {}),
        },
        io,
      );
    default:
      throw usage(`unknown command '${command}'`);
  }
}
