#include "lib/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Scripts without "#!" get at most this many arguments through /bin/sh. */
#define PC_SPAWN_SCRIPT_ARGS 256

/*
 * What the child needs, prepared by the parent. With CLONE_VM the child
 * writes `stage` and `err` straight into the parent's copy; after fork() it
 * reports both through report_fd, a close-on-exec pipe that the exec closes.
 */
struct spawn_child {
    const pc_spawn_opts *o;
    const char *path_env; /* the PATH value of envp */
    int max_fd;           /* upper bound for the close-on-exec sweep */
    pid_t parent;         /* for die_with_parent */
    int report_fd;        /* -1 with CLONE_VM */
    volatile int stage;
    volatile int err;
};

/* Everything from here to pc_spawn() runs in the child between clone and
 * exec: async-signal-safe calls only, no allocation, nothing that takes a
 * lock another thread of the parent may hold. */

static _Noreturn void pc_spawn_fail(struct spawn_child *c, pc_spawn_stage stage, int e)
{
    if (e == 0)
        e = EIO; /* the parent reads 0 as success */
    if (c->report_fd >= 0) {
        int msg[2] = {(int)stage, e};
        ssize_t r;
        do
            r = write(c->report_fd, msg, sizeof msg);
        while (r < 0 && errno == EINTR);
    } else {
        c->stage = (int)stage;
        c->err = e;
    }
    _exit(127);
}

/* execve(), and for a file the kernel rejects as not executable (no "#!"),
 * /bin/sh with the file as its script, as execvp() does. Returns errno. */
static int pc_spawn_exec(const char *path, const pc_spawn_opts *o)
{
    execve(path, (char *const *)o->argv, o->envp);
    int e = errno;
    if (e != ENOEXEC || o->no_shell_fallback)
        return e;
    size_t argc = 0;
    while (o->argv[argc])
        argc++;
    if (argc + 2 > PC_SPAWN_SCRIPT_ARGS)
        return e;
    const char *sh_argv[PC_SPAWN_SCRIPT_ARGS + 1];
    sh_argv[0] = "/bin/sh";
    sh_argv[1] = path;
    for (size_t i = 1; i <= argc; i++)
        sh_argv[i + 1] = o->argv[i]; /* includes the terminating NULL */
    execve("/bin/sh", (char *const *)sh_argv, o->envp);
    return e;
}

/* Tries every PATH entry like execvp(); returns the errno to report. */
static int pc_spawn_exec_path(struct spawn_child *c)
{
    const pc_spawn_opts *o = c->o;
    if (!*o->file)
        return ENOENT;
    if (strchr(o->file, '/'))
        return pc_spawn_exec(o->file, o);
    size_t flen = strlen(o->file);
    if (flen >= NAME_MAX + 1)
        return ENAMETOOLONG;
    char buf[PATH_MAX];
    bool got_eacces = false;
    int last = ENOENT;
    const char *p = c->path_env;
    for (;;) {
        const char *end = strchr(p, ':');
        size_t dlen = end ? (size_t)(end - p) : strlen(p);
        /* An empty entry means the current directory. */
        if (dlen + 1 + flen < sizeof buf) {
            size_t n = 0;
            if (dlen) {
                memcpy(buf, p, dlen);
                n = dlen;
                buf[n++] = '/';
            }
            memcpy(buf + n, o->file, flen + 1);
            int e = pc_spawn_exec(buf, o);
            switch (e) {
            case EACCES:
                got_eacces = true;
                /* fall through */
            case ENOENT:
            case ESTALE:
            case ENOTDIR:
            case ENODEV:
            case ETIMEDOUT:
                last = e;
                break;
            default:
                return e;
            }
        }
        if (!end)
            break;
        p = end + 1;
    }
    return got_eacces ? EACCES : last;
}

static _Noreturn void pc_spawn_child_run(struct spawn_child *c)
{
    const pc_spawn_opts *o = c->o;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    /* glibc refuses to touch its internal signals (32, 33); an ignored
     * disposition of those would survive exec, so the kernel is asked
     * directly. The child has its own handler table (no CLONE_SIGHAND). */
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long mask;
    } ksa = {SIG_DFL, 0, NULL, 0};
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, &sa, NULL) < 0)
            syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof ksa.mask);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (setsid() < 0)
        pc_spawn_fail(c, PC_SPAWN_STAGE_SETUP, errno);
    if (o->die_with_parent) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* The spawning thread died before the request took effect. */
        if (getppid() != c->parent)
            _exit(127);
    }

    /* Descriptors below 3 would be overwritten by the dup2() calls below
     * (a daemon started with closed stdio gets them from pipe()); move them
     * out of the way first. dup2() clears close-on-exec on 0-2. */
    if (c->report_fd >= 0 && c->report_fd < 3) {
        c->report_fd = fcntl(c->report_fd, F_DUPFD_CLOEXEC, 3);
        if (c->report_fd < 0)
            _exit(127);
    }
    int fds[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 3) {
            fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
            if (fds[i] < 0)
                pc_spawn_fail(c, PC_SPAWN_STAGE_SETUP, errno);
        }
    }
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            pc_spawn_fail(c, PC_SPAWN_STAGE_SETUP, errno);

    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd <= c->max_fd; fd++) {
            int fl = fcntl(fd, F_GETFD);
            if (fl >= 0 && !(fl & FD_CLOEXEC))
                fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
        }
    }
    for (size_t i = 0; i < o->n_keep_fds; i++) {
        int fl = fcntl(o->keep_fds[i], F_GETFD);
        if (fl < 0 || fcntl(o->keep_fds[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
            pc_spawn_fail(c, PC_SPAWN_STAGE_SETUP, errno);
    }
    if (o->cwd && chdir(o->cwd) < 0)
        pc_spawn_fail(c, PC_SPAWN_STAGE_CHDIR, errno);
    if (o->pre_exec) {
        int e = o->pre_exec(o->pre_exec_arg);
        if (e != 0)
            pc_spawn_fail(c, PC_SPAWN_STAGE_PRE_EXEC, e > 0 ? e : EPERM);
    }
    pc_spawn_fail(c, PC_SPAWN_STAGE_EXEC, pc_spawn_exec_path(c));
}

static int pc_spawn_max_fd(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 65536)
        return 65535;
    return (int)rl.rlim_cur - 1;
}

/* fork() and learn the outcome from a close-on-exec pipe that the exec
 * closes. Every signal is blocked around the fork so no handler of the
 * caller runs in the child before it has reset them. */
static pid_t pc_spawn_fork(struct spawn_child *c)
{
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) < 0)
        return -1;
    c->report_fd = rp[1];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        pc_spawn_child_run(c);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(rp[1]);
    if (pid > 0) {
        int msg[2];
        size_t got = 0;
        while (got < sizeof msg) {
            ssize_t n = read(rp[0], (char *)msg + got, sizeof msg - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got == sizeof msg) {
            c->stage = msg[0];
            c->err = msg[1];
        }
    }
    close(rp[0]);
    errno = e;
    return pid;
}

static int pc_spawn_entry(void *arg)
{
    pc_spawn_child_run(arg);
}

/* ASan's interceptors misread the small clone stack as an overflow of the
 * caller's own stack, and TSan would run the child on the parent thread's
 * own sanitizer state; so sanitized builds always fork. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
static const bool pc_spawn_may_clone = false;
#else
static const bool pc_spawn_may_clone = true;
#endif

static pid_t spawn_clone_or_fork(struct spawn_child *c)
{
    if (c->o->pre_exec || !pc_spawn_may_clone)
        return pc_spawn_fork(c);
    size_t stack_size = 64 * 1024;
    void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        return pc_spawn_fork(c);
    c->report_fd = -1;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* CLONE_VFORK: this thread resumes once the child has exec'ed or
     * exited, so the stack and c are no longer in use after this call. */
    pid_t pid =
        clone(pc_spawn_entry, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, c);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, stack_size);
    errno = e;
    return pid;
}

int pc_spawn(const pc_spawn_opts *o, pid_t *pid_out, pc_spawn_stage *stage)
{
    pc_spawn_stage ignored;
    if (!stage)
        stage = &ignored;
    *stage = PC_SPAWN_STAGE_NONE;
    for (size_t i = 0; i < o->n_keep_fds; i++) {
        if (o->keep_fds[i] < 3) {
            *stage = PC_SPAWN_STAGE_SETUP;
            return EINVAL;
        }
    }
    struct spawn_child c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.path_env = PC_SPAWN_DEFAULT_PATH;
    for (char *const *e = o->envp; *e; e++) {
        if (!strncmp(*e, "PATH=", 5)) {
            c.path_env = *e + 5;
            break;
        }
    }
    c.max_fd = pc_spawn_max_fd();
    c.parent = getpid();
    pid_t pid = spawn_clone_or_fork(&c);
    if (pid < 0) {
        *stage = PC_SPAWN_STAGE_SETUP;
        return errno ? errno : EAGAIN;
    }
    if (c.err) {
        int e = c.err;
        *stage = (pc_spawn_stage)c.stage;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        return e;
    }
    *pid_out = pid;
    return 0;
}

/* ---- descriptors and pidfds ---- */

static void spawn_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

int pc_spawn_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    /* pidfds are always close-on-exec. */
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

void pc_spawn_kill_group(pid_t pid, int sig)
{
    if (pid > 1)
        kill(-pid, sig);
}

void pc_spawn_proc_close(pc_spawn_proc *p)
{
    for (int i = 0; i < 3; i++)
        spawn_close_fd(&p->fd[i]);
    spawn_close_fd(&p->pidfd);
}

int pc_spawn_start(const pc_spawn_opts *o, pc_spawn_proc *p, pc_spawn_stage *stage)
{
    pc_spawn_stage ignored;
    if (!stage)
        stage = &ignored;
    *stage = PC_SPAWN_STAGE_NONE;
    p->pid = -1;
    p->pidfd = -1;
    p->fd[0] = p->fd[1] = p->fd[2] = -1;
    int child[3] = {o->stdin_fd, o->stdout_fd, o->stderr_fd};
    int made[3] = {-1, -1, -1}; /* child ends created here, closed after the spawn */
    int e = 0;
    for (int i = 0; i < 3; i++) {
        int pair[2];
        switch (o->stdio[i]) {
        case PC_SPAWN_IO_FD:
            continue;
        case PC_SPAWN_IO_NULL:
            made[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
            if (made[i] < 0)
                goto fail;
            break;
        case PC_SPAWN_IO_PIPE:
            if (pipe2(pair, O_CLOEXEC) < 0)
                goto fail;
            made[i] = pair[i == 0 ? 0 : 1];
            p->fd[i] = pair[i == 0 ? 1 : 0];
            break;
        case PC_SPAWN_IO_SOCKET:
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                goto fail;
            made[i] = pair[0];
            p->fd[i] = pair[1];
            break;
        default:
            errno = EINVAL;
            goto fail;
        }
        child[i] = made[i];
        if (p->fd[i] >= 0) {
            int fl = fcntl(p->fd[i], F_GETFL);
            if (fl < 0 || fcntl(p->fd[i], F_SETFL, fl | O_NONBLOCK) < 0)
                goto fail;
        }
    }
    pc_spawn_opts so = *o;
    so.stdin_fd = child[0];
    so.stdout_fd = child[1];
    so.stderr_fd = child[2];
    pid_t pid = -1;
    e = pc_spawn(&so, &pid, stage);
    for (int i = 0; i < 3; i++)
        spawn_close_fd(&made[i]);
    if (e) {
        pc_spawn_proc_close(p);
        return e;
    }
    p->pid = pid;
    p->pidfd = pc_spawn_pidfd_open(pid);
    return 0;

fail:
    e = errno ? errno : EIO;
    for (int i = 0; i < 3; i++)
        spawn_close_fd(&made[i]);
    pc_spawn_proc_close(p);
    *stage = PC_SPAWN_STAGE_SETUP;
    return e;
}

/* ---- pc_spawn_run ---- */

static int64_t spawn_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct spawn_capture {
    int fd;
    char *buf;
    size_t len, alloc, cap;
    bool truncated;
    int which; /* 1 stdout, 2 stderr: what on_output is told */
    const pc_spawn_run_opts *r;
};

/* Reads what is available; closes fd at EOF or on error. Bytes beyond the
 * cap are read and dropped, so the child never blocks on a full pipe. */
static void spawn_capture_read(struct spawn_capture *c)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(c->fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                spawn_close_fd(&c->fd);
            return;
        }
        if (n == 0) {
            spawn_close_fd(&c->fd);
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
            if (c->r && c->r->on_output)
                c->r->on_output(c->which, chunk, take, c->r->ud);
        }
    }
}

/* Moves the capture into out; returns -1 when memory ran out. */
static int spawn_capture_finish(struct spawn_capture *c, pc_spawn_output *out)
{
    if (!c->buf) {
        c->buf = malloc(1);
        if (!c->buf)
            return -1;
    }
    c->buf[c->len] = '\0';
    out->data = c->buf;
    out->len = c->len;
    out->truncated = c->truncated;
    c->buf = NULL;
    return 0;
}

/* Whether the child has exited, without reaping it: the zombie keeps the
 * pid (and so the process group id) from being reused until the run ends.
 * Returns 1 when it has, 0 while it runs, -1 when someone else reaped it
 * (a SIGCHLD handler of the program), which loses its status. */
static int spawn_exited(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int r;
    do
        r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == ECHILD ? -1 : 0;
    return si.si_pid == pid ? 1 : 0;
}

int pc_spawn_run(const pc_spawn_opts *o, const pc_spawn_run_opts *r, pc_spawn_result *res,
                 pc_spawn_stage *stage)
{
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->pid = -1;
    pc_spawn_opts so = *o;
    so.stdio[0] = r->has_stdin ? PC_SPAWN_IO_PIPE : PC_SPAWN_IO_NULL;
    so.stdio[1] = so.stdio[2] = PC_SPAWN_IO_PIPE;
    clock_gettime(CLOCK_REALTIME, &res->started_at);
    int64_t t0 = spawn_mono_ms();
    pc_spawn_proc p;
    int e = pc_spawn_start(&so, &p, stage);
    if (e) {
        res->duration_ms = spawn_mono_ms() - t0;
        return e;
    }
    pid_t pid = p.pid;
    res->pid = pid;
    if (r->on_start)
        r->on_start(pid, r->ud);

    struct spawn_capture out = {.fd = p.fd[1],
                                .cap = r->out_max ? r->out_max : PC_SPAWN_DEFAULT_MAX_OUTPUT,
                                .which = 1,
                                .r = r};
    struct spawn_capture errc = {.fd = p.fd[2],
                                 .cap = r->err_max ? r->err_max : PC_SPAWN_DEFAULT_MAX_OUTPUT,
                                 .which = 2,
                                 .r = r};
    int in_fd = p.fd[0];
    int pidfd = p.pidfd;
    p.fd[0] = p.fd[1] = p.fd[2] = p.pidfd = -1;
    const char *in_data = r->stdin_data;
    size_t in_left = r->has_stdin ? r->stdin_len : 0;
    if (in_fd >= 0 && in_left == 0)
        spawn_close_fd(&in_fd);

    int64_t drain = r->drain_ms > 0 ? r->drain_ms : 0;
    int64_t deadline = r->timeout_ms > 0 ? t0 + r->timeout_ms : -1;
    int64_t kill_at = -1, drain_until = -1;
    bool exited = false, killed = false, lost = false;

    for (;;) {
        int64_t now = spawn_mono_ms();
        int ex = exited ? 1 : spawn_exited(pid);
        if (!exited && ex != 0) {
            exited = true;
            lost = ex < 0;
            drain_until = now + drain;
            spawn_close_fd(&pidfd);
        }
        if (!exited && deadline >= 0 && !res->timed_out && now >= deadline) {
            res->timed_out = true;
            if (r->grace_ms > 0) {
                pc_spawn_kill_group(pid, SIGTERM);
                kill_at = now + r->grace_ms;
            } else {
                pc_spawn_kill_group(pid, SIGKILL);
                killed = true;
            }
        }
        if (!exited && res->timed_out && !killed && now >= kill_at) {
            pc_spawn_kill_group(pid, SIGKILL);
            killed = true;
        }
        if (exited && out.fd < 0 && errc.fd < 0)
            break;
        if (exited && now >= drain_until) {
            /* Something that inherited the pipes outlived the command: it
             * belongs to the command's group, so end it and stop reading. */
            pc_spawn_kill_group(pid, SIGKILL);
            if (out.fd >= 0)
                spawn_capture_read(&out);
            if (errc.fd >= 0)
                spawn_capture_read(&errc);
            break;
        }

        struct pollfd pfd[4];
        int np = 0, i_in = -1, i_out = -1, i_err = -1;
        if (in_fd >= 0) {
            i_in = np;
            pfd[np++] = (struct pollfd){.fd = in_fd, .events = POLLOUT};
        }
        if (out.fd >= 0) {
            i_out = np;
            pfd[np++] = (struct pollfd){.fd = out.fd, .events = POLLIN};
        }
        if (errc.fd >= 0) {
            i_err = np;
            pfd[np++] = (struct pollfd){.fd = errc.fd, .events = POLLIN};
        }
        if (pidfd >= 0)
            pfd[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int64_t wait = -1;
        int64_t marks[3] = {exited ? -1 : deadline >= 0 && !res->timed_out ? deadline : -1,
                            !exited && res->timed_out && !killed ? kill_at : -1,
                            exited ? drain_until : -1};
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
            wait = 20; /* no pidfd: notice the exit by polling */
        if (wait > 1000)
            wait = 1000;
        int pr = poll(pfd, (nfds_t)np, (int)wait);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break; /* cannot wait any more: the child is killed below */
        }
        if (i_in >= 0 && pfd[i_in].revents) {
            if (pfd[i_in].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                spawn_close_fd(&in_fd);
            } else {
                ssize_t n = write(in_fd, in_data, in_left > 65536 ? 65536 : in_left);
                if (n > 0) {
                    in_data += n;
                    in_left -= (size_t)n;
                    if (in_left == 0)
                        spawn_close_fd(&in_fd);
                } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                    spawn_close_fd(&in_fd);
                }
            }
        }
        if (i_out >= 0 && pfd[i_out].revents) {
            spawn_capture_read(&out);
            if (out.truncated && r->kill_on_out_overflow && !res->out_overflow) {
                res->out_overflow = true;
                pc_spawn_kill_group(pid, SIGKILL);
                killed = true;
                spawn_close_fd(&out.fd);
            }
        }
        if (i_err >= 0 && pfd[i_err].revents)
            spawn_capture_read(&errc);
        /* pidfd readiness only wakes the loop; spawn_exited() notices. */
    }

    if (!exited || r->kill_group_at_end)
        pc_spawn_kill_group(pid, SIGKILL);
    if (r->on_end)
        r->on_end(pid, r->ud);
    int status = 0;
    if (!lost)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    spawn_close_fd(&in_fd);
    spawn_close_fd(&out.fd);
    spawn_close_fd(&errc.fd);
    spawn_close_fd(&pidfd);
    res->duration_ms = spawn_mono_ms() - t0;
    if (lost) {
        /* The status went to whoever reaped it: exit_code stays -1. */
    } else if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        res->term_signal = WTERMSIG(status);
    }
    if (spawn_capture_finish(&out, &res->out) < 0 || spawn_capture_finish(&errc, &res->err) < 0)
        abort(); /* a one-byte allocation failed: nothing sensible is left to do */
    return 0;
}

void pc_spawn_result_free(pc_spawn_result *res)
{
    if (!res)
        return;
    free(res->out.data);
    free(res->err.data);
    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->pid = -1;
}
