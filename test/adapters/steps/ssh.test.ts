import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetriableError } from "../../../src/core/errors.js";
import { DEFAULT_POLICY } from "../../../src/core/flow/types.js";
import { buildSshCommand, shellQuote, sshExecutor, SSH_MAX_OUTPUT_BYTES } from "../../../src/adapters/steps/ssh.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { startSshd, type TestSshd } from "../../support/sshd.js";

let sshd: TestSshd;
let scratch: string;

beforeAll(async () => {
  sshd = await startSshd();
  scratch = mkdtempSync(join(tmpdir(), "sluice-ssh-test-"));
}, 30_000);

afterAll(async () => {
  await sshd?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function ctx(extra: Parameters<typeof makeStepContext>[0] = {}, conn: Record<string, unknown> = {}) {
  return makeStepContext({
    connections: {
      vm: {
        type: "ssh",
        host: sshd.host,
        port: sshd.port,
        user: sshd.user,
        host_key: sshd.hostKeyFingerprint,
        secretValue: sshd.privateKey,
        ...conn,
      },
    },
    ...extra,
  });
}


/** Whether a process whose command line contains `marker` runs on this machine (sshd is local). */
function running(marker: string): boolean {
  try {
    const out = execFileSync("ps", ["-eo", "args"], { encoding: "utf8" });
    return out.split("\n").some((line) => line.includes(marker) && !line.includes("ps -eo"));
  } catch {
    return false;
  }
}

/** Polls a condition until it holds or `tries` run out (no time is asserted). */
async function eventually(cond: () => boolean, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

describe("ssh executor", { timeout: 60_000 }, () => {
  it("runs a command with env (quoted) and captures stdout, stderr and the exit code", async () => {
    const out = await sshExecutor.execute(
      {
        connection: "vm",
        run: 'printf "%s|%s" "$GREETING" "$TRICKY"; echo oops >&2',
        env: { GREETING: "hello world", TRICKY: `it's "$HOME" \`id\` $(id) ;|&` },
      },
      ctx(),
    );
    expect(out.outputs).toEqual({ exit_code: 0, stdout: `hello world|it's "$HOME" \`id\` $(id) ;|&`, stderr: "oops\n" });
  });

  it("a non-zero exit is SSH_EXIT with the exit code and the output tails", async () => {
    const err = await failure(sshExecutor.execute({ connection: "vm", run: "echo working; echo broken >&2; exit 3" }, ctx()));
    expect(err.code).toBe("SSH_EXIT");
    expect(err).not.toBeInstanceOf(NonRetriableError);
    expect(err.details).toMatchObject({ exit_code: 3, stdout_tail: "working\n", stderr_tail: "broken\n" });
  });

  it("caps stdout at 10 MiB", async () => {
    const out = await sshExecutor.execute({ connection: "vm", run: `head -c ${SSH_MAX_OUTPUT_BYTES + 100000} /dev/zero | tr '\\0' x` }, ctx());
    expect((out.outputs.stdout as string).length).toBe(SSH_MAX_OUTPUT_BYTES);
    expect(out.outputs.stdout_truncated).toBe(true);
  });

  it("a timeout kills the remote command", async () => {
    const marker = `sleep 3${Math.floor(Math.random() * 1e6)}`;
    const err = await failure(sshExecutor.execute({ connection: "vm", run: `${marker}; echo never`, timeout: "1s" }, ctx()));
    expect(err.code).toBe("STEP_TIMEOUT");
    expect(await eventually(() => !running(marker))).toBe(true);
  });

  it("the step's timeout from the context applies too", async () => {
    const marker = `sleep 4${Math.floor(Math.random() * 1e6)}`;
    const err = await failure(sshExecutor.execute({ connection: "vm", run: marker }, ctx({ timeoutMs: 800 })));
    expect(err.code).toBe("STEP_TIMEOUT");
    expect(await eventually(() => !running(marker))).toBe(true);
  });

  it("an abort stops the remote command", async () => {
    const marker = `sleep 5${Math.floor(Math.random() * 1e6)}`;
    const controller = new AbortController();
    const run = failure(sshExecutor.execute({ connection: "vm", run: `sh -c '${marker}'` }, ctx({ signal: controller.signal })));
    expect(await eventually(() => running(marker))).toBe(true);
    controller.abort();
    const err = await run;
    expect(err.code).toBe("STEP_ABORTED");
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(await eventually(() => !running(marker))).toBe(true);
  });

  it("a wrong pinned host key is refused before authenticating", async () => {
    const err = await failure(
      sshExecutor.execute({ connection: "vm", run: "true" }, ctx({}, { host_key: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" })),
    );
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("SSH_HOST_KEY");
    expect(err.details.presented).toBe(sshd.hostKeyFingerprint);
  });

  it("a connection without a pin is refused", async () => {
    const err = await failure(sshExecutor.execute({ connection: "vm", run: "true" }, ctx({}, { host_key: undefined })));
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("SSH_HOST_KEY");
    expect(err.message).toMatch(/pins no host_key/);
  });

  it("an unreachable port is CONNECTION_FAILED (retryable)", async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const err = await failure(sshExecutor.execute({ connection: "vm", run: "true" }, ctx({}, { port })));
    expect(err.code).toBe("CONNECTION_FAILED");
    expect(err).not.toBeInstanceOf(NonRetriableError);
  });

  it("a key the server does not accept, or a secret that is no key, is a non-retriable CONNECTION_FAILED", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-key-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "k")]);
    const stranger = readFileSync(join(dir, "k"), "utf8");
    rmSync(dir, { recursive: true, force: true });
    const denied = await failure(sshExecutor.execute({ connection: "vm", run: "true" }, ctx({}, { secretValue: stranger })));
    expect(denied.code).toBe("CONNECTION_FAILED");
    expect(denied).toBeInstanceOf(NonRetriableError);
    const garbage = await failure(sshExecutor.execute({ connection: "vm", run: "true" }, ctx({}, { secretValue: "not a key" })));
    expect(garbage.code).toBe("CONNECTION_FAILED");
    expect(garbage).toBeInstanceOf(NonRetriableError);
  });

  it("detach starts the command in the background; it outlives the session", async () => {
    const file = join(scratch, "detached.txt");
    const out = await sshExecutor.execute(
      { connection: "vm", run: `sleep 1; echo "$WORD" > ${shellQuote(file)}`, env: { WORD: "finished" }, detach: true },
      ctx(),
    );
    expect(out.outputs.exit_code).toBe(0);
    expect(typeof out.outputs.pid).toBe("number");
    expect(existsSync(file)).toBe(false);
    expect(await eventually(() => existsSync(file) && readFileSync(file, "utf8") === "finished\n")).toBe(true);
  });

  it("bad parameters are PARAM_INVALID", async () => {
    for (const params of [{ connection: "vm" }, { connection: "vm", run: "true", env: { "BAD-NAME": "x" } }, { connection: "vm", run: "true", timeout: "soon" }]) {
      expect((await failure(sshExecutor.execute(params, ctx()))).code).toBe("PARAM_INVALID");
    }
  });
});

describe("ssh executor: deny rules on the command that will actually run", { timeout: 60_000 }, () => {
  it("a denied command that arrives through an expression is refused, and nothing reaches the host", async () => {
    // The victim is a scratch directory: were the refusal to fail, the test would delete only it.
    const victim = join(scratch, "victim");
    mkdirSync(victim, { recursive: true });
    writeFileSync(join(victim, "keep"), "still here\n");
    const policy = { ...DEFAULT_POLICY, deny: { ssh: [`rm -rf ${victim}`] } };
    const sessions = (): number => (sshd.log().match(/Accepted publickey/g) ?? []).length;
    const before = sessions();
    const attempts: [string, Record<string, string>?][] = [
      [`rm  -rf  ${victim}`],
      [`rm\t-rf ${victim}  `],
      [`rm \\\n-rf ${victim}`],
      [`r''m -rf "${victim}"`],
      [`rm\${IFS}-rf\${IFS}${victim}`],
      ["$CMD", { CMD: `rm  -rf ${victim}` }],
    ];
    for (const [run, env] of attempts) {
      const err = await failure(sshExecutor.execute({ connection: "vm", run, ...(env ? { env } : {}) }, ctx({ policy })));
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("POLICY_DENIED");
      expect(err.message).toContain(`deny.ssh rule 'rm -rf ${victim}'`);
    }
    expect(readFileSync(join(victim, "keep"), "utf8")).toBe("still here\n");
    expect(sessions()).toBe(before);
    // A command no rule denies still runs.
    const out = await sshExecutor.execute({ connection: "vm", run: `ls ${victim}` }, ctx({ policy }));
    expect(out.outputs.stdout).toBe("keep\n");
  });
});

describe("buildSshCommand", () => {
  it("runs a POSIX sh script with the env exported, shell-quoted", () => {
    const cmd = buildSshCommand("echo hi", { env: { A: "x'y" }, detach: false, timeoutSecs: 30 });
    expect(cmd.startsWith("exec /bin/sh -c '")).toBe(true);
    const script = execFileSync("sh", ["-c", `printf %s ${cmd.slice("exec /bin/sh -c ".length)}`], { encoding: "utf8" });
    expect(script.split("\n").slice(0, 2)).toEqual([`export A='x'\\''y'`, `run='echo hi'`]);
    expect(script).toContain("sleep 30");
  });
});
