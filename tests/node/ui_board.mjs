// The board in a real browser: Debian's chromium headless driven by
// playwright-core against a daemon and an sshd this test starts on loopback.
// SSH environment (Test connection ok, then a wrong key's diagnostic), a
// sandbox environment on the fake provider through its generated form, a
// bwrap environment as an agent's default, Wake now and the run's live log,
// an API error shown at its field, reload of a client-side route, and the
// sign-in of authenticated mode. Every screen is saved light and dark (and a
// few at 390 px) under build/ui-screenshots and checked with axe-core.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startDaemon } from "./lib/plugin.mjs";
import { ensureBrowserDeps, launch, axeCheck, CHROMIUM } from "./lib/browser.mjs";
import { sshdAvailable, startSshd } from "./lib/sshd.mjs";
import { createTap } from "./lib/tap.mjs";

const ROOT = process.env.PC_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const T = 30000;
const { ok, done } = createTap();

if (!fs.existsSync(CHROMIUM)) {
  console.log(`1..0 # SKIP ${CHROMIUM} is not installed (deps/apt.txt: chromium)`);
  process.exit(0);
}
if (!sshdAvailable()) {
  console.log("1..0 # SKIP no sshd/ssh-keygen");
  process.exit(0);
}
const deps = await ensureBrowserDeps(ROOT);
if (!deps.ok) {
  console.log(`1..0 # SKIP npm is unreachable: ${deps.reason}`);
  process.exit(0);
}
const axeSource = fs.readFileSync(deps.axePath, "utf8");
const shots = path.join(ROOT, "build", "ui-screenshots");
fs.rmSync(shots, { recursive: true, force: true });
fs.mkdirSync(shots, { recursive: true });
console.log(`# screenshots in ${shots}`);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "pc-ui-"));
const sshDir = path.join(work, "ssh");
fs.mkdirSync(sshDir);
const remote = path.join(work, "remote");
fs.mkdirSync(remote);
const sshd = await startSshd(sshDir);
ok(sshd.up, "test sshd listens on 127.0.0.1", sshd.log());
const daemon = await startDaemon(ROOT, work, {});
const { base, api } = daemon;
ok(base !== null, "daemon starts", daemon.log());

let chrome = null;
const consoleErrors = [];
try {
  if (!base || !sshd.up) throw new Error("fixtures did not start");
  for (const p of ["plugins/bwrap-sandbox"]) {
    const r = await api("POST", "/api/plugins/install", { packageName: path.join(ROOT, p), isLocalPath: true });
    ok(r.status === 200 && r.json?.status === "ready", `${p} installs`, r.text);
  }
  chrome = await launch(deps.playwright);
  const page = await chrome.context.newPage();
  // Refused requests the test provokes (a 422 on bad input) are logged by
  // chromium as resource errors; script errors are what must not happen.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  const notFound = [];
  page.on("response", (r) => { if (r.status() === 404) notFound.push(r.url()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.setDefaultTimeout(T);
  await page.setViewportSize({ width: 1280, height: 800 });

  // Every screen: light and dark shots and no serious/critical axe finding.
  const screen = async (name, { narrow = false } = {}) => {
    await page.waitForFunction(() => !document.querySelector(".loading"));
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.screenshot({ path: path.join(shots, `${name}-${scheme}.png`), fullPage: true });
    }
    await page.emulateMedia({ colorScheme: "light" });
    const v = await axeCheck(page, axeSource);
    ok(v.length === 0, `${name}: no serious or critical accessibility violations`, JSON.stringify(v, null, 1));
    if (narrow) {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(shots, `${name}-390.png`), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
      ok(overflow <= 390, `${name}: fits 390 px without sideways scrolling`, `scrollWidth ${overflow}`);
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  };

  // Company picker → create a company through the form.
  await page.goto(base + "/");
  await page.locator("#new-company").waitFor();
  await page.keyboard.press("Tab");
  ok(await page.evaluate(() => document.activeElement?.textContent) === "Skip to content",
    "the first Tab reaches the skip link");
  // The page's own mutations pass the browser guards below; a cross-site
  // one is refused by the same listener.
  const foreign = await fetch(base + "/api/companies", { method: "POST",
    headers: { "content-type": "application/json", origin: "http://elsewhere.invalid" }, body: "{\"name\":\"X\"}" });
  ok(foreign.status === 403, "a cross-site mutation is refused (the UI's same-origin ones pass)", String(foreign.status));
  await screen("01-companies");
  await page.fill("#new-company", "Board Co");
  await page.click("text=Create company");
  await page.waitForURL(/\/companies\/[0-9a-f-]{36}$/);
  const cid = page.url().split("/").pop();
  await page.locator("h1", { hasText: "Board Co" }).waitFor();
  ok(true, "company created from the picker; the dashboard opens");
  await screen("02-dashboard", { narrow: true });

  // Install the fake provider from the Plugins page; a bad path is refused
  // at the field.
  await page.click("nav >> text=Plugins");
  await page.locator("[name=packageName]").waitFor();
  await page.fill("[name=packageName]", path.join(work, "no-such-plugin"));
  await page.getByRole("button", { name: "Install plugin" }).click();
  const pathErr = page.locator("[data-field-wrap=packageName] .field-error, form .result.bad").first();
  await pathErr.waitFor({ state: "visible" });
  ok((await pathErr.textContent()).length > 0, "installing from a missing path shows the API's error", await pathErr.textContent());
  await page.fill("[name=packageName]", path.join(ROOT, "plugins/fake-sandbox"));
  await page.getByRole("button", { name: "Install plugin" }).click();
  await page.locator("li[data-plugin='paperclip.fake-sandbox-provider'] .page-head .pill", { hasText: "ready" }).waitFor();
  ok(true, "the fake provider installs from the Plugins page and is ready");

  // Environments list: the Local row can be tested.
  await page.click("nav >> text=Environments");
  await page.waitForURL(`${base}/companies/${cid}/environments`);
  const localRow = page.locator("tr[data-env=Local]");
  await localRow.locator("text=Test connection").click();
  const localRes = page.locator(".detail-row .result.good").first();
  await localRes.waitFor();
  ok((await localRes.textContent()).includes("Local environment is available"), "Local environment can be tested from the list");

  // SSH: Test connection on the unsaved form, then a wrong key.
  await page.click("text=New environment");
  await page.waitForURL(/environments\/new$/);
  await page.selectOption("select[name=driver]", "ssh");
  await page.fill("[name=name]", "ssh-loop");
  await page.fill("[name=host]", "127.0.0.1");
  await page.fill("[name=port]", String(sshd.port));
  await page.fill("[name=username]", os.userInfo().username);
  await page.fill("[name=remoteWorkspacePath]", remote);
  await page.fill("[name=privateKey]", sshd.userKey);
  await page.fill("[name=knownHosts]", sshd.knownHosts);
  await page.click("text=Test connection");
  let res = page.locator("form .result.good, form .result.bad").first();
  await res.waitFor();
  ok((await res.getAttribute("class")).includes("good"), "SSH Test connection on the unsaved form: ok", await res.textContent());
  await screen("03-environment-ssh-test-ok");
  await page.fill("[name=privateKey]", sshd.wrongKey);
  await page.click("text=Test connection");
  res = page.locator("form .result.bad");
  await res.waitFor();
  const badText = await res.textContent();
  ok(/Test failed/.test(badText) && /Permission denied/i.test(badText), "a wrong key shows the failure and ssh's diagnostic", badText);
  await screen("04-environment-ssh-wrong-key", { narrow: true });
  await page.fill("[name=privateKey]", sshd.userKey);
  await page.click("text=Create environment");
  await page.waitForURL(`${base}/companies/${cid}/environments`);
  const sshRow = page.locator("tr[data-env=ssh-loop]");
  await sshRow.waitFor();
  let r = await api("GET", `/api/companies/${cid}/environments`);
  const sshEnv = r.json?.find((e) => e.name === "ssh-loop");
  ok(sshEnv?.driver === "ssh" && sshEnv?.config?.privateKey === null && sshEnv?.config?.privateKeySecretRef?.secretId,
    "saved SSH environment keeps the key as a secret", r.text);
  ok(!(await page.content()).includes("PRIVATE KEY"), "the private key is not shown back");
  await sshRow.locator("text=Test connection").click();
  const sshRes = sshRow.locator("xpath=following-sibling::tr[1]").locator(".result.good, .result.bad");
  await sshRes.waitFor();
  ok((await sshRes.getAttribute("class")).includes("good"), "saved SSH environment tests ok from the list", await sshRes.textContent());

  // The edit page shows no key; an API error lands at its field.
  await page.goto(`${base}/companies/${cid}/environments/${sshEnv.id}/edit`);
  await page.locator("[name=privateKey]").waitFor();
  ok(await page.inputValue("[name=privateKey]") === "" &&
    (await page.getAttribute("[name=privateKey]", "placeholder")).includes("A key is stored"),
    "edit form: private key box empty, says a key is stored");
  await page.fill("[name=remoteWorkspacePath]", "relative/path");
  await page.click("text=Save changes");
  const fieldErr = page.locator("[data-field-wrap=remoteWorkspacePath] .field-error");
  await fieldErr.waitFor({ state: "visible" });
  ok((await fieldErr.textContent()).includes("must be absolute") &&
    await page.getAttribute("[name=remoteWorkspacePath]", "aria-invalid") === "true",
    "the API's error is shown at the field it concerns", await fieldErr.textContent());
  await screen("05-environment-field-error");

  // Sandbox on the fake provider: the form comes from its configSchema.
  await page.goto(`${base}/companies/${cid}/environments/new`);
  await page.selectOption("select[name=driver]", "sandbox");
  await page.selectOption("select[name=provider]", "fake-plugin");
  await page.locator("[name=image]").waitFor();
  ok(await page.inputValue("[name=image]") === "fake:latest" &&
    await page.inputValue("[name=timeoutMs]") === "300000" &&
    await page.locator("[name=reuseLease][type=checkbox]").count() === 1,
    "fake provider's fields generated with their defaults");
  await page.fill("[name=name]", "fake-box");
  await page.fill("[name=image]", "fake:ui");
  await page.click("text=Test connection");
  res = page.locator("form .result.good, form .result.bad").first();
  await res.waitFor();
  ok((await res.textContent()).includes("ready for image fake:ui"), "fake provider Test connection: ok", await res.textContent());
  await screen("06-environment-sandbox-fake");
  await page.click("text=Create environment");
  await page.waitForURL(`${base}/companies/${cid}/environments`);
  r = await api("GET", `/api/companies/${cid}/environments`);
  const fakeEnv = r.json?.find((e) => e.name === "fake-box");
  ok(fakeEnv?.config?.provider === "fake-plugin" && fakeEnv?.config?.image === "fake:ui", "fake sandbox environment saved", r.text);

  // bwrap sandbox, then an agent that uses it by default.
  await page.goto(`${base}/companies/${cid}/environments/new`);
  await page.selectOption("select[name=driver]", "sandbox");
  await page.selectOption("select[name=provider]", "bwrap");
  await page.locator("[name=memoryMb]").waitFor();
  await page.fill("[name=name]", "bwrap-box");
  await page.click("text=Create environment");
  await page.waitForURL(`${base}/companies/${cid}/environments`);
  await page.locator("tr[data-env=bwrap-box]").waitFor();
  await screen("07-environments", { narrow: true });
  const bwEnv = (await api("GET", `/api/companies/${cid}/environments`)).json.find((e) => e.name === "bwrap-box");
  ok(bwEnv?.config?.provider === "bwrap", "bwrap environment saved");
  // Without user namespaces bwrap cannot run anything; the run then goes to
  // the Local environment so the rest of the walk-through still counts.
  const bwProbe = await api("POST", `/api/environments/${bwEnv.id}/probe`, {});
  const useBwrap = bwProbe.json?.ok === true;
  if (!useBwrap) console.log(`# bwrap is unusable here, the run uses Local: ${bwProbe.json?.summary}`);
  const runEnv = useBwrap ? bwEnv : (await api("GET", `/api/companies/${cid}/environments`)).json.find((e) => e.driver === "local");

  await page.locator("tr[data-env=fake-box] >> text=Delete").click();
  const dlg = page.locator("dialog[open]");
  await dlg.waitFor();
  await screen("08-environment-delete");
  await dlg.getByRole("button", { name: "Delete environment" }).click();
  await dlg.waitFor({ state: "detached" });
  await page.locator("tr[data-env=fake-box]").waitFor({ state: "detached" });
  ok((await api("GET", `/api/environments/${fakeEnv.id}`)).status === 404, "delete after the blast-radius dialog");

  await page.click("nav >> text=Agents");
  await page.locator("text=No agents yet").waitFor();
  await screen("09-agents-empty");
  await page.click("text=create one");
  await page.waitForURL(/agents\/new$/);
  await page.fill("[name=name]", "Echo");
  await page.selectOption("select[name=adapterType]", "process");
  await page.fill("[name=command]", "sh");
  await page.fill("[name=args]", "-c\nfor i in 1 2 3; do echo line$i; sleep 0.2; done; echo oops >&2");
  const envOptions = await page.locator("select[name=defaultEnvironmentId] option").allTextContents();
  ok(envOptions.some((t) => t.startsWith("bwrap-box")) && envOptions.some((t) => t.startsWith("ssh-loop")),
    "default environment select offers what the process adapter supports", envOptions.join(", "));
  await page.selectOption("select[name=defaultEnvironmentId]", bwEnv.id);
  await page.selectOption("select[name=adapterType]", "http");
  const httpOptions = await page.locator("select[name=defaultEnvironmentId] option").allTextContents();
  ok(httpOptions.length === 1, "an http agent is offered Local only", httpOptions.join(", "));
  await page.selectOption("select[name=adapterType]", "process");
  await page.selectOption("select[name=defaultEnvironmentId]", useBwrap ? bwEnv.id : "");
  await screen("10-agent-form");
  await page.click("text=Create agent");
  await page.waitForURL(/agents\/[0-9a-f-]{36}$/);
  const aid = page.url().split("/").pop();
  r = await api("GET", `/api/agents/${aid}`);
  ok((r.json?.defaultEnvironmentId ?? null) === (useBwrap ? bwEnv.id : null) && r.json?.adapterConfig?.command === "sh",
    "agent saved with the bwrap default", r.text);

  // An API key is shown once.
  await page.fill("#key-name", "ci");
  await page.getByRole("button", { name: "Create key" }).click();
  const token = page.locator("code.secret");
  await token.waitFor();
  const tokenText = await token.textContent();
  ok(/^pcp_/.test(tokenText) && (await page.locator("section[aria-labelledby=keys-h] li").allTextContents()).some((t) => t.startsWith("ci")),
    "a new agent key is shown once and listed by name", tokenText);
  await page.reload();
  await page.locator("#key-name").waitFor();
  ok(!(await page.content()).includes(tokenText), "after a reload the key is not shown again");

  // Wake now → the run page streams the log.
  await page.click("text=Wake now");
  const runLink = page.locator(".result.good a[href^='/runs/']");
  await runLink.waitFor();
  await runLink.click();
  await page.waitForURL(/\/runs\/[0-9a-f-]{36}$/);
  const rid = page.url().split("/").pop();
  await page.locator(".page-head .pill", { hasText: "succeeded" }).waitFor({ timeout: 90000 });
  await page.locator(".log .line.stderr", { hasText: "oops" }).waitFor();
  const outs = await page.locator(".log .line.stdout .chunk").allTextContents();
  ok(["line1", "line2", "line3"].every((l) => outs.includes(l)), "run succeeded; stdout lines streamed in", outs.join("|"));
  ok(await page.locator(".log .line.system").count() > 0, "Paperclip's own lines are marked system");
  const facts = await page.locator(".facts").textContent();
  ok(facts.includes(`${runEnv.name} · ${runEnv.driver}`), "the run page names the environment it ran in", facts);
  await screen("11-run", { narrow: true });

  // The bwrap environment's leases list the run's lease; the last test of
  // ssh-loop is known without this tab's memory of it (activity feed).
  await page.goto(`${base}/companies/${cid}/environments`);
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  const lastCell = page.locator("tr[data-env=ssh-loop] td[data-label='Last test']");
  await lastCell.waitFor();
  ok((await lastCell.textContent()).startsWith("ok"), "last test of a saved environment survives a reload", await lastCell.textContent());
  const bwRow = page.locator(`tr[data-env="${runEnv.name}"]`);
  await bwRow.getByRole("button", { name: "Leases" }).click();
  const leaseTable = bwRow.locator("xpath=following-sibling::tr[1]").locator("table");
  await leaseTable.waitFor();
  ok((await leaseTable.textContent()).includes(rid.slice(0, 8)), "the leases table shows the run's lease", await leaseTable.textContent());
  await screen("12-environment-leases");

  // Pause and resume from the agent's page.
  await page.goto(`${base}/companies/${cid}/agents/${aid}`);
  await page.getByRole("button", { name: "Pause" }).click();
  await page.locator(".page-head .pill", { hasText: "paused" }).waitFor();
  ok((await api("GET", `/api/agents/${aid}`)).json?.status === "paused", "Pause pauses the agent");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.locator(".page-head .pill", { hasText: "idle" }).waitFor();
  ok((await api("GET", `/api/agents/${aid}`)).json?.status === "idle", "Resume resumes it");
  await page.goto(`${base}/runs/${rid}`);

  // Cancel from the run page of a long run.
  r = await api("POST", `/api/companies/${cid}/agents`, { name: "Sleeper", adapterType: "process",
    adapterConfig: { command: "sh", args: ["-c", "echo start; sleep 120"] } });
  const sleeper = r.json?.id;
  r = await api("POST", `/api/agents/${sleeper}/wakeup`, {});
  const longRun = r.json?.id;
  await page.goto(`${base}/runs/${longRun}`);
  await page.locator(".log .line.stdout", { hasText: "start" }).waitFor({ timeout: 60000 });
  await page.getByRole("button", { name: "Cancel run" }).click();
  await page.locator(".page-head .pill", { hasText: "cancelled" }).waitFor({ timeout: 60000 });
  ok((await api("GET", `/api/heartbeat-runs/${longRun}`)).json?.status === "cancelled" &&
    await page.getByRole("button", { name: "Cancel run" }).isHidden(), "Cancel run cancels the live run; the button goes");
  await page.goto(`${base}/runs/${rid}`);

  // A client-side route survives a reload.
  await page.reload();
  await page.locator(".page-head h1", { hasText: `Run ${rid.slice(0, 8)}` }).waitFor();
  ok(true, "reloading /runs/:id renders the run page");

  for (const [nav, name, wait] of [["Runs", "12-runs-list", "table.list"], ["Issues", "13-issues", "text=New issue"],
    ["Activity", "14-activity", "ol.feed"], ["Plugins", "15-plugins", "text=Bubblewrap Sandbox"], ["Dashboard", "16-dashboard-after", ".cards"]]) {
    await page.click(`nav >> text=${nav}`);
    await page.locator(wait).first().waitFor();
    await screen(name);
  }
  await page.click("nav >> text=Plugins");
  const fakeCard = page.locator("li[data-plugin='paperclip.fake-sandbox-provider']");
  await fakeCard.getByRole("button", { name: /^Disable/ }).click();
  await page.locator("li[data-plugin='paperclip.fake-sandbox-provider'] .page-head .pill", { hasText: "disabled" }).waitFor();
  await page.locator("li[data-plugin='paperclip.fake-sandbox-provider']").getByRole("button", { name: /^Enable/ }).click();
  await page.locator("li[data-plugin='paperclip.fake-sandbox-provider'] .page-head .pill", { hasText: "ready" }).waitFor();
  ok(true, "a plugin is disabled and enabled again from its card");
  // Filters narrow the list and stay in the URL.
  await page.click("nav >> text=Issues");
  await page.selectOption("#flt-status", "done");
  await page.locator("text=No issue matches these filters.").waitFor();
  ok(page.url().endsWith("?status=done"), "issue filters are kept in the URL", page.url());
  await page.selectOption("#flt-status", "");

  // An issue with the environment picker.
  await page.click("nav >> text=Issues");
  await page.fill("[name=title]", "Write the report");
  await page.selectOption("select[name=assigneeAgentId]", aid);
  await page.selectOption("select[name=environmentId]", sshEnv.id);
  await page.click("text=Create issue");
  await page.waitForURL(/issues\/[0-9a-f-]{36}$/);
  const iid = page.url().split("/").pop();
  r = await api("GET", `/api/issues/${iid}`);
  ok(r.json?.assigneeAgentId === aid && r.json?.executionWorkspaceSettings?.environmentId === sshEnv.id,
    "issue created with assignee and environment", r.text);
  await page.fill("[name=body]", "First comment");
  await page.click("text=Add comment");
  await page.locator(".feed li", { hasText: "First comment" }).waitFor();
  await screen("17-issue");

  ok(consoleErrors.length === 0, "no script errors in the browser console", consoleErrors.join("\n"));
  ok(notFound.length === 0, "the UI asked for nothing that is not there", notFound.join("\n"));
  await page.close();
} catch (e) {
  ok(false, "browser walk-through", e.stack || String(e));
} finally {
  await daemon.stop();
}

// Authenticated mode: the board asks for a key and keeps it in sessionStorage.
const work2 = fs.mkdtempSync(path.join(os.tmpdir(), "pc-ui-auth-"));
const d2 = await startDaemon(ROOT, work2, { PAPERCLIP_AUTH_MODE: "authenticated" });
try {
  ok(d2.base !== null, "authenticated daemon starts", d2.log());
  const k = spawnSync(path.join(ROOT, "paperclip"), ["auth", "create-board-key", "--data-dir", path.join(work2, "data")], { encoding: "utf8" });
  const key = (k.stdout.match(/pcb_[A-Za-z0-9_-]+/) || [])[0];
  ok(!!key, "board key created", k.stdout + k.stderr);
  if (d2.base && key && chrome) {
    const page = await chrome.context.newPage();
    page.setDefaultTimeout(T);
    await page.goto(d2.base + "/companies");
    await page.locator("#board-key").waitFor();
    ok(true, "authenticated mode asks for a board key");
    await page.fill("#board-key", "pcb_wrong");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(".login .result.bad", { hasText: "not accepted" }).waitFor();
    ok(true, "a wrong key is refused with a message");
    await page.waitForFunction(() => !document.querySelector(".loading"));
    await page.screenshot({ path: path.join(shots, "18-sign-in-light.png") });
    await page.emulateMedia({ colorScheme: "dark" });
    await page.screenshot({ path: path.join(shots, "18-sign-in-dark.png") });
    await page.emulateMedia({ colorScheme: "light" });
    const v = await axeCheck(page, axeSource);
    ok(v.length === 0, "18-sign-in: no serious or critical accessibility violations", JSON.stringify(v, null, 1));
    await page.fill("#board-key", key);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("h1", { hasText: "Companies" }).waitFor();
    const stored = await page.evaluate(() => [sessionStorage.getItem("paperclip.boardKey"), localStorage.length]);
    ok(stored[0] === key && stored[1] === 0, "the key lives in sessionStorage only");
    await page.fill("#new-company", "Auth Co");
    await page.click("text=Create company");
    await page.locator("h1", { hasText: "Auth Co" }).waitFor();
    ok(true, "a signed-in board creates a company through the guards");
    await page.close();
  }
} catch (e) {
  ok(false, "authenticated walk-through", e.stack || String(e));
} finally {
  await d2.stop();
  if (chrome) await chrome.close();
  await sshd.stop();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(work2, { recursive: true, force: true });
}
done();
