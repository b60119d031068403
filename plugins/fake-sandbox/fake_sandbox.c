/*
 * The fake sandbox provider: a deterministic environment driver for tests.
 *
 * A lease is a temporary directory ($TMPDIR/paperclip-fake-sandbox-XXXXXX
 * with a workspace/ inside); commands run as plain child processes with
 * only the environment the host passes. Behaviour matches upstream's
 * TypeScript fake provider; where we do better (bounded output, killing the
 * whole process group, cleanup after a worker restart, lossy UTF-8) it is
 * said in docs/plugin-sdk.md.
 */
#include <paperclip/plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DRIVER "fake-plugin"
#define ROOT_PREFIX "paperclip-fake-sandbox-"
#define DEFAULT_IMAGE "fake:latest"
#define DEFAULT_TIMEOUT_MS 300000.0
#define SIGKILL_GRACE_MS 250

struct config {
    char *image;
    double timeout_ms;
    bool reuse_lease;
};

struct lease {
    struct lease *next;
    char *id;
    char *root_dir;
    char *remote_cwd;
    char *image;
    bool reuse_lease;
};

/* The in-memory lease map, as upstream's Map<providerLeaseId, state>. */
static pthread_mutex_t leases_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lease *leases;

/* ---- small helpers ---- */

static json_t *object_or_empty(json_t *params, const char *key)
{
    json_t *v = json_object_get(params, key);
    return json_is_object(v) ? v : NULL;
}

static const char *string_or_null(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A JSON number the way JavaScript would print it back: integral values
 * as integers. */
static json_t *js_number(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

/* String(value) for the values a template literal meets in practice. */
static char *js_string(json_t *v)
{
    char buf[64];
    if (!v)
        return strdup("undefined");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
        return strdup(buf);
    }
    if (json_is_true(v))
        return strdup("true");
    if (json_is_false(v))
        return strdup("false");
    if (json_is_null(v))
        return strdup("null");
    return strdup("[object Object]");
}

static void parse_config(json_t *params, struct config *c)
{
    json_t *raw = object_or_empty(params, "config");
    json_t *image = json_object_get(raw, "image");
    json_t *timeout = json_object_get(raw, "timeoutMs");
    c->image = NULL;
    if (json_is_string(image)) {
        const char *s = json_string_value(image);
        size_t n = json_string_length(image);
        while (n && strchr(" \t\n\r\v\f", *s)) {
            s++;
            n--;
        }
        while (n && strchr(" \t\n\r\v\f", s[n - 1]))
            n--;
        if (n)
            c->image = strndup(s, n);
    }
    if (!c->image)
        c->image = strdup(DEFAULT_IMAGE);
    /* jansson never holds NaN or infinities, so every number is finite. */
    c->timeout_ms = json_is_number(timeout) ? json_number_value(timeout) : DEFAULT_TIMEOUT_MS;
    c->reuse_lease = json_is_true(json_object_get(raw, "reuseLease"));
}

static void free_config(struct config *c)
{
    free(c->image);
}

static void lease_free(struct lease *l)
{
    if (!l)
        return;
    free(l->id);
    free(l->root_dir);
    free(l->remote_cwd);
    free(l->image);
    free(l);
}

/* Called with leases_lock held. */
static struct lease *lease_find(const char *id)
{
    for (struct lease *l = leases; l; l = l->next)
        if (!strcmp(l->id, id))
            return l;
    return NULL;
}

/* Called with leases_lock held. Returns the removed entry or NULL. */
static struct lease *lease_unlink(const char *id)
{
    for (struct lease **pp = &leases; *pp; pp = &(*pp)->next) {
        if (!strcmp((*pp)->id, id)) {
            struct lease *l = *pp;
            *pp = l->next;
            l->next = NULL;
            return l;
        }
    }
    return NULL;
}

/* Creates the directories of a new lease and adds it to the map. Called
 * with leases_lock held. */
static struct lease *lease_create(const char *id, const struct config *c, pc_plugin_error *err)
{
    const char *tmp = pc_plugin_tmpdir();
    size_t n = strlen(tmp) + sizeof("/" ROOT_PREFIX "XXXXXX");
    char *root = malloc(n);
    if (!root) {
        pc_plugin_error_set(err, 0, "out of memory");
        return NULL;
    }
    snprintf(root, n, "%s/" ROOT_PREFIX "XXXXXX", tmp);
    if (!mkdtemp(root)) {
        pc_plugin_error_set(err, 0, "cannot create a lease directory under %s: %s", tmp,
                            strerror(errno));
        free(root);
        return NULL;
    }
    size_t m = strlen(root) + sizeof("/workspace");
    char *cwd = malloc(m);
    struct lease *l = calloc(1, sizeof(*l));
    if (!cwd || !l) {
        free(cwd);
        free(l);
        rmdir(root);
        free(root);
        pc_plugin_error_set(err, 0, "out of memory");
        return NULL;
    }
    snprintf(cwd, m, "%s/workspace", root);
    if (pc_plugin_mkdir_p(cwd, err) < 0) {
        rmdir(root);
        free(root);
        free(cwd);
        free(l);
        return NULL;
    }
    l->id = strdup(id);
    l->root_dir = root;
    l->remote_cwd = cwd;
    l->image = strdup(c->image);
    l->reuse_lease = c->reuse_lease;
    l->next = leases;
    leases = l;
    return l;
}

static json_t *lease_result(const struct lease *l, bool resumed)
{
    return json_pack("{s:s, s:{s:s, s:s, s:b, s:s, s:s, s:b}}", "providerLeaseId", l->id,
                     "metadata", "provider", DRIVER, "image", l->image, "reuseLease",
                     l->reuse_lease, "remoteCwd", l->remote_cwd, "fakeRootDir", l->root_dir,
                     "resumedLease", resumed);
}

/*
 * True when `path` is a lease root this plugin could have made: directly
 * inside the temp directory and named paperclip-fake-sandbox-XXXXXX with
 * mkdtemp's six characters. Anything else a host sends is not ours to
 * delete.
 */
static bool is_our_root_dir(const char *path)
{
    const char *tmp = pc_plugin_tmpdir();
    size_t tl = strlen(tmp);
    const char *base;
    if (!strcmp(tmp, "/")) {
        if (path[0] != '/')
            return false;
        base = path + 1;
    } else {
        if (strncmp(path, tmp, tl) != 0 || path[tl] != '/')
            return false;
        base = path + tl + 1;
    }
    size_t pl = strlen(ROOT_PREFIX);
    if (strncmp(base, ROOT_PREFIX, pl) != 0 || strlen(base) != pl + 6)
        return false;
    for (const char *p = base + pl; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* upstream removeLease(), plus cleanup from lease metadata when the map
 * entry is gone (the worker restarted since the lease was made). */
static int remove_lease(pc_plugin_ctx *ctx, json_t *params, pc_plugin_error *err)
{
    const char *id = string_or_null(params, "providerLeaseId");
    if (!id || !*id)
        return 0;
    pthread_mutex_lock(&leases_lock);
    struct lease *l = lease_unlink(id);
    pthread_mutex_unlock(&leases_lock);
    if (l) {
        int rc = pc_plugin_rm_rf(l->root_dir, err);
        lease_free(l);
        return rc;
    }
    json_t *meta = object_or_empty(params, "leaseMetadata");
    const char *root = string_or_null(meta, "fakeRootDir");
    if (!root)
        return 0;
    if (!is_our_root_dir(root)) {
        pc_plugin_log(ctx, PC_PLUGIN_LOG_WARN,
                      "not removing %s for lease %s: not a fake sandbox directory under %s", root,
                      id, pc_plugin_tmpdir());
        return 0;
    }
    return pc_plugin_rm_rf(root, err);
}

/* ---- hooks ---- */

static int fake_setup(pc_plugin_ctx *ctx, pc_plugin_error *err)
{
    (void)err;
    pc_plugin_log(ctx, PC_PLUGIN_LOG_INFO, "Fake sandbox provider plugin ready");
    return 0;
}

static int fake_health(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)params, (void)err;
    *result = json_pack("{s:s, s:s}", "status", "ok", "message",
                        "Fake sandbox provider plugin healthy");
    return 0;
}

static int fake_validate(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                         pc_plugin_error *err)
{
    (void)ctx, (void)err;
    struct config c;
    parse_config(params, &c);
    *result = json_pack("{s:b, s:{s:s, s:o, s:b}}", "ok", 1, "normalizedConfig", "image",
                        c.image, "timeoutMs", js_number(c.timeout_ms), "reuseLease",
                        c.reuse_lease);
    free_config(&c);
    return 0;
}

static int fake_probe(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)err;
    struct config c;
    parse_config(params, &c);
    char summary[1024];
    snprintf(summary, sizeof(summary), "Fake sandbox provider is ready for image %s.", c.image);
    *result = json_pack("{s:b, s:s, s:{s:s, s:s, s:o, s:b}}", "ok", 1, "summary", summary,
                        "metadata", "provider", DRIVER, "image", c.image, "timeoutMs",
                        js_number(c.timeout_ms), "reuseLease", c.reuse_lease);
    free_config(&c);
    return 0;
}

static int fake_acquire(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                        pc_plugin_error *err)
{
    (void)ctx;
    struct config c;
    parse_config(params, &c);
    char *id;
    if (c.reuse_lease) {
        char *env = js_string(json_object_get(params, "environmentId"));
        if (env && asprintf(&id, DRIVER "://%s", env) < 0)
            id = NULL;
        free(env);
    } else {
        char uuid[37];
        char *run = js_string(json_object_get(params, "runId"));
        if (run && asprintf(&id, DRIVER "://%s/%s", run, pc_plugin_uuid_v4(uuid)) < 0)
            id = NULL;
        free(run);
    }
    if (!id) {
        free_config(&c);
        return pc_plugin_error_set(err, 0, "out of memory");
    }
    pthread_mutex_lock(&leases_lock);
    struct lease *l = lease_find(id);
    bool existed = l != NULL;
    if (!l)
        l = lease_create(id, &c, err);
    if (l)
        *result = lease_result(l, existed);
    pthread_mutex_unlock(&leases_lock);
    free(id);
    free_config(&c);
    return l ? 0 : -1;
}

static int fake_resume(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                       pc_plugin_error *err)
{
    (void)ctx;
    const char *id = string_or_null(params, "providerLeaseId");
    if (!id)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "providerLeaseId must be a string");
    struct config c;
    parse_config(params, &c);
    pthread_mutex_lock(&leases_lock);
    struct lease *l = lease_find(id);
    if (!l)
        l = lease_create(id, &c, err);
    if (l)
        *result = lease_result(l, true);
    pthread_mutex_unlock(&leases_lock);
    free_config(&c);
    return l ? 0 : -1;
}

static int fake_release(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                        pc_plugin_error *err)
{
    (void)result;
    struct config c;
    parse_config(params, &c);
    int rc = c.reuse_lease ? 0 : remove_lease(ctx, params, err);
    free_config(&c);
    return rc;
}

static int fake_destroy(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                        pc_plugin_error *err)
{
    (void)result;
    return remove_lease(ctx, params, err);
}

static int fake_realize(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                        pc_plugin_error *err)
{
    (void)ctx;
    json_t *lease = object_or_empty(params, "lease");
    json_t *workspace = object_or_empty(params, "workspace");
    const char *lease_id = string_or_null(lease, "providerLeaseId");
    char *cwd = NULL;
    if (lease_id && *lease_id) {
        pthread_mutex_lock(&leases_lock);
        struct lease *l = lease_find(lease_id);
        if (l)
            cwd = strdup(l->remote_cwd);
        pthread_mutex_unlock(&leases_lock);
    }
    if (!cwd) {
        const char *s = string_or_null(object_or_empty(lease, "metadata"), "remoteCwd");
        if (!s)
            s = string_or_null(workspace, "remotePath");
        if (!s)
            s = string_or_null(workspace, "localPath");
        if (s)
            cwd = strdup(s);
        else if (asprintf(&cwd, "%s/paperclip-fake-sandbox-workspace", pc_plugin_tmpdir()) < 0)
            cwd = NULL;
    }
    if (!cwd)
        return pc_plugin_error_set(err, 0, "out of memory");
    if (pc_plugin_mkdir_p(cwd, err) < 0) {
        free(cwd);
        return -1;
    }
    *result = json_pack("{s:s, s:{s:s, s:s}}", "cwd", cwd, "metadata", "provider", DRIVER,
                        "remoteCwd", cwd);
    free(cwd);
    return 0;
}

/* ---- execute ---- */

struct strv {
    char **v;
    size_t n;
};

static int strv_push(struct strv *sv, char *s)
{
    if (!s)
        return -1;
    char **nv = realloc(sv->v, (sv->n + 2) * sizeof(*nv));
    if (!nv) {
        free(s);
        return -1;
    }
    sv->v = nv;
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
    return 0;
}

static void strv_free(struct strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
}

static bool has_nul(json_t *s)
{
    return strlen(json_string_value(s)) != json_string_length(s);
}

/* Builds {PATH: env.PATH ?? default, ...env} as an envp. Nothing comes from
 * the worker's own environment. */
static int build_env(json_t *env, struct strv *out, pc_plugin_error *err)
{
    json_t *path = json_object_get(env, "PATH");
    char *entry;
    if (asprintf(&entry, "PATH=%s",
                 json_is_string(path) ? json_string_value(path) : PC_PLUGIN_EXEC_DEFAULT_PATH) < 0 ||
        strv_push(out, entry) < 0)
        return pc_plugin_error_set(err, 0, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(env, key, val) {
        if (!strcmp(key, "PATH") && json_is_string(val))
            continue;
        if (!*key || strchr(key, '='))
            return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                       "env name \"%s\" is not valid", key);
        char *sval;
        if (json_is_string(val)) {
            if (has_nul(val))
                return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                           "env.%s must not contain NUL bytes", key);
            sval = strdup(json_string_value(val));
        } else if (json_is_number(val) || json_is_boolean(val)) {
            sval = js_string(val);
        } else {
            continue; /* undefined/null/objects: not passed, as Node skips undefined */
        }
        if (!sval)
            return pc_plugin_error_set(err, 0, "out of memory");
        if (!strcmp(key, "PATH")) {
            /* A non-string PATH: String(value) overrides the default. */
            free(out->v[0]);
            if (asprintf(&out->v[0], "PATH=%s", sval) < 0) {
                out->v[0] = strdup("PATH=");
            }
            free(sval);
            continue;
        }
        int r = asprintf(&entry, "%s=%s", key, sval);
        free(sval);
        if (r < 0 || strv_push(out, entry) < 0)
            return pc_plugin_error_set(err, 0, "out of memory");
    }
    return 0;
}

static char *command_line(const char *cmd, json_t *args)
{
    size_t n = strlen(cmd) + 1;
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a) n += json_string_length(a) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    strcpy(s, cmd);
    json_array_foreach(args, i, a) {
        strcat(s, " ");
        strcat(s, json_string_value(a));
    }
    return s;
}

/* Output goes to the host as it is produced, so a run's log is live. */
static void stream_output(void *arg, int stream, const char *data, size_t len)
{
    pc_plugin_execute_log(arg, stream == 2 ? "stderr" : "stdout", data, len);
}

static int fake_execute(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                        pc_plugin_error *err)
{
    json_t *command = json_object_get(params, "command");
    json_t *args = json_object_get(params, "args");
    json_t *env = json_object_get(params, "env");
    json_t *jstdin = json_object_get(params, "stdin");
    json_t *jcwd = json_object_get(params, "cwd");
    json_t *jtimeout = json_object_get(params, "timeoutMs");

    if (!json_is_string(command) || has_nul(command))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "The \"command\" argument must be of type string");
    if (args && !json_is_null(args) && !json_is_array(args))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "args must be an array of strings");
    if (!json_is_array(args))
        args = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a) {
        if (!json_is_string(a) || has_nul(a))
            return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                       "args[%zu] must be a string without NUL bytes", i);
    }
    if (env && !json_is_null(env) && !json_is_object(env))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "env must be an object");
    if (jstdin && !json_is_null(jstdin) && !json_is_string(jstdin))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "stdin must be a string");

    struct config c;
    parse_config(params, &c);
    double timeout = json_is_number(jtimeout) ? json_number_value(jtimeout) : c.timeout_ms;
    free_config(&c);

    const char *cmd = json_string_value(command);
    struct strv argv = { 0 }, envp = { 0 };
    int rc = -1;
    char *cmdline = NULL;
    pc_plugin_exec_result res = { 0 };
    if (strv_push(&argv, strdup(cmd)) < 0)
        goto oom;
    json_array_foreach(args, i, a) {
        if (strv_push(&argv, strdup(json_string_value(a))) < 0)
            goto oom;
    }
    if (build_env(json_is_object(env) ? env : NULL, &envp, err) < 0)
        goto out;
    cmdline = command_line(cmd, args);
    if (!cmdline)
        goto oom;

    pc_plugin_exec_opts opts = {
        .argv = argv.v,
        .envp = envp.v,
        .cwd = json_is_string(jcwd) && json_string_length(jcwd) > 0 ? json_string_value(jcwd)
                                                                    : NULL,
        .has_stdin = json_is_string(jstdin),
        .stdin_data = json_is_string(jstdin) ? json_string_value(jstdin) : NULL,
        .stdin_len = json_is_string(jstdin) ? json_string_length(jstdin) : 0,
        .timeout_ms = timeout > 0 ? (timeout > (double)INT64_MAX / 2 ? INT64_MAX / 2
                                                                    : (int64_t)ceil(timeout))
                                  : 0,
        .kill_grace_ms = SIGKILL_GRACE_MS,
        .on_output = stream_output,
        .on_output_arg = ctx,
    };
    pc_plugin_error xerr = { 0 };
    if (pc_plugin_exec(&opts, &res, &xerr) < 0) {
        /* Node rejects with "spawn <cmd> <CODE>"; keep that message and
         * put our more precise one in data. */
        const char *code = strerrorname_np(res.spawn_errno);
        pc_plugin_error_set(err, PC_RPC_WORKER_ERROR, "spawn %s %s", cmd, code ? code : "UNKNOWN");
        err->data = json_pack("{s:s, s:i, s:s}", "code", code ? code : "UNKNOWN", "errno",
                              -res.spawn_errno, "detail", xerr.message);
        pc_plugin_error_clear(&xerr);
        goto out;
    }
    char started[32];
    const char *sig = res.term_signal ? pc_plugin_signal_name(res.term_signal) : NULL;
    json_t *jsig = res.term_signal ? (sig ? json_string(sig) : json_integer(res.term_signal))
                                   : json_null();
    json_t *exit_code = !res.timed_out && res.exit_code >= 0 ? json_integer(res.exit_code)
                                                             : json_null();
    *result = json_pack("{s:o, s:o, s:b, s:o, s:o, s:{s:s, s:s, s:b, s:b}}", "exitCode",
                        exit_code, "signal", jsig, "timedOut", res.timed_out, "stdout",
                        pc_plugin_json_string_lossy(res.out, res.out_len), "stderr",
                        pc_plugin_json_string_lossy(res.err, res.err_len), "metadata",
                        "startedAt", pc_plugin_iso8601(&res.started_at, started), "commandLine",
                        cmdline, "stdoutTruncated", res.out_truncated, "stderrTruncated",
                        res.err_truncated);
    if (!*result) {
        pc_plugin_error_set(err, PC_RPC_INTERNAL_ERROR, "cannot build the execute result");
        goto out;
    }
    rc = 0;
    goto out;
oom:
    pc_plugin_error_set(err, 0, "out of memory");
out:
    pc_plugin_exec_result_free(&res);
    free(cmdline);
    strv_free(&argv);
    strv_free(&envp);
    return rc;
}

/* environmentSyncIn / environmentSyncOut: the lease's directories are host
 * directories, so both directions are plain file copies. Only `file`
 * mappings are served; the host sends nothing else. */
static int copy_mapping(json_t *m, json_int_t *bytes, pc_plugin_error *err)
{
    const char *src = json_string_value(json_object_get(m, "sourcePath"));
    const char *dst = json_string_value(json_object_get(m, "targetPath"));
    const char *kind = json_string_value(json_object_get(m, "kind"));
    json_t *jmode = json_object_get(m, "mode");
    if (!src || !dst || src[0] != '/' || dst[0] != '/')
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "sourcePath and targetPath must be absolute paths");
    if (!kind || strcmp(kind, "file") != 0)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "only file mappings are supported");
    mode_t mode = json_is_integer(jmode) ? (mode_t)(json_integer_value(jmode) & 0777) : 0600;
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return pc_plugin_error_set(err, 0, "cannot open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (out < 0) {
        int e = errno;
        close(in);
        return pc_plugin_error_set(err, 0, "cannot create %s: %s", dst, strerror(e));
    }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            rc = pc_plugin_error_set(err, 0, "cannot write %s: %s", dst, strerror(errno));
            break;
        }
        *bytes += n;
    }
    if (n < 0 && rc == 0)
        rc = pc_plugin_error_set(err, 0, "cannot read %s: %s", src, strerror(errno));
    close(in);
    close(out);
    return rc;
}

static int fake_sync(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    json_t *ops = json_object_get(params, "operations");
    if (!json_is_array(ops))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "operations must be an array");
    json_t *done = json_array();
    size_t i, j;
    json_t *op, *m;
    json_array_foreach(ops, i, op) {
        json_int_t files = 0, bytes = 0;
        json_array_foreach(json_object_get(op, "files"), j, m) {
            if (copy_mapping(m, &bytes, err) < 0) {
                json_decref(done);
                return -1;
            }
            files++;
        }
        json_array_append_new(done, json_pack("{s:O?,s:I,s:I}", "operationId",
                                              json_object_get(op, "operationId"),
                                              "filesTransferred", files, "bytesTransferred", bytes));
    }
    *result = json_pack("{s:o}", "operations", done);
    return 0;
}

static const pc_plugin_hooks hooks = {
    .setup = fake_setup,
    .health = fake_health,
    .environment_validate_config = fake_validate,
    .environment_probe = fake_probe,
    .environment_acquire_lease = fake_acquire,
    .environment_resume_lease = fake_resume,
    .environment_release_lease = fake_release,
    .environment_destroy_lease = fake_destroy,
    .environment_realize_workspace = fake_realize,
    .environment_execute = fake_execute,
    .environment_sync_in = fake_sync,
    .environment_sync_out = fake_sync,
};

int main(void)
{
    int status = pc_plugin_run(&hooks, NULL);
    /* Lease directories outlive the worker on purpose (a restarted worker
     * or the host can still release them); only the map is freed. */
    pthread_mutex_lock(&leases_lock);
    while (leases) {
        struct lease *l = leases;
        leases = l->next;
        lease_free(l);
    }
    pthread_mutex_unlock(&leases_lock);
    return status;
}
