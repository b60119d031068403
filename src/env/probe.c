/*
 * Probes: "can runs execute in this environment right now?" Every driver
 * answers {ok, driver, summary, details}; a failed probe is ok:false with the
 * reason, never an HTTP error, so the UI can show it next to the form.
 */
#include <string.h>
#include <unistd.h>

#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

/* The last non-empty line(s) of ssh's stderr, cut to a readable size. */
static char *pc_excerpt(const pc_buf *b, size_t max)
{
    size_t n = b->len;
    while (n && (b->data[n - 1] == '\n' || b->data[n - 1] == '\r'))
        n--;
    size_t start = n > max ? n - max : 0;
    return pc_utf8_sanitize(b->data ? b->data + start : "", n - start);
}

static json_t *pc_probe_ssh(pc_app *app, const char *env_id, json_t *cfg, pc_error_t *err)
{
    pc_ssh_target t;
    pc_ssh_target_from_config(app, cfg, env_id, &t);
    pc_buf cmd;
    pc_buf_init(&cmd, PC_BUF_UNBOUNDED);
    pc_buf_puts(&cmd, "mkdir -p -- ", NULL);
    pc_sh_quote(&cmd, t.remote_path);
    pc_buf_puts(&cmd, " && cd -- ", NULL);
    pc_sh_quote(&cmd, t.remote_path);
    pc_buf_puts(&cmd, " && pwd", NULL);
    pc_exec_request req = {.timeout_ms = 30000, .grace_ms = 2000, .output_cap = 64 * 1024};
    pc_exec_result res;
    int64_t t0 = pc_mono_ms();
    int rc = pc_ssh_run(app, &t, cmd.data, &req, NULL, &res, err);
    pc_buf_release(&cmd);
    if (rc < 0) {
        pc_exec_result_free(&res);
        return NULL;
    }
    char target[700];
    snprintf(target, sizeof target, "%s@%s:%d", t.user, t.host, t.port);
    json_t *details = json_pack("{s:s,s:i,s:s,s:s,s:b,s:I}", "host", t.host, "port", t.port,
                                "username", t.user, "remoteWorkspacePath", t.remote_path,
                                "strictHostKeyChecking", t.strict, "durationMs",
                                (json_int_t)(pc_mono_ms() - t0));
    json_t *out;
    if (res.has_exit_code && res.exit_code == 0) {
        char summary[1024];
        snprintf(summary, sizeof summary, "Connected to %s and verified %s.", target,
                 t.remote_path);
        out = json_pack("{s:b,s:s,s:s,s:o}", "ok", 1, "driver", "ssh", "summary", summary,
                        "details", details);
    } else {
        char *why = pc_excerpt(&res.err, 600);
        if (!*why) {
            free(why);
            why = res.timed_out ? pc_xstrdup("timed out")
                                : pc_xasprintf("ssh exited with status %d", res.exit_code);
        }
        char *summary = pc_xasprintf("SSH connection to %s failed: %s", target, why);
        json_object_set_new(details, "error", json_string(why));
        if (res.has_exit_code)
            json_object_set_new(details, "exitCode", json_integer(res.exit_code));
        json_object_set_new(details, "timedOut", json_boolean(res.timed_out));
        out = json_pack("{s:b,s:s,s:s,s:o}", "ok", 0, "driver", "ssh", "summary", summary,
                        "details", details);
        free(summary);
        free(why);
    }
    pc_exec_result_free(&res);
    return out;
}

static json_t *pc_probe_sandbox(pc_app *app, const char *company_id, const char *env_id,
                                json_t *cfg)
{
    const char *prov = pc_json_str(cfg, "provider");
    if (!prov)
        prov = "fake";
    if (!strcmp(prov, "fake")) {
        const char *image = pc_json_str(cfg, "image");
        char *summary = pc_xasprintf("Fake sandbox provider is ready for image %s.",
                                     image ? image : "ubuntu:24.04");
        json_t *out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s}}", "ok", 1, "driver", "sandbox",
                                "summary", summary, "details", "provider", "fake", "image",
                                image ? image : "ubuntu:24.04");
        free(summary);
        return out;
    }
    pc_plugin_provider_info info;
    pc_error_t e = PC_ERROR_INIT;
    if (pc_sandbox_provider(app, prov, &info, &e) < 0) {
        json_t *out = json_pack("{s:b,s:s,s:s,s:{s:s}}", "ok", 0, "driver", "sandbox", "summary",
                                e.msg, "details", "provider", prov);
        pc_error_clear(&e);
        return out;
    }
    json_t *params = json_pack("{s:s,s:s,s:s,s:n,s:o}", "driverKey", prov, "companyId", company_id,
                               "environmentId", env_id, "issueId", "config",
                               pc_sandbox_driver_config(cfg));
    json_t *result = NULL;
    int rc = pc_plugin_call(app->plugins, info.plugin_key, "environmentProbe", params, 0, &result,
                            &e);
    json_decref(params);
    json_t *out;
    if (rc < 0) {
        char *summary = pc_xasprintf("Sandbox provider \"%s\" probe failed: %s", prov, e.msg);
        out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s,s:[],s:n}}", "ok", 0, "driver", "sandbox",
                        "summary", summary, "details", "provider", prov, "pluginKey",
                        info.plugin_key, "diagnostics", "metadata");
        free(summary);
        pc_error_clear(&e);
    } else {
        bool ok = json_is_true(json_object_get(result, "ok"));
        const char *s = pc_json_str(result, "summary");
        char *summary = s ? pc_xstrdup(s)
                          : pc_xasprintf("Sandbox provider \"%s\" probe %s.", prov,
                                         ok ? "passed" : "failed");
        json_t *diag = json_object_get(result, "diagnostics");
        json_t *meta = json_object_get(result, "metadata");
        out = json_pack("{s:b,s:s,s:s,s:{s:s,s:s,s:o,s:o}}", "ok", ok, "driver", "sandbox",
                        "summary", summary, "details", "provider", prov, "pluginKey",
                        info.plugin_key, "diagnostics",
                        json_is_array(diag) ? json_incref(diag) : json_array(), "metadata",
                        meta ? json_incref(meta) : json_null());
        free(summary);
    }
    json_decref(result);
    pc_plugin_provider_info_clear(&info);
    return out;
}

json_t *pc_env_probe(pc_app *app, const char *company_id, const char *env_id,
                     const char *driver, json_t *cfg, pc_error_t *err)
{
    if (!strcmp(driver, "local")) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        return json_pack("{s:b,s:s,s:s,s:{s:s}}", "ok", 1, "driver", "local", "summary",
                         "Local environment is available on this Paperclip host.", "details",
                         "hostname", host);
    }
    if (!strcmp(driver, "ssh"))
        return pc_probe_ssh(app, env_id, cfg, err);
    if (!strcmp(driver, "sandbox"))
        return pc_probe_sandbox(app, company_id, env_id, cfg);
    char *summary = pc_xasprintf("Plugin environment driver \"%s:%s\" is not ready.",
                                 pc_json_str(cfg, "pluginKey") ? pc_json_str(cfg, "pluginKey") : "",
                                 pc_json_str(cfg, "driverKey") ? pc_json_str(cfg, "driverKey") : "");
    json_t *out = json_pack("{s:b,s:s,s:s,s:{}}", "ok", 0, "driver", driver, "summary", summary,
                            "details");
    free(summary);
    return out;
}
