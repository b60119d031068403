/*
 * Black-box tests of plugins/fake-sandbox/worker: the real binary, spoken
 * to over pipes in the plugin JSON-RPC protocol, as the host would.
 *
 * The worker runs with a small explicit environment holding a canary
 * secret, and with TMPDIR pointing at a private directory so leases can be
 * checked and cleaned without touching anyone else's /tmp.
 */
#include "../lib/helpers.h"
#include "../lib/rpc_driver.h"
#include "../lib/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char root[4096];
static char tmpdir[4096];

/* Counts the worker's "ready" log notification, which setup must send once. */
static void count_ready(pc_rpc_worker *w, json_t *msg)
{
    const char *text = json_string_value(json_object_get(json_object_get(msg, "params"), "message"));
    if (json_object_get(msg, "method") && text && !strcmp(text, "Fake sandbox provider plugin ready"))
        w->notes++;
}

static void worker_start(pc_rpc_worker *w)
{
    char exe[4200], tmp_env[4200];
    snprintf(exe, sizeof(exe), "%s/plugins/fake-sandbox/worker", root);
    snprintf(tmp_env, sizeof(tmp_env), "TMPDIR=%s", tmpdir);
    const char *env[] = { "PATH=/usr/local/bin:/usr/bin:/bin",
                          "PAPERCLIP_FAKE_PLUGIN_HOST_SECRET=canary", tmp_env, NULL };
    pc_rpc_worker_start(w, exe, env);
    w->on_notify = count_ready;
}

static const char *str_at(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static json_t *initialize(pc_rpc_worker *w)
{
    return pc_rpc_call(w, "initialize",
                json_pack("{s:{s:s}, s:{}, s:{s:s, s:s}, s:i}", "manifest", "id",
                          "paperclip.fake-sandbox-provider", "config", "instanceInfo",
                          "instanceId", "test", "hostVersion", "0.0.0", "apiVersion", 1));
}

static json_t *base(const char *config_json)
{
    json_t *cfg = json_loads(config_json, 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:o}", "driverKey", "fake-plugin", "companyId", "co-1",
                     "environmentId", "env-1", "config", cfg ? cfg : json_object());
}

static json_t *exec_params(const char *config_json, json_t *extra)
{
    json_t *p = base(config_json);
    json_object_set_new(p, "lease", json_pack("{s:n}", "providerLeaseId"));
    json_object_update(p, extra);
    json_decref(extra);
    return p;
}

static json_t *execute(pc_rpc_worker *w, json_t *extra)
{
    return pc_rpc_call(w, "environmentExecute", exec_params("{}", extra));
}

static bool is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool worker_env_has_canary(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    for (size_t i = 0; i < n;) {
        if (!strncmp(buf + i, "PAPERCLIP_FAKE_PLUGIN_HOST_SECRET=canary", n - i))
            return true;
        i += strnlen(buf + i, n - i) + 1;
    }
    return false;
}

static void test_initialize_and_protocol(pc_rpc_worker *w)
{
    json_t *r = pc_rpc_call(w, "health", NULL);
    ok(r && pc_rpc_error_code(r) != 0, "health before initialize is refused");
    json_decref(r);

    r = initialize(w);
    json_t *res = pc_rpc_result(r);
    ok(json_is_true(json_object_get(res, "ok")), "initialize ok");
    json_t *sm = json_object_get(res, "supportedMethods");
    static const char *env_methods[] = {
        "environmentValidateConfig", "environmentProbe", "environmentAcquireLease",
        "environmentResumeLease", "environmentReleaseLease", "environmentDestroyLease",
        "environmentRealizeWorkspace", "environmentExecute", "environmentSyncIn",
        "environmentSyncOut",
    };
    int found = 0;
    for (size_t i = 0; i < 10; i++) {
        size_t k;
        json_t *v;
        json_array_foreach(sm, k, v) if (!strcmp(json_string_value(v), env_methods[i])) found++;
    }
    is_int(found, 10, "supportedMethods lists all 10 environment methods");
    is_int(json_array_size(sm), 10, "and nothing else");
    is_int(w->notes, 1, "setup logged 'Fake sandbox provider plugin ready'");
    json_decref(r);

    r = initialize(w);
    is_str(pc_rpc_error_message(r), "Worker already initialized", "second initialize is an error");
    json_decref(r);

    r = pc_rpc_call(w, "health", NULL);
    is_str(str_at(pc_rpc_result(r), "status"), "ok", "health status ok");
    is_str(str_at(pc_rpc_result(r), "message"), "Fake sandbox provider plugin healthy", "health message");
    json_decref(r);

    r = pc_rpc_call(w, "noSuchMethod", NULL);
    is_int(pc_rpc_error_code(r), -32601, "unknown method: -32601");
    is_str(pc_rpc_error_message(r), "Unknown method: noSuchMethod", "unknown method: message");
    json_decref(r);

    r = pc_rpc_call(w, "validateConfig", json_pack("{s:{}}", "config"));
    ok(json_is_true(json_object_get(pc_rpc_result(r), "ok")), "validateConfig default ok:true");
    json_decref(r);

    pc_rpc_send_line(w, "this is not json");
    json_t *m = pc_rpc_wait(w, json_null(), 10000);
    is_int(pc_rpc_error_code(m), -32700, "garbage line: -32700");
    ok(m && json_is_null(json_object_get(m, "id")), "garbage line: id null");
    json_decref(m);

    pc_rpc_send_line(w, "[1,2,3]");
    m = pc_rpc_wait(w, json_null(), 10000);
    is_int(pc_rpc_error_code(m), -32600, "non-object: -32600");
    json_decref(m);

    pc_rpc_send_line(w, "{\"jsonrpc\":\"1.0\",\"id\":\"v1\",\"method\":\"health\"}");
    json_t *vid = json_string("v1");
    m = pc_rpc_wait(w, vid, 10000);
    json_decref(vid);
    is_int(pc_rpc_error_code(m), -32600, "wrong jsonrpc version: -32600 with the id echoed");
    json_decref(m);

    pc_rpc_send_line(w, "{\"jsonrpc\":\"2.0\",\"id\":\"str-id\",\"method\":\"health\"}");
    json_t *sid = json_string("str-id");
    m = pc_rpc_wait(w, sid, 10000);
    json_decref(sid);
    is_str(str_at(pc_rpc_result(m), "status"), "ok", "string ids are echoed");
    json_decref(m);

    /* A line over 16 MiB is rejected and the worker keeps working. */
    size_t big = (16u << 20) + 1024;
    char *line = malloc(big + 1);
    memset(line, 'x', big);
    line[0] = '"';
    line[big] = '\n';
    pc_rpc_send_raw(w, line, big + 1);
    free(line);
    m = pc_rpc_wait(w, json_null(), 30000);
    is_int(pc_rpc_error_code(m), -32600, "oversized line: -32600 with id null");
    json_decref(m);
    r = pc_rpc_call(w, "health", NULL);
    is_str(str_at(pc_rpc_result(r), "status"), "ok", "worker healthy after the oversized line");
    json_decref(r);
}

static void test_lifecycle(pc_rpc_worker *w)
{
    json_t *r = pc_rpc_call(w, "environmentValidateConfig",
                     json_pack("{s:s, s:{s:s}}", "driverKey", "fake-plugin", "config", "image",
                               "fake:test"));
    json_t *res = pc_rpc_result(r);
    ok(json_is_true(json_object_get(res, "ok")), "validate ok");
    json_t *nc = json_object_get(res, "normalizedConfig");
    is_str(str_at(nc, "image"), "fake:test", "normalizedConfig.image");
    ok(json_is_false(json_object_get(nc, "reuseLease")), "normalizedConfig.reuseLease false");
    is_int(json_integer_value(json_object_get(nc, "timeoutMs")), 300000, "normalizedConfig.timeoutMs default");
    json_decref(r);

    r = pc_rpc_call(w, "environmentValidateConfig",
             json_pack("{s:s, s:{s:s, s:i, s:b}}", "driverKey", "fake-plugin", "config", "image",
                       "  ", "timeoutMs", 5, "reuseLease", 1));
    nc = json_object_get(pc_rpc_result(r), "normalizedConfig");
    ok(!strcmp(str_at(nc, "image") ? str_at(nc, "image") : "", "fake:latest") &&
           json_integer_value(json_object_get(nc, "timeoutMs")) == 5 &&
           json_is_true(json_object_get(nc, "reuseLease")),
       "blank image defaults, timeoutMs and reuseLease kept");
    json_decref(r);

    r = pc_rpc_call(w, "environmentProbe", base("{\"image\":\"fake:test\"}"));
    res = pc_rpc_result(r);
    is_str(str_at(json_object_get(res, "metadata"), "provider"), "fake-plugin", "probe metadata.provider");
    is_str(str_at(json_object_get(res, "metadata"), "image"), "fake:test", "probe metadata.image");
    is_str(str_at(res, "summary"), "Fake sandbox provider is ready for image fake:test.", "probe summary");
    json_decref(r);

    json_t *p = base("{\"image\":\"fake:test\"}");
    json_object_set_new(p, "runId", json_string("run-1"));
    r = pc_rpc_call(w, "environmentAcquireLease", p);
    res = pc_rpc_result(r);
    const char *lid = str_at(res, "providerLeaseId");
    ok(lid && !strncmp(lid, "fake-plugin://run-1/", 20) && strlen(lid) == 20 + 36,
       "acquire id is fake-plugin://run-1/<uuid> (%s)", lid ? lid : "null");
    json_t *meta = json_object_get(res, "metadata");
    const char *rootdir = str_at(meta, "fakeRootDir");
    ok(is_dir(rootdir), "lease root directory exists");
    ok(rootdir && !strncmp(rootdir, tmpdir, strlen(tmpdir)), "lease root is under TMPDIR");
    ok(json_is_false(json_object_get(meta, "resumedLease")), "fresh lease: resumedLease false");
    is_str(str_at(meta, "image"), "fake:test", "lease metadata.image");

    json_t *rp = base("{\"image\":\"fake:test\"}");
    json_object_set_new(rp, "lease", json_pack("{s:s, s:O}", "providerLeaseId", lid, "metadata", meta));
    json_object_set_new(rp, "workspace", json_pack("{s:s}", "localPath", "/nonexistent/local"));
    json_t *r2 = pc_rpc_call(w, "environmentRealizeWorkspace", rp);
    const char *cwd = str_at(pc_rpc_result(r2), "cwd");
    ok(cwd && strstr(cwd, "paperclip-fake-sandbox-"), "realize cwd is inside the lease (%s)", cwd ? cwd : "null");
    is_str(cwd, str_at(meta, "remoteCwd"), "realize cwd == lease remoteCwd");
    ok(is_dir(cwd), "realized cwd exists");

    json_t *r3 = execute(w, json_pack("{s:s, s:[s,s], s:s}", "command", "sh", "args", "-lc",
                                      "printf fake-plugin-ok", "cwd", cwd ? cwd : "/"));
    res = pc_rpc_result(r3);
    is_int(json_integer_value(json_object_get(res, "exitCode")), 0, "execute exitCode 0");
    ok(json_is_integer(json_object_get(res, "exitCode")), "exitCode is an integer");
    ok(json_is_false(json_object_get(res, "timedOut")), "execute timedOut false");
    ok(json_is_null(json_object_get(res, "signal")), "execute signal null");
    is_str(str_at(res, "stdout"), "fake-plugin-ok", "execute stdout exact");
    is_str(str_at(res, "stderr"), "", "execute stderr empty");
    json_t *em = json_object_get(res, "metadata");
    is_str(str_at(em, "commandLine"), "sh -lc printf fake-plugin-ok", "metadata.commandLine");
    const char *sa = str_at(em, "startedAt");
    ok(sa && strlen(sa) == 24 && sa[10] == 'T' && sa[23] == 'Z' && sa[19] == '.', "metadata.startedAt ISO ms (%s)", sa ? sa : "null");
    ok(json_is_false(json_object_get(em, "stdoutTruncated")), "metadata.stdoutTruncated false");
    json_decref(r3);

    r3 = execute(w, json_pack("{s:s, s:[s], s:s}", "command", "pwd", "args", "-P", "cwd", cwd ? cwd : "/"));
    char real[4096];
    ok(cwd && realpath(cwd, real), "realpath of cwd");
    char want[4200];
    snprintf(want, sizeof(want), "%s\n", real);
    is_str(str_at(pc_rpc_result(r3), "stdout"), want, "execute runs in the given cwd");
    json_decref(r3);

    char *saved_root = rootdir ? strdup(rootdir) : NULL;
    json_t *dp = base("{\"image\":\"fake:test\"}");
    json_object_set_new(dp, "providerLeaseId", json_string(lid));
    json_t *r4 = pc_rpc_call(w, "environmentDestroyLease", dp);
    ok(r4 && json_is_null(json_object_get(r4, "result")) && !json_object_get(r4, "error"),
       "destroy answers null");
    ok(saved_root && !is_dir(saved_root), "destroy removed the lease directory");
    free(saved_root);
    json_decref(r4);
    json_decref(r2);
    json_decref(r);

    dp = base("{}");
    json_object_set_new(dp, "providerLeaseId", json_string("fake-plugin://nope"));
    r4 = pc_rpc_call(w, "environmentDestroyLease", dp);
    ok(r4 && !json_object_get(r4, "error"), "destroy of an unknown id is a no-op");
    json_decref(r4);
}

static void test_execute(pc_rpc_worker *w)
{
    ok(worker_env_has_canary(w->pid), "canary secret is in the worker's environment");
    json_t *r = execute(w, json_pack("{s:s, s:[s,s], s:{s:s}}", "command", "sh", "args", "-c",
                                     "printf '%s|%s' \"${PAPERCLIP_FAKE_PLUGIN_HOST_SECRET:-unset}\" \"$EXPLICIT_VALUE\"",
                                     "env", "EXPLICIT_VALUE", "visible"));
    is_str(str_at(pc_rpc_result(r), "stdout"), "unset|visible", "host env hidden, explicit env visible");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s]}", "command", "sh", "args", "-c", "printf %s \"$PATH\""));
    const char *out = str_at(pc_rpc_result(r), "stdout");
    ok(out && strstr(out, "/usr/local/bin"), "default PATH contains /usr/local/bin (%s)", out ? out : "null");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s], s:{s:s}}", "command", "sh", "args", "-c",
                             "printf %s \"$PATH\"", "env", "PATH", "/bin:/usr/bin"));
    is_str(str_at(pc_rpc_result(r), "stdout"), "/bin:/usr/bin", "explicit PATH wins");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s], s:i}", "command", "sh", "args", "-c",
                             "trap '' TERM; while :; do sleep 1; done", "timeoutMs", 100));
    json_t *res = pc_rpc_result(r);
    ok(json_is_true(json_object_get(res, "timedOut")), "TERM-ignoring loop: timedOut true");
    ok(json_is_null(json_object_get(res, "exitCode")), "TERM-ignoring loop: exitCode null");
    is_str(str_at(res, "signal"), "SIGKILL", "TERM-ignoring loop: SIGKILL after the grace");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s], s:i}", "command", "sh", "args", "-c",
                             "sleep 100 & echo $!; wait", "timeoutMs", 300));
    res = pc_rpc_result(r);
    ok(json_is_true(json_object_get(res, "timedOut")), "background child: timed out");
    pid_t gc = str_at(res, "stdout") ? (pid_t)atoi(str_at(res, "stdout")) : 0;
    ok(gc > 0 && pc_test_pid_gone(gc), "timeout killed the grandchild %d", (int)gc);
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s], s:i}", "command", "sh", "args", "-c",
                             "exit 7", "timeoutMs", 10000));
    is_int(json_integer_value(json_object_get(pc_rpc_result(r), "exitCode")), 7, "exit code passed through");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s]}", "command", "sh", "args", "-c", "kill -USR1 $$"));
    res = pc_rpc_result(r);
    ok(json_is_null(json_object_get(res, "exitCode")), "killed by a signal: exitCode null");
    is_str(str_at(res, "signal"), "SIGUSR1", "killed by a signal: its name");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:s}", "command", "cat", "stdin", "hello\nworld"));
    is_str(str_at(pc_rpc_result(r), "stdout"), "hello\nworld", "stdin delivered");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:i}", "command", "cat", "timeoutMs", 10000));
    res = pc_rpc_result(r);
    ok(json_is_false(json_object_get(res, "timedOut")) && !strcmp(str_at(res, "stdout") ? str_at(res, "stdout") : "x", ""),
       "no stdin: command sees EOF at once");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s]}", "command", "sh", "args", "-c",
                             "head -c 10485760 /dev/zero | tr '\\000' a; printf e >&2"));
    res = pc_rpc_result(r);
    out = str_at(res, "stdout");
    is_int(out ? strlen(out) : 0, 4 << 20, "10 MiB of output capped at 4 MiB");
    ok(out && out[0] == 'a' && out[(4 << 20) - 1] == 'a', "captured bytes are the command's");
    ok(json_is_true(json_object_get(json_object_get(res, "metadata"), "stdoutTruncated")), "stdoutTruncated true");
    ok(json_is_false(json_object_get(json_object_get(res, "metadata"), "stderrTruncated")), "stderrTruncated false");
    is_str(str_at(res, "stderr"), "e", "stderr intact beside a flooded stdout");
    is_int(json_integer_value(json_object_get(res, "exitCode")), 0, "flooding command drained, exit 0");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:[s,s]}", "command", "printf", "args", "%b", "a\\0377b\\0000c"));
    is_str(str_at(pc_rpc_result(r), "stdout"), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c", "invalid UTF-8 and NUL become U+FFFD");
    json_decref(r);

    r = execute(w, json_pack("{s:s}", "command", "pc-definitely-not-a-command"));
    is_int(pc_rpc_error_code(r), -32002, "spawn failure: -32002");
    is_str(pc_rpc_error_message(r), "spawn pc-definitely-not-a-command ENOENT", "spawn failure: Node-style message");
    json_decref(r);

    r = execute(w, json_pack("{s:s, s:s}", "command", "true", "cwd", "/nonexistent-cwd"));
    ok(r && pc_rpc_error_code(r) == -32002, "bad cwd: an error, not a crash");
    json_decref(r);

    r = execute(w, json_pack("{s:i}", "command", 5));
    ok(r && pc_rpc_error_code(r) != 0, "non-string command: an error");
    json_decref(r);

    /* A long execute does not hold up health. */
    json_t *slow = pc_rpc_request(w, "environmentExecute",
                                 exec_params("{}", json_pack("{s:s, s:[s]}", "command", "sleep", "args", "2")));
    json_t *fast = pc_rpc_request(w, "health", NULL);
    json_t *first = pc_rpc_first_of(w, fast, slow, 10000);
    ok(first && pc_rpc_id_is(first, fast), "health answered while an execute is running");
    json_t *other = first && pc_rpc_id_is(first, fast) ? pc_rpc_wait(w, slow, 30000) : NULL;
    ok(other && json_integer_value(json_object_get(pc_rpc_result(other), "exitCode")) == 0,
       "the execute finished afterwards");
    json_decref(first);
    json_decref(other);
    json_decref(slow);
    json_decref(fast);
}

static json_t *acquire_reuse(pc_rpc_worker *w)
{
    json_t *p = base("{\"reuseLease\":true}");
    json_object_set_new(p, "environmentId", json_string("env-reuse"));
    json_object_set_new(p, "runId", json_string("run-r"));
    return pc_rpc_call(w, "environmentAcquireLease", p);
}

static void test_reuse(pc_rpc_worker *w)
{
    json_t *a = acquire_reuse(w), *b = acquire_reuse(w);
    const char *ida = str_at(pc_rpc_result(a), "providerLeaseId");
    is_str(ida, "fake-plugin://env-reuse", "reuse lease id is per environment");
    is_str(str_at(pc_rpc_result(b), "providerLeaseId"), ida, "second acquire: same id");
    json_t *ma = json_object_get(pc_rpc_result(a), "metadata"), *mb = json_object_get(pc_rpc_result(b), "metadata");
    ok(json_is_false(json_object_get(ma, "resumedLease")), "first acquire: resumedLease false");
    ok(json_is_true(json_object_get(mb, "resumedLease")), "second acquire: resumedLease true");
    is_str(str_at(mb, "fakeRootDir"), str_at(ma, "fakeRootDir"), "same directory");
    const char *root = str_at(ma, "fakeRootDir");

    json_t *p = base("{\"reuseLease\":true}");
    json_object_set_new(p, "providerLeaseId", json_string(ida));
    json_decref(pc_rpc_call(w, "environmentReleaseLease", p));
    ok(is_dir(root), "release with reuseLease keeps the directory");

    p = base("{\"reuseLease\":true}");
    json_object_set_new(p, "providerLeaseId", json_string(ida));
    json_t *rs = pc_rpc_call(w, "environmentResumeLease", p);
    ok(json_is_true(json_object_get(json_object_get(pc_rpc_result(rs), "metadata"), "resumedLease")),
       "resume: resumedLease true");
    json_decref(rs);

    p = base("{\"reuseLease\":true}");
    json_object_set_new(p, "providerLeaseId", json_string(ida));
    json_decref(pc_rpc_call(w, "environmentDestroyLease", p));
    ok(!is_dir(root), "destroy removes a reusable lease");
    json_decref(a);
    json_decref(b);

    /* Release without reuse removes. */
    p = base("{}");
    json_object_set_new(p, "runId", json_string("run-2"));
    json_t *c = pc_rpc_call(w, "environmentAcquireLease", p);
    char *croot = str_at(json_object_get(pc_rpc_result(c), "metadata"), "fakeRootDir")
                      ? strdup(str_at(json_object_get(pc_rpc_result(c), "metadata"), "fakeRootDir"))
                      : NULL;
    p = base("{}");
    json_object_set_new(p, "providerLeaseId", json_string(str_at(pc_rpc_result(c), "providerLeaseId")));
    json_decref(pc_rpc_call(w, "environmentReleaseLease", p));
    ok(croot && !is_dir(croot), "release without reuseLease removes the directory");
    free(croot);
    json_decref(c);
}

static void make_dir(const char *path)
{
    mkdir(path, 0700);
    char f[4200];
    snprintf(f, sizeof(f), "%s/keep", path);
    FILE *fp = fopen(f, "w");
    if (fp)
        fclose(fp);
}

static void test_restart_and_safety(void)
{
    pc_rpc_worker w1, w2;
    worker_start(&w1);
    json_decref(initialize(&w1));
    json_t *p = base("{}");
    json_object_set_new(p, "runId", json_string("run-restart"));
    json_t *lease = pc_rpc_call(&w1, "environmentAcquireLease", p);
    json_t *res = pc_rpc_result(lease);
    const char *root = str_at(json_object_get(res, "metadata"), "fakeRootDir");
    ok(is_dir(root), "lease made before the restart");
    json_t *sd = pc_rpc_call(&w1, "shutdown", NULL);
    ok(sd && json_is_null(json_object_get(sd, "result")), "shutdown answers null");
    json_decref(sd);
    is_int(pc_rpc_worker_stop(&w1), 0, "worker exits 0 after shutdown");
    ok(is_dir(root), "lease directory survives a worker restart");

    worker_start(&w2);
    json_decref(initialize(&w2));

    /* Hostile or stale metadata must never delete what is not ours. */
    char victim[4200], nested[4200], nested_root[4300], ws[4200], link[4200], outside[4200];
    snprintf(victim, sizeof(victim), "%s/victim", tmpdir);
    snprintf(nested, sizeof(nested), "%s/nested", tmpdir);
    snprintf(nested_root, sizeof(nested_root), "%s/nested/paperclip-fake-sandbox-abc123", tmpdir);
    snprintf(ws, sizeof(ws), "%s/paperclip-fake-sandbox-workspace", tmpdir);
    snprintf(link, sizeof(link), "%s/paperclip-fake-sandbox-lnk123", tmpdir);
    snprintf(outside, sizeof(outside), "%s/../paperclip-fake-sandbox-up1234", tmpdir);
    make_dir(victim);
    make_dir(nested);
    make_dir(nested_root);
    make_dir(ws);
    symlink(victim, link);
    const char *hostile[] = { victim, nested_root, ws, link, outside, "/", "/tmp" };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        p = base("{}");
        json_object_set_new(p, "providerLeaseId", json_string("fake-plugin://run-x/gone"));
        json_object_set_new(p, "leaseMetadata", json_pack("{s:s}", "fakeRootDir", hostile[i]));
        json_t *r = pc_rpc_call(&w2, "environmentDestroyLease", p);
        ok(r && !json_object_get(r, "error"), "destroy with foreign fakeRootDir %s: no error", hostile[i]);
        json_decref(r);
    }
    char keep[4400];
    snprintf(keep, sizeof(keep), "%s/keep", victim);
    ok(access(keep, F_OK) == 0, "victim dir and its content untouched");
    snprintf(keep, sizeof(keep), "%s/keep", nested_root);
    ok(access(keep, F_OK) == 0, "nested look-alike untouched");
    ok(is_dir(ws), "default workspace dir untouched");
    struct stat st;
    ok(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "symlinked look-alike untouched");
    ok(is_dir(root), "real lease still there (not deleted by a foreign request)");

    p = base("{}");
    json_object_set_new(p, "providerLeaseId", json_string(str_at(res, "providerLeaseId")));
    json_object_set_new(p, "leaseMetadata", json_deep_copy(json_object_get(res, "metadata")));
    json_t *r = pc_rpc_call(&w2, "environmentDestroyLease", p);
    ok(r && !json_object_get(r, "error"), "destroy after restart: no error");
    ok(!is_dir(root), "destroy after restart removed the directory via leaseMetadata");
    json_decref(r);
    json_decref(lease);

    /* shutdown while an execute is in flight: the execute is answered first */
    json_t *eid = pc_rpc_request(&w2, "environmentExecute",
                                exec_params("{}", json_pack("{s:s, s:[s,s]}", "command", "sh", "args", "-c",
                                                            "sleep 1; printf done")));
    usleep(200000);
    json_t *sid = pc_rpc_request(&w2, "shutdown", NULL);
    json_t *first = pc_rpc_first_of(&w2, eid, sid, 20000);
    ok(first && pc_rpc_id_is(first, eid), "in-flight execute answered before shutdown");
    is_str(str_at(pc_rpc_result(first), "stdout"), "done", "in-flight execute ran to completion");
    json_t *sr = first && pc_rpc_id_is(first, eid) ? pc_rpc_wait(&w2, sid, 20000) : NULL;
    ok(sr && json_is_null(json_object_get(sr, "result")), "then shutdown answered");
    json_decref(first);
    json_decref(sr);
    json_decref(eid);
    json_decref(sid);
    is_int(pc_rpc_worker_stop(&w2), 0, "worker exited 0");

    /* EOF on stdin is a clean exit too. */
    pc_rpc_worker w3;
    worker_start(&w3);
    json_decref(initialize(&w3));
    is_int(pc_rpc_worker_stop(&w3), 0, "EOF on stdin: exit 0");

    /* SIGTERM to the worker (the host giving up on a graceful shutdown)
     * takes the running commands down with it. */
    pc_rpc_worker w4;
    worker_start(&w4);
    json_decref(initialize(&w4));
    char pidfile[4200], script[13000];
    snprintf(pidfile, sizeof(pidfile), "%s/cmd.pid", tmpdir);
    snprintf(script, sizeof(script), "echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 100", pidfile, pidfile, pidfile);
    json_t *lid = pc_rpc_request(&w4, "environmentExecute",
                                exec_params("{}", json_pack("{s:s, s:[s,s]}", "command", "sh", "args", "-c", script)));
    pid_t cmd_pid = 0;
    for (int i = 0; i < 200 && cmd_pid <= 0; i++) {
        FILE *f = fopen(pidfile, "r");
        if (f) {
            if (fscanf(f, "%d", &cmd_pid) != 1)
                cmd_pid = 0;
            fclose(f);
        }
        if (cmd_pid <= 0)
            usleep(50000);
    }
    ok(cmd_pid > 0, "long command started (pid %d)", (int)cmd_pid);
    kill(w4.pid, SIGTERM);
    int st4;
    waitpid(w4.pid, &st4, 0);
    ok(WIFEXITED(st4) && WEXITSTATUS(st4) == 128 + SIGTERM, "SIGTERM: worker exits 143");
    ok(cmd_pid > 0 && pc_test_pid_gone(cmd_pid), "SIGTERM: the running command was killed");
    pc_rpc_worker_release(&w4);
    json_decref(lid);

    unlink(link);
}

static void rm_tree(const char *path)
{
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        tap_diag("cannot clean %s", path);
}

int main(void)
{
    const char *r = getenv("PC_ROOT");
    if (r && *r)
        snprintf(root, sizeof(root), "%s", r);
    else if (!getcwd(root, sizeof(root)))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/pc-fake-plugin-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    char exe[4200];
    snprintf(exe, sizeof(exe), "%s/plugins/fake-sandbox/worker", root);
    ok(access(exe, X_OK) == 0, "worker binary exists at %s", exe);

    pc_rpc_worker w;
    worker_start(&w);
    test_initialize_and_protocol(&w);
    test_lifecycle(&w);
    test_execute(&w);
    test_reuse(&w);
    is_int(pc_rpc_worker_stop(&w), 0, "worker exits 0 on EOF after all that");

    test_restart_and_safety();

    rm_tree(tmpdir);
    return tap_done();
}
