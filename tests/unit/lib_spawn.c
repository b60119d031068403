/* Unit tests for src/lib/spawn: what the child sees (environment, PATH
 * lookup in its own environment, cwd, session, signal state, descriptors)
 * and synchronous spawn errors with no child left behind. */
#include <errno.h>
#include <fcntl.h>
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

int main(void)
{
    test_env_path_cwd();
    test_errors();
    test_script_without_shebang();
    test_session_signals_fds();
    return tap_done();
}
