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
struct pc_spawn_child {
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

static _Noreturn void pc_spawn_fail(struct pc_spawn_child *c, pc_spawn_stage stage, int e)
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
static int pc_spawn_exec_path(struct pc_spawn_child *c)
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

static _Noreturn void pc_spawn_child_run(struct pc_spawn_child *c)
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
static pid_t pc_spawn_fork(struct pc_spawn_child *c)
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

static pid_t pc_spawn_start(struct pc_spawn_child *c)
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
    struct pc_spawn_child c;
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
    pid_t pid = pc_spawn_start(&c);
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
