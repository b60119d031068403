/*
 * pc_plugin_exec() and the small SDK helpers, run against real child
 * processes.
 *
 * Unit test programs are linked with the core library only, so this one
 * compiles the SDK sources it needs into itself.
 */
#include "../../sdk/exec.c"
#include "../../sdk/util.c"

#include "../lib/helpers.h"
#include "../lib/tap.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *const base_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", NULL };

static int run(char *const *argv, pc_plugin_exec_opts *o, pc_plugin_exec_result *r,
               pc_plugin_error *e)
{
    o->argv = argv;
    if (!o->envp)
        o->envp = base_env;
    memset(e, 0, sizeof(*e));
    return pc_plugin_exec(o, r, e);
}

static int pre_exec_fail(void *arg)
{
    (void)arg;
    return EACCES;
}

static int pre_exec_chdir_root(void *arg)
{
    (void)arg;
    return chdir("/") < 0 ? errno : 0;
}

int main(void)
{
    pc_plugin_exec_opts o;
    pc_plugin_exec_result r;
    pc_plugin_error e;

    /* Make the parent look like a plugin worker: SIGPIPE ignored, a secret
     * in the environment, a descriptor without CLOEXEC. */
    signal(SIGPIPE, SIG_IGN);
    setenv("PC_EXEC_CANARY", "leaked", 1);

    /* spawn errors are synchronous and say what failed */
    {
        char *argv[] = { "pc-definitely-not-a-command", NULL };
        memset(&o, 0, sizeof(o));
        int rc = run(argv, &o, &r, &e);
        is_int(rc, -1, "missing command: exec fails");
        is_int(r.spawn_errno, ENOENT, "missing command: ENOENT");
        is_int(r.spawn_stage, PC_EXEC_STAGE_LOOKUP, "missing command: lookup stage");
        ok(strstr(e.message, "cannot exec pc-definitely-not-a-command") != NULL,
           "missing command: message names it (%s)", e.message);
        pc_plugin_exec_result_free(&r);
        pc_plugin_error_clear(&e);
    }
    {
        char *argv[] = { "/nonexistent/bin/x", NULL };
        memset(&o, 0, sizeof(o));
        int rc = run(argv, &o, &r, &e);
        ok(rc == -1 && r.spawn_stage == PC_EXEC_STAGE_EXEC && r.spawn_errno == ENOENT,
           "missing absolute path: execve stage ENOENT");
        pc_plugin_exec_result_free(&r);
    }
    {
        char *argv[] = { "true", NULL };
        memset(&o, 0, sizeof(o));
        o.cwd = "/nonexistent-dir-for-pc-test";
        int rc = run(argv, &o, &r, &e);
        ok(rc == -1 && r.spawn_stage == PC_EXEC_STAGE_CHDIR && r.spawn_errno == ENOENT,
           "bad cwd: chdir stage ENOENT");
        pc_plugin_exec_result_free(&r);
    }
    {
        char *argv[] = { "true", NULL };
        memset(&o, 0, sizeof(o));
        o.pre_exec = pre_exec_fail;
        int rc = run(argv, &o, &r, &e);
        ok(rc == -1 && r.spawn_stage == PC_EXEC_STAGE_PRE_EXEC && r.spawn_errno == EACCES,
           "pre_exec failure is reported with its errno");
        pc_plugin_exec_result_free(&r);
    }
    {
        char *argv[] = { "pwd", NULL };
        memset(&o, 0, sizeof(o));
        o.cwd = "/tmp";
        o.pre_exec = pre_exec_chdir_root;
        int rc = run(argv, &o, &r, &e);
        is_int(rc, 0, "pre_exec: command ran");
        is_str(r.out, "/\n", "pre_exec runs in the child after chdir");
        pc_plugin_exec_result_free(&r);
    }

    /* exit status and both streams */
    {
        char *argv[] = { "sh", "-c", "printf out; printf err >&2; exit 3", NULL };
        memset(&o, 0, sizeof(o));
        int rc = run(argv, &o, &r, &e);
        is_int(rc, 0, "exit 3: ran");
        is_int(r.exit_code, 3, "exit 3: exit_code");
        is_int(r.term_signal, 0, "exit 3: no signal");
        ok(!r.timed_out, "exit 3: not timed out");
        is_str(r.out, "out", "stdout captured");
        is_str(r.err, "err", "stderr captured separately");
        ok(r.pid > 0 && r.started_at.tv_sec > 1600000000, "pid and start time recorded");
        pc_plugin_exec_result_free(&r);
    }

    /* environment: exactly envp */
    {
        char *env1[] = { "A=1", NULL };
        char *argv[] = { "/usr/bin/env", NULL };
        memset(&o, 0, sizeof(o));
        o.envp = env1;
        run(argv, &o, &r, &e);
        ok(getenv("PC_EXEC_CANARY") != NULL, "canary is set in the parent");
        is_str(r.out, "A=1\n", "child sees exactly envp, not environ");
        pc_plugin_exec_result_free(&r);

        char *env0[] = { NULL };
        char *argv2[] = { "/usr/bin/env", NULL };
        memset(&o, 0, sizeof(o));
        o.envp = env0;
        run(argv2, &o, &r, &e);
        is_str(r.out, "", "empty envp: empty environment");
        pc_plugin_exec_result_free(&r);
    }

    /* PATH lookup uses the child's PATH */
    {
        char *env1[] = { "PATH=/nonexistent", NULL };
        char *argv[] = { "sh", "-c", "true", NULL };
        memset(&o, 0, sizeof(o));
        o.envp = env1;
        ok(run(argv, &o, &r, &e) == -1 && r.spawn_errno == ENOENT,
           "lookup uses envp's PATH, not the worker's");
        pc_plugin_exec_result_free(&r);
    }

    /* stdin */
    {
        size_t n = 1 << 20;
        char *big = malloc(n);
        for (size_t i = 0; i < n; i++)
            big[i] = (char)('a' + i % 26);
        char *argv[] = { "cat", NULL };
        memset(&o, 0, sizeof(o));
        o.has_stdin = true;
        o.stdin_data = big;
        o.stdin_len = n;
        run(argv, &o, &r, &e);
        ok(r.out_len == n && memcmp(r.out, big, n) == 0, "1 MiB of stdin echoed back intact");
        is_int(r.exit_code, 0, "cat saw EOF and exited");
        pc_plugin_exec_result_free(&r);
        free(big);

        char *argv2[] = { "cat", NULL };
        memset(&o, 0, sizeof(o));
        o.timeout_ms = 10000;
        run(argv2, &o, &r, &e);
        ok(!r.timed_out && r.exit_code == 0 && r.out_len == 0, "no stdin: /dev/null, EOF at once");
        pc_plugin_exec_result_free(&r);
    }

    /* output cap, with draining */
    {
        char *argv[] = { "sh", "-c", "head -c 100000 /dev/zero; head -c 10 /dev/zero >&2", NULL };
        memset(&o, 0, sizeof(o));
        o.max_output = 1000;
        run(argv, &o, &r, &e);
        is_int(r.out_len, 1000, "stdout capped at max_output");
        ok(r.out_truncated, "stdout truncated flag");
        is_int(r.err_len, 10, "stderr has its own cap");
        ok(!r.err_truncated, "stderr not truncated");
        is_int(r.exit_code, 0, "writer was drained and exited normally");
        pc_plugin_exec_result_free(&r);
    }

    /* signals are reset in the child: SIGPIPE is ignored here */
    {
        char *argv[] = { "sh", "-c", "yes | head -c 4 >/dev/null; echo done", NULL };
        memset(&o, 0, sizeof(o));
        o.timeout_ms = 20000;
        run(argv, &o, &r, &e);
        is_str(r.out, "done\n", "pipeline finished");
        is_str(r.err, "", "SIGPIPE default in the child (no EPIPE complaint)");
        pc_plugin_exec_result_free(&r);
    }

    /* descriptors: closed on exec unless kept */
    {
        int fd = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
        char script[128];
        snprintf(script, sizeof(script), "if [ -e /proc/$$/fd/%d ]; then echo open; else echo closed; fi", fd);
        char *argv[] = { "sh", "-c", script, NULL };
        memset(&o, 0, sizeof(o));
        run(argv, &o, &r, &e);
        is_str(r.out, "closed\n", "inherited descriptor closed in the child");
        pc_plugin_exec_result_free(&r);
        memset(&o, 0, sizeof(o));
        o.keep_fds = &fd;
        o.n_keep_fds = 1;
        run(argv, &o, &r, &e);
        is_str(r.out, "open\n", "keep_fds stays open");
        pc_plugin_exec_result_free(&r);
        close(fd);
    }

    /* timeout reaches the whole group */
    {
        char *argv[] = { "sh", "-c", "sleep 100 & echo $!; wait", NULL };
        memset(&o, 0, sizeof(o));
        o.timeout_ms = 300;
        o.kill_grace_ms = 2000;
        run(argv, &o, &r, &e);
        ok(r.timed_out, "timeout: timed_out");
        is_int(r.exit_code, -1, "timeout: no exit code");
        is_str(pc_plugin_signal_name(r.term_signal), "SIGTERM", "timeout: SIGTERM ended it");
        pid_t gc = (pid_t)atoi(r.out);
        ok(gc > 0 && pc_test_pid_gone(gc), "grandchild %d killed with the group", (int)gc);
        pc_plugin_exec_result_free(&r);
    }
    {
        char *argv[] = { "sh", "-c", "trap '' TERM; while :; do sleep 1; done", NULL };
        memset(&o, 0, sizeof(o));
        o.timeout_ms = 100;
        o.kill_grace_ms = 100;
        run(argv, &o, &r, &e);
        ok(r.timed_out, "TERM ignored: timed out");
        is_str(pc_plugin_signal_name(r.term_signal), "SIGKILL", "TERM ignored: SIGKILL after grace");
        pc_plugin_exec_result_free(&r);
    }

    /* a background process holding the pipes does not hold us */
    {
        char *argv[] = { "sh", "-c", "(sleep 100; echo late) & echo $!", NULL };
        memset(&o, 0, sizeof(o));
        o.drain_ms = 200;
        run(argv, &o, &r, &e);
        ok(!r.timed_out && r.exit_code == 0, "command exit is the end, not pipe EOF");
        pid_t bg = (pid_t)atoi(r.out);
        ok(bg > 0 && pc_test_pid_gone(bg), "leftover holding the pipes was killed");
        pc_plugin_exec_result_free(&r);
    }

    /* concurrent use from threads is covered by the fake plugin tests */

    /* helpers */
    {
        json_t *s = pc_plugin_json_string_lossy("a\xff" "b\0c", 5);
        is_str(json_string_value(s), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c", "lossy: bad byte and NUL replaced");
        json_decref(s);
        s = pc_plugin_json_string_lossy("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9);
        is_str(json_string_value(s), "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", "lossy: valid UTF-8 kept");
        json_decref(s);
        s = pc_plugin_json_string_lossy("\xC0\xAF\xED\xA0\x80", 5);
        is_int(json_string_length(s), 15, "lossy: overlong and surrogate rejected byte-wise");
        json_decref(s);
        s = pc_plugin_json_string_lossy("\xE2\x82", 2);
        is_int(json_string_length(s), 6, "lossy: truncated sequence at end replaced");
        json_decref(s);

        char buf[40];
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 5000000 };
        is_str(pc_plugin_iso8601(&ts, buf), "1970-01-01T00:00:00.005Z", "iso8601 with ms");
        pc_plugin_uuid_v4(buf);
        ok(strlen(buf) == 36 && buf[14] == '4' && strchr("89ab", buf[19]) && buf[8] == '-',
           "uuid v4 shape (%s)", buf);
        is_str(pc_plugin_signal_name(SIGTERM), "SIGTERM", "signal name");
        ok(pc_plugin_signal_name(0) == NULL, "no name for 0");

        pc_plugin_error er = { 0 };
        is_int(pc_plugin_error_set(&er, 7, "cannot %s", "x"), -1, "error_set returns -1");
        ok(er.code == 7 && !strcmp(er.message, "cannot x"), "error_set fills code and message");
        pc_plugin_error_clear(&er);
    }
    {
        char tmpl[] = "/tmp/pc-sdk-rm-XXXXXX";
        ok(mkdtemp(tmpl) != NULL, "mkdtemp");
        char p[256];
        snprintf(p, sizeof(p), "%s/a/b/c", tmpl);
        pc_plugin_error er = { 0 };
        is_int(pc_plugin_mkdir_p(p, &er), 0, "mkdir_p nested");
        snprintf(p, sizeof(p), "%s/a/b/c/file", tmpl);
        FILE *f = fopen(p, "w");
        if (f)
            fclose(f);
        snprintf(p, sizeof(p), "%s/a/ro", tmpl);
        mkdir(p, 0500);
        snprintf(p, sizeof(p), "%s/a/link", tmpl);
        ok(symlink("/etc", p) == 0, "symlink to /etc inside the tree");
        is_int(pc_plugin_rm_rf(tmpl, &er), 0, "rm_rf: %s", er.message);
        ok(access(tmpl, F_OK) < 0, "rm_rf removed the tree");
        ok(access("/etc/passwd", F_OK) == 0, "rm_rf did not follow the symlink");
        is_int(pc_plugin_rm_rf(tmpl, &er), 0, "rm_rf of a missing path succeeds");
    }
    return tap_done();
}
