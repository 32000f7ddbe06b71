/**
 * The `ssh` step: runs a command on a host over SSH (ssh2), with the host key pinned by its
 * SHA-256 fingerprint and key authentication from the connection's secret.
 *
 * - `env` is exported in the command line (shell-quoted): sshd refuses most `env` requests.
 * - The command runs as `timeout -k 5 <secs> "$SHELL" -c '<run>'` where the host has coreutils'
 *   `timeout`, so the host itself ends it at the deadline even if Sluice goes away; on a local
 *   timeout or an abort the session is sent SIGTERM (which sshd delivers to the command's
 *   process group), then closed.
 * - `detach: true` starts the command with `nohup setsid … &` so that it outlives the session,
 *   and returns at once with `exit_code: 0` and its `pid`.
 * - stdout and stderr are captured up to 10 MiB each; a non-zero exit is `SSH_EXIT`.
 * - `policy.deny.ssh` is matched again on the evaluated command (and the way the shell reads it,
 *   with `env` substituted) before connecting: validation cannot see `${{ inputs.cmd }}`.
 */
import { createHash } from "node:crypto";
import { Client, type ClientChannel, type ConnectConfig } from "ssh2";
import { NonRetriableError, SluiceError } from "../../core/errors.js";
import { firstSshDeny } from "../../core/policy/patterns.js";
import type { ResolvedConnection, StepExecutor } from "../../ports/step-executor.js";
import { withDeadline, type Deadline } from "./deadline.js";
import { optBoolean, optDurationMs, optStringMap, paramError, reqString, tail } from "./params.js";

const KIND = "ssh";
export const SSH_MAX_OUTPUT_BYTES = 10 * 1024 * 1024;
const CONNECT_TIMEOUT_MS = 20_000;
/** How long an aborted command may take to exit before the session is closed anyway. */
const KILL_GRACE_MS = 8_000;
const HOST_TIMER_MARGIN_S = 5;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Quotes a string for a POSIX shell: 'it'\''s'. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** `SHA256:<base64, no padding>` of a host key blob, as `ssh-keygen -l` prints it. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

export interface SshCommandOptions {
  env: Record<string, string>;
  detach: boolean;
  /** Seconds after which the host itself ends the command (0: no limit). */
  timeoutSecs: number;
}

/**
 * The command line sent to the host for `run`: a POSIX sh script that runs the command with the
 * login shell in a session of its own (setsid, where the host has it), and ends that whole
 * process group (TERM, then KILL after 5 s) when the SSH session's stdin reaches EOF, which is
 * how an abort or a lost connection reaches it, or when the host-side timer expires.
 */
export function buildSshCommand(run: string, opts: SshCommandOptions): string {
  const lines = Object.entries(opts.env).map(([n, v]) => `export ${n}=${shellQuote(v)}`);
  lines.push(`run=${shellQuote(run)}`, `sh_="\${SHELL:-/bin/sh}"`);
  if (opts.detach) {
    lines.push(
      `if command -v setsid >/dev/null 2>&1; then nohup setsid "$sh_" -c "$run" </dev/null >/dev/null 2>&1 &`,
      `else nohup "$sh_" -c "$run" </dev/null >/dev/null 2>&1 & fi`,
      `echo $!`,
    );
  } else {
    lines.push(
      `exec 3<&0`,
      `if command -v setsid >/dev/null 2>&1; then setsid "$sh_" -c "$run" </dev/null 3<&- &`,
      `else "$sh_" -c "$run" </dev/null 3<&- & fi`,
      `pid=$!`,
      // `kill -SIG -PGID`, not `kill -SIG -- -PGID`: dash (Debian's sh) takes no `--` and would miss the group.
      `stop() { kill -TERM -"$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; sleep 5; kill -KILL -"$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; }`,
      `( while read -r _ <&3; do :; done; stop ) </dev/null >/dev/null 2>&1 &`,
      `watch=$!`,
      opts.timeoutSecs > 0
        ? `( trap 'kill "$s" 2>/dev/null; exit 0' TERM; sleep ${opts.timeoutSecs} & s=$!; wait "$s"; trap - TERM; stop ) </dev/null >/dev/null 2>&1 3<&- & timer=$!`
        : `timer=`,
      `exec 3<&-`,
      `wait "$pid"; code=$?`,
      `kill $watch $timer 2>/dev/null`,
      `exit $code`,
    );
  }
  return `exec /bin/sh -c ${shellQuote(lines.join("\n"))}`;
}

export const sshExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const conn = ctx.connection(reqString(KIND, params, "connection"));
    const target = sshTarget(conn);
    const run = reqString(KIND, params, "run");
    const env = optStringMap(KIND, params, "env");
    for (const name of Object.keys(env)) {
      if (!ENV_NAME.test(name)) throw paramError(KIND, `env.${name}`, "is not a valid environment variable name");
    }
    const detach = optBoolean(KIND, params, "detach") ?? false;
    const stepTimeout = optDurationMs(KIND, params, "timeout");
    // Validation saw the command before its expressions were evaluated: deny rules are matched
    // again on what will actually run, before anything reaches the host.
    const denied = firstSshDeny(ctx.policy.deny.ssh, run, env);
    if (denied) {
      throw new NonRetriableError("POLICY_DENIED", `ssh ${conn.name}: the command is refused by the policy's deny.ssh rule '${denied}'`, {
        connection: conn.name,
        rule: `policy.deny.ssh: ${denied}`,
      });
    }

    return withDeadline(
      ctx,
      async (deadline) => {
        // The host's own timer is a backstop for when this process is gone: it fires a little
        // after the local deadline, which normally ends the command first.
        const timeoutSecs = !detach && deadline.timeoutMs !== undefined ? Math.ceil(deadline.timeoutMs / 1000) + HOST_TIMER_MARGIN_S : 0;
        const command = buildSshCommand(run, { env, detach, timeoutSecs });
        const client = await connect(target, deadline);
        try {
          const result = await execute(client, command, deadline);
          if (deadline.signal.aborted) throw deadline.error();
          if (detach) {
            const pid = Number(result.stdout.trim());
            return {
              outputs: {
                exit_code: 0,
                stdout: "",
                stderr: result.stderr,
                ...(Number.isInteger(pid) && pid > 0 ? { pid } : {}),
              },
            };
          }
          if (result.code === null && result.signal === undefined) {
            throw new SluiceError("CONNECTION_FAILED", `ssh ${conn.name}: the session ended before the command reported an exit status`, {
              stdout_tail: tail(result.stdout),
              stderr_tail: tail(result.stderr),
            });
          }
          const outputs: Record<string, unknown> = {
            exit_code: result.code ?? -1,
            stdout: result.stdout,
            stderr: result.stderr,
          };
          if (result.stdoutTruncated) outputs.stdout_truncated = true;
          if (result.stderrTruncated) outputs.stderr_truncated = true;
          if (result.code !== 0) {
            const how = result.code === null ? `was killed by signal ${result.signal ?? "?"}` : `exited with code ${result.code}`;
            throw new SluiceError("SSH_EXIT", `ssh ${conn.name}: the command ${how}`, {
              exit_code: result.code,
              ...(result.signal ? { signal: result.signal } : {}),
              stdout_tail: tail(result.stdout),
              stderr_tail: tail(result.stderr),
            });
          }
          return { outputs };
        } finally {
          client.end();
        }
      },
      stepTimeout,
    );
  },
};

interface SshTarget {
  name: string;
  host: string;
  port: number;
  user: string;
  pin: string;
  privateKey: string;
}

function sshTarget(conn: ResolvedConnection): SshTarget {
  if (conn.type !== "ssh") throw paramError(KIND, "connection", `names '${conn.name}' of type ${conn.type}; an ssh step needs type ssh`);
  if (!conn.host) throw paramError(KIND, "connection", `'${conn.name}' has no host`);
  if (!conn.user) throw paramError(KIND, "connection", `'${conn.name}' has no user`);
  const pin = conn.host_key?.trim();
  if (!pin) {
    throw new NonRetriableError(
      "SSH_HOST_KEY",
      `ssh ${conn.name}: the connection pins no host_key; add host_key: "SHA256:…" as \`ssh-keygen -lf\` prints it for the host's key`,
      { connection: conn.name },
    );
  }
  if (!/^SHA256:[A-Za-z0-9+/]+=*$/.test(pin)) {
    throw new NonRetriableError("SSH_HOST_KEY", `ssh ${conn.name}: host_key must look like SHA256:<base64>, as ssh-keygen -lf prints it`, {
      connection: conn.name,
    });
  }
  if (!conn.secretValue) throw paramError(KIND, "connection", `'${conn.name}' has no secret holding the private key`);
  return {
    name: conn.name,
    host: conn.host,
    port: conn.port ?? 22,
    user: conn.user,
    pin: pin.replace(/=+$/, ""),
    privateKey: conn.secretValue,
  };
}

function connect(target: SshTarget, deadline: Deadline): Promise<Client> {
  const client = new Client();
  let presented: string | undefined;
  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    privateKey: target.privateKey,
    readyTimeout: Math.min(CONNECT_TIMEOUT_MS, deadline.timeoutMs ?? CONNECT_TIMEOUT_MS),
    hostVerifier: (key: Buffer) => {
      presented = hostKeyFingerprint(key);
      return presented === target.pin;
    },
  };
  return new Promise<Client>((resolve, reject) => {
    let done = false;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      deadline.signal.removeEventListener("abort", onAbort);
      if (err) {
        client.end();
        reject(err);
      } else resolve(client);
    };
    const onAbort = (): void => finish(deadline.error());
    deadline.signal.addEventListener("abort", onAbort, { once: true });
    client.once("ready", () => finish());
    client.on("error", (err: Error & { level?: string; code?: string }) => {
      if (presented !== undefined && presented !== target.pin) {
        finish(
          new NonRetriableError(
            "SSH_HOST_KEY",
            `ssh ${target.name}: ${target.host}:${target.port} presented host key ${presented}, not the pinned ${target.pin}; refusing to connect`,
            { connection: target.name, expected: target.pin, presented },
          ),
        );
      } else if (err.level === "client-authentication") {
        finish(
          new NonRetriableError("CONNECTION_FAILED", `ssh ${target.name}: ${target.user}@${target.host} did not accept the connection's key`, {
            connection: target.name,
          }),
        );
      } else {
        const why = err.level === "client-timeout" ? "no SSH handshake in time" : (err.code ?? err.message);
        finish(
          new SluiceError("CONNECTION_FAILED", `ssh ${target.name}: could not connect to ${target.host}:${target.port}: ${why}`, {
            connection: target.name,
            cause: err.code ?? err.level ?? err.message,
          }),
        );
      }
    });
    client.once("close", () => finish(new SluiceError("CONNECTION_FAILED", `ssh ${target.name}: the server closed the connection`)));
    try {
      client.connect(config);
    } catch (err) {
      finish(
        new NonRetriableError("CONNECTION_FAILED", `ssh ${target.name}: the connection's secret is not a usable private key: ${(err as Error).message}`, {
          connection: target.name,
        }),
      );
    }
  });
}

interface ExecResult {
  code: number | null;
  signal: string | undefined;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

class Capture {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  add(chunk: Buffer): void {
    if (this.size >= SSH_MAX_OUTPUT_BYTES) {
      this.truncated = true;
      return;
    }
    const room = SSH_MAX_OUTPUT_BYTES - this.size;
    if (chunk.length > room) {
      this.truncated = true;
      chunk = chunk.subarray(0, room);
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8");
  }
}

function execute(client: Client, command: string, deadline: Deadline): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    client.exec(command, (err, stream: ClientChannel) => {
      if (err) {
        reject(new SluiceError("CONNECTION_FAILED", `ssh: the server refused to run the command: ${err.message}`));
        return;
      }
      const out = new Capture();
      const errOut = new Capture();
      let code: number | null = null;
      let signal: string | undefined;
      let grace: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        if (grace) clearTimeout(grace);
        deadline.signal.removeEventListener("abort", onAbort);
        resolve({
          code,
          signal,
          stdout: out.text(),
          stderr: errOut.text(),
          stdoutTruncated: out.truncated,
          stderrTruncated: errOut.truncated,
        });
      };
      const onAbort = (): void => {
        // EOF on the command's stdin makes the host end its process group (see buildSshCommand).
        // sshd's "signal" requests are not used: sshd ignores them for root sessions.
        stream.end();
        grace = setTimeout(settle, KILL_GRACE_MS);
      };
      if (deadline.signal.aborted) onAbort();
      else deadline.signal.addEventListener("abort", onAbort, { once: true });
      stream.on("data", (chunk: Buffer) => out.add(chunk));
      stream.stderr.on("data", (chunk: Buffer) => errOut.add(chunk));
      stream.on("exit", (exitCode: number | null, exitSignal?: string) => {
        code = typeof exitCode === "number" ? exitCode : null;
        signal = exitSignal;
      });
      stream.on("close", settle);
    });
  });
}
