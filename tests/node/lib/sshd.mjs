// A throwaway sshd on 127.0.0.1 for the browser tests (the JS twin of
// tests/lib/sshd.c): fresh host key, a user key it accepts, a wrong key it
// does not, and a known_hosts line for the free port it listens on.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

const SSHD = "/usr/sbin/sshd";

export function sshdAvailable() {
  return fs.existsSync(SSHD) && spawnSync("sh", ["-c", "command -v ssh-keygen && command -v ssh"]).status === 0;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => { c.destroy(); resolve(true); });
    c.once("error", () => resolve(false));
  });
}

export async function startSshd(dir) {
  const keygen = (name) => spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, name)]);
  for (const k of ["host_key", "user_key", "wrong_key"])
    if (keygen(k).status !== 0) throw new Error(`ssh-keygen ${k} failed`);
  fs.copyFileSync(path.join(dir, "user_key.pub"), path.join(dir, "authorized_keys"));
  fs.mkdirSync("/run/sshd", { recursive: true });
  const port = await freePort();
  const conf = path.join(dir, "sshd_config");
  fs.writeFileSync(conf, [`Port ${port}`, "ListenAddress 127.0.0.1", `HostKey ${dir}/host_key`,
    `AuthorizedKeysFile ${dir}/authorized_keys`, "StrictModes no", `PidFile ${dir}/sshd.pid`,
    "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
    "UsePAM no", "PubkeyAuthentication yes", "LogLevel ERROR", ""].join("\n"));
  const log = fs.openSync(path.join(dir, "sshd.log"), "w");
  const proc = spawn(SSHD, ["-D", "-e", "-f", conf], { stdio: ["ignore", "ignore", log] });
  let up = false;
  for (let i = 0; i < 400 && !up; i++) {
    up = await portOpen(port);
    if (!up) await new Promise((r) => setTimeout(r, 25));
  }
  const read = (n) => fs.readFileSync(path.join(dir, n), "utf8");
  return {
    up, port,
    userKey: read("user_key"), wrongKey: read("wrong_key"),
    knownHosts: `[127.0.0.1]:${port} ${read("host_key.pub").trim()}`,
    log: () => { try { return read("sshd.log"); } catch { return ""; } },
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await new Promise((r) => proc.on("exit", r));
      }
    },
  };
}
