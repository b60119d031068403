// Browser fixtures for the UI tests: playwright-core and axe-core from npm
// (installed once into build/npm-cache-ui, guarded by a lock directory like
// the SDK install) driving Debian's chromium headless.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

export const PACKAGES = ["playwright-core@1.65.1", "axe-core@4.14.1"];
export const CHROMIUM = "/usr/bin/chromium";

export async function ensureBrowserDeps(root) {
  const cache = path.join(root, "build", "npm-cache-ui");
  const done = path.join(cache, ".installed");
  const lock = path.join(cache, ".install-lock");
  fs.mkdirSync(cache, { recursive: true });
  for (let i = 0; i < 600; i++) {
    if (fs.existsSync(done) && fs.readFileSync(done, "utf8") === PACKAGES.join(" ") + "\n") {
      const req = createRequire(path.join(cache, "index.js"));
      return { ok: true, cache, playwright: req("playwright-core"), axePath: req.resolve("axe-core/axe.min.js") };
    }
    try {
      fs.mkdirSync(lock);
    } catch {
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 600000) fs.rmSync(lock, { recursive: true });
      } catch {}
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      const r = spawnSync("npm", ["install", "--prefix", cache, "--no-audit", "--no-fund", "--no-save", ...PACKAGES],
        { encoding: "utf8", timeout: 240000, env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: "1" } });
      if (r.status !== 0)
        return { ok: false, reason: `cannot install ${PACKAGES.join(", ")}: ${(r.stderr || r.error || "").toString().split("\n")[0]}` };
      fs.writeFileSync(done, PACKAGES.join(" ") + "\n");
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  return { ok: false, reason: "timed out waiting for another test's npm install" };
}

// Headless chromium with a fresh profile (a persistent context on a new
// temp directory is how playwright takes --user-data-dir); the
// background-networking flags keep it from calling out of the machine.
export async function launch(playwright) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "pc-chromium-"));
  const context = await playwright.chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  for (const p of context.pages()) await p.close();
  return { context, close: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); } };
}

// axe-core in the page; returns the serious and critical violations.
export async function axeCheck(page, axeSource) {
  if (!(await page.evaluate(() => !!window.axe))) await page.addScriptTag({ content: axeSource });
  const res = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  return res.filter((v) => v.impact === "serious" || v.impact === "critical");
}
