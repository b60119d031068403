/* Unit tests for src/lib/spawn: what the child sees (environment, PATH
 * lookup in its own environment, cwd, session, signal state, descriptors),
 * synchronous spawn errors with no child left behind, and pc_spawn_run():
 * bounded capture, stdin, and a timeout that ends the whole group. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/tap.h"
#include "lib/spawn.h"

/* Runs the command with /dev/null stdin and returns its stdout (static
 * buffer) and exit status; on a spawn error returns NULL with *err set. */
static const char *run(const char *file, const char *const *argv, char *const *envp,
                       const char *cwd, int *err, int *status)
{
    static char out[4096];
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int p[2];
    if (null_fd < 0 || pipe2(p, O_CLOEXEC) < 0)
        return NULL;
    pc_spawn_opts o = {.file = file,
                       .argv = argv,
                       .envp = envp,
                       .cwd = cwd,
                       .stdin_fd = null_fd,
                       .stdout_fd = p[1],
                       .stderr_fd = p[1]};
    pid_t pid = 0;
    *err = pc_spawn(&o, &pid, NULL);
    close(null_fd);
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (!*err && (n = read(p[0], out + len, sizeof out - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    out[len] = '\0';
    if (*err)
        return NULL;
    waitpid(pid, status, 0);
    return out;
}

static bool no_children(void)
{
    return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static void test_env_path_cwd(void)
{
    char *envp[] = {"PATH=/usr/bin:/bin", "FOO=bar baz", NULL};
    const char *argv[] = {"sh", "-c", "printf '%s|%s|%s' \"$FOO\" \"$(pwd)\" \"${HOME-unset}\"",
                          NULL};
    int err = -1, status = -1;
    const char *out = run("sh", argv, envp, "/tmp", &err, &status);
    is_int(err, 0, "spawn of sh found in the child's PATH");
    is_str(out ? out : "", "bar baz|/tmp|unset", "exact environment and cwd");
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0");

    const char *argv2[] = {"sh", "-c", "exit 3", NULL};
    out = run("/bin/sh", argv2, envp, NULL, &err, &status);
    ok(out && WIFEXITED(status) && WEXITSTATUS(status) == 3, "absolute path, exit status 3");
}

static void test_errors(void)
{
    char *envp[] = {"PATH=/nonexistent-dir", NULL};
    const char *argv[] = {"sh", "-c", "true", NULL};
    int err = 0, status = 0;
    ok(!run("sh", argv, envp, NULL, &err, &status), "PATH of the child's env, not ours");
    is_int(err, ENOENT, "missing command is ENOENT");
    ok(no_children(), "no child left after a failed exec");

    char *envp2[] = {"PATH=/usr/bin:/bin", NULL};
    ok(!run("sh", argv, envp2, "/nonexistent-dir", &err, &status), "missing cwd fails");
    is_int(err, ENOENT, "missing cwd is ENOENT");
    ok(no_children(), "no child left after a failed chdir");

    ok(!run("/etc/passwd", argv, envp2, NULL, &err, &status), "non-executable file fails");
    is_int(err, EACCES, "non-executable file is EACCES");
}

static void test_script_without_shebang(void)
{
    char path[] = "/tmp/pc-spawn-script-XXXXXX";
    int fd = mkstemp(path);
    ok(fd >= 0 && write(fd, "echo script-ran \"$1\"\n", 21) == 21, "script written");
    close(fd);
    chmod(path, 0755);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {path, "arg1", NULL};
    int err = -1, status = -1;
    const char *out = run(path, argv, envp, NULL, &err, &status);
    is_str(out ? out : "", "script-ran arg1\n", "a script without #! runs through /bin/sh");
    unlink(path);
}

static void test_session_signals_fds(void)
{
    /* State of ours that must not reach the child, including an ignored
     * glibc-internal signal (32), which sigaction() cannot reset. */
    signal(SIGTERM, SIG_IGN);
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long mask;
    } ksa = {SIG_IGN, 0, NULL, 0};
    syscall(SYS_rt_sigaction, 32, &ksa, NULL, sizeof ksa.mask);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    int leak = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */

    int in[2], outp[2];
    ok(pipe2(in, O_CLOEXEC) == 0 && pipe2(outp, O_CLOEXEC) == 0, "pipes");
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    /* Prints its descriptors and signal state, then waits for stdin EOF. */
    const char *argv[] = {"sh", "-c",
                          "ls /proc/self/fd | tr '\\n' ' '; "
                          "grep -E '^Sig(Blk|Ign)' /proc/$$/status | tr '\\t\\n' '  '; cat",
                          NULL};
    pc_spawn_opts o = {.file = "sh",
                       .argv = argv,
                       .envp = envp,
                       .stdin_fd = in[0],
                       .stdout_fd = outp[1],
                       .stderr_fd = outp[1]};
    pid_t pid = 0;
    is_int(pc_spawn(&o, &pid, NULL), 0, "spawned");
    close(in[0]);
    close(outp[1]);
    is_int(getpgid(pid), pid, "child leads its own process group");
    is_int(getsid(pid), pid, "child leads its own session");
    close(in[1]);
    char buf[1024];
    size_t len = 0;
    ssize_t n;
    while ((n = read(outp[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(outp[0]);
    int status = -1;
    waitpid(pid, &status, 0);
    /* ls has its own directory descriptor open as 3. */
    ok(!strncmp(buf, "0 1 2 3 Sig", 11), "only stdio reaches the child (got: %s)", buf);
    ok(strstr(buf, "SigBlk: 0000000000000000") != NULL, "signal mask cleared");
    ok(strstr(buf, "SigIgn: 0000000000000000") != NULL, "ignored signals reset (got: %s)", buf);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child saw stdin EOF and exited");
    close(leak);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    signal(SIGTERM, SIG_DFL);
    ksa.handler = SIG_DFL;
    syscall(SYS_rt_sigaction, 32, &ksa, NULL, sizeof ksa.mask);
}

/* Whether pid is gone (or a zombie nobody reaped yet); waits up to 20 s. */
static bool process_gone(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        char buf[512];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (p && p[1] == ' ' && p[2] == 'Z')
            return true;
        usleep(10000);
    }
    return false;
}

static void test_run_env_exact(void)
{
    char *envp[] = {"PATH=/usr/bin:/bin", "ONLY=this", NULL};
    const char *argv[] = {"env", NULL};
    pc_spawn_opts o = {.file = "env", .argv = argv, .envp = envp};
    pc_spawn_run_opts r = {.drain_ms = 1000};
    pc_spawn_result res;
    is_int(pc_spawn_run(&o, &r, &res, NULL), 0, "run: env ran");
    is_str(res.out.data, "PATH=/usr/bin:/bin\nONLY=this\n", "run: the child sees exactly envp");
    is_int(res.exit_code, 0, "run: exit code 0");
    pc_spawn_result_free(&res);
}

static void test_run_missing_binary(void)
{
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"pc-no-such-binary", NULL};
    pc_spawn_opts o = {.file = "pc-no-such-binary", .argv = argv, .envp = envp};
    pc_spawn_run_opts r = {0};
    pc_spawn_result res;
    pc_spawn_stage stage = PC_SPAWN_STAGE_NONE;
    is_int(pc_spawn_run(&o, &r, &res, &stage), ENOENT, "run: a missing binary is ENOENT");
    is_int(stage, PC_SPAWN_STAGE_EXEC, "run: reported at the exec stage");
    is_int(res.pid, -1, "run: no pid for a failed spawn");
    ok(res.out.data == NULL && res.err.data == NULL, "run: nothing captured");
    ok(no_children(), "run: no child left after the failed exec");
}

static void test_run_output_cap(void)
{
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"sh", "-c", "head -c 300000 /dev/zero; echo small >&2", NULL};
    pc_spawn_opts o = {.file = "sh", .argv = argv, .envp = envp};
    pc_spawn_run_opts r = {.out_max = 1000, .err_max = 1000, .drain_ms = 1000};
    pc_spawn_result res;
    is_int(pc_spawn_run(&o, &r, &res, NULL), 0, "cap: ran");
    is_int(res.out.len, 1000, "cap: stdout holds exactly the cap");
    ok(res.out.truncated, "cap: stdout is flagged truncated");
    is_int(res.exit_code, 0, "cap: the child was never blocked on a full pipe");
    is_str(res.err.data, "small\n", "cap: stderr captured separately");
    ok(!res.err.truncated, "cap: stderr is not flagged");
    pc_spawn_result_free(&res);

    r.kill_on_out_overflow = true;
    const char *argv2[] = {"sh", "-c", "head -c 300000 /dev/zero; exec sleep 600", NULL};
    o.argv = argv2;
    is_int(pc_spawn_run(&o, &r, &res, NULL), 0, "overflow: ran");
    ok(res.out_overflow && res.out.truncated, "overflow: reported");
    is_int(res.term_signal, SIGKILL, "overflow: the group was killed");
    pc_spawn_result_free(&res);
}

static void test_run_stdin(void)
{
    signal(SIGPIPE, SIG_IGN);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"cat", NULL};
    pc_spawn_opts o = {.file = "cat", .argv = argv, .envp = envp};
    pc_spawn_run_opts r = {.has_stdin = true, .stdin_data = "fed\nto cat", .stdin_len = 10};
    pc_spawn_result res;
    is_int(pc_spawn_run(&o, &r, &res, NULL), 0, "stdin: ran");
    is_str(res.out.data, "fed\nto cat", "stdin: fed, then EOF");
    pc_spawn_result_free(&res);
}

static void test_run_signals_reset(void)
{
    signal(SIGTERM, SIG_IGN);
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL};
    pc_spawn_opts o = {.file = "grep", .argv = argv, .envp = envp};
    pc_spawn_run_opts r = {0};
    pc_spawn_result res;
    is_int(pc_spawn_run(&o, &r, &res, NULL), 0, "signals: ran");
    ok(strstr(res.out.data, "SigBlk:\t0000000000000000") != NULL,
       "signals: mask cleared although ours blocks SIGUSR1 (got: %s)", res.out.data);
    ok(strstr(res.out.data, "SigIgn:\t0000000000000000") != NULL,
       "signals: SIGTERM no longer ignored (got: %s)", res.out.data);
    pc_spawn_result_free(&res);
    sigprocmask(SIG_UNBLOCK, &usr1, NULL);
    signal(SIGTERM, SIG_DFL);
}

/* The leader and its grandchild both ignore SIGTERM, and the grandchild
 * lets go of the pipes: only SIGKILL to the whole group after the grace
 * period ends them. */
static void test_run_timeout_kills_group(void)
{
    char pidfile[] = "/tmp/pc-spawn-grandchild-XXXXXX";
    int fd = mkstemp(pidfile);
    ok(fd >= 0, "group: pid file");
    close(fd);
    char script[512];
    snprintf(script, sizeof script,
             "trap '' TERM; "
             "sh -c 'echo $$ > %s; exec sleep 600' </dev/null >/dev/null 2>&1 & "
             "while ! [ -s %s ]; do sleep 0.01; done; echo started; wait",
             pidfile, pidfile);
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"sh", "-c", script, NULL};
    pc_spawn_opts o = {.file = "sh", .argv = argv, .envp = envp};
    pc_spawn_run_opts r = {.timeout_ms = 300, .grace_ms = 200, .drain_ms = 1000};
    pc_spawn_result res;
    is_int(pc_spawn_run(&o, &r, &res, NULL), 0, "group: ran");
    ok(res.timed_out, "group: timed out");
    is_str(res.out.data, "started\n", "group: the grandchild had started");
    is_int(res.term_signal, SIGKILL, "group: the leader ignored SIGTERM and got SIGKILL");
    FILE *f = fopen(pidfile, "r");
    int gpid = 0;
    ok(f && fscanf(f, "%d", &gpid) == 1 && gpid > 1, "group: grandchild pid recorded");
    if (f)
        fclose(f);
    ok(gpid > 1 && process_gone(gpid), "group: the grandchild was killed with the group");
    unlink(pidfile);
    pc_spawn_result_free(&res);
}

/* pc_spawn_start(): pipes for stdio and a pidfd that turns readable at exit. */
static void test_start_pipes(void)
{
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    const char *argv[] = {"sh", "-c", "read x; echo \"got $x\"; echo err >&2", NULL};
    pc_spawn_opts o = {.file = "sh",
                       .argv = argv,
                       .envp = envp,
                       .stdio = {PC_SPAWN_IO_PIPE, PC_SPAWN_IO_PIPE, PC_SPAWN_IO_NULL}};
    pc_spawn_proc p;
    is_int(pc_spawn_start(&o, &p, NULL), 0, "start: spawned");
    ok(p.fd[0] >= 0 && p.fd[1] >= 0 && p.fd[2] == -1, "start: parent ends for the pipes only");
    ok((fcntl(p.fd[1], F_GETFD) & FD_CLOEXEC) && (fcntl(p.fd[1], F_GETFL) & O_NONBLOCK),
       "start: parent ends are close-on-exec and non-blocking");
    ok(write(p.fd[0], "hi\n", 3) == 3, "start: wrote stdin");
    struct pollfd pf = {.fd = p.fd[1], .events = POLLIN};
    char buf[64] = {0};
    size_t len = 0;
    while (len < 7 && poll(&pf, 1, 20000) > 0) {
        ssize_t n = read(p.fd[1], buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    is_str(buf, "got hi\n", "start: the child answered through the pipes");
    if (p.pidfd >= 0) {
        struct pollfd pp = {.fd = p.pidfd, .events = POLLIN};
        ok(poll(&pp, 1, 20000) == 1, "start: the pidfd reports the exit");
    } else {
        tap_skip("no pidfd on this kernel", "start: the pidfd reports the exit");
    }
    int status = -1;
    waitpid(p.pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "start: exited 0");
    pc_spawn_proc_close(&p);
    ok(p.fd[0] == -1 && p.fd[1] == -1 && p.pidfd == -1, "start: closed");
}

int main(void)
{
    test_env_path_cwd();
    test_errors();
    test_script_without_shebang();
    test_session_signals_fds();
    test_run_env_exact();
    test_run_missing_binary();
    test_run_output_cap();
    test_run_stdin();
    test_run_signals_reset();
    test_run_timeout_kills_group();
    test_start_pipes();
    return tap_done();
}
