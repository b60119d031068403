// The board's projects, agent termination and dashboard budget in a real
// browser (Debian's chromium headless through playwright-core) against a
// daemon this test starts on loopback: a project created with an isolated
// workspace policy on an environment, the policy read back after a reload,
// the API's error shown at the workspace field, a project workspace added
// and removed, an issue filed under the project, an agent terminated
// through its confirmation dialog, and the dashboard's spend against budget.
// Screens are saved light and dark under build/ui-screenshots-projects and
// checked with axe-core.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startDaemon } from "./lib/plugin.mjs";
import { ensureBrowserDeps, launch, axeCheck, CHROMIUM } from "./lib/browser.mjs";
import { createTap } from "./lib/tap.mjs";

const ROOT = process.env.PC_ROOT ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const T = 30000;
const { ok, done } = createTap();

if (!fs.existsSync(CHROMIUM)) {
  console.log(`1..0 # SKIP ${CHROMIUM} is not installed (deps/apt.txt: chromium)`);
  process.exit(0);
}
const deps = await ensureBrowserDeps(ROOT);
if (!deps.ok) {
  console.log(`1..0 # SKIP npm is unreachable: ${deps.reason}`);
  process.exit(0);
}
const axeSource = fs.readFileSync(deps.axePath, "utf8");
const shots = path.join(ROOT, "build", "ui-screenshots-projects");
fs.rmSync(shots, { recursive: true, force: true });
fs.mkdirSync(shots, { recursive: true });
console.log(`# screenshots in ${shots}`);

const work = fs.mkdtempSync(path.join(os.tmpdir(), "pc-ui-proj-"));
const daemon = await startDaemon(ROOT, work, {});
const { base, api } = daemon;
ok(base !== null, "daemon starts", daemon.log());

let chrome = null;
const consoleErrors = [];
try {
  if (!base) throw new Error("daemon did not start");
  const co = await api("POST", "/api/companies", { name: "Proj Co" });
  ok(co.status === 201 || co.status === 200, "company created", co.text);
  const cid = co.json.id;
  const env = await api("POST", `/api/companies/${cid}/environments`, { name: "host-two", driver: "local", config: {} });
  ok(env.status === 201 || env.status === 200, "local environment created", env.text);
  const budgeted = await api("POST", `/api/companies/${cid}/agents`, { name: "Budgeted", role: "engineer",
    adapterType: "process", adapterConfig: { command: "true" }, budgetMonthlyCents: 2500 });
  ok(budgeted.status === 201 || budgeted.status === 200, "agent with a budget created", budgeted.text);
  const doomed = await api("POST", `/api/companies/${cid}/agents`, { name: "Doomed", role: "general",
    adapterType: "process", adapterConfig: { command: "true" } });
  ok(doomed.status === 201 || doomed.status === 200, "agent to terminate created", doomed.text);
  const free = await api("POST", `/api/companies/${cid}/agents`, { name: "Free", role: "general",
    adapterType: "process", adapterConfig: { command: "true" } });
  ok(free.status === 201 || free.status === 200, "agent without a budget created", free.text);

  chrome = await launch(deps.playwright);
  const page = await chrome.context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) consoleErrors.push(m.text());
  });
  const notFound = [];
  page.on("response", (r) => { if (r.status() === 404) notFound.push(r.url()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  page.setDefaultTimeout(T);
  await page.setViewportSize({ width: 1280, height: 800 });
  const screen = async (name) => {
    await page.waitForFunction(() => !document.querySelector(".loading"));
    for (const scheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.screenshot({ path: path.join(shots, `${name}-${scheme}.png`), fullPage: true });
    }
    await page.emulateMedia({ colorScheme: "light" });
    const v = await axeCheck(page, axeSource);
    ok(v.length === 0, `${name}: no serious or critical accessibility violations`, JSON.stringify(v, null, 1));
  };

  // The nav reaches the empty projects list.
  await page.goto(`${base}/companies/${cid}`);
  await page.getByRole("link", { name: "Projects", exact: true }).click();
  await page.locator(".empty", { hasText: "No projects yet" }).waitFor();
  ok(true, "the Projects nav entry opens the empty list");
  await screen("p1-projects-empty");

  // Create with an isolated policy on the environment.
  await page.getByRole("link", { name: "New project" }).first().click();
  await page.locator("form [name=name]").fill("Web app");
  await page.getByLabel("Description", { exact: true }).fill("The customer site");
  await page.getByLabel("Lead agent", { exact: true }).selectOption({ label: "Budgeted" });
  await page.getByLabel("Workspace mode", { exact: true }).selectOption("isolated_workspace");
  await page.getByLabel("Environment", { exact: true }).selectOption(env.json.id);
  await page.getByLabel("Base ref", { exact: true }).fill("main");
  await screen("p2-project-new");
  await page.getByRole("button", { name: "Create project" }).click();
  await page.waitForURL(/\/projects\/[0-9a-f-]{36}$/);
  const pid = page.url().split("/").pop();
  const saved = await api("GET", `/api/projects/${pid}`);
  const pol = saved.json?.executionWorkspacePolicy || {};
  ok(saved.status === 200 && pol.enabled === true && pol.defaultMode === "isolated_workspace" &&
    pol.environmentId === env.json.id && pol.workspaceStrategy?.baseRef === "main" &&
    saved.json.leadAgentId === budgeted.json.id, "the project is saved with an isolated policy on the environment", saved.text);

  await page.reload();
  await page.getByLabel("Workspace mode", { exact: true }).waitFor();
  const shown = await page.evaluate(() => [document.querySelector("[name=defaultMode]").value,
    document.querySelector("[name=environmentId]").value, document.querySelector("[name=baseRef]").value,
    document.querySelector("[name=name]").value]);
  ok(shown[0] === "isolated_workspace" && shown[1] === env.json.id && shown[2] === "main" && shown[3] === "Web app",
    "the policy shows after a reload", JSON.stringify(shown));

  // A relative host directory: the API's validation message at that field.
  await page.getByLabel("Workspace name", { exact: true }).fill("app");
  await page.getByLabel("Host directory", { exact: true }).fill("relative/dir");
  await page.getByRole("button", { name: "Add workspace" }).click();
  const cwdErr = page.locator("[name=cwd] ~ .field-error");
  await cwdErr.waitFor({ state: "visible" });
  const errText = await cwdErr.textContent();
  ok(/absolute/i.test(errText) && await page.locator("[name=cwd]").getAttribute("aria-invalid") === "true",
    "a bad host directory shows the API's error at the field", errText);
  await screen("p3-project-error");
  const repoDir = path.join(work, "repo");
  fs.mkdirSync(repoDir);
  await page.getByLabel("Host directory", { exact: true }).fill(repoDir);
  await page.getByRole("button", { name: "Add workspace" }).click();
  await page.locator("#project-workspaces li[data-workspace=app]").waitFor();
  const wss = await api("GET", `/api/projects/${pid}/workspaces`);
  ok(wss.json?.length === 1 && wss.json[0].cwd === repoDir, "the workspace is added", wss.text);
  await page.locator("#project-workspaces li[data-workspace=app]").waitFor();
  await page.locator(".empty", { hasText: "runs of this project's issues make them" }).waitFor();
  ok(true, "the project's execution workspaces list is shown (empty)");
  await screen("p4-project");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Remove workspace app" }).click();
  await page.locator("#project-workspaces li", { hasText: "No workspaces" }).waitFor();
  const wss2 = await api("GET", `/api/projects/${pid}/workspaces`);
  ok(Array.isArray(wss2.json) && wss2.json.length === 0, "the workspace is removed", wss2.text);

  await page.getByRole("link", { name: "← Projects" }).click();
  await page.locator("tr[data-project='Web app']").waitFor();
  const row = await page.locator("tr[data-project='Web app']").textContent();
  ok(row.includes("isolated") && row.includes("host-two") && row.includes("Budgeted"), "the list shows mode, environment and lead", row);
  await screen("p5-projects");

  // Issues carry a project.
  await page.goto(`${base}/companies/${cid}/issues`);
  await page.locator("[name=title]").fill("Fix the footer");
  await page.getByLabel("Project", { exact: true }).selectOption({ label: "Web app" });
  await page.getByRole("button", { name: "Create issue" }).click();
  await page.waitForURL(/\/issues\/[0-9a-f-]{36}$/);
  const iid = page.url().split("/").pop();
  const issue = await api("GET", `/api/issues/${iid}`);
  ok(issue.json?.projectId === pid, "an issue is created under the project", issue.text);
  ok(await page.getByLabel("Project", { exact: true }).inputValue() === pid, "the issue page shows its project");

  // Terminate through the confirmation dialog; Cancel first leaves it alone.
  await page.goto(`${base}/companies/${cid}/agents/${doomed.json.id}`);
  await page.getByRole("button", { name: "Terminate", exact: true }).click();
  const dlg = page.getByRole("dialog");
  await dlg.waitFor();
  await screen("p6-terminate-dialog");
  await dlg.getByRole("button", { name: "Cancel" }).click();
  await dlg.waitFor({ state: "detached" });
  ok((await api("GET", `/api/agents/${doomed.json.id}`)).json?.status !== "terminated", "Cancel leaves the agent alone");
  await page.getByRole("button", { name: "Terminate", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Terminate agent" }).click();
  await page.getByRole("button", { name: "Terminated" }).waitFor();
  ok(await page.getByRole("button", { name: "Terminated" }).isDisabled() &&
    await page.getByRole("button", { name: "Wake now" }).isDisabled(), "a terminated agent's buttons are disabled");
  const gone = await api("GET", `/api/agents/${doomed.json.id}`);
  ok(gone.json?.status === "terminated", "the agent is terminated", gone.text);

  // Dashboard: spend against budget (84 % spent: the bar warns), and live runs.
  const cost = await api("POST", `/api/companies/${cid}/cost-events`, { agentId: budgeted.json.id, provider: "test",
    model: "m", costCents: 2100, occurredAt: new Date().toISOString() });
  ok(cost.status === 201, "a cost event is recorded", cost.text);
  await page.goto(`${base}/companies/${cid}`);
  const card = page.locator(".card[data-agent=Budgeted]");
  await card.waitFor();
  const cardText = await card.textContent();
  ok(cardText.includes("$21.00 of $25.00 this month") && await card.locator(".meter.near[role=meter]").count() === 1,
    "the dashboard shows an agent's spend against its budget", cardText);
  const freeText = await page.locator(".card[data-agent=Free]").textContent();
  ok(freeText.includes("no budget") && await page.locator(".card[data-agent=Free] [role=meter]").count() === 0,
    "an agent without a budget says so", freeText);
  ok(await page.locator(".card[data-agent=Doomed]").count() === 0, "a terminated agent is not on the dashboard");
  await page.locator("#d-live").waitFor();
  ok(true, "the dashboard has a live runs section");
  await screen("p7-dashboard");

  ok(consoleErrors.length === 0, "no script errors in the browser console", consoleErrors.join("\n"));
  ok(notFound.length === 0, "the UI asked for nothing that is not there", notFound.join("\n"));
  await page.close();
} catch (e) {
  ok(false, "browser walk-through", e.stack || String(e));
} finally {
  await daemon.stop();
  if (chrome) await chrome.close();
  fs.rmSync(work, { recursive: true, force: true });
}
done();
