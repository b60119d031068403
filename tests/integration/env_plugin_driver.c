/*
 * `plugin`-driver environments end to end, on the C test plugin
 * tests/plugins/env-driver (driver "host-dir", kind environment_driver,
 * commands on this host in a directory per lease under a TMPDIR this test
 * owns):
 *
 *  - refused configs: plugin not installed, undeclared driverKey, a
 *    driverConfig the plugin rejects (its own error text and details);
 *  - the plugin's normalizedConfig is what is stored; probe goes through
 *    the plugin; capabilities report the plugin driver without listing the
 *    environment driver as a sandbox provider;
 *  - an agent whose default environment it is runs there: the run succeeds,
 *    its output is in the run log, it ran in the lease directory, and the
 *    lease row names the plugin driver and is released (directory gone);
 *  - the plugin stopped mid-run: the run fails, its command is gone, the
 *    lease is closed, and probes/runs say the driver is not ready;
 *  - kill -9 of the daemon with a plugin lease active: the restarted daemon
 *    destroys it through the plugin (the lease directory goes).
 */
#include <signal.h>
#include <sys/stat.h>

#include "heartbeat_common.h"

#define PKEY "paperclip.test-env-driver"

static char *cid, *tmp;

static pc_http_res create_env(const char *name, const char *cfg)
{
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"%s\",\"driver\":\"plugin\",\"config\":%s}", name, cfg) < 0)
        body = NULL;
    pc_http_res r = req("POST", body ? body : "{}", "/api/companies/%s/environments", cid);
    free(body);
    return r;
}

/* A 422 whose error text is exactly want. */
static void refused(const char *label, const char *cfg, const char *want)
{
    pc_http_res r = create_env(label, cfg);
    is_int(r.status, 422, "%s: refused", label);
    is_str(pc_res_str(&r, "error"), want, "%s: upstream's text", label);
    pc_http_res_free(&r);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static bool wait_file(const char *path, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (file_exists(path))
            return true;
        pc_test_sleep_ms(20);
    }
    return false;
}

/* The value after "tag" up to the end of its line, from the run log. */
static char *log_value(const char *log, const char *tag)
{
    const char *p = strstr(log, tag);
    if (!p)
        return strdup("");
    p += strlen(tag);
    size_t n = strcspn(p, "\r\n\"\\");
    return strndup(p, n);
}

static void set_default_env(const char *agent, const char *env_id)
{
    char body[200];
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", env_id);
    pc_http_res r = req("PATCH", body, "/api/agents/%s", agent);
    is_int(r.status, 200, "agent's default environment set");
    if (r.status != 200)
        tap_diag("%s", r.body);
    pc_http_res_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const char *const hook_env[] = {"PAPERCLIP_ENABLE_TEST_HOOKS=1", NULL};
    pc_daemon_opts o = {.env = hook_env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    tmp = pc_test_tmpdir("pdrv");
    cid = hb_company("Plugin Driver Co");
    char cfg[400];
    snprintf(cfg, sizeof cfg,
             "{\"pluginKey\":\"" PKEY "\",\"driverKey\":\"host-dir\",\"driverConfig\":"
             "{\"label\":\"e2e\"}}");

    /* Not installed yet. */
    refused("not installed", cfg,
            "Plugin environment driver \"" PKEY ":host-dir\" is not ready.");

    char body[1400];
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/tests/plugins/env-driver\",\"isLocalPath\":true,"
             "\"env\":{\"TMPDIR\":\"%s\"}}",
             pc_test_root(), tmp);
    pc_http_res r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "env-driver plugin installed (%ld)", r.status);
    if (r.status != 200 && r.status != 201)
        tap_diag("%s", r.body);
    pc_http_res_free(&r);

    refused("unknown driverKey",
            "{\"pluginKey\":\"" PKEY "\",\"driverKey\":\"nope\",\"driverConfig\":{}}",
            "Plugin \"" PKEY "\" does not declare environment driver \"nope\".");
    r = create_env("bad config", "{\"pluginKey\":\"" PKEY "\",\"driverKey\":\"host-dir\","
                                 "\"driverConfig\":{\"bogus\":1}}");
    is_int(r.status, 422, "invalid driverConfig: refused by the plugin");
    is_str(pc_res_str(&r, "error"), "host-dir: invalid option \"bogus\"",
           "invalid driverConfig: the plugin's first error");
    ok(strstr(r.body, "\"errors\"") != NULL, "invalid driverConfig: errors in details");
    pc_http_res_free(&r);

    /* The stored config is the plugin's normalizedConfig. */
    r = create_env("Defaults", "{\"pluginKey\":\"" PKEY "\",\"driverKey\":\"host-dir\"}");
    is_int(r.status, 201, "driverConfig omitted: created");
    is_str(js(json_object_get(json_object_get(r.json, "config"), "driverConfig"), "label"),
           "default", "the plugin's normalizedConfig is stored");
    pc_http_res_free(&r);

    /* The CLI's plugin flags. */
    char *argv[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "env", "create", cid,
                    "--name", "CLI host dir", "--driver", "plugin", "--plugin", PKEY,
                    "--driver-key", "host-dir", "--driver-config", "{\"label\":\"cli\"}",
                    NULL};
    char *out = NULL;
    int rc = pc_run_capture(argv, &out);
    json_t *cj = json_loads(out ? out : "", 0, NULL);
    json_t *cc = json_object_get(cj, "config");
    ok(rc == 0 && !strcmp(js(cc, "pluginKey"), PKEY) && !strcmp(js(cc, "driverKey"), "host-dir") &&
           !strcmp(js(json_object_get(cc, "driverConfig"), "label"), "cli"),
       "cli: env create --plugin --driver-key --driver-config");
    json_decref(cj);
    free(out);

    r = create_env("Host dir", cfg);
    is_int(r.status, 201, "plugin environment created");
    char *env_id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    r = req("POST", "{}", "/api/environments/%s/probe", env_id);
    is_int(r.status, 200, "probe answers");
    ok(json_is_true(json_object_get(r.json, "ok")), "probe ok");
    is_str(pc_res_str(&r, "driver"), "plugin", "probe driver");
    is_str(pc_res_str(&r, "summary"), "Host directory driver is ready (e2e).",
           "probe summary comes from the plugin, with the stored driverConfig");
    is_str(js(json_object_get(r.json, "details"), "driverKey"), "host-dir", "probe details");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/companies/%s/environments/capabilities", cid);
    is_int(r.status, 200, "capabilities");
    is_str(js(json_object_get(r.json, "drivers"), "plugin"), "supported",
           "capabilities: the plugin driver runs");
    ok(!json_object_get(json_object_get(r.json, "sandboxProviders"), "host-dir"),
       "capabilities: an environment_driver is not a sandbox provider");
    pc_http_res_free(&r);

    /* End to end: the agent's default environment. */
    char *agent = hb_sh_agent(cid, "Plugin worker",
                              "echo \"cwd=$(pwd)\"; echo plugin-run-ok; echo oops >&2", NULL,
                              NULL);
    set_default_env(agent, env_id);
    char *run = hb_wake(agent, NULL);
    json_t *j = hb_wait_run(run, NULL, 60000);
    is_str(js(j, "status"), "succeeded", "run succeeded");
    if (strcmp(js(j, "status"), "succeeded") != 0)
        tap_diag("error %s (%s)", js(j, "error"), js(j, "errorCode"));
    is_str(js(j, "environmentId"), env_id, "ran in the plugin environment");
    char *log = hb_log(run);
    ok(strstr(log, "plugin-run-ok") != NULL, "the command's output is in the run log");
    char *second = strstr(log, "plugin-run-ok");
    ok(second && !strstr(second + 1, "plugin-run-ok"),
       "streamed output is not appended a second time");
    char *cwd = log_value(log, "cwd=");
    char prefix[700];
    snprintf(prefix, sizeof prefix, "%s/paperclip-env-driver-", tmp);
    ok(!strncmp(cwd, prefix, strlen(prefix)), "ran in the lease directory (%s)", cwd);
    r = req("GET", NULL, "/api/environment-leases/%s", js(j, "leaseId"));
    is_str(pc_res_str(&r, "status"), "released", "lease released");
    is_str(pc_res_str(&r, "provider"), "plugin:" PKEY ":host-dir", "lease provider");
    json_t *meta = json_object_get(r.json, "metadata");
    is_str(js(meta, "driver"), "plugin", "lease metadata: driver");
    is_str(js(meta, "pluginKey"), PKEY, "lease metadata: pluginKey");
    is_str(js(meta, "driverKey"), "host-dir", "lease metadata: driverKey");
    ok(strstr(pc_res_str(&r, "providerLeaseId"), "paperclip-env-driver-") != NULL,
       "lease: the plugin's providerLeaseId");
    pc_http_res_free(&r);
    /* cwd is <lease dir>/workspace; release removed the lease directory. */
    char *slash = strrchr(cwd, '/');
    if (slash)
        *slash = '\0';
    ok(*cwd && !file_exists(cwd), "release removed the lease directory");
    free(cwd), free(log), free(run);
    json_decref(j);

    /* The plugin stopped mid-run. */
    char marker[700];
    snprintf(marker, sizeof marker, "%s/started.pid", tmp);
    char script[2400];
    snprintf(script, sizeof script,
             "echo plugin-stream-live; echo $$ > %s.tmp && mv %s.tmp %s; exec sleep 120",
             marker, marker, marker);
    char *sleeper = hb_sh_agent(cid, "Sleeper", script, NULL, NULL);
    set_default_env(sleeper, env_id);
    run = hb_wake(sleeper, NULL);
    ok(wait_file(marker, 60000), "the long command started through the plugin");
    ok(hb_wait_log(run, "plugin-stream-live", 30000),
       "output the plugin streams reaches the run log while the command runs");
    r = req("POST", NULL, "/api/plugins/" PKEY "/disable");
    is_int(r.status, 200, "plugin disabled mid-run");
    pc_http_res_free(&r);
    j = hb_wait_run(run, NULL, 90000);
    is_str(js(j, "status"), "failed", "the run fails when its plugin stops");
    FILE *f = fopen(marker, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    bool gone = false;
    for (int i = 0; pid > 0 && i < 1500 && !gone; i++) {
        gone = kill((pid_t)pid, 0) < 0;
        if (!gone)
            pc_test_sleep_ms(20);
    }
    ok(gone, "the command died with the plugin worker");
    r = req("GET", NULL, "/api/environment-leases/%s", js(j, "leaseId"));
    is_str(pc_res_str(&r, "status"), "failed", "the lease is closed as failed");
    is_str(pc_res_str(&r, "cleanupStatus"), "failed",
           "its release could not reach the plugin (cleanupStatus failed)");
    pc_http_res_free(&r);
    json_decref(j);
    free(run);

    r = req("POST", "{}", "/api/environments/%s/probe", env_id);
    ok(json_is_false(json_object_get(r.json, "ok")), "probe of a stopped plugin fails");
    is_str(pc_res_str(&r, "summary"),
           "Plugin environment driver \"" PKEY ":host-dir\" is not ready.",
           "probe says the driver is not ready");
    pc_http_res_free(&r);
    run = hb_wake(agent, NULL);
    j = hb_wait_run(run, NULL, 60000);
    is_str(js(j, "status"), "failed", "a run while the plugin is stopped fails");
    ok(strstr(js(j, "error"), "is not ready") != NULL, "with the driver's text (%s)",
       js(j, "error"));
    json_decref(j);
    free(run);

    /* Crash with a plugin lease active; start-up reconciliation destroys it
     * through the plugin once its worker is running again. */
    r = req("POST", NULL, "/api/plugins/" PKEY "/enable");
    is_int(r.status, 200, "plugin enabled again");
    pc_http_res_free(&r);
    r = req("POST", "{}", "/api/environments/%s/test-lease", env_id);
    is_int(r.status, 200, "crash: a plugin lease is active");
    json_t *lease = json_object_get(r.json, "lease");
    char *crash_lease = strdup(js(lease, "id"));
    char lease_root[900];
    snprintf(lease_root, sizeof lease_root, "%s/%s", tmp, js(lease, "providerLeaseId"));
    ok(*js(lease, "providerLeaseId") && file_exists(lease_root),
       "crash: the lease directory exists");
    pc_http_res_free(&r);
    pc_daemon_kill9(&d);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", d.data_dir);
    o.data_dir = dir;
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "crash: daemon restarts");
    } else {
        json_t *row = NULL;
        for (int i = 0; i < 1200 && !row; i++) {
            r = req("GET", NULL, "/api/environment-leases/%s", crash_lease);
            if (r.status == 200 && strcmp(pc_res_str(&r, "status"), "active") != 0)
                row = json_incref(r.json);
            pc_http_res_free(&r);
            if (!row)
                pc_test_sleep_ms(50);
        }
        ok(row != NULL, "crash: the lease was reconciled after restart");
        is_str(js(row, "status"), "expired", "crash: lease expired");
        is_str(js(row, "cleanupStatus"), "success", "crash: destroyed through the plugin");
        ok(!file_exists(lease_root), "crash: the plugin removed the lease directory");
        json_decref(row);
    }
    free(crash_lease);

    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    free(env_id), free(agent), free(sleeper), free(cid);
    if (tap_failures())
        pc_daemon_dump_log(&d);
    d.keep_dir = false;
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    pc_test_rmrf(tmp);
    free(tmp);
    return tap_done();
}
