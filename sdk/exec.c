/*
 * pc_plugin_exec(): run one command with captured, bounded output, a
 * timeout that reaches the whole process group, and spawn errors reported
 * synchronously. See the contract in include/paperclip/plugin.h.
 *
 * Shape: the parent resolves the executable and creates CLOEXEC pipes;
 * pc_spawn() (src/lib/spawn.h, linked into this library) starts the child,
 * which resets its signal state, starts a session, wires stdio, marks every
 * other descriptor but keep_fds close-on-exec, runs pre_exec and execs, and
 * reports a failure of any of those steps synchronously with its stage and
 * errno. The parent then runs one poll() loop that feeds stdin, drains
 * stdout/stderr and watches the child through a pidfd (or a short tick
 * where pidfds are missing), escalating signals on timeout.
 */
#include <paperclip/plugin.h>

#include "exec_internal.h"
#include "lib/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- registry of running process groups (for pc__exec_kill_all) ---- */

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t groups[PC_PLUGIN_MAX_IN_FLIGHT * 4];

static void groups_add(pid_t pgid)
{
    pthread_mutex_lock(&groups_lock);
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (groups[i] == 0) {
            groups[i] = pgid;
            break;
        }
    }
    pthread_mutex_unlock(&groups_lock);
}

static void groups_remove(pid_t pgid)
{
    pthread_mutex_lock(&groups_lock);
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (groups[i] == pgid) {
            groups[i] = 0;
            break;
        }
    }
    pthread_mutex_unlock(&groups_lock);
}

void pc__exec_kill_all(int sig)
{
    pthread_mutex_lock(&groups_lock);
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
        if (groups[i] > 0)
            kill(-groups[i], sig);
    pthread_mutex_unlock(&groups_lock);
}

/* ---- helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static const char *env_lookup(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; e && *e; e++)
        if (!strncmp(*e, name, n) && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* Resolves argv[0] the way execvp would, but with the PATH of the child's
 * environment and before forking. Returns a malloc'ed path or NULL with
 * errno set. */
static char *resolve_command(const char *cmd, char *const *envp)
{
    if (strchr(cmd, '/'))
        return strdup(cmd);
    if (!*cmd) {
        errno = ENOENT;
        return NULL;
    }
    const char *path = env_lookup(envp, "PATH");
    if (!path)
        path = PC_PLUGIN_EXEC_DEFAULT_PATH;
    int saw_eacces = 0;
    const char *p = path;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        const char *dir = dlen ? p : ".";
        if (!dlen)
            dlen = 1;
        size_t n = dlen + 1 + strlen(cmd) + 1;
        char *full = malloc(n);
        if (!full)
            return NULL;
        snprintf(full, n, "%.*s/%s", (int)dlen, dir, cmd);
        struct stat st;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(full, X_OK) == 0)
                return full;
            saw_eacces = 1;
        }
        free(full);
        if (!end)
            break;
        p = end + 1;
    }
    errno = saw_eacces ? EACCES : ENOENT;
    return NULL;
}

static const char *stage_verb(pc_plugin_exec_stage s)
{
    switch (s) {
    case PC_EXEC_STAGE_LOOKUP:
    case PC_EXEC_STAGE_EXEC:
        return "cannot exec";
    case PC_EXEC_STAGE_CHDIR:
        return "cannot change directory for";
    case PC_EXEC_STAGE_PRE_EXEC:
        return "pre-exec hook failed for";
    default:
        return "cannot start";
    }
}

/* The SDK's name for the step at which pc_spawn() failed. */
static pc_plugin_exec_stage exec_stage(pc_spawn_stage s)
{
    switch (s) {
    case PC_SPAWN_STAGE_CHDIR:
        return PC_EXEC_STAGE_CHDIR;
    case PC_SPAWN_STAGE_PRE_EXEC:
        return PC_EXEC_STAGE_PRE_EXEC;
    case PC_SPAWN_STAGE_EXEC:
        return PC_EXEC_STAGE_EXEC;
    default:
        return PC_EXEC_STAGE_SETUP;
    }
}

/* ---- output capture ---- */

struct capture {
    int fd;
    char *buf;
    size_t len, alloc, cap;
    bool truncated;
};

/* Reads what is available. Returns 1 at EOF or on error (fd closed). */
static void capture_read(struct capture *c)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(c->fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            close_fd(&c->fd);
            return;
        }
        if (n == 0) {
            close_fd(&c->fd);
            return;
        }
        size_t room = c->cap - c->len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        if (take < (size_t)n)
            c->truncated = true;
        if (take && c->len + take + 1 > c->alloc) {
            size_t want = c->alloc ? c->alloc : 65536;
            while (want < c->len + take + 1)
                want *= 2;
            if (want > c->cap + 1)
                want = c->cap + 1;
            char *nb = realloc(c->buf, want);
            if (!nb) {
                c->truncated = true;
                take = 0;
            } else {
                c->buf = nb;
                c->alloc = want;
            }
        }
        if (take) {
            memcpy(c->buf + c->len, chunk, take);
            c->len += take;
        }
    }
}

static char *capture_finish(struct capture *c, size_t *len, bool *truncated)
{
    char *b = c->buf;
    if (!b) {
        b = malloc(1);
        if (!b)
            abort();
    }
    b[c->len] = '\0';
    *len = c->len;
    *truncated = c->truncated;
    c->buf = NULL;
    return b;
}

/* ---- the parent ---- */

int pc_plugin_exec(const pc_plugin_exec_opts *opts, pc_plugin_exec_result *res,
                   pc_plugin_error *err)
{
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
    res->pid = -1;
    if (!opts || !opts->argv || !opts->argv[0]) {
        res->spawn_stage = PC_EXEC_STAGE_SETUP;
        res->spawn_errno = EINVAL;
        return pc_plugin_error_set(err, 0, "cannot exec: no command given");
    }
    for (size_t i = 0; i < opts->n_keep_fds; i++) {
        if (opts->keep_fds[i] < 3) {
            res->spawn_stage = PC_EXEC_STAGE_SETUP;
            res->spawn_errno = EINVAL;
            return pc_plugin_error_set(err, 0, "cannot exec %s: keep_fds may not hold 0, 1 or 2",
                                       opts->argv[0]);
        }
    }

    /* Writing to a child that closed its stdin must give EPIPE, not kill
     * the worker. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);

    static char *const empty_env[] = { NULL };
    char *const *envp = opts->envp ? opts->envp : empty_env;
    const char *cmd = opts->argv[0];

    char *path = resolve_command(cmd, envp);
    if (!path) {
        res->spawn_stage = PC_EXEC_STAGE_LOOKUP;
        res->spawn_errno = errno;
        return pc_plugin_error_set(err, 0, "cannot exec %s: %s", cmd, strerror(res->spawn_errno));
    }

    int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
    int pidfd = -1;
    int e = 0;
    if (opts->has_stdin) {
        if (pipe2(in_pipe, O_CLOEXEC) < 0)
            goto setup_fail;
    } else {
        in_pipe[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (in_pipe[0] < 0)
            goto setup_fail;
    }
    if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0)
        goto setup_fail;

    /* path contains a '/', so pc_spawn() execs it as is; argv is executed
     * directly, never through a shell. */
    pc_spawn_opts so = {
        .file = path,
        .argv = (const char *const *)opts->argv,
        .envp = envp,
        .cwd = opts->cwd,
        .stdin_fd = in_pipe[0],
        .stdout_fd = out_pipe[1],
        .stderr_fd = err_pipe[1],
        .keep_fds = opts->keep_fds,
        .n_keep_fds = opts->n_keep_fds,
        .die_with_parent = true,
        .no_shell_fallback = true,
        .pre_exec = opts->pre_exec,
        .pre_exec_arg = opts->pre_exec_arg,
    };

    clock_gettime(CLOCK_REALTIME, &res->started_at);
    int64_t t0 = now_ms();
    pid_t pid = -1;
    pc_spawn_stage stage = PC_SPAWN_STAGE_NONE;
    e = pc_spawn(&so, &pid, &stage);
    close_fd(&in_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[1]);
    free(path);
    path = NULL;
    if (e) {
        close_fd(&in_pipe[1]);
        close_fd(&out_pipe[0]);
        close_fd(&err_pipe[0]);
        res->spawn_stage = exec_stage(stage);
        res->spawn_errno = e;
        res->duration_ms = now_ms() - t0;
        if (res->spawn_stage == PC_EXEC_STAGE_CHDIR)
            return pc_plugin_error_set(err, 0, "cannot change directory to %s for %s: %s",
                                       opts->cwd, cmd, strerror(e));
        return pc_plugin_error_set(err, 0, "%s %s: %s", stage_verb(res->spawn_stage), cmd,
                                   strerror(e));
    }
    res->pid = pid;
    groups_add(pid);

    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (in_pipe[1] >= 0)
        fcntl(in_pipe[1], F_SETFL, fcntl(in_pipe[1], F_GETFL) | O_NONBLOCK);
    fcntl(out_pipe[0], F_SETFL, fcntl(out_pipe[0], F_GETFL) | O_NONBLOCK);
    fcntl(err_pipe[0], F_SETFL, fcntl(err_pipe[0], F_GETFL) | O_NONBLOCK);

    size_t cap = opts->max_output ? opts->max_output : PC_PLUGIN_EXEC_DEFAULT_MAX_OUTPUT;
    struct capture out = { .fd = out_pipe[0], .cap = cap };
    struct capture errc = { .fd = err_pipe[0], .cap = cap };
    out_pipe[0] = err_pipe[0] = -1;
    int in_fd = in_pipe[1];
    in_pipe[1] = -1;
    const char *in_data = opts->stdin_data;
    size_t in_left = opts->has_stdin ? opts->stdin_len : 0;
    if (in_fd >= 0 && in_left == 0)
        close_fd(&in_fd);

    int64_t grace = opts->kill_grace_ms == 0 ? PC_PLUGIN_EXEC_DEFAULT_GRACE_MS
                    : opts->kill_grace_ms < 0 ? 0 : opts->kill_grace_ms;
    int64_t drain = opts->drain_ms > 0 ? opts->drain_ms : PC_PLUGIN_EXEC_DEFAULT_DRAIN_MS;
    int64_t deadline = opts->timeout_ms > 0 ? t0 + opts->timeout_ms : -1;
    int64_t kill_at = -1, drain_until = -1;
    bool exited = false, killed = false;
    int status = 0;

    for (;;) {
        int64_t now = now_ms();
        if (!exited) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) {
                exited = true;
                drain_until = now + drain;
                close_fd(&pidfd);
            }
        }
        if (!exited && deadline >= 0 && !res->timed_out && now >= deadline) {
            res->timed_out = true;
            if (grace > 0) {
                kill(-pid, SIGTERM);
                kill_at = now + grace;
            } else {
                kill(-pid, SIGKILL);
                killed = true;
            }
        }
        if (!exited && res->timed_out && !killed && now >= kill_at) {
            kill(-pid, SIGKILL);
            killed = true;
        }
        if (exited && out.fd < 0 && errc.fd < 0)
            break;
        if (exited && now >= drain_until) {
            /* Something that inherited the pipes outlived the command: it
             * belongs to the command's group, so end it and stop reading. */
            kill(-pid, SIGKILL);
            if (out.fd >= 0)
                capture_read(&out);
            if (errc.fd >= 0)
                capture_read(&errc);
            break;
        }

        struct pollfd pfd[4];
        int np = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1;
        if (in_fd >= 0) {
            i_in = np;
            pfd[np++] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
        }
        if (out.fd >= 0) {
            i_out = np;
            pfd[np++] = (struct pollfd){ .fd = out.fd, .events = POLLIN };
        }
        if (errc.fd >= 0) {
            i_err = np;
            pfd[np++] = (struct pollfd){ .fd = errc.fd, .events = POLLIN };
        }
        if (pidfd >= 0) {
            i_pid = np;
            pfd[np++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        }
        int64_t wait = -1;
        int64_t marks[3] = { exited ? -1 : deadline >= 0 && !res->timed_out ? deadline : -1,
                             !exited && res->timed_out && !killed ? kill_at : -1,
                             exited ? drain_until : -1 };
        for (int i = 0; i < 3; i++) {
            if (marks[i] < 0)
                continue;
            int64_t d = marks[i] - now;
            if (d < 0)
                d = 0;
            if (wait < 0 || d < wait)
                wait = d;
        }
        if (!exited && pidfd < 0 && (wait < 0 || wait > 20))
            wait = 20; /* no pidfd: notice the exit by polling waitpid */
        if (wait > 1000)
            wait = 1000;
        int pr = poll(pfd, (nfds_t)np, (int)wait);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            break;
        }
        if (i_in >= 0 && pfd[i_in].revents) {
            if (pfd[i_in].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                close_fd(&in_fd);
            } else {
                ssize_t n = write(in_fd, in_data, in_left > 65536 ? 65536 : in_left);
                if (n > 0) {
                    in_data += n;
                    in_left -= (size_t)n;
                    if (in_left == 0)
                        close_fd(&in_fd);
                } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                    close_fd(&in_fd);
                }
            }
        }
        if (i_out >= 0 && pfd[i_out].revents)
            capture_read(&out);
        if (i_err >= 0 && pfd[i_err].revents)
            capture_read(&errc);
        (void)i_pid; /* readiness only wakes the loop; waitpid reaps */
    }

    if (!exited) {
        /* Only reached when poll() itself failed: do not leave a child. */
        kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    groups_remove(pid);
    close_fd(&in_fd);
    close_fd(&out.fd);
    close_fd(&errc.fd);
    close_fd(&pidfd);
    res->duration_ms = now_ms() - t0;
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->term_signal = WTERMSIG(status);
    }
    res->out = capture_finish(&out, &res->out_len, &res->out_truncated);
    res->err = capture_finish(&errc, &res->err_len, &res->err_truncated);
    (void)e;
    return 0;

setup_fail:
    e = errno;
    close_fd(&in_pipe[0]);
    close_fd(&in_pipe[1]);
    close_fd(&out_pipe[0]);
    close_fd(&out_pipe[1]);
    close_fd(&err_pipe[0]);
    close_fd(&err_pipe[1]);
    free(path);
    res->spawn_stage = PC_EXEC_STAGE_SETUP;
    res->spawn_errno = e;
    return pc_plugin_error_set(err, 0, "cannot start %s: %s", cmd, strerror(e));
}

void pc_plugin_exec_result_free(pc_plugin_exec_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof(*res));
    res->exit_code = -1;
}

const char *pc_plugin_signal_name(int sig)
{
    switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGSTKFLT: return "SIGSTKFLT";
    case SIGCHLD: return "SIGCHLD";
    case SIGCONT: return "SIGCONT";
    case SIGSTOP: return "SIGSTOP";
    case SIGTSTP: return "SIGTSTP";
    case SIGTTIN: return "SIGTTIN";
    case SIGTTOU: return "SIGTTOU";
    case SIGURG: return "SIGURG";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGVTALRM: return "SIGVTALRM";
    case SIGPROF: return "SIGPROF";
    case SIGWINCH: return "SIGWINCH";
    case SIGIO: return "SIGIO";
    case SIGPWR: return "SIGPWR";
    case SIGSYS: return "SIGSYS";
    default: return NULL;
    }
}
