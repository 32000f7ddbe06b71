#!/usr/bin/env node
/** CLI entry (package.json "bin"): wiring only. */
import { main } from "./adapters/cli/main.js";
import { useColour } from "./adapters/cli/output.js";

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
};

const code = await main(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  isTTY: process.stderr.isTTY === true,
  colour: useColour(process.env, process.stdout.isTTY === true),
  env: process.env,
  cwd: process.cwd(),
  stdin: readStdin,
});
process.exitCode = code;
