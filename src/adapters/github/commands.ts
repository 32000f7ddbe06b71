/**
 * Comment commands (SPEC §5): `/run <flow> [k=v …]`, `/approve [run] [digest]`,
 * `/reject [run] [reason]`, `/cancel [run]`, `/retry [run]`, `/status [run]`. Pure: parsing only;
 * the handlers decide what a token names (a run id or a digest) by asking the store.
 */

export const COMMAND_NAMES = ["run", "approve", "reject", "cancel", "retry", "status"] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export interface ParsedCommand {
  name: CommandName;
  /** The words after the command on its line, quotes honoured. */
  args: string[];
  /** Everything after the command word, as typed (the rest of the line and the lines below). */
  text: string;
}

/**
 * The command a comment holds, or undefined when it holds none. A command is the first
 * non-empty line of the comment, starting with `/` and one of the known names; anything else
 * (prose, quotes, another bot's `/command`) is not for us.
 */
export function parseCommand(body: string): ParsedCommand | undefined {
  const lines = body.replace(/\r\n?/g, "\n").split("\n");
  const index = lines.findIndex((l) => l.trim() !== "");
  if (index < 0) return undefined;
  const first = (lines[index] as string).trim();
  const m = /^\/([a-z]+)(?=\s|$)(.*)$/.exec(first);
  if (!m) return undefined;
  const name = m[1] as string;
  if (!(COMMAND_NAMES as readonly string[]).includes(name)) return undefined;
  const restOfLine = (m[2] ?? "").trim();
  const below = lines.slice(index + 1).join("\n").trim();
  return {
    name: name as CommandName,
    args: tokenize(restOfLine),
    text: [restOfLine, below].filter((s) => s !== "").join("\n"),
  };
}

/** Splits on white space; "double" and 'single' quotes group words (k="two words"). */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let current = "";
  let quote: '"' | "'" | undefined;
  let has = false;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = undefined;
      else current += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
      continue;
    }
    if (/\s/.test(ch)) {
      if (has) out.push(current);
      current = "";
      has = false;
      continue;
    }
    current += ch;
    has = true;
  }
  if (has) out.push(current);
  return out;
}

export type RunArgs = { ok: true; flow: string; inputs: Record<string, string> } | { ok: false; error: string };

export const RUN_USAGE = "`/run <flow> [name=value …]`";

/** `/run <flow> k=v …`: the flow's name and its inputs as text (the flow's input types coerce them). */
export function parseRunArgs(args: string[]): RunArgs {
  const [flow, ...pairs] = args;
  if (!flow) return { ok: false, error: `name the flow to run: ${RUN_USAGE}` };
  if (flow.includes("=")) return { ok: false, error: `the first word after /run is the flow's name, not an input (${flow}): ${RUN_USAGE}` };
  const inputs: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) return { ok: false, error: `inputs are name=value, got '${pair}': ${RUN_USAGE}` };
    inputs[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { ok: true, flow, inputs };
}

/** A run id as the runtime makes them: 15 characters of [0-9a-z]. */
export function looksLikeRunId(token: string): boolean {
  return /^[0-9a-z]{15}$/.test(token);
}

/** A gate digest or a prefix of one (7+ hexadecimal characters). */
export function looksLikeDigest(token: string): boolean {
  return /^[0-9a-f]{7,64}$/i.test(token);
}

/** A digest named in free text (a review body): `digest: abc1234` or `digest=abc1234`. */
export function digestInText(text: string): string | undefined {
  return /\bdigest\s*[:=]?\s*`?([0-9a-f]{7,64})\b/i.exec(text)?.[1]?.toLowerCase();
}
