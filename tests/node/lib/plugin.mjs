// Fixtures for the JS plugin tests: a copy of the compat sandbox plugin
// package and a real daemon to install it into.
//
// preparePlugin() copies tests/compat/js-sandbox-plugin into a fresh temp
// directory the caller owns (and removes) and links the SDK's node_modules
// beside it: ES module imports resolve through node_modules next to the
// package, not NODE_PATH. startDaemon() runs `paperclip serve` on a free
// port with its data dir inside that directory; the caller stops it with
// stop(), which resolves once the daemon has exited.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export function preparePlugin(root, tag) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `pc-${tag}-`));
  const pkg = path.join(work, "js-sandbox-plugin");
  fs.cpSync(path.join(root, "tests", "compat", "js-sandbox-plugin"), pkg, { recursive: true });
  fs.symlinkSync(path.join(root, "build", "npm-cache", "node_modules"), path.join(pkg, "node_modules"));
  return { work, pkg };
}

// Resolves to { base, log(), api(method, path, body), stop() }; base is null
// when the daemon did not write its port within 10 s.
export async function startDaemon(root, work, env) {
  const data = path.join(work, "data");
  fs.mkdirSync(data);
  const daemon = spawn(path.join(root, "paperclip"), ["serve", "--data-dir", data, "--port", "0"], {
    env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  daemon.stderr.on("data", (d) => { log += d; });
  let base = null;
  for (let i = 0; i < 100 && !base; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      const j = JSON.parse(fs.readFileSync(path.join(data, "daemon.json"), "utf8"));
      if (j.port) base = `http://127.0.0.1:${j.port}`;
    } catch {}
  }
  const api = async (method, p, body) => {
    const r = await fetch(base + p, { method, headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch {}
    return { status: r.status, json, text };
  };
  const stop = async () => {
    daemon.kill("SIGTERM");
    await new Promise((r) => daemon.on("exit", r));
  };
  return { base, log: () => log, api, stop };
}
