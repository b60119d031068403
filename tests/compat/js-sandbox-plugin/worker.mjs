// A sandbox provider on the published SDK: definePlugin + runWorker, nothing
// specific to the C host. Semantics follow the fake provider: a lease is a
// temp directory, execute spawns without a shell with only the explicit env
// plus a default PATH, stdin is written then closed, a timeout sends SIGTERM
// then SIGKILL after 250 ms to the command's process group.
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { definePlugin, runWorker } from "@paperclipai/plugin-sdk";

const DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
const leases = new Map();

function parseConfig(raw = {}) {
  return {
    image: typeof raw.image === "string" && raw.image.trim() ? raw.image.trim() : "fake:latest",
    timeoutMs: typeof raw.timeoutMs === "number" && Number.isFinite(raw.timeoutMs) ? raw.timeoutMs : 300000,
    reuseLease: raw.reuseLease === true,
  };
}

async function createLease(id, cfg) {
  const rootDir = await mkdtemp(path.join(os.tmpdir(), "paperclip-fake-sandbox-"));
  const remoteCwd = path.join(rootDir, "workspace");
  await mkdir(remoteCwd, { recursive: true });
  const state = { providerLeaseId: id, rootDir, remoteCwd, image: cfg.image, reuseLease: cfg.reuseLease };
  leases.set(id, state);
  return state;
}

function meta(s) {
  return { provider: "js-fake", image: s.image, reuseLease: s.reuseLease, remoteCwd: s.remoteCwd, fakeRootDir: s.rootDir };
}

async function removeLease(id, leaseMetadata) {
  if (!id) return;
  const s = leases.get(id);
  leases.delete(id);
  const dir = s?.rootDir ?? leaseMetadata?.fakeRootDir;
  if (dir && path.basename(dir).startsWith("paperclip-fake-sandbox-")) await rm(dir, { recursive: true, force: true });
}

const plugin = definePlugin({
  async setup() {},
  async onHealth() {
    return { status: "ok", message: "JS sandbox compat plugin healthy" };
  },
  async onEnvironmentValidateConfig({ config }) {
    return { ok: true, normalizedConfig: parseConfig(config) };
  },
  async onEnvironmentProbe({ config }) {
    const c = parseConfig(config);
    return { ok: true, summary: `JS fake sandbox is ready for image ${c.image}.`, metadata: { provider: "js-fake", ...c } };
  },
  async onEnvironmentAcquireLease({ config, environmentId, runId }) {
    const c = parseConfig(config);
    const id = c.reuseLease ? `js-fake://${environmentId}` : `js-fake://${runId}/${randomUUID()}`;
    const existing = leases.get(id);
    const s = existing ?? (await createLease(id, c));
    return { providerLeaseId: id, metadata: { ...meta(s), resumedLease: Boolean(existing) } };
  },
  async onEnvironmentResumeLease({ config, providerLeaseId }) {
    const s = leases.get(providerLeaseId) ?? (await createLease(providerLeaseId, parseConfig(config)));
    return { providerLeaseId, metadata: { ...meta(s), resumedLease: true } };
  },
  async onEnvironmentReleaseLease({ config, providerLeaseId, leaseMetadata }) {
    if (!parseConfig(config).reuseLease) await removeLease(providerLeaseId, leaseMetadata);
  },
  async onEnvironmentDestroyLease({ providerLeaseId, leaseMetadata }) {
    await removeLease(providerLeaseId, leaseMetadata);
  },
  async onEnvironmentRealizeWorkspace({ lease, workspace }) {
    const s = lease?.providerLeaseId ? leases.get(lease.providerLeaseId) : undefined;
    const cwd = s?.remoteCwd ?? lease?.metadata?.remoteCwd ?? workspace?.remotePath ?? workspace?.localPath
      ?? path.join(os.tmpdir(), "paperclip-fake-sandbox-workspace");
    await mkdir(cwd, { recursive: true });
    return { cwd, metadata: { provider: "js-fake", remoteCwd: cwd } };
  },
  async onEnvironmentExecute(params) {
    const c = parseConfig(params.config);
    const timeoutMs = params.timeoutMs ?? c.timeoutMs;
    const env = { PATH: params.env?.PATH ?? DEFAULT_PATH, ...(params.env ?? {}) };
    const startedAt = new Date().toISOString();
    return await new Promise((resolve, reject) => {
      const child = spawn(params.command, params.args ?? [], {
        cwd: params.cwd || process.cwd(), env, detached: true,
        stdio: [params.stdin !== undefined ? "pipe" : "ignore", "pipe", "pipe"],
      });
      let stdout = "", stderr = "", timedOut = false, killTimer;
      child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
      if (params.stdin !== undefined) child.stdin.end(params.stdin);
      const timer = setTimeout(() => {
        timedOut = true;
        try { process.kill(-child.pid, "SIGTERM"); } catch {}
        killTimer = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch {} }, 250);
      }, timeoutMs);
      child.on("error", (e) => { clearTimeout(timer); clearTimeout(killTimer); reject(e); });
      child.on("close", (code, signal) => {
        clearTimeout(timer); clearTimeout(killTimer);
        resolve({ exitCode: timedOut ? null : code, signal: signal ?? null, timedOut, stdout, stderr,
          metadata: { startedAt, commandLine: [params.command, ...(params.args ?? [])].join(" ") } });
      });
    });
  },
});

export default plugin;
runWorker(plugin, import.meta.url);
