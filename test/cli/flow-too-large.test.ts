/**
 * A flow or config file over 1 MiB is refused before it is parsed (FLOW_TOO_LARGE at line 1),
 * by `validate`, `flows list` and `run` alike. The files are made here: each is a valid flow
 * padded with comments, so without the limit it would pass.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";
import { makeRepo } from "../support/git-repo.js";

const MiB = 1024 * 1024;
const FLOW = "name: big\non: { manual: {} }\nsteps:\n  - id: nap\n    sleep: 1ms\n";

/** `head` padded with comment lines of `filler` to exactly `bytes` bytes of UTF-8. */
function padded(head: string, bytes: number, filler = "x"): string {
  const line = `# ${filler.repeat(60)}\n`;
  const lines = Math.floor((bytes - Buffer.byteLength(head)) / Buffer.byteLength(line));
  const body = head + line.repeat(lines);
  const text = body + "#".repeat(bytes - Buffer.byteLength(body));
  expect(Buffer.byteLength(text)).toBe(bytes);
  return text;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "sluice-large-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe("sluice validate on a file over 1 MiB", () => {
  it("refuses a flow of 1 MiB + 1 byte with FLOW_TOO_LARGE at line 1: exit 1", () => {
    const dir = folder({ "big.yml": padded(FLOW, MiB + 1) });
    const r = sluice(dir, ["validate", "big.yml", "--json"]);
    expect(r.code).toBe(1);
    expect(r.json.data.files).toEqual([
      {
        file: "big.yml",
        kind: "flow",
        valid: false,
        diagnostics: [
          {
            severity: "error",
            code: "FLOW_TOO_LARGE",
            message: "the file is 1048577 bytes, more than the 1048576 bytes (1 MiB) a flow or config file may have: it was not parsed",
            file: "big.yml",
            line: 1,
            column: 1,
            pointer: "",
          },
        ],
      },
    ]);
    const human = sluice(dir, ["validate", "big.yml"]);
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^big\.yml:1:1: error FLOW_TOO_LARGE the file is 1048577 bytes/);
  });

  it("takes a flow of exactly 1 MiB", () => {
    const dir = folder({ "edge.yml": padded(FLOW, MiB) });
    const r = sluice(dir, ["validate", "edge.yml", "--json"]);
    expect(r.json.data.files[0].diagnostics).toEqual([]);
    expect(r.code).toBe(0);
  });

  it("counts bytes of UTF-8, not characters", () => {
    // Half a million two-byte characters are too many; 1 MiB of four-byte ones (two UTF-16 units each) is not.
    const dir = folder({ "accents.yml": padded(FLOW, MiB + 2, "é"), "emoji.yml": padded(FLOW, MiB, "😀") });
    const accents = sluice(dir, ["validate", "accents.yml", "--json"]);
    expect(accents.code).toBe(1);
    expect(accents.json.data.files[0].diagnostics).toMatchObject([{ code: "FLOW_TOO_LARGE", line: 1, column: 1, message: expect.stringContaining("1048578 bytes") }]);
    const emoji = sluice(dir, ["validate", "emoji.yml", "--json"]);
    expect(emoji.json.data.files[0].diagnostics).toEqual([]);
    expect(emoji.code).toBe(0);
  });

  it("refuses a config file over 1 MiB the same way", () => {
    const dir = folder({ "sluice.yml": padded("connections: {}\n", MiB + 1) });
    const r = sluice(dir, ["validate", "sluice.yml", "--json"]);
    expect(r.code).toBe(1);
    expect(r.json.data.files).toMatchObject([{ file: "sluice.yml", kind: "config", valid: false, diagnostics: [{ code: "FLOW_TOO_LARGE", line: 1, column: 1 }] }]);
  });
});

describe("flows list and run on a committed flow over 1 MiB", () => {
  const repo = makeRepo({
    ".github/flows/big.yml": padded(FLOW, MiB + 1),
    ".github/flows/small.yml": "name: small\non: { manual: {} }\nsteps:\n  - id: nap\n    sleep: 1ms\n",
  });
  dirs.push(repo.dir);

  it("flows list shows it invalid, beside the valid one", () => {
    const r = sluice(repo.dir, ["flows", "list", "--json"]);
    expect(r.code).toBe(0);
    expect(r.json.data.flows).toMatchObject([
      { name: "big", path: ".github/flows/big.yml", valid: false, errors: 1 },
      { name: "small", valid: true },
    ]);
  });

  it("run refuses it with FLOW_INVALID naming FLOW_TOO_LARGE at line 1", () => {
    const r = sluice(repo.dir, ["run", "big", "--json"]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe("FLOW_INVALID");
    expect(r.json.error.message).toContain(".github/flows/big.yml:1:1: FLOW_TOO_LARGE the file is 1048577 bytes");
  });
});
