// Sandbox environments through a provider written on the published
// @paperclipai/plugin-sdk (a copy of tests/compat/js-sandbox-plugin whose
// configSchema adds a `format: "secret-ref"` field): save (the plaintext
// field becomes a company secret id), probe (the worker sees the resolved
// value), lease acquire/realize/execute/release through the lease test hooks,
// and no secret text in any answer or in the daemon log.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { preparePlugin, startDaemon } from "./lib/plugin.mjs";
import { ensureSdk } from "./lib/sdk.mjs";
import { createTap } from "./lib/tap.mjs";

const ROOT = process.env.PC_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SECRET = "sk-PLAINTEXT-4711-js";
const { ok, done } = createTap();

const sdk = await ensureSdk(ROOT);
if (!sdk.ok) {
  console.log(`1..0 # SKIP npm is unreachable: ${sdk.reason}`);
  process.exit(0);
}

const { work, pkg } = preparePlugin(ROOT, "envjs");
const mf = path.join(pkg, "manifest.mjs");
fs.writeFileSync(mf, fs.readFileSync(mf, "utf8").replace(
  'reuseLease: { type: "boolean", default: false },',
  'reuseLease: { type: "boolean", default: false },\n          apiKey: { type: "string", format: "secret-ref" },'));
const wf = path.join(pkg, "worker.mjs");
fs.writeFileSync(wf, fs.readFileSync(wf, "utf8")
  .replace("    reuseLease: raw.reuseLease === true,\n  };",
    "    reuseLease: raw.reuseLease === true,\n    ...(typeof raw.apiKey === \"string\" ? { apiKey: raw.apiKey } : {}),\n  };")
  .replace("metadata: { provider: \"js-fake\", ...c } };",
    "metadata: { provider: \"js-fake\", image: c.image, apiKeyLength: c.apiKey?.length ?? 0, " +
    "apiKeyResolved: c.apiKey === " + JSON.stringify(SECRET) + " } };"));

const daemon = await startDaemon(ROOT, work, { PAPERCLIP_ENABLE_TEST_HOOKS: "1" });
const { base, api } = daemon;
ok(base !== null, "daemon starts", daemon.log());
try {
  if (base) {
    let r = await api("POST", "/api/plugins/install", { packageName: pkg, isLocalPath: true });
    ok(r.status === 200 && r.json?.status === "ready", "JS plugin installs and is ready", r.text);
    r = await api("POST", "/api/companies", { name: "JS Env Co" });
    const cid = r.json?.id;
    r = await api("GET", `/api/companies/${cid}/environments/capabilities`);
    const p = r.json?.sandboxProviders?.["js-fake"];
    ok(p?.status === "supported" && p?.source === "plugin" && p?.pluginKey === "paperclip.js-sandbox-compat" &&
      p?.configSchema?.properties?.apiKey?.format === "secret-ref" && p?.supportsReusableLeases === true,
      "capabilities list the JS provider with its configSchema", r.text);

    r = await api("POST", `/api/companies/${cid}/environments`, {
      name: "JS sandbox", driver: "sandbox", config: { provider: "js-fake", image: "js:test", apiKey: SECRET },
    });
    ok(r.status === 201, "sandbox environment on the JS provider: 201", r.text);
    const env = r.json?.id;
    const cfg = r.json?.config ?? {};
    ok(cfg.provider === "js-fake" && cfg.image === "js:test" && cfg.timeoutMs === 300000 && cfg.reuseLease === false,
      "stored as the provider's normalizedConfig", JSON.stringify(cfg));
    ok(/^[0-9a-f-]{36}$/.test(cfg.apiKey ?? "") && !r.text.includes(SECRET),
      "secret-ref field stored as a secret id, plaintext not returned", r.text);

    r = await api("POST", `/api/environments/${env}/probe`, {});
    ok(r.status === 200 && r.json?.ok === true && r.json?.summary === "JS fake sandbox is ready for image js:test.",
      "probe through the JS provider", r.text);
    ok(r.json?.details?.metadata?.apiKeyResolved === true && !r.text.includes(SECRET),
      "the provider got the secret's value at probe time; the answer does not carry it", r.text);

    r = await api("PATCH", `/api/environments/${env}`, { config: { image: "js:two" } });
    ok(r.status === 200 && r.json?.config?.apiKey === cfg.apiKey, "partial patch keeps the secret id", r.text);

    r = await api("POST", `/api/environments/${env}/test-lease`, { runId: "run-js" });
    ok(r.status === 200 && r.json?.lease?.providerLeaseId?.startsWith("js-fake://run-js/"),
      "lease acquired from the JS provider", r.text);
    const lid = r.json?.lease?.id;
    const root = r.json?.lease?.metadata?.fakeRootDir;
    ok(typeof root === "string" && fs.existsSync(root), "provider directory exists");
    r = await api("POST", `/api/environment-leases/${lid}/test-execute`,
      { command: "sh", args: ["-c", "printf js-ok; echo ${HOME:-nohome} >&2"], env: { A: "1" } });
    ok(r.json?.stdout === "js-ok" && r.json?.stderr === "nohome\n" && r.json?.exitCode === 0,
      "execute through the JS provider with only the explicit env", r.text);
    r = await api("POST", `/api/environment-leases/${lid}/test-release`, { runStatus: "succeeded" });
    ok(r.json?.status === "released" && r.json?.cleanupStatus === "success", "released", r.text);
    ok(!fs.existsSync(root), "provider directory removed on release");

    // A heartbeat run on this provider, which never streams (npm SDK): its
    // output reaches the run log from the final result, exactly once.
    r = await api("POST", `/api/companies/${cid}/agents`, {
      name: "JS sandboxed", adapterType: "process", defaultEnvironmentId: env,
      adapterConfig: { command: "sh", args: ["-c", "echo \"js-line-$((40+2))\"; echo \"js-err-$((40+2))\" >&2"] },
    });
    ok(r.status === 201, "agent on the JS sandbox created", r.text);
    r = await api("POST", `/api/agents/${r.json?.id}/wakeup`, {});
    const run = r.json?.id;
    let st = null;
    for (let i = 0; i < 1500 && !["succeeded", "failed", "cancelled", "timed_out"].includes(st); i++) {
      await new Promise((res) => setTimeout(res, 20));
      st = (await api("GET", `/api/heartbeat-runs/${run}`)).json?.status;
    }
    ok(st === "succeeded", "run on the non-streaming JS provider succeeded", st);
    r = await api("GET", `/api/heartbeat-runs/${run}/log`);
    const content = r.json?.content ?? "";
    ok(content.split("js-line-42").length === 2 && content.split("js-err-42").length === 2,
      "its stdout and stderr are in the run log exactly once", content);
  }
} finally {
  await daemon.stop();
  ok(!daemon.log().includes(SECRET), "daemon log carries no secret text");
  fs.rmSync(work, { recursive: true, force: true });
}
done();
