/*
 * pc_spawn(): starts one child process without copying the caller's address
 * space.
 *
 * fork() of a daemon with many threads and a large heap copies (and later
 * tears down) every page table entry, which costs tens of milliseconds per
 * child. pc_spawn() does what posix_spawn() does instead:
 * clone(CLONE_VM | CLONE_VFORK) on a small private stack, so the child runs
 * in the caller's memory until it execs, and the calling thread is suspended
 * until then. Every signal is blocked around the clone so no handler of the
 * daemon can run in the child while it shares that memory. Builds with
 * AddressSanitizer (which misreads the small stack) use plain fork().
 *
 * The child, in this order: resets every signal disposition to the default
 * and clears its signal mask; starts a new session (setsid), so it leads its
 * own process group and `kill(-pid, sig)` reaches everything it starts;
 * with die_with_parent, asks for SIGKILL when the thread that spawned it
 * dies (PR_SET_PDEATHSIG) and exits at once if that already happened;
 * makes stdin_fd/stdout_fd/stderr_fd its descriptors 0/1/2; marks every
 * other descriptor close-on-exec except keep_fds, which stay open with
 * their numbers; changes to cwd; runs pre_exec; execs `file` with argv and
 * exactly envp (never the daemon's environ). A file without '/' is looked up
 * in the PATH of envp (PC_SPAWN_DEFAULT_PATH when envp has none), like
 * execvp(): EACCES entries are skipped, a file the kernel cannot exec
 * (ENOEXEC) is run by /bin/sh unless no_shell_fallback is set.
 *
 * A pre_exec callback is arbitrary (if async-signal-safe) code that expects
 * a copy of the caller's memory, not the caller's memory itself, so with one
 * the child is started with fork() instead of clone(CLONE_VM).
 *
 * Errors are synchronous: when any step fails the child exits with 127 and
 * the parent reaps it and returns that step's errno (and names the step in
 * *stage), so a spawn that returns 0 has exec'ed. The caller owns the
 * returned pid (it must reap it) and its own descriptors, which pc_spawn
 * never closes.
 *
 * Threads: safe to call from any thread. Descriptors of the caller that are
 * not close-on-exec never reach the child, but a fork() in another thread
 * may still copy them, so callers create theirs with O_CLOEXEC.
 *
 * On top of pc_spawn(): pc_spawn_start() also creates the pipes (or socket
 * pairs) for the child's stdio and opens a pidfd, for callers that watch the
 * child from an event loop; pc_spawn_run() runs a command to its end in the
 * calling thread with stdin fed, stdout/stderr captured up to a hard cap
 * (the rest is dropped and `truncated` set) and a timeout that stops the
 * whole process group (SIGTERM, grace, SIGKILL). Every child process of the
 * daemon and of the plugin SDK is started here.
 *
 * Uses only libc, so the plugin SDK (libpaperclip-plugin.a) links it too.
 */
#ifndef PC_LIB_SPAWN_H
#define PC_LIB_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <stdint.h>
#include <time.h>

#define PC_SPAWN_DEFAULT_PATH "/usr/bin:/bin"
#define PC_SPAWN_DEFAULT_MAX_OUTPUT (1024 * 1024)

/* Where one of the child's descriptors 0, 1 and 2 comes from. */
typedef enum pc_spawn_io {
    PC_SPAWN_IO_FD = 0, /* the caller's stdin_fd / stdout_fd / stderr_fd */
    PC_SPAWN_IO_NULL,   /* /dev/null */
    PC_SPAWN_IO_PIPE,   /* a new pipe; pc_spawn_start() returns the other end */
    PC_SPAWN_IO_SOCKET, /* a new socket pair: the parent can end the child's
                         * input with shutdown(SHUT_WR) and keep the descriptor */
} pc_spawn_io;

typedef struct pc_spawn_opts {
    const char *file;                   /* executable; looked up in envp's PATH without '/' */
    const char *const *argv;            /* argv[0] included, NULL-terminated */
    char *const *envp;                  /* the child's whole environment, NULL-terminated */
    const char *cwd;                    /* NULL: the caller's */
    int stdin_fd, stdout_fd, stderr_fd; /* become 0, 1, 2 in the child (PC_SPAWN_IO_FD) */
    pc_spawn_io stdio[3];               /* pc_spawn_start() only; zero: the fds above */
    const int *keep_fds;                /* kept open across exec; none may be 0, 1 or 2 */
    size_t n_keep_fds;
    bool die_with_parent;   /* PR_SET_PDEATHSIG(SIGKILL) against the spawning thread */
    bool no_shell_fallback; /* ENOEXEC is an error instead of running /bin/sh */
    /* Run in the child just before execve (async-signal-safe calls only);
     * returns 0 to go on or an errno (>0; anything else counts as EPERM) to
     * fail with PC_SPAWN_STAGE_PRE_EXEC. Forces fork(), see above. */
    int (*pre_exec)(void *arg);
    void *pre_exec_arg;
} pc_spawn_opts;

/* The step a failed spawn stopped at. */
typedef enum pc_spawn_stage {
    PC_SPAWN_STAGE_NONE = 0, /* no failure */
    PC_SPAWN_STAGE_SETUP,    /* in the parent, or signals/session/descriptors in the child */
    PC_SPAWN_STAGE_CHDIR,    /* chdir(cwd) */
    PC_SPAWN_STAGE_PRE_EXEC, /* the pre_exec callback */
    PC_SPAWN_STAGE_EXEC,     /* PATH lookup and execve */
} pc_spawn_stage;

/* Starts the child and stores its pid in *pid. Returns 0, or the errno of
 * the step that failed (in the parent or in the child) with no child left
 * behind; then *stage, unless stage is NULL, names that step (it is
 * PC_SPAWN_STAGE_NONE after success). */
int pc_spawn(const pc_spawn_opts *o, pid_t *pid, pc_spawn_stage *stage);

/* A started child as pc_spawn_start() returns it. */
typedef struct pc_spawn_proc {
    pid_t pid;  /* also its process group and session id */
    int pidfd;  /* readable once the child exited; -1 where the kernel has none */
    int fd[3];  /* parent ends for PIPE/SOCKET stdio, else -1; close-on-exec,
                 * non-blocking; fd[0] is written, fd[1] and fd[2] are read */
} pc_spawn_proc;

/* pc_spawn() with o->stdio honoured: NULL, PIPE and SOCKET descriptors are
 * created here (close-on-exec, so no other child inherits them) and the
 * child's ends closed after the spawn. Returns 0 with *p filled, or an
 * errno (and *stage) with nothing left open and no child. The caller owns
 * p->pid (it must reap it) and the descriptors (pc_spawn_proc_close). */
int pc_spawn_start(const pc_spawn_opts *o, pc_spawn_proc *p, pc_spawn_stage *stage);

/* Closes what pc_spawn_start() returned (parent ends and pidfd), sets them
 * to -1; the process itself is not touched. */
void pc_spawn_proc_close(pc_spawn_proc *p);

/* A pidfd for pid, or -1 with errno (ENOSYS on kernels before 5.3). */
int pc_spawn_pidfd_open(pid_t pid);

/* Sends sig to the whole process group led by pid (a no-op for pid <= 1). */
void pc_spawn_kill_group(pid_t pid, int sig);

/* How pc_spawn_run() feeds, bounds and ends a command. */
typedef struct pc_spawn_run_opts {
    bool has_stdin;          /* false: stdin is /dev/null */
    const char *stdin_data;  /* written to the child's stdin, then EOF */
    size_t stdin_len;
    size_t out_max, err_max; /* hard caps of the captures; 0: PC_SPAWN_DEFAULT_MAX_OUTPUT */
    bool kill_on_out_overflow; /* stdout beyond out_max kills the group (and stops reading) */
    int64_t timeout_ms;      /* <= 0: none; then the group gets SIGTERM */
    int64_t grace_ms;        /* after SIGTERM, until SIGKILL; <= 0: SIGKILL at once */
    int64_t drain_ms;        /* after the leader exited, how long what it left
                              * behind may hold the pipes before the group is killed */
    bool kill_group_at_end;  /* also kill what is left of the group when the
                              * pipes closed in time (e.g. a detached daemon) */
    /* Called right after the start and right before the end of the run
     * (the child is reaped after on_end), e.g. to register the group so
     * that a terminating caller can signal it. Both may be NULL. */
    void (*on_start)(pid_t pid, void *ud);
    void (*on_end)(pid_t pid, void *ud);
    void *ud;
    /* Called with each piece of output as it is read (fd 1 or 2), before
     * the run ends, so a caller can pass it on live. Only bytes within the
     * stream's cap are passed, so the total is bounded like the capture.
     * May be NULL. */
    void (*on_output)(int fd, const char *data, size_t len, void *ud);
} pc_spawn_run_opts;

/* One captured stream: data is NUL-terminated (never NULL after a run);
 * `truncated` says that bytes beyond the cap were dropped. */
typedef struct pc_spawn_output {
    char *data;
    size_t len;
    bool truncated;
} pc_spawn_output;

typedef struct pc_spawn_result {
    pid_t pid;                  /* -1 when the spawn failed */
    int exit_code;              /* -1 unless it exited normally */
    int term_signal;            /* the signal that ended it, or 0 */
    bool timed_out;             /* the timeout fired (the group was stopped) */
    bool out_overflow;          /* kill_on_out_overflow fired */
    pc_spawn_output out, err;
    struct timespec started_at; /* CLOCK_REALTIME just before the spawn */
    int64_t duration_ms;        /* CLOCK_MONOTONIC from spawn to reap */
} pc_spawn_result;

/* Runs the command to its end in the calling thread (o->stdio is ignored:
 * stdin is a pipe or /dev/null, stdout and stderr are pipes). When the
 * leader exits, everything left in its group is killed once the pipes are
 * drained (or drain_ms passed), so nothing outlives the run. Writing stdin
 * to a command that closed it gives EPIPE: a caller that feeds stdin must
 * ignore SIGPIPE. Returns 0 when the command ran (whatever its status;
 * free with pc_spawn_result_free), or the spawn's errno with *stage set,
 * res->pid -1 and nothing allocated. */
int pc_spawn_run(const pc_spawn_opts *o, const pc_spawn_run_opts *r, pc_spawn_result *res,
                 pc_spawn_stage *stage);

/* Frees the captures; res is left zeroed with exit_code -1 and pid -1. */
void pc_spawn_result_free(pc_spawn_result *res);

#endif
