/*
 * Upstream's four fake-sandbox plugin tests (plugin-fake-sandbox
 * plugin.test.ts), run against plugins/fake-sandbox through the real plugin
 * host, plus `paperclip plugin check` on it (must pass) and on the
 * misbehaving plugin (must fail).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "plugin/check.h"
#include "plugin/host.h"
#include "plugin/manifest.h"
#include "../lib/tap.h"

#define KEY "paperclip.fake-sandbox-provider"

static pc_plugin_host *host;

static json_t *call(const char *method, json_t *params, pc_error_t *err)
{
    json_t *r = NULL;
    pc_error_clear(err);
    pc_plugin_call(host, KEY, method, params, 0, &r, err);
    json_decref(params);
    return r;
}

static json_t *base(json_t *config)
{
    return json_pack("{s:s,s:s,s:s,s:o}", "driverKey", "fake-plugin", "companyId", "company-1",
                     "environmentId", "env-1", "config", config);
}

static json_t *acquire(json_t *config, pc_error_t *err)
{
    json_t *p = base(config);
    json_object_set_new(p, "runId", json_string("run-1"));
    return call("environmentAcquireLease", p, err);
}

static json_t *execute(json_t *lease, const char *cmd, json_t *args, json_t *env, int timeout,
                       pc_error_t *err)
{
    json_t *p = base(json_pack("{s:s}", "image", "fake:test"));
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "command", json_string(cmd));
    json_object_set_new(p, "args", args);
    if (env)
        json_object_set_new(p, "env", env);
    if (timeout > 0)
        json_object_set_new(p, "timeoutMs", json_integer(timeout));
    return call("environmentExecute", p, err);
}

static void destroy(json_t *lease, pc_error_t *err)
{
    json_t *p = base(json_object());
    json_object_set(p, "providerLeaseId", json_object_get(lease, "providerLeaseId"));
    json_decref(call("environmentDestroyLease", p, err));
}

static int run_check(const char *dir, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = pc_plugin_check(dir, f);
    fclose(f);
    *out = buf;
    return rc;
}

int main(void)
{
    pc_log_setup(0, PC_LOG_ERROR);
    const char *root = getenv("PC_ROOT") ? getenv("PC_ROOT") : ".";
    _cleanup_free_ char *dir = pc_xasprintf("%s/plugins/fake-sandbox", root);
    pc_error_t err = PC_ERROR_INIT;
    pc_plugin_package pkg;
    if (pc_plugin_package_load(dir, &pkg, &err) < 0) {
        ok(0, "load fake-sandbox: %s", err.msg);
        return tap_done();
    }
    setenv("PAPERCLIP_FAKE_PLUGIN_HOST_SECRET", "host-secret-value", 1);
    pc_loop *loop = pc_loop_new(&err);
    pc_loop_start(loop, &err);
    host = pc_plugin_host_new(loop, NULL, &err);
    pc_plugin_spec s = {.plugin_key = KEY, .plugin_id = "00000000-0000-4000-8000-0000000000aa",
                        .package_dir = pkg.dir, .worker_path = pkg.worker_path,
                        .manifest = pkg.manifest};
    ok(pc_plugin_host_add(host, &s, 1, &err) == 0, "fake-sandbox starts through the host (%s)",
       err.msg);

    pc_plugin_provider_info info;
    ok(pc_plugin_find_sandbox_provider(host, "fake-plugin", &info, &err) == 0,
       "provider fake-plugin is found");
    is_str(info.plugin_key, KEY, "provider's plugin key");
    ok(info.running && info.supports_reusable_leases && info.reuse_methods_supported,
       "provider is running and supports reusable leases");
    ok(json_is_object(info.config_schema), "provider configSchema is an object");
    pc_plugin_provider_info_clear(&info);
    ok(pc_plugin_find_sandbox_provider(host, "nope", &info, &err) < 0 && err.status == 404 &&
           strstr(err.msg, "Sandbox provider \"nope\" is not installed"),
       "unknown provider: upstream message");
    json_t *list = pc_plugin_list_sandbox_providers(host);
    ok(json_array_size(list) == 1 && json_is_true(json_object_get(json_array_get(list, 0),
                                                                  "supportsReusableLeases")),
       "provider list has fake-plugin");
    json_decref(list);

    /* 1. full lifecycle and event order. */
    json_t *events = json_array();
    json_t *v = call("environmentValidateConfig",
                     json_pack("{s:s,s:{s:s}}", "driverKey", "fake-plugin", "config", "image",
                               "fake:test"),
                     &err);
    json_t *norm = json_object_get(v, "normalizedConfig");
    ok(json_is_true(json_object_get(v, "ok")) && !strcmp(pc_json_str(norm, "image"), "fake:test") &&
           json_is_false(json_object_get(norm, "reuseLease")),
       "validate -> ok, normalizedConfig {image: fake:test, reuseLease: false}");
    json_array_append_new(events, json_string("validateConfig"));
    json_t *cfg = json_deep_copy(norm);
    json_decref(v);

    json_t *pr = call("environmentProbe", base(json_deep_copy(cfg)), &err);
    json_t *md = json_object_get(pr, "metadata");
    ok(!strcmp(pc_json_str(md, "provider") ?: "", "fake-plugin") &&
           !strcmp(pc_json_str(md, "image") ?: "", "fake:test"),
       "probe metadata {provider: fake-plugin, image}");
    json_array_append_new(events, json_string("probe"));
    json_decref(pr);

    json_t *lease = acquire(json_deep_copy(cfg), &err);
    ok(lease && strstr(pc_json_str(lease, "providerLeaseId") ?: "", "fake-plugin://run-1/"),
       "acquire id contains fake-plugin://run-1/ (%s)", pc_json_str(lease, "providerLeaseId"));
    json_array_append_new(events, json_string("acquireLease"));

    json_t *rp = base(json_deep_copy(cfg));
    json_object_set(rp, "lease", lease);
    json_object_set_new(rp, "workspace", json_pack("{s:s}", "localPath", "/tmp/local-ws"));
    json_t *real = call("environmentRealizeWorkspace", rp, &err);
    const char *cwd = pc_json_str(real, "cwd");
    ok(cwd && strstr(cwd, "paperclip-fake-sandbox-"), "realize cwd contains paperclip-fake-sandbox-");
    json_array_append_new(events, json_string("realizeWorkspace"));

    json_t *x = execute(lease, "sh", json_pack("[s,s]", "-lc", "printf fake-plugin-ok"), NULL, 0,
                        &err);
    ok(x && json_integer_value(json_object_get(x, "exitCode")) == 0 &&
           json_is_false(json_object_get(x, "timedOut")) &&
           !strcmp(pc_json_str(x, "stdout") ?: "", "fake-plugin-ok"),
       "execute sh -lc printf -> exit 0, stdout fake-plugin-ok (%s)", err.msg);
    json_array_append_new(events, json_string("execute"));
    json_decref(x);
    json_decref(real);

    destroy(lease, &err);
    ok(!pc_error_is_set(&err), "destroy");
    json_array_append_new(events, json_string("destroyLease"));
    json_t *want = json_pack("[s,s,s,s,s,s]", "validateConfig", "probe", "acquireLease",
                             "realizeWorkspace", "execute", "destroyLease");
    ok(json_equal(events, want), "event order");
    json_decref(want);
    json_decref(events);
    json_decref(lease);

    /* 2. host env not visible, explicit env visible. */
    lease = acquire(json_deep_copy(cfg), &err);
    x = execute(lease, "sh",
                json_pack("[s,s]", "-c",
                          "printf '%s|%s' \"${PAPERCLIP_FAKE_PLUGIN_HOST_SECRET:-missing}\" "
                          "\"$EXPLICIT_VALUE\""),
                json_pack("{s:s}", "EXPLICIT_VALUE", "visible"), 0, &err);
    is_str(pc_json_str(x, "stdout"), "missing|visible",
           "host env var is not visible to commands; explicit env is");
    json_decref(x);

    /* 3. default PATH contains /usr/local/bin. */
    x = execute(lease, "sh", json_pack("[s,s]", "-c", "printf %s \"$PATH\""), NULL, 0, &err);
    ok(strstr(pc_json_str(x, "stdout") ?: "", "/usr/local/bin") != NULL,
       "default PATH contains /usr/local/bin (%s)", pc_json_str(x, "stdout"));
    json_decref(x);

    /* 4. a command ignoring SIGTERM is killed at the timeout. */
    x = execute(lease, "sh", json_pack("[s,s]", "-c", "trap '' TERM; while :; do sleep 1; done"),
                NULL, 100, &err);
    ok(x && json_is_true(json_object_get(x, "timedOut")) &&
           json_is_null(json_object_get(x, "exitCode")),
       "timeout 100 ms -> timedOut true, exitCode null");
    json_decref(x);
    destroy(lease, &err);
    json_decref(lease);
    json_decref(cfg);

    /* The worker's own environment is scrubbed too. */
    lease = acquire(json_object(), &err);
    json_decref(lease);

    pc_plugin_host_free(host);
    pc_loop_stop(loop, NULL, NULL);
    pc_loop_join(loop);
    pc_loop_free(loop);

    /* plugin check */
    char *out = NULL;
    int rc = run_check(dir, &out);
    ok(rc == 0, "plugin check passes on fake-sandbox");
    if (rc != 0)
        tap_diag("%s", out);
    ok(out && strstr(out, "PASS event order") && strstr(out, "PASS execute env isolation"),
       "check report lists event order and env isolation");
    free(out);
    _cleanup_free_ char *mb = pc_xasprintf("%s/tests/plugins/misbehave", root);
    rc = run_check(mb, &out);
    ok(rc != 0 && out && strstr(out, "FAIL"), "plugin check fails on the misbehaving plugin");
    free(out);
    _cleanup_free_ char *nodir = pc_xasprintf("%s/tests/plugins/no-such-plugin", root);
    rc = run_check(nodir, &out);
    ok(rc != 0 && out && strstr(out, "FAIL package and manifest"),
       "plugin check reports an unloadable package");
    free(out);

    pc_plugin_package_clear(&pkg);
    pc_error_clear(&err);
    return tap_done();
}
