// Compat: a sandbox provider written against the published
// @paperclipai/plugin-sdk (tests/compat/js-sandbox-plugin) runs unchanged on
// the C host. The SDK comes from npm into build/npm-cache; the plugin is
// installed through the API of a real daemon and driven through the same
// lifecycle as the C fake plugin by `paperclip plugin check`, which must give
// the same checks with the same results for both.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { preparePlugin, startDaemon } from "./lib/plugin.mjs";
import { ensureSdk } from "./lib/sdk.mjs";
import { createTap } from "./lib/tap.mjs";

const ROOT = process.env.PC_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = path.join(ROOT, "paperclip");
const { ok, done } = createTap();

// 1. The SDK from npm (cached between runs, shared with the other JS tests).
const sdk = await ensureSdk(ROOT);
if (!sdk.ok) {
  console.log(`1..0 # SKIP npm is unreachable: ${sdk.reason}`);
  process.exit(0);
}

// 2. The plugin package next to the SDK: ES module imports resolve through
// node_modules beside the package, not NODE_PATH.
const { work, pkg } = preparePlugin(ROOT, "compat");

// 3. The same contract check on both plugins.
const checkNames = (out) => out.split("\n").filter((l) => /^\s+(PASS|FAIL) /.test(l))
  .map((l) => l.trim().replace(/:.*$/, "")).filter((l) => !l.endsWith("package and manifest"));
const runCheck = (dir) => spawnSync(BIN, ["plugin", "check", dir], { encoding: "utf8", timeout: 120000 });
const c = runCheck(path.join(ROOT, "plugins", "fake-sandbox"));
const js = runCheck(pkg);
ok(c.status === 0, "plugin check passes on the C fake plugin", c.stdout + c.stderr);
ok(js.status === 0, "plugin check passes on the JS SDK plugin", js.stdout + js.stderr);
const cn = checkNames(c.stdout ?? ""), jn = checkNames(js.stdout ?? "");
ok(cn.length >= 15 && JSON.stringify(cn) === JSON.stringify(jn),
  "same checks with the same results for the C and the JS plugin", `C:  ${cn.join(", ")}\nJS: ${jn.join(", ")}`);

// 4. Install through the API of a real daemon.
const daemon = await startDaemon(ROOT, work, { PC_COMPAT_CANARY: "compat-canary-7731" });
const { base, api } = daemon;
ok(base !== null, "daemon starts", daemon.log());
try {
  if (base) {
    let r = await api("POST", "/api/plugins/install", { packageName: pkg, isLocalPath: true });
    ok(r.status === 200 && r.json?.pluginKey === "paperclip.js-sandbox-compat",
      "JS plugin installs through the API", JSON.stringify(r.json));
    ok(r.json?.status === "ready", "JS plugin is ready", JSON.stringify(r.json?.lastError));
    const methods = r.json?.worker?.supportedMethods ?? [];
    ok(["environmentValidateConfig", "environmentProbe", "environmentAcquireLease", "environmentResumeLease",
      "environmentReleaseLease", "environmentDestroyLease", "environmentRealizeWorkspace", "environmentExecute"]
      .every((m) => methods.includes(m)), "SDK's supportedMethods list the eight environment hooks", methods.join(","));
    const pid = r.json?.worker?.pid;
    let environ = "";
    try { environ = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").join("\n"); } catch {}
    ok(environ.includes("NODE_ENV=production") && environ.includes("PAPERCLIP_PLUGIN_ID=paperclip.js-sandbox-compat"),
      "JS worker gets NODE_ENV and PAPERCLIP_PLUGIN_ID", environ);
    ok(environ !== "" && !environ.includes("compat-canary-7731"), "daemon canary is not in the JS worker's environment");
    r = await api("GET", "/api/plugins/paperclip.js-sandbox-compat/health");
    ok(r.status === 200 && r.json?.healthy === true &&
      r.json?.checks?.some((c) => c.message === "JS sandbox compat plugin healthy"),
      "health goes through the SDK's onHealth", JSON.stringify(r.json));
    r = await api("POST", "/api/plugins/install", { packageName: path.join(ROOT, "plugins", "fake-sandbox"), isLocalPath: true });
    ok(r.status === 200 && r.json?.status === "ready", "C fake plugin installs beside it");
    r = await api("GET", "/api/plugins");
    ok(r.status === 200 && r.json.length === 2 && r.json.every((p) => p.status === "ready"), "both plugins ready");
    r = await api("DELETE", "/api/plugins/paperclip.js-sandbox-compat");
    ok(r.status === 200 && r.json?.status === "uninstalled", "JS plugin uninstalls");
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      try { process.kill(pid, 0); await new Promise((res) => setTimeout(res, 50)); } catch { gone = true; }
    }
    ok(gone, "JS worker process is gone after uninstall (graceful shutdown)");
  }
} finally {
  await daemon.stop();
  fs.rmSync(work, { recursive: true, force: true });
}
done();
