/*
 * Black-box tests of plugins/bwrap-sandbox/worker: the real binary spoken
 * to over pipes in the plugin JSON-RPC protocol, as the host would, running
 * real bubblewrap sandboxes.
 *
 * Every isolation claim of docs/bwrap-sandbox.md is checked by trying to
 * break it from inside: read a host file, see host processes or the
 * worker's environment, reach a host listener, exhaust pids or memory,
 * outlive a timeout, survive destroy. When bwrap is missing or the kernel
 * refuses user namespaces, the sandbox checks are skipped with a reason.
 */
#include "../lib/rpc_driver.h"
#include "../lib/tap.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CANARY "paperclip-bwrap-canary-5d1f"

static char root[4096];
static char tmpdir[4096];
static char datadir[4200];

/* ---- driving the worker ---- */

static int host_procs_with(const char *needle);
static bool no_cgroup_mode; /* start workers with PAPERCLIP_BWRAP_NO_CGROUP=1 */

static void worker_start(pc_rpc_worker *w)
{
    char exe[4200], data_env[4300];
    snprintf(exe, sizeof(exe), "%s/plugins/bwrap-sandbox/worker", root);
    snprintf(data_env, sizeof(data_env), "PAPERCLIP_PLUGIN_DATA_DIR=%s", datadir);
    const char *env[] = { "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                          "PAPERCLIP_BWRAP_TEST_SECRET=" CANARY, data_env,
                          no_cgroup_mode ? "PAPERCLIP_BWRAP_NO_CGROUP=1" : NULL, NULL };
    pc_rpc_worker_start(w, exe, env);
    /* Sandboxed commands may legitimately take long on a loaded machine. */
    w->call_timeout_ms = 120000;
}

static const char *str_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static json_t *initialize(pc_rpc_worker *w)
{
    return pc_rpc_call(w, "initialize",
                json_pack("{s:{s:s}, s:{}, s:{s:s, s:s}, s:i}", "manifest", "id",
                          "paperclip.bwrap-sandbox", "config", "instanceInfo", "instanceId", "test",
                          "hostVersion", "0.0.0", "apiVersion", 1));
}

static json_t *base(const char *config_json)
{
    json_t *cfg = json_loads(config_json, 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "driverKey", "bwrap", "companyId", "co-1",
                     "environmentId", "env-1", "runId", "run-1", "config",
                     cfg ? cfg : json_object());
}

/* Acquires a lease with `config_json`; returns the lease (new reference). */
static json_t *acquire(pc_rpc_worker *w, const char *config_json)
{
    json_t *r = pc_rpc_call(w, "environmentAcquireLease", base(config_json));
    json_t *lease = json_incref(pc_rpc_result(r));
    if (!lease)
        tap_diag("acquire failed: %s", r ? json_dumps(r, 0) : "no answer");
    json_decref(r);
    return lease;
}

/* Runs a command; `extra` (stolen) adds env, stdin, cwd, timeoutMs. */
static json_t *run(pc_rpc_worker *w, const char *config_json, json_t *lease, const char *cmd,
                   const char *const *args, json_t *extra)
{
    json_t *p = base(config_json);
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "command", json_string(cmd));
    json_t *a = json_array();
    for (size_t i = 0; args && args[i]; i++)
        json_array_append_new(a, json_string(args[i]));
    json_object_set_new(p, "args", a);
    if (extra) {
        json_object_update(p, extra);
        json_decref(extra);
    }
    return pc_rpc_call(w, "environmentExecute", p);
}

static json_t *sh(pc_rpc_worker *w, const char *cfg, json_t *lease, const char *script,
                  json_t *extra)
{
    const char *args[] = { "-c", script, NULL };
    return run(w, cfg, lease, "/bin/bash", args, extra);
}

static const char *out_of(json_t *r)
{
    const char *s = str_at(pc_rpc_result(r), "stdout");
    return s ? s : "";
}

static json_t *meta_of(json_t *r)
{
    return json_object_get(pc_rpc_result(r), "metadata");
}

/* Processes still in the lease's cgroups (and their children). */
static int lease_procs(json_t *lease)
{
    json_t *cgs = json_object_get(json_object_get(lease, "metadata"), "cgroups");
    int count = 0;
    size_t i;
    json_t *v;
    json_array_foreach(cgs, i, v)
    {
        char cmd[4400];
        snprintf(cmd, sizeof(cmd), "cat $(find '%s' -name cgroup.procs 2>/dev/null) 2>/dev/null | wc -l",
                 json_string_value(v));
        FILE *f = popen(cmd, "r");
        int n = 0;
        if (f) {
            if (fscanf(f, "%d", &n) != 1)
                n = 0;
            pclose(f);
        }
        count += n;
    }
    return count;
}

static bool path_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

static bool cgroups_gone(json_t *lease)
{
    json_t *cgs = json_object_get(json_object_get(lease, "metadata"), "cgroups");
    size_t i;
    json_t *v;
    json_array_foreach(cgs, i, v) if (path_exists(json_string_value(v))) return false;
    return true;
}

/* ---- tiny TCP servers standing in for the host's services ---- */

struct server {
    int fd;
    int port;
    const char *reply; /* NULL: accept and count only */
    int accepted;
    pthread_t t;
    atomic_bool stop;
};

static void *server_thread(void *arg)
{
    struct server *s = arg;
    while (!s->stop) {
        struct pollfd p = { .fd = s->fd, .events = POLLIN };
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        __atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
        if (s->reply) {
            char buf[4096];
            ssize_t n = read(c, buf, sizeof(buf)); /* the request head */
            (void)n;
            (void)!write(c, s->reply, strlen(s->reply));
        }
        close(c);
    }
    return NULL;
}

static void server_start(struct server *s, const char *reply)
{
    memset(s, 0, sizeof(*s));
    s->reply = reply;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->fd, 16) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&sa, &sl) < 0)
        abort();
    s->port = ntohs(sa.sin_port);
    pthread_create(&s->t, NULL, server_thread, s);
}

static void server_stop(struct server *s)
{
    s->stop = true;
    pthread_join(s->t, NULL);
    close(s->fd);
}

/* ---- tests ---- */

static void test_validate(pc_rpc_worker *w)
{
    json_t *r = pc_rpc_call(w, "environmentValidateConfig",
                     json_pack("{s:s, s:{s:i, s:s, s:f, s:[s], s:s, s:i}}", "driverKey", "bwrap",
                               "config", "memoryMb", 5, "network", "everything", "pids", 3.5,
                               "readOnlyBinds", "relative/path", "reuseLease", "yes",
                               "timeoutMs", 0));
    json_t *res = pc_rpc_result(r);
    ok(json_is_false(json_object_get(res, "ok")), "validateConfig rejects a bad config");
    json_t *errs = json_object_get(res, "errors");
    char *all = json_dumps(errs, 0);
    ok(all && strstr(all, "memoryMb must be an integer from 16 to 65536"),
       "memoryMb error is precise");
    ok(all && strstr(all, "network must be one of \\\"none\\\", \\\"api-only\\\", \\\"host\\\""),
       "network error is precise");
    ok(all && strstr(all, "pids must be an integer from 8 to 65536"), "pids error is precise");
    ok(all && strstr(all, "readOnlyBinds[0] must be an absolute path"),
       "readOnlyBinds error names the index");
    ok(all && strstr(all, "reuseLease must be a boolean"), "reuseLease error");
    ok(all && strstr(all, "timeoutMs must be an integer from 1 to 86400000"), "timeoutMs error");
    is_int(json_array_size(errs), 6, "one error per bad field");
    free(all);
    json_decref(r);

    r = pc_rpc_call(w, "environmentValidateConfig",
             json_pack("{s:s, s:{s:[s]}}", "driverKey", "bwrap", "config", "readOnlyBinds",
                       "/workspace/x"));
    ok(json_is_false(json_object_get(pc_rpc_result(r), "ok")),
       "a bind over a sandbox-owned path is rejected");
    json_decref(r);

    r = pc_rpc_call(w, "environmentValidateConfig",
             json_pack("{s:s, s:{}}", "driverKey", "bwrap", "config"));
    res = pc_rpc_result(r);
    json_t *nc = json_object_get(res, "normalizedConfig");
    ok(json_is_true(json_object_get(res, "ok")), "an empty config is valid");
    is_str(str_at(nc, "network"), "none", "network defaults to none");
    is_int(json_integer_value(json_object_get(nc, "memoryMb")), 1024, "memoryMb default");
    is_int(json_integer_value(json_object_get(nc, "pids")), 512, "pids default");
    is_int(json_integer_value(json_object_get(nc, "timeoutMs")), 300000, "timeoutMs default");
    ok(json_is_false(json_object_get(nc, "reuseLease")), "reuseLease default");
    json_decref(r);

    /* Wrong types everywhere must give errors, never a crash. */
    r = pc_rpc_call(w, "environmentValidateConfig",
             json_pack("{s:s, s:{s:[], s:{}, s:s, s:n, s:b}}", "driverKey", "bwrap", "config",
                       "network", "readOnlyBinds", "memoryMb", "x", "rootfs", "leaseTtlSec", 1));
    ok(json_is_false(json_object_get(pc_rpc_result(r), "ok")), "wrong types are rejected");
    json_decref(r);
}

static bool test_probe(pc_rpc_worker *w)
{
    json_t *r = pc_rpc_call(w, "environmentProbe", base("{}"));
    json_t *res = pc_rpc_result(r);
    json_t *meta = json_object_get(res, "metadata");
    ok(res && json_is_array(json_object_get(res, "diagnostics")), "probe answers with diagnostics");
    const char *mode = str_at(meta, "cgroupMode");
    ok(mode && (!strcmp(mode, "v2") || !strcmp(mode, "v1") || !strcmp(mode, "rlimit")),
       "probe reports the cgroup mode (%s)", mode ? mode : "?");
    bool usable = json_is_true(json_object_get(res, "ok")) &&
                  json_is_true(json_object_get(meta, "userNamespaces"));
    if (!usable)
        tap_diag("probe: %s", str_at(res, "summary") ? str_at(res, "summary") : "?");
    json_decref(r);
    return usable;
}

/* Garbage in every field of every method: each gets an answer, the worker
 * survives, and no path outside the data dir is touched. */
static void test_garbage(pc_rpc_worker *w)
{
    static const char *const methods[] = { "environmentValidateConfig", "environmentProbe",
                                           "environmentAcquireLease", "environmentResumeLease",
                                           "environmentReleaseLease", "environmentDestroyLease",
                                           "environmentRealizeWorkspace", "environmentExecute" };
    static const char *const bodies[] = {
        "{}",
        "{\"config\":\"x\",\"lease\":5,\"command\":7,\"args\":\"x\",\"env\":[],\"cwd\":3,"
        "\"stdin\":4,\"timeoutMs\":\"x\",\"providerLeaseId\":9,\"leaseMetadata\":\"x\","
        "\"workspace\":1}",
        "{\"providerLeaseId\":\"bwrap://../../../etc\",\"lease\":{\"providerLeaseId\":"
        "\"bwrap://x/../../etc/passwd\"},\"command\":\"true\",\"leaseMetadata\":{\"cgroups\":"
        "[\"/sys/fs/cgroup/pids\",\"/etc\"],\"providerLeaseId\":\"bwrap://x/..\"}}",
        "{\"config\":{\"memoryMb\":1e300,\"pids\":-1,\"readOnlyBinds\":[1,null,{}],"
        "\"rootfs\":\"/nonexistent\"},\"command\":\"true\",\"args\":[1,2],"
        "\"env\":{\"A\":1},\"timeoutMs\":-5}",
    };
    int answered = 0, total = 0;
    bool had_pids_cg = path_exists("/sys/fs/cgroup/pids");
    for (size_t m = 0; m < sizeof(methods) / sizeof(*methods); m++) {
        for (size_t b = 0; b < sizeof(bodies) / sizeof(*bodies); b++) {
            total++;
            json_t *r = pc_rpc_call(w, methods[m], json_loads(bodies[b], 0, NULL));
            if (r && (json_object_get(r, "result") || json_object_get(r, "error")))
                answered++;
            /* Some garbage is still a valid acquire: give the lease back. */
            json_t *got = json_object_get(pc_rpc_result(r), "providerLeaseId");
            if (!strcmp(methods[m], "environmentAcquireLease") && json_is_string(got))
                json_decref(pc_rpc_call(w, "environmentDestroyLease",
                                 json_pack("{s:O}", "providerLeaseId", got)));
            json_decref(r);
        }
    }
    is_int(answered, total, "every malformed request is answered");
    json_t *r = pc_rpc_call(w, "health", json_object());
    is_str(str_at(pc_rpc_result(r), "status"), "ok", "the worker is still healthy");
    json_decref(r);
    ok(path_exists("/etc/passwd") && path_exists("/sys/fs/cgroup/pids") == had_pids_cg,
       "forged ids and cgroup paths touched nothing outside the data dir");
}

static void test_isolation(pc_rpc_worker *w)
{
    json_t *lease = acquire(w, "{}");
    ok(lease != NULL, "acquire a lease");
    if (!lease)
        return;
    const char *id = str_at(lease, "providerLeaseId");
    ok(id && !strncmp(id, "bwrap://run-1/", 14), "providerLeaseId is bwrap://<run>/<uuid>");
    json_t *meta = json_object_get(lease, "metadata");
    is_str(str_at(meta, "remoteCwd"), "/workspace", "remoteCwd is /workspace");
    is_str(str_at(meta, "provider"), "bwrap", "metadata.provider");
    char marker[4400];
    snprintf(marker, sizeof(marker), "%s/.paperclip-bwrap-lease", str_at(meta, "leaseDir"));
    ok(path_exists(marker), "the lease dir carries an ownership marker");

    /* A file on the host, outside every bind. */
    char secret[4400];
    snprintf(secret, sizeof(secret), "%s/host-secret.txt", tmpdir);
    FILE *f = fopen(secret, "w");
    fputs("top-secret-host-data\n", f);
    fclose(f);
    char script[5000];
    snprintf(script, sizeof(script), "cat '%s'; cat /etc/shadow; ls /root; echo done", secret);
    json_t *r = sh(w, "{}", lease, script, NULL);
    ok(r && !strstr(out_of(r), "top-secret-host-data"), "a host file outside the binds is unreadable");
    ok(strstr(out_of(r), "done") != NULL, "the command itself ran");
    json_decref(r);

    r = sh(w, "{}", lease, "ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '", NULL);
    int npids = atoi(out_of(r));
    ok(npids >= 1 && npids <= 4, "only sandbox processes are visible (%d pids)", npids);
    ok(!strstr(out_of(r), "worker"), "pid 1 is not a host process");
    json_decref(r);

    r = sh(w, "{}", lease, "env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'",
           json_pack("{s:{s:s}}", "env", "FOO", "explicit-value"));
    ok(r && !strstr(out_of(r), CANARY), "the worker's environment does not leak in");
    ok(strstr(out_of(r), "FOO=explicit-value") != NULL, "the explicit env is set");
    ok(strstr(out_of(r), "HOME=/home/agent") != NULL, "HOME is the lease home");
    json_decref(r);

    r = sh(w, "{}", lease, "id -u; touch /usr/x 2>/dev/null && echo wrote-usr; echo hi > /workspace/f && cat /workspace/f", NULL);
    ok(!strstr(out_of(r), "wrote-usr"), "/usr is read-only");
    ok(strstr(out_of(r), "1000\nhi") != NULL, "the workspace is writable by uid 1000");
    json_decref(r);

    /* stdin is delivered and closed; output capped per stream. */
    r = run(w, "{}", lease, "cat", NULL, json_pack("{s:s}", "stdin", "from-stdin"));
    is_str(out_of(r), "from-stdin", "stdin is written then closed");
    json_decref(r);
    r = sh(w, "{\"maxOutputBytes\":1024}", lease, "head -c 100000 /dev/zero | tr '\\0' x; echo err >&2", NULL);
    is_int(strlen(out_of(r)), 1024, "stdout is capped at maxOutputBytes");
    ok(json_is_true(json_object_get(meta_of(r), "stdoutTruncated")), "stdoutTruncated is set");
    ok(json_is_false(json_object_get(meta_of(r), "stderrTruncated")), "stderrTruncated is not");
    json_decref(r);

    /* Bad params are refused before anything runs. */
    const char *args[] = { "x", NULL };
    r = run(w, "{}", lease, "ls", args, json_pack("{s:s}", "cwd", "/etc"));
    is_int(pc_rpc_error_code(r), -32602, "cwd outside /workspace is rejected");
    json_decref(r);
    r = run(w, "{}", lease, "ls", args, json_pack("{s:s}", "cwd", "/workspace/../etc"));
    is_int(pc_rpc_error_code(r), -32602, "cwd with .. is rejected");
    json_decref(r);
    r = run(w, "{}", lease, "ls", args, json_pack("{s:{s:s}}", "env", "1BAD", "x"));
    is_int(pc_rpc_error_code(r), -32602, "a bad env key is rejected");
    json_decref(r);
    /* A NUL byte in the command: refused, whether by the SDK's parser
     * (answer with a null id) or by the plugin's own check. */
    json_t *p = base("{}");
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "command", json_stringn("ls\0x", 4));
    json_t *nid = pc_rpc_request(w, "environmentExecute", p);
    bool refused = false;
    for (json_t *m; !refused && (m = pc_rpc_read(w, 10000));) {
        json_t *mid = json_object_get(m, "id");
        refused = json_object_get(m, "error") && (json_is_null(mid) || json_equal(mid, nid));
        json_decref(m);
    }
    ok(refused, "a NUL byte in the command is refused");
    json_decref(nid);
    p = base("{}");
    json_object_set_new(p, "lease", json_pack("{s:s}", "providerLeaseId",
                                              "bwrap://x/00000000-0000-4000-8000-000000000000"));
    json_object_set_new(p, "command", json_string("true"));
    r = pc_rpc_call(w, "environmentExecute", p);
    ok(json_object_get(r, "error") != NULL, "execute on an unknown lease is an error");
    json_decref(r);

    /* realizeWorkspace creates the directory inside the workspace. */
    p = base("{}");
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "workspace", json_pack("{s:s}", "remotePath", "/workspace/a/b"));
    r = pc_rpc_call(w, "environmentRealizeWorkspace", p);
    is_str(str_at(pc_rpc_result(r), "cwd"), "/workspace/a/b", "realizeWorkspace returns the cwd");
    json_decref(r);
    r = run(w, "{}", lease, "pwd", NULL, json_pack("{s:s}", "cwd", "/workspace/a/b"));
    is_str(out_of(r), "/workspace/a/b\n", "execute runs in the realized cwd");
    json_decref(r);

    /* A sandbox cannot make realize follow its symlinks out to the host. */
    char esc[4400];
    snprintf(esc, sizeof(esc), "%s/escape-target", tmpdir);
    mkdir(esc, 0755);
    snprintf(script, sizeof(script), "ln -s '%s' /workspace/link", esc);
    json_decref(sh(w, "{}", lease, script, NULL));
    p = base("{}");
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "workspace", json_pack("{s:s}", "remotePath", "/workspace/link/pwned"));
    r = pc_rpc_call(w, "environmentRealizeWorkspace", p);
    snprintf(esc, sizeof(esc), "%s/escape-target/pwned", tmpdir);
    ok(!path_exists(esc), "realizeWorkspace does not follow a planted symlink");
    json_decref(r);

    r = pc_rpc_call(w, "environmentDestroyLease",
             json_pack("{s:s, s:O}", "providerLeaseId", id, "leaseMetadata", meta));
    ok(r && !json_object_get(r, "error"), "destroy succeeds");
    ok(!path_exists(str_at(meta, "leaseDir")), "destroy removes the lease directory");
    ok(cgroups_gone(lease), "destroy removes the lease cgroups");
    json_decref(r);
    json_decref(lease);
}

static void test_network(pc_rpc_worker *w)
{
    struct server host, api;
    server_start(&host, NULL);
    server_start(&api, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npaperclip-api-ok\n");
    char script[1024];

    json_t *lease = acquire(w, "{}");
    snprintf(script, sizeof(script),
             "exec 3<>/dev/tcp/127.0.0.1/%d && echo connected; exec 3<>/dev/tcp/10.0.0.1/80 && echo connected-out",
             host.port);
    json_t *r = sh(w, "{}", lease, script, json_pack("{s:i}", "timeoutMs", 10000));
    ok(r && !strstr(out_of(r), "connected"), "network none cannot reach the host's loopback");
    is_int(__atomic_load_n(&host.accepted, __ATOMIC_SEQ_CST), 0, "the host listener saw no connection");
    json_decref(r);
    json_decref(pc_rpc_call(w, "environmentDestroyLease",
                     json_pack("{s:O}", "providerLeaseId", json_object_get(lease, "providerLeaseId"))));
    json_decref(lease);

    const char *cfg = "{\"network\":\"api-only\"}";
    lease = acquire(w, cfg);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api", api.port);
    snprintf(script, sizeof(script),
             "echo \"url=$PAPERCLIP_API_URL\"; "
             "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET /api/health HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3; "
             "exec 4<>/dev/tcp/127.0.0.1/%d && echo other-reached",
             api.port, host.port);
    r = sh(w, cfg, lease, script,
           json_pack("{s:{s:s}, s:i}", "env", "PAPERCLIP_API_URL", url, "timeoutMs", 20000));
    ok(strstr(out_of(r), "paperclip-api-ok") != NULL, "api-only reaches the API");
    ok(!strstr(out_of(r), "other-reached"), "api-only reaches nothing else");
    is_int(__atomic_load_n(&host.accepted, __ATOMIC_SEQ_CST), 0, "the other host listener saw no connection");
    char want[160];
    snprintf(want, sizeof(want), "url=http://127.0.0.1:%d/api", api.port);
    ok(strstr(out_of(r), want) != NULL, "PAPERCLIP_API_URL inside points at the forwarder");
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/api", api.port);
    is_str(str_at(meta_of(r), "apiUrl"), want, "metadata.apiUrl is the inside URL");
    if (!strstr(out_of(r), "paperclip-api-ok"))
        tap_diag("stdout: %s stderr: %s", out_of(r), str_at(pc_rpc_result(r), "stderr"));
    json_decref(r);
    json_decref(pc_rpc_call(w, "environmentDestroyLease",
                     json_pack("{s:O}", "providerLeaseId", json_object_get(lease, "providerLeaseId"))));
    json_decref(lease);
    server_stop(&host);
    server_stop(&api);
}

static void test_limits(pc_rpc_worker *w)
{
    const char *cfg = "{\"pids\":32,\"memoryMb\":64}";
    json_t *lease = acquire(w, cfg);
    if (!lease)
        return;
    const char *mode = str_at(json_object_get(lease, "metadata"), "cgroupMode");
    if (!mode || !strcmp(mode, "rlimit")) {
        tap_skip("no writable cgroups on this host", "pids and memory limits");
        json_decref(lease);
        return;
    }
    /* dash, not bash: bash retries a failed fork for 15 s. The count uses
     * only builtins, since no fork is possible at the limit. */
    json_t *r = run(w, cfg, lease, "/bin/sh",
                    (const char *[]){ "-c",
                                      "(for i in $(seq 1 100); do sleep 30 & done) 2>/dev/null; "
                                      "n=0; for d in /proc/[0-9]*; do n=$((n+1)); done; echo $n",
                                      NULL },
                    json_pack("{s:i}", "timeoutMs", 30000));
    int n = atoi(out_of(r));
    ok(n > 0 && n <= 32, "the pids limit caps the process count (%d <= 32)", n);
    ok(json_is_true(json_object_get(meta_of(r), "pidsLimitHit")), "metadata.pidsLimitHit is set");
    json_decref(r);

    r = sh(w, cfg, lease, "f() { f | f & }; f; sleep 30", json_pack("{s:i}", "timeoutMs", 2000));
    ok(json_is_true(json_object_get(pc_rpc_result(r), "timedOut")), "a fork bomb runs into the timeout");
    is_int(lease_procs(lease), 0, "nothing of the fork bomb survives");
    json_decref(r);
    r = run(w, cfg, lease, "echo", (const char *[]){ "alive", NULL }, NULL);
    is_str(out_of(r), "alive\n", "the lease still works after the fork bomb");
    json_decref(r);

    r = run(w, cfg, lease, "/bin/sh",
            (const char *[]){ "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
                              NULL },
            json_pack("{s:i}", "timeoutMs", 60000));
    ok(r && !strstr(out_of(r), "survived"), "a memory hog is stopped by the memory limit");
    ok(json_is_true(json_object_get(meta_of(r), "oomKilled")), "metadata.oomKilled is set");
    json_decref(r);

    json_decref(pc_rpc_call(w, "environmentDestroyLease",
                     json_pack("{s:O}", "providerLeaseId", json_object_get(lease, "providerLeaseId"))));
    json_decref(lease);
}

static void test_timeout(pc_rpc_worker *w)
{
    json_t *lease = acquire(w, "{}");
    if (!lease)
        return;
    json_t *r = sh(w, "{}", lease, "(sh -c 'sleep 1000' &) ; sleep 1000 & wait",
                   json_pack("{s:i}", "timeoutMs", 500));
    json_t *res = pc_rpc_result(r);
    ok(json_is_true(json_object_get(res, "timedOut")), "the timeout fires");
    ok(json_is_null(json_object_get(res, "exitCode")), "exitCode is null on timeout");
    is_int(lease_procs(lease), 0, "grandchildren are killed with the command");
    /* The driver gives up on a call after its own (60 s) limit, far short of
     * the sleeps: an answer at all shows the timeout ended the execute while
     * grandchildren still held its output pipes. */
    ok(res != NULL, "execute answers after the timeout, grandchildren notwithstanding");
    json_decref(r);

    r = sh(w, "{}", lease, "trap '' TERM; sleep 1000 & trap '' TERM; wait", json_pack("{s:i}", "timeoutMs", 300));
    res = pc_rpc_result(r);
    ok(json_is_true(json_object_get(res, "timedOut")), "a command ignoring SIGTERM times out");
    is_str(str_at(res, "signal"), "SIGKILL", "and is killed with SIGKILL after the grace");
    is_int(lease_procs(lease), 0, "nothing survives it");
    json_decref(r);

    /* Two execs in one lease at once: killing the one that times out
     * must not touch the other (each exec has its own sub-cgroup). */
    json_t *pa = base("{}");
    json_object_set(pa, "lease", lease);
    json_object_set_new(pa, "command", json_string("/bin/sh"));
    json_object_set_new(pa, "args", json_pack("[s,s]", "-c", "sleep 1.5; echo A-done"));
    json_object_set_new(pa, "timeoutMs", json_integer(20000));
    json_t *ida = pc_rpc_request(w, "environmentExecute", pa);
    json_t *pb = base("{}");
    json_object_set(pb, "lease", lease);
    json_object_set_new(pb, "command", json_string("/bin/sh"));
    json_object_set_new(pb, "args", json_pack("[s,s]", "-c", "sleep 1000"));
    json_object_set_new(pb, "timeoutMs", json_integer(200));
    json_t *idb = pc_rpc_request(w, "environmentExecute", pb);
    json_t *rb = pc_rpc_wait(w, idb, 30000), *ra = pc_rpc_wait(w, ida, 30000);
    ok(json_is_true(json_object_get(pc_rpc_result(rb), "timedOut")), "concurrent: one exec times out");
    is_str(out_of(ra), "A-done\n", "concurrent: the other exec in the same lease is unharmed");
    json_decref(ra), json_decref(rb), json_decref(ida), json_decref(idb);

    /* Destroy while a command runs: the command dies, nothing remains. */
    json_t *p = base("{}");
    json_object_set(p, "lease", lease);
    json_object_set_new(p, "command", json_string("/bin/sh"));
    json_object_set_new(p, "args", json_pack("[s,s]", "-c", "sleep 1009 & sleep 1009"));
    json_object_set_new(p, "timeoutMs", json_integer(60000));
    json_t *eid = pc_rpc_request(w, "environmentExecute", p);
    usleep(300000);
    r = pc_rpc_call(w, "environmentDestroyLease",
             json_pack("{s:O, s:O}", "providerLeaseId", json_object_get(lease, "providerLeaseId"),
                       "leaseMetadata", json_object_get(lease, "metadata")));
    ok(r && !json_object_get(r, "error"), "destroy during an execute succeeds");
    json_decref(r);
    r = pc_rpc_wait(w, eid, 30000);
    ok(r != NULL, "the running execute answers");
    json_decref(r);
    json_decref(eid);
    is_int(lease_procs(lease), 0, "destroy leaves no process in the lease cgroups");
    int host_left = 0;
    for (int i = 0; i < 50 && (host_left = host_procs_with("sleep 1009")) > 0; i++)
        usleep(20000);
    is_int(host_left, 0, "destroy leaves no process on the host");
    ok(!path_exists(str_at(json_object_get(lease, "metadata"), "leaseDir")),
       "destroy leaves no directory");
    ok(cgroups_gone(lease), "destroy leaves no cgroup");
    json_decref(lease);
}

static void test_reuse(void)
{
    pc_rpc_worker w;
    worker_start(&w);
    json_decref(initialize(&w));
    const char *cfg = "{\"reuseLease\":true}";
    json_t *lease = acquire(&w, cfg);
    if (!lease) {
        pc_rpc_worker_stop(&w);
        return;
    }
    const char *id = str_at(lease, "providerLeaseId");
    ok(id && !strncmp(id, "bwrap://env-1/", 14), "a reusable lease is scoped by environment");
    json_decref(sh(&w, cfg, lease, "echo kept > /workspace/state; echo home > ~/h", NULL));
    json_t *r = pc_rpc_call(&w, "environmentReleaseLease",
                     json_pack("{s:s, s:{s:b}, s:s, s:O}", "driverKey", "bwrap", "config",
                               "reuseLease", 1, "providerLeaseId", id, "leaseMetadata",
                               json_object_get(lease, "metadata")));
    ok(r && !json_object_get(r, "error"), "release of a reusable lease succeeds");
    json_decref(r);
    ok(path_exists(str_at(json_object_get(lease, "metadata"), "leaseDir")),
       "release keeps the directory");
    is_int(lease_procs(lease), 0, "release leaves no process");

    /* A new worker (the old one "crashed") resumes from the id alone. */
    pc_rpc_worker_stop(&w);
    worker_start(&w);
    json_decref(initialize(&w));
    json_t *p = base(cfg);
    json_object_set_new(p, "providerLeaseId", json_string(id));
    r = pc_rpc_call(&w, "environmentResumeLease", p);
    is_str(str_at(pc_rpc_result(r), "providerLeaseId"), id, "resume reattaches the lease");
    ok(json_is_true(json_object_get(json_object_get(pc_rpc_result(r), "metadata"), "resumedLease")),
       "metadata.resumedLease is true");
    json_t *lease2 = json_incref(pc_rpc_result(r));
    json_decref(r);
    r = sh(&w, cfg, lease2, "cat /workspace/state ~/h", NULL);
    is_str(out_of(r), "kept\nhome\n", "workspace and home survive release and resume");
    json_decref(r);

    /* A forged id with our prefix but no marker is never ours. */
    p = base(cfg);
    json_object_set_new(p, "providerLeaseId",
                        json_string("bwrap://env-1/00000000-0000-4000-8000-000000000000"));
    r = pc_rpc_call(&w, "environmentResumeLease", p);
    ok(json_is_null(json_object_get(pc_rpc_result(r), "providerLeaseId")) &&
           json_is_true(json_object_get(json_object_get(pc_rpc_result(r), "metadata"), "expired")),
       "resume of an unknown lease answers expired");
    json_decref(r);

    /* A directory without our marker is refused by destroy. */
    char fake[4400];
    snprintf(fake, sizeof(fake), "%s/leases/11111111-1111-4111-8111-111111111111", datadir);
    mkdir(fake, 0700);
    r = pc_rpc_call(&w, "environmentDestroyLease",
             json_pack("{s:s}", "providerLeaseId", "bwrap://x/11111111-1111-4111-8111-111111111111"));
    ok(json_object_get(r, "error") != NULL && path_exists(fake),
       "destroy refuses a directory without the ownership marker");
    json_decref(r);
    rmdir(fake);

    /* Destroy from leaseMetadata alone (providerLeaseId null). */
    r = pc_rpc_call(&w, "environmentDestroyLease",
             json_pack("{s:n, s:O}", "providerLeaseId", "leaseMetadata",
                       json_object_get(lease2, "metadata")));
    ok(r && !json_object_get(r, "error"), "destroy works from leaseMetadata");
    json_decref(r);
    ok(!path_exists(str_at(json_object_get(lease, "metadata"), "leaseDir")),
       "destroy removes the reused lease");
    ok(cgroups_gone(lease2), "and its cgroups");
    p = base(cfg);
    json_object_set_new(p, "providerLeaseId", json_string(id));
    r = pc_rpc_call(&w, "environmentResumeLease", p);
    ok(json_is_null(json_object_get(pc_rpc_result(r), "providerLeaseId")) &&
           json_is_true(json_object_get(json_object_get(pc_rpc_result(r), "metadata"), "expired")),
       "resume after destroy answers {providerLeaseId:null, metadata:{expired:true}}");
    json_decref(r);
    r = pc_rpc_call(&w, "environmentDestroyLease", json_pack("{s:s}", "providerLeaseId", id));
    ok(r && !json_object_get(r, "error"), "destroy is idempotent");
    json_decref(r);

    /* TTL: a lease past leaseTtlSec is expired on resume, and cleaned. */
    json_t *ttl = acquire(&w, "{\"leaseTtlSec\":1}");
    ok(ttl && json_is_string(json_object_get(ttl, "expiresAt")), "a TTL lease has expiresAt");
    usleep(1100000);
    p = base("{\"leaseTtlSec\":1}");
    json_object_set(p, "providerLeaseId", json_object_get(ttl, "providerLeaseId"));
    r = pc_rpc_call(&w, "environmentResumeLease", p);
    ok(json_is_true(json_object_get(json_object_get(pc_rpc_result(r), "metadata"), "expired")),
       "resume past the TTL answers expired");
    ok(!path_exists(str_at(json_object_get(ttl, "metadata"), "leaseDir")),
       "and removes the expired lease");
    json_decref(r);
    json_decref(ttl);

    json_decref(lease2);
    json_decref(lease);
    pc_rpc_worker_stop(&w);
}

/* Host processes whose command line contains `needle`. */
static int host_procs_with(const char *needle)
{
    DIR *d = opendir("/proc");
    int count = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
            continue;
        for (ssize_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = '\0';
        if (strstr(buf, needle) && !strstr(buf, "bwrap_sandbox"))
            count++;
    }
    if (d)
        closedir(d);
    return count;
}

/* The fallback without cgroups: RLIMIT_AS bounds memory, and the pid
 * namespace still takes every process down on timeout. */
static void test_rlimit_fallback(void)
{
    no_cgroup_mode = true;
    pc_rpc_worker w;
    worker_start(&w);
    no_cgroup_mode = false;
    json_decref(initialize(&w));
    json_t *r = pc_rpc_call(&w, "environmentProbe", base("{}"));
    is_str(str_at(json_object_get(pc_rpc_result(r), "metadata"), "cgroupMode"), "rlimit",
           "probe reports the rlimit fallback");
    json_decref(r);
    const char *cfg = "{\"memoryMb\":64}";
    json_t *lease = acquire(&w, cfg);
    is_str(str_at(json_object_get(lease, "metadata"), "cgroupMode"), "rlimit",
           "a lease without cgroups says so");
    r = run(&w, cfg, lease, "/bin/sh",
            (const char *[]){ "-c", "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
                              NULL },
            json_pack("{s:i}", "timeoutMs", 60000));
    ok(r && !strstr(out_of(r), "survived"), "rlimit fallback: a memory hog fails");
    json_decref(r);
    r = sh(&w, cfg, lease, "(sh -c 'sleep 1007' &); sleep 1007 & wait", json_pack("{s:i}", "timeoutMs", 500));
    ok(json_is_true(json_object_get(pc_rpc_result(r), "timedOut")), "rlimit fallback: the timeout fires");
    json_decref(r);
    int left = 0;
    for (int i = 0; i < 50 && (left = host_procs_with("sleep 1007")) > 0; i++)
        usleep(20000);
    is_int(left, 0, "rlimit fallback: grandchildren die with the pid namespace");
    r = pc_rpc_call(&w, "environmentDestroyLease",
             json_pack("{s:O}", "providerLeaseId", json_object_get(lease, "providerLeaseId")));
    ok(r && !json_object_get(r, "error") &&
           !path_exists(str_at(json_object_get(lease, "metadata"), "leaseDir")),
       "rlimit fallback: destroy removes the lease");
    json_decref(r);
    json_decref(lease);
    pc_rpc_worker_stop(&w);
}

/* ---- bench mode: bwrap_sandbox --bench [N] (bench/bwrap.bench.sh) ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    printf("%-44s %8.2f ms  p90 %8.2f ms  (n=%d)\n", what, v[n / 2], v[n * 9 / 10], n);
}

static void spawn_wait(char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        dup2(fd, 0), dup2(fd, 1), dup2(fd, 2);
        char *envp[] = { "PATH=/usr/bin:/bin", NULL };
        execve(argv[0], argv, envp);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
}

static int bench(int n)
{
    if (n < 1 || n > 100000)
        n = 200;
    double *v = calloc((size_t)n, sizeof(double));
    char *true_argv[] = { "/bin/true", NULL };
    for (int i = 0; i < n; i++) {
        double t = now_ms();
        spawn_wait(true_argv);
        v[i] = now_ms() - t;
    }
    printf("%-44s %s\n", "bwrap provider (median of n)", "");
    report("fork/exec /bin/true", v, n);

    /* The same namespaces and mounts the provider sets up (docs), minus
     * cgroups, the memfd and JSON-RPC: what a hand-written bwrap costs. */
    char ws[4400], home[4400], etc[4400], tmp[4400];
    snprintf(ws, sizeof(ws), "%s/bench-ws", tmpdir);
    snprintf(home, sizeof(home), "%s/bench-home", tmpdir);
    snprintf(etc, sizeof(etc), "%s/bench-etc", tmpdir);
    snprintf(tmp, sizeof(tmp), "%s/bench-tmp", tmpdir);
    mkdir(ws, 0755), mkdir(home, 0755), mkdir(etc, 0755), mkdir(tmp, 0755);
    char *bw_argv[] = { "/usr/bin/bwrap", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                        "--setenv", "HOME", "/home/agent", "--unshare-all", "--unshare-user",
                        "--uid", "1000", "--gid", "1000", "--disable-userns", "--hostname",
                        "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                        "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                        "--symlink", "usr/sbin", "/sbin", "--proc", "/proc", "--dev", "/dev",
                        "--ro-bind", etc, "/etc", "--ro-bind-try", "/etc/ssl", "/etc/ssl",
                        "--ro-bind-try", "/etc/alternatives", "/etc/alternatives", "--bind", tmp,
                        "/tmp", "--bind", ws, "/workspace", "--dir", "/home", "--bind", home,
                        "/home/agent", "--tmpfs", "/run", "--chdir", "/workspace", "/bin/true",
                        NULL };
    char mp[4500];
    snprintf(mp, sizeof(mp), "%s/ssl", etc);
    mkdir(mp, 0755);
    snprintf(mp, sizeof(mp), "%s/alternatives", etc);
    mkdir(mp, 0755);
    for (int i = 0; i < n; i++) {
        double t = now_ms();
        spawn_wait(bw_argv);
        v[i] = now_ms() - t;
    }
    report("bwrap /bin/true directly", v, n);

    pc_rpc_worker w;
    worker_start(&w);
    json_decref(initialize(&w));
    json_t *lease = acquire(&w, "{}");
    for (int i = 0; i < n && lease; i++) {
        double t = now_ms();
        json_decref(run(&w, "{}", lease, "/bin/true", NULL, NULL));
        v[i] = now_ms() - t;
    }
    report("provider execute /bin/true (JSON-RPC)", v, n);
    if (lease)
        json_decref(pc_rpc_call(&w, "environmentDestroyLease",
                         json_pack("{s:O}", "providerLeaseId",
                                   json_object_get(lease, "providerLeaseId"))));
    json_decref(lease);

    size_t m = n < 100 ? (size_t)n : 100;
    json_t **ls = calloc(m, sizeof(*ls));
    for (size_t i = 0; i < m; i++) {
        double t = now_ms();
        ls[i] = acquire(&w, "{}");
        v[i] = now_ms() - t;
    }
    report("lease acquire", v, (int)m);
    for (size_t i = 0; i < m; i++) {
        double t = now_ms();
        json_decref(pc_rpc_call(&w, "environmentDestroyLease",
                         json_pack("{s:O}", "providerLeaseId",
                                   json_object_get(ls[i], "providerLeaseId"))));
        v[i] = now_ms() - t;
        json_decref(ls[i]);
    }
    report("lease destroy", v, (int)m);
    free(ls);
    pc_rpc_worker_stop(&w);
    free(v);
    return 0;
}

/* ---- operator policy: host binds and the seccomp filter ---- */

static json_t *initialize_with(pc_rpc_worker *w, json_t *instance)
{
    return pc_rpc_call(w, "initialize",
                       json_pack("{s:{s:s}, s:o, s:{s:s, s:s}, s:i}", "manifest", "id",
                                 "paperclip.bwrap-sandbox", "config", instance, "instanceInfo",
                                 "instanceId", "test", "hostVersion", "0.0.0", "apiVersion", 1));
}

/* validateConfig of {"readOnlyBinds":[path]}: NULL when valid, else the
 * errors as one string (caller frees). */
static char *bind_errors(pc_rpc_worker *w, const char *path)
{
    json_t *r = pc_rpc_call(w, "environmentValidateConfig",
                            json_pack("{s:s, s:{s:[s]}}", "driverKey", "bwrap", "config",
                                      "readOnlyBinds", path));
    json_t *res = pc_rpc_result(r);
    char *e = json_is_true(json_object_get(res, "ok"))
                  ? NULL
                  : json_dumps(json_object_get(res, "errors"), 0);
    if (!res)
        e = strdup("no result");
    json_decref(r);
    return e;
}

static void expect_bind_refused(pc_rpc_worker *w, const char *path, const char *why,
                                const char *name)
{
    char *e = bind_errors(w, path);
    ok(e && strstr(e, why), "%s is refused (%s)", name, why);
    if (e && !strstr(e, why))
        tap_diag("  errors: %s", e);
    free(e);
}

static void mkfile(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void bind_and_read(pc_rpc_worker *w, const char *inside);

static void test_bind_policy(bool usable)
{
    /* Not under /tmp: the sandbox has its own /tmp, so nothing there can
     * be bound at the same path. */
    char base_dir[] = "/var/tmp/pc-bwrap-binds-XXXXXX";
    if (!mkdtemp(base_dir)) {
        ok(0, "create a directory under /var/tmp");
        return;
    }
    chmod(base_dir, 0755);
    char allowed[4400], inside[4500], outside[4400], fake_data[4500], link_out[4500],
        link_root[4500], p[4700];
    snprintf(allowed, sizeof(allowed), "%s/allowed", base_dir);
    snprintf(inside, sizeof(inside), "%s/tools", allowed);
    snprintf(outside, sizeof(outside), "%s/outside", base_dir);
    snprintf(fake_data, sizeof(fake_data), "%s/pcdata", allowed);
    snprintf(link_out, sizeof(link_out), "%s/escape", allowed);
    snprintf(link_root, sizeof(link_root), "%s/rootlink", allowed);
    mkdir(allowed, 0755);
    mkdir(inside, 0755);
    mkdir(outside, 0755);
    snprintf(p, sizeof(p), "%s/tool.txt", inside);
    mkfile(p, "bound-tool-content\n");
    snprintf(p, sizeof(p), "%s/secret.txt", outside);
    mkfile(p, "outside-secret\n");
    /* A directory that looks like a daemon data dir (master key present). */
    mkdir(fake_data, 0700);
    snprintf(p, sizeof(p), "%s/secrets", fake_data);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/secrets/master.key", fake_data);
    mkfile(p, "0123456789abcdef0123456789abcdef");
    snprintf(p, sizeof(p), "%s/workspaces", fake_data);
    mkdir(p, 0700);
    symlink(outside, link_out);
    symlink("/root", link_root);

    /* Default policy: no host path at all. */
    pc_rpc_worker w;
    worker_start(&w);
    json_decref(initialize(&w));
    expect_bind_refused(&w, inside, "none are configured", "with no allowedBindRoots, any bind");
    expect_bind_refused(&w, "/root", "home directory", "/root");
    json_t *r = pc_rpc_call(&w, "environmentValidateConfig",
                            json_pack("{s:s, s:{s:s}}", "driverKey", "bwrap", "config", "rootfs",
                                      inside));
    ok(json_is_false(json_object_get(pc_rpc_result(r), "ok")),
       "a rootfs outside allowedBindRoots is refused too");
    json_decref(r);
    pc_rpc_worker_stop(&w);

    /* Roots that are never acceptable are refused in the instance config. */
    worker_start(&w);
    json_decref(initialize_with(&w, json_pack("{s:[s]}", "allowedBindRoots", "/root")));
    expect_bind_refused(&w, "/root/.ssh", "allowedBindRoots[0] (/root) is inside a home directory",
                        "a bind with /root as allowed root");
    pc_rpc_worker_stop(&w);

    worker_start(&w);
    json_decref(initialize_with(&w, json_pack("{s:[s]}", "allowedBindRoots", allowed)));
    char *e = bind_errors(&w, inside);
    ok(e == NULL, "a bind under an allowed root is valid");
    if (e)
        tap_diag("  errors: %s", e);
    free(e);
    expect_bind_refused(&w, outside, "is not under allowedBindRoots", "a bind beside the root");
    expect_bind_refused(&w, link_out, "resolves to", "a symlink escaping the allowed root");
    expect_bind_refused(&w, link_root, "home directory", "a symlink to /root");
    snprintf(p, sizeof(p), "%s/workspaces", fake_data);
    expect_bind_refused(&w, p, "Paperclip data directory", "a bind inside a daemon data dir");
    expect_bind_refused(&w, fake_data, "Paperclip data directory", "the data dir itself");
    expect_bind_refused(&w, allowed, "Paperclip data directory", "a parent of a data dir");
    expect_bind_refused(&w, "/sys/kernel", "never bound", "/sys");
    if (usable)
        bind_and_read(&w, inside);
    pc_rpc_worker_stop(&w);
    snprintf(p, sizeof(p), "rm -rf '%s'", base_dir);
    if (system(p) != 0)
        tap_diag("cannot remove %s", base_dir);
}

static void bind_and_read(pc_rpc_worker *w, const char *inside)
{
    char cfg[5000];
    json_t *r;
    snprintf(cfg, sizeof(cfg), "{\"readOnlyBinds\":[\"%s\"]}", inside);
    json_t *lease = acquire(w, cfg);
    ok(lease != NULL, "acquire with an allowed bind");
    if (lease) {
        char script[10000];
        snprintf(script, sizeof(script), "cat '%s/tool.txt'; echo x > '%s/new' || echo read-only",
                 inside, inside);
        r = sh(w, cfg, lease, script, NULL);
        ok(strstr(out_of(r), "bound-tool-content") != NULL, "the bound directory is readable");
        ok(strstr(out_of(r), "read-only") != NULL, "and read-only");
        json_decref(r);
        json_decref(pc_rpc_call(w, "environmentDestroyLease",
                                json_pack("{s:O, s:O}", "providerLeaseId",
                                          json_object_get(lease, "providerLeaseId"),
                                          "leaseMetadata", json_object_get(lease, "metadata"))));
        json_decref(lease);
    }
}

/* `--syscalls` mode of this program: tries each call the filter denies
 * and prints name=ok or name=<errno name>, one per line. */
static const char *errname(long rc)
{
    if (rc >= 0)
        return "ok";
    return errno == EPERM ? "EPERM" : errno == ENOSYS ? "ENOSYS" : strerror(errno);
}

static int syscall_probe(void)
{
    printf("keyctl=%s\n", errname(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */,
                                           -3 /* KEY_SPEC_SESSION_KEYRING */, 1)));
    printf("personality=%s\n", errname(syscall(SYS_personality, 0x0040000UL)));
    printf("personality-query=%s\n", errname(syscall(SYS_personality, 0xffffffffUL)));
    printf("unshare=%s\n", errname(syscall(SYS_unshare, 0x10000000 /* CLONE_NEWUSER */)));
    printf("mount=%s\n", errname(syscall(SYS_mount, "none", "/tmp", "tmpfs", 0UL, NULL)));
    printf("userfaultfd=%s\n", errname(syscall(SYS_userfaultfd, 0)));
    printf("ptrace=%s\n", errname(syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0)));
    fflush(stdout);
    return 0;
}

static void test_seccomp(void)
{
    /* Outside any sandbox the discriminating calls work, so the checks
     * below can only pass because of the filter. */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    char *argv[] = { self, "--syscalls", NULL };
    int pipefd[2];
    char host_out[2048] = "";
    if (pipe(pipefd) == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            dup2(pipefd[1], 1);
            execv(self, argv);
            _exit(127);
        }
        close(pipefd[1]);
        size_t got = 0;
        ssize_t r;
        while ((r = read(pipefd[0], host_out + got, sizeof(host_out) - 1 - got)) > 0)
            got += (size_t)r;
        host_out[got] = '\0';
        close(pipefd[0]);
        waitpid(pid, NULL, 0);
    }
    ok(strstr(host_out, "keyctl=ok") && strstr(host_out, "personality=ok"),
       "outside the sandbox keyctl and personality work");

    for (int on = 1; on >= 0; on--) {
        pc_rpc_worker w;
        worker_start(&w);
        json_decref(initialize_with(&w, on ? json_object() : json_pack("{s:b}", "seccomp", 0)));
        json_t *lease = acquire(&w, "{}");
        if (!lease) {
            ok(0, "acquire");
            pc_rpc_worker_stop(&w);
            continue;
        }
        char dst[4500];
        snprintf(dst, sizeof(dst), "%s/workspace/probe",
                 str_at(json_object_get(lease, "metadata"), "leaseDir"));
        char cmd[16000];
        snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 755 '%s'", self, dst, dst);
        ok(system(cmd) == 0, "copy the probe into the lease workspace");
        json_t *r = sh(&w, "{}", lease,
                       "/workspace/probe --syscalls; unshare -U true 2>&1 || echo unshare-failed",
                       NULL);
        const char *out = out_of(r);
        if (on) {
            ok(json_is_true(json_object_get(meta_of(r), "seccomp")), "metadata.seccomp is true");
            ok(strstr(out, "keyctl=EPERM") != NULL, "keyctl fails with EPERM in the sandbox");
            ok(strstr(out, "personality=EPERM") != NULL, "personality(ADDR_NO_RANDOMIZE) fails");
            ok(strstr(out, "personality-query=ok") != NULL, "the personality query still works");
            ok(strstr(out, "unshare=EPERM") != NULL, "unshare(CLONE_NEWUSER) fails with EPERM");
            ok(strstr(out, "mount=EPERM") != NULL, "mount fails with EPERM");
            ok(strstr(out, "userfaultfd=EPERM") != NULL, "userfaultfd fails with EPERM");
            ok(strstr(out, "ptrace=EPERM") != NULL, "ptrace fails with EPERM");
            ok(strstr(out, "unshare-failed") && strstr(out, "Operation not permitted"),
               "util-linux unshare -U fails with EPERM");
        } else {
            ok(json_is_false(json_object_get(meta_of(r), "seccomp")),
               "seccomp: false in the instance config turns the filter off");
            ok(strstr(out, "keyctl=ok") != NULL, "without the filter keyctl works in the sandbox");
            ok(strstr(out, "personality=ok") != NULL, "and so does personality");
        }
        if (!strstr(out, "keyctl="))
            tap_diag("probe output: %s / %s", out, str_at(pc_rpc_result(r), "stderr"));
        json_decref(r);
        json_decref(pc_rpc_call(&w, "environmentDestroyLease",
                                json_pack("{s:O, s:O}", "providerLeaseId",
                                          json_object_get(lease, "providerLeaseId"),
                                          "leaseMetadata", json_object_get(lease, "metadata"))));
        json_decref(lease);
        pc_rpc_worker_stop(&w);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--syscalls"))
        return syscall_probe();
    const char *r = getenv("PC_ROOT");
    snprintf(root, sizeof(root), "%s", r && *r ? r : ".");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pc-bwrap-test-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    chmod(tmpdir, 0755);
    snprintf(datadir, sizeof(datadir), "%s/data", tmpdir);
    signal(SIGPIPE, SIG_IGN);
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        int rc = bench(argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 200);
        char cmd[4400];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        return rc | (system(cmd) != 0);
    }

    pc_rpc_worker w;
    worker_start(&w);
    json_t *init = initialize(&w);
    ok(json_is_true(json_object_get(pc_rpc_result(init), "ok")), "initialize succeeds");
    char *sm = json_dumps(json_object_get(pc_rpc_result(init), "supportedMethods"), 0);
    ok(sm && strstr(sm, "environmentExecute") && strstr(sm, "environmentResumeLease") &&
           strstr(sm, "environmentReleaseLease") && strstr(sm, "environmentDestroyLease"),
       "every environment method is supported");
    free(sm);
    json_decref(init);

    test_validate(&w);
    bool usable = test_probe(&w);
    if (!usable) {
        tap_skip("bwrap is missing or the kernel refuses user namespaces",
                 "sandbox isolation, network, limits, timeout and reuse checks");
    } else {
        test_garbage(&w);
        test_isolation(&w);
        test_network(&w);
        test_limits(&w);
        test_timeout(&w);
    }
    pc_rpc_worker_stop(&w);
    if (usable) {
        test_reuse();
        test_rlimit_fallback();
        test_seccomp();
    }
    test_bind_policy(usable);

    if (usable) {
        /* Every lease this run made was destroyed: no directory is left. */
        char leases[4400];
        snprintf(leases, sizeof(leases), "%s/leases", datadir);
        DIR *d = opendir(leases);
        int left = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
            left += e->d_name[0] != '.';
        if (d)
            closedir(d);
        is_int(left, 0, "no lease directory is left behind");
    }
    char cmd[4400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", tmpdir);
    return tap_done();
}
