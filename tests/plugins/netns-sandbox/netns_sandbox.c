/*
 * A sandbox provider for the callback tests: a lease is a temporary
 * directory on the host, and every command runs in the network namespace
 * named by the config (/run/netns/<namespace>, created by the test with
 * `ip netns add` and joined to the host by a veth pair). Inside it the
 * host's 127.0.0.1 is not reachable, as in a container or a remote sandbox.
 *
 * Its validator answers normalizedConfig {namespace, offline?} only,
 * dropping every other field, so tests also see that the host keeps its own
 * fields. With `offline: true` a lease declares it has no network at all
 * (metadata network "none"), as a provider with networking off does.
 */
#include <paperclip/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A namespace name: [a-z0-9-], 1..40 characters. */
static const char *ns_of(json_t *params)
{
    const char *ns = str(json_object_get(params, "config"), "namespace");
    if (!ns || !*ns || strlen(ns) > 40 || strspn(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(ns))
        return NULL;
    return ns;
}

static int v_validate(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)err;
    const char *ns = ns_of(params);
    if (!ns)
        *result = json_pack("{s:b,s:[s]}", "ok", 0, "errors",
                            "namespace must be a network namespace name");
    else
        *result = json_pack("{s:b,s:{s:s,s:b}}", "ok", 1, "normalizedConfig", "namespace", ns,
                            "offline", json_is_true(json_object_get(
                                           json_object_get(params, "config"), "offline")));
    return 0;
}

static int v_probe(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)err;
    const char *ns = ns_of(params);
    char path[256];
    snprintf(path, sizeof path, "/run/netns/%s", ns ? ns : "");
    bool ok = ns && access(path, F_OK) == 0;
    *result = json_pack("{s:b,s:s}", "ok", ok, "summary", ok ? "namespace present" : "no such namespace");
    return 0;
}

static json_t *lease_json(const char *dir, const char *ns, json_t *params)
{
    char cwd[600];
    snprintf(cwd, sizeof cwd, "%s/workspace", dir);
    bool offline = json_is_true(json_object_get(json_object_get(params, "config"), "offline"));
    return json_pack("{s:s,s:{s:s,s:s,s:s}}", "providerLeaseId", dir, "metadata", "remoteCwd",
                     cwd, "namespace", ns, "network", offline ? "none" : "veth");
}

static int v_acquire(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    const char *ns = ns_of(params);
    if (!ns)
        return pc_plugin_error_set(err, 0, "namespace missing");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/paperclip-netns-sandbox-XXXXXX", pc_plugin_tmpdir());
    if (!mkdtemp(dir))
        return pc_plugin_error_set(err, 0, "mkdtemp: %s", strerror(errno));
    *result = lease_json(dir, ns, params);
    return 0;
}

static int v_resume(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    const char *id = str(params, "providerLeaseId"), *ns = ns_of(params);
    struct stat st;
    if (!id || !ns || strncmp(id, pc_plugin_tmpdir(), strlen(pc_plugin_tmpdir())) != 0 ||
        stat(id, &st) < 0)
        return pc_plugin_error_set(err, 0, "lease %s is gone", id ? id : "?");
    *result = lease_json(id, ns, params);
    return 0;
}

static int remove_lease(json_t *params, pc_plugin_error *err)
{
    const char *id = str(params, "providerLeaseId");
    if (!id || !strstr(id, "/paperclip-netns-sandbox-"))
        return 0;
    return pc_plugin_rm_rf(id, err);
}

static int v_release(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)result;
    /* A reusable lease outlives its run; the host destroys it later. */
    if (json_is_true(json_object_get(json_object_get(params, "config"), "reuseLease")))
        return 0;
    return remove_lease(params, err);
}

static int v_destroy(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)result;
    return remove_lease(params, err);
}

static int v_realize(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    const char *cwd = str(json_object_get(json_object_get(params, "lease"), "metadata"), "remoteCwd");
    if (!cwd)
        return pc_plugin_error_set(err, 0, "lease has no remoteCwd");
    if (pc_plugin_mkdir_p(cwd, err) < 0)
        return -1;
    *result = json_pack("{s:s}", "cwd", cwd);
    return 0;
}

/* Joins the namespace in the child, before exec (async-signal-safe). */
static int join_netns(void *arg)
{
    int fd = *(int *)arg;
    return setns(fd, CLONE_NEWNET) < 0 ? errno : 0;
}

static int v_execute(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    const char *ns = ns_of(params), *cmd = str(params, "command");
    if (!ns || !cmd)
        return pc_plugin_error_set(err, 0, "namespace or command missing");
    char path[256];
    snprintf(path, sizeof path, "/run/netns/%s", ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0)
        return pc_plugin_error_set(err, 0, "cannot open %s: %s", path, strerror(errno));
    json_t *args = json_object_get(params, "args"), *env = json_object_get(params, "env");
    size_t na = json_array_size(args), ne = json_object_size(env);
    char **argv = calloc(na + 2, sizeof *argv), **envp = calloc(ne + 1, sizeof *envp);
    argv[0] = (char *)cmd;
    for (size_t i = 0; i < na; i++)
        argv[i + 1] = (char *)(json_string_value(json_array_get(args, i)) ? json_string_value(json_array_get(args, i)) : "");
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(env, key, v) {
        if (json_is_string(v) && asprintf(&envp[k], "%s=%s", key, json_string_value(v)) >= 0)
            k++;
    }
    json_t *jt = json_object_get(params, "timeoutMs"), *jin = json_object_get(params, "stdin");
    pc_plugin_exec_opts o = {
        .argv = argv,
        .envp = envp,
        .cwd = str(params, "cwd"),
        .has_stdin = json_is_string(jin),
        .stdin_data = json_is_string(jin) ? json_string_value(jin) : NULL,
        .stdin_len = json_is_string(jin) ? json_string_length(jin) : 0,
        .timeout_ms = json_is_integer(jt) ? json_integer_value(jt) : 0,
        .pre_exec = join_netns,
        .pre_exec_arg = &nsfd,
    };
    pc_plugin_exec_result r = {0};
    int rc = pc_plugin_exec(&o, &r, err);
    if (rc == 0) {
        const char *sig = r.term_signal ? pc_plugin_signal_name(r.term_signal) : NULL;
        *result = json_pack("{s:o,s:o,s:b,s:o,s:o}", "exitCode",
                            !r.timed_out && r.exit_code >= 0 ? json_integer(r.exit_code) : json_null(),
                            "signal", sig ? json_string(sig) : json_null(), "timedOut", r.timed_out,
                            "stdout", pc_plugin_json_string_lossy(r.out, r.out_len), "stderr",
                            pc_plugin_json_string_lossy(r.err, r.err_len));
    }
    pc_plugin_exec_result_free(&r);
    close(nsfd);
    for (size_t i = 0; i < k; i++)
        free(envp[i]);
    free(envp);
    free(argv);
    return rc;
}

static const pc_plugin_hooks hooks = {
    .environment_validate_config = v_validate,
    .environment_probe = v_probe,
    .environment_acquire_lease = v_acquire,
    .environment_resume_lease = v_resume,
    .environment_release_lease = v_release,
    .environment_destroy_lease = v_destroy,
    .environment_realize_workspace = v_realize,
    .environment_execute = v_execute,
};

int main(void) { return pc_plugin_run(&hooks, NULL); }
