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
 * Uses only libc, so the plugin SDK (libpaperclip-plugin.a) links it too.
 */
#ifndef PC_LIB_SPAWN_H
#define PC_LIB_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PC_SPAWN_DEFAULT_PATH "/usr/bin:/bin"

typedef struct pc_spawn_opts {
    const char *file;                   /* executable; looked up in envp's PATH without '/' */
    const char *const *argv;            /* argv[0] included, NULL-terminated */
    char *const *envp;                  /* the child's whole environment, NULL-terminated */
    const char *cwd;                    /* NULL: the caller's */
    int stdin_fd, stdout_fd, stderr_fd; /* become 0, 1, 2 in the child */
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

#endif
