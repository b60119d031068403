// Installs @paperclipai/plugin-sdk from npm into build/npm-cache once, for
// every JS test. Tests run in parallel, so the install is guarded by a lock
// directory: the first test installs, the others wait for it to finish.
import fs from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";

export const SDK = "@paperclipai/plugin-sdk@2026.916.1";

export async function ensureSdk(root) {
  const cache = path.join(root, "build", "npm-cache");
  const sdkDir = path.join(cache, "node_modules", "@paperclipai", "plugin-sdk");
  const done = path.join(cache, ".installed");
  const lock = path.join(cache, ".install-lock");
  fs.mkdirSync(cache, { recursive: true });
  for (let i = 0; i < 600; i++) {
    if (fs.existsSync(done) && fs.existsSync(path.join(sdkDir, "package.json")))
      return { ok: true, cache, sdkDir };
    try {
      fs.mkdirSync(lock);
    } catch {
      // Another test is installing; a lock older than 10 minutes is stale.
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 600000) fs.rmSync(lock, { recursive: true });
      } catch {}
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      const r = spawnSync("npm", ["install", "--prefix", cache, "--no-audit", "--no-fund",
        "--no-save", SDK], { encoding: "utf8", timeout: 240000 });
      if (r.status !== 0)
        return { ok: false, reason: `cannot install ${SDK}: ${(r.stderr || r.error || "").toString().split("\n")[0]}` };
      fs.writeFileSync(done, SDK + "\n");
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  return { ok: false, reason: "timed out waiting for another test's npm install" };
}
