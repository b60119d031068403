/*
 * Test plugin: a plugin environment driver ("host-dir", kind
 * environment_driver) that runs commands on the daemon's host, each lease
 * in its own directory $TMPDIR/paperclip-env-driver-XXXXXX whose name is
 * the providerLeaseId. Commands get exactly the environment the host sends
 * (plus a default PATH) and run in their own process group; their output
 * is streamed to the host (execute.log) as it is produced.
 *
 * driverConfig: {label?: string, timeoutMs?: positive number}; anything
 * else is rejected by environmentValidateConfig, so the tests can see the
 * plugin's own validation reach the API. The probe summary carries the
 * label, so a test can tell the stored (normalized) config was sent.
 */
#include <paperclip/plugin.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DRIVER "host-dir"
#define PREFIX "paperclip-env-driver-"

static int check_driver(json_t *params, pc_plugin_error *err)
{
    const char *dk = json_string_value(json_object_get(params, "driverKey"));
    if (!dk || strcmp(dk, DRIVER) != 0)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "unknown driver \"%s\"",
                                   dk ? dk : "");
    return 0;
}

/* The lease directory named by providerLeaseId, which must be one of ours:
 * a bare name with our prefix, never a path. */
static int lease_dir(json_t *params, char *out, size_t cap, pc_plugin_error *err)
{
    const char *id = json_string_value(json_object_get(params, "providerLeaseId"));
    if (!id)
        id = json_string_value(
            json_object_get(json_object_get(params, "lease"), "providerLeaseId"));
    if (!id || strncmp(id, PREFIX, strlen(PREFIX)) != 0 || strchr(id, '/') ||
        strlen(id) > 64)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "not a host-dir lease: %s",
                                   id ? id : "(none)");
    snprintf(out, cap, "%s/%s", pc_plugin_tmpdir(), id);
    return 0;
}

static int validate(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    if (check_driver(params, err) < 0)
        return -1;
    json_t *cfg = json_object_get(params, "config");
    json_t *errors = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v) {
        char msg[300];
        if (!strcmp(k, "label") && json_is_string(v))
            continue;
        if (!strcmp(k, "timeoutMs") && json_is_number(v) && json_number_value(v) > 0)
            continue;
        snprintf(msg, sizeof msg, "host-dir: invalid option \"%.200s\"", k);
        json_array_append_new(errors, json_string(msg));
    }
    if (json_array_size(errors) > 0) {
        *result = json_pack("{s:b,s:o,s:[]}", "ok", 0, "errors", errors, "warnings");
        return 0;
    }
    json_decref(errors);
    /* Normalization the host must store: a missing label gets a default. */
    json_t *norm = json_is_object(cfg) ? json_deep_copy(cfg) : json_object();
    if (!json_object_get(norm, "label"))
        json_object_set_new(norm, "label", json_string("default"));
    *result = json_pack("{s:b,s:o}", "ok", 1, "normalizedConfig", norm);
    return 0;
}

static int probe(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    if (check_driver(params, err) < 0)
        return -1;
    const char *label = json_string_value(json_object_get(json_object_get(params, "config"), "label"));
    char summary[300];
    snprintf(summary, sizeof summary, "Host directory driver is ready (%.200s).",
             label ? label : "no label");
    *result = json_pack("{s:b,s:s,s:{s:s}}", "ok", 1, "summary", summary, "metadata", "tmpdir",
                        pc_plugin_tmpdir());
    return 0;
}

static int acquire(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    if (check_driver(params, err) < 0)
        return -1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/" PREFIX "XXXXXX", pc_plugin_tmpdir());
    if (!mkdtemp(dir))
        return pc_plugin_error_set(err, 0, "cannot create a lease directory: %s", strerror(errno));
    const char *run = json_string_value(json_object_get(params, "runId"));
    *result = json_pack("{s:s,s:{s:s,s:s?}}", "providerLeaseId", strrchr(dir, '/') + 1,
                        "metadata", "rootDir", dir, "runId", run);
    return 0;
}

static int realize(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    char dir[PATH_MAX], ws[PATH_MAX + 16];
    if (check_driver(params, err) < 0 || lease_dir(params, dir, sizeof dir, err) < 0)
        return -1;
    snprintf(ws, sizeof ws, "%s/workspace", dir);
    if (pc_plugin_mkdir_p(ws, err) < 0)
        return -1;
    *result = json_pack("{s:s,s:{s:s}}", "cwd", ws, "metadata", "remoteCwd", ws);
    return 0;
}

/* Output goes to the run log as it is produced (execute.log). */
static void stream_out(void *arg, int stream, const char *data, size_t len)
{
    pc_plugin_execute_log(arg, stream == 1 ? "stdout" : "stderr", data, len);
}

static void strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int execute(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    char dir[PATH_MAX];
    if (check_driver(params, err) < 0 || lease_dir(params, dir, sizeof dir, err) < 0)
        return -1;
    struct stat st;
    if (stat(dir, &st) < 0)
        return pc_plugin_error_set(err, 0, "lease directory %s is gone", dir);
    const char *command = json_string_value(json_object_get(params, "command"));
    if (!command)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "command must be a string");
    json_t *args = json_object_get(params, "args"), *env = json_object_get(params, "env");
    size_t na = json_array_size(args), ne = json_object_size(env);
    char **argv = calloc(na + 2, sizeof *argv), **envp = calloc(ne + 2, sizeof *envp);
    if (!argv || !envp) {
        free(argv), free(envp);
        return pc_plugin_error_set(err, 0, "out of memory");
    }
    argv[0] = strdup(command);
    for (size_t i = 0; i < na; i++) {
        const char *a = json_string_value(json_array_get(args, i));
        argv[i + 1] = strdup(a ? a : "");
    }
    size_t n = 0;
    bool has_path = false;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v) {
        if (!json_is_string(v) || !*k || strchr(k, '='))
            continue;
        has_path = has_path || !strcmp(k, "PATH");
        if (asprintf(&envp[n], "%s=%s", k, json_string_value(v)) < 0)
            envp[n] = NULL;
        else
            n++;
    }
    if (!has_path && asprintf(&envp[n], "PATH=%s", PC_PLUGIN_EXEC_DEFAULT_PATH) < 0)
        envp[n] = NULL;
    const char *cwd = json_string_value(json_object_get(params, "cwd"));
    json_t *jstdin = json_object_get(params, "stdin");
    json_t *jt = json_object_get(params, "timeoutMs");
    pc_plugin_exec_opts o = {
        .argv = argv,
        .envp = envp,
        .cwd = cwd && *cwd ? cwd : dir,
        .has_stdin = json_is_string(jstdin),
        .stdin_data = json_string_value(jstdin),
        .stdin_len = json_is_string(jstdin) ? json_string_length(jstdin) : 0,
        .timeout_ms = json_is_number(jt) ? (int64_t)json_number_value(jt) : 0,
        .on_output = stream_out,
        .on_output_arg = ctx,
    };
    pc_plugin_exec_result r;
    int rc = pc_plugin_exec(&o, &r, err);
    if (rc == 0) {
        const char *sig = r.term_signal ? pc_plugin_signal_name(r.term_signal) : NULL;
        *result = json_pack("{s:o,s:s?,s:b,s:o,s:o}", "exitCode",
                            r.exit_code >= 0 && !r.timed_out ? json_integer(r.exit_code)
                                                             : json_null(),
                            "signal", sig, "timedOut", r.timed_out, "stdout",
                            pc_plugin_json_string_lossy(r.out, r.out_len), "stderr",
                            pc_plugin_json_string_lossy(r.err, r.err_len));
    }
    pc_plugin_exec_result_free(&r);
    strv_free(argv);
    strv_free(envp);
    return rc;
}

/* Release and destroy both remove the lease directory: leases are never
 * reused. */
static int drop(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    (void)result;
    char dir[PATH_MAX];
    if (check_driver(params, err) < 0 || lease_dir(params, dir, sizeof dir, err) < 0)
        return -1;
    return pc_plugin_rm_rf(dir, err);
}

static const pc_plugin_hooks hooks = {
    .environment_validate_config = validate,
    .environment_probe = probe,
    .environment_acquire_lease = acquire,
    .environment_realize_workspace = realize,
    .environment_execute = execute,
    .environment_release_lease = drop,
    .environment_destroy_lease = drop,
};

int main(void)
{
    return pc_plugin_run(&hooks, NULL);
}
