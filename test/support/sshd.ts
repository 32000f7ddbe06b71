/**
 * A throwaway OpenSSH server for tests: `sshd -D -e` on 127.0.0.1 and a free port, with a fresh
 * host key and a fresh client key in its authorized_keys. The login user is the current user
 * (root in CI). Stop it in afterAll.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "./net.js";

export interface TestSshd {
  host: string;
  port: number;
  user: string;
  /** The client's private key (OpenSSH PEM), authorised for `user`. */
  privateKey: string;
  /** `SHA256:<base64>` of the host key, as `ssh-keygen -lf` prints it. */
  hostKeyFingerprint: string;
  /** The server's log so far (sshd -e writes it to stderr). */
  log(): string;
  stop(): Promise<void>;
}

const SSHD_CANDIDATES = ["/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"];

function sshdPath(): string {
  const found = SSHD_CANDIDATES.find((p) => existsSync(p));
  if (!found) throw new Error("OpenSSH's sshd is not installed (install Debian's openssh-server)");
  return found;
}


function keygen(path: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "sluice-test", "-f", path], { stdio: "ignore" });
}

export function fingerprintOf(publicKeyFile: string): string {
  const out = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", publicKeyFile], { encoding: "utf8" });
  const fp = /SHA256:[A-Za-z0-9+/]+/.exec(out)?.[0];
  if (!fp) throw new Error(`ssh-keygen printed no fingerprint: ${out}`);
  return fp;
}

export async function startSshd(): Promise<TestSshd> {
  const sshd = sshdPath();
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), "sluice-sshd-"));
  const hostKey = join(dir, "host_ed25519");
  const clientKey = join(dir, "client_ed25519");
  keygen(hostKey);
  keygen(clientKey);
  const authorized = join(dir, "authorized_keys");
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`), { mode: 0o600 });
  const user = userInfo().username;

  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = join(dir, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${authorized}`,
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel VERBOSE",
        "MaxStartups 100",
        "",
      ].join("\n"),
    );
    const child = spawn(sshd, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr!.setEncoding("utf8");
    const listening = new Promise<boolean>((resolve) => {
      child.stderr!.on("data", (chunk: string) => {
        log += chunk;
        if (log.includes("Server listening on")) resolve(true);
      });
      child.once("exit", () => resolve(false));
      child.once("error", () => resolve(false));
    });
    if (await listening) {
      return handle(child, dir, port, user, readFileSync(clientKey, "utf8"), fingerprintOf(`${hostKey}.pub`), () => log);
    }
    lastError = log;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`sshd did not start: ${lastError}`);
}

function handle(
  child: ChildProcess,
  dir: string,
  port: number,
  user: string,
  privateKey: string,
  hostKeyFingerprint: string,
  log: () => string,
): TestSshd {
  const onExit = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", onExit);
  return {
    host: "127.0.0.1",
    port,
    user,
    privateKey,
    hostKeyFingerprint,
    log,
    async stop() {
      process.removeListener("exit", onExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
