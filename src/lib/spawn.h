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
 * makes stdin_fd/stdout_fd/stderr_fd its descriptors 0/1/2; marks every
 * other descriptor close-on-exec; changes to cwd; execs `file` with argv and
 * exactly envp (never the daemon's environ). A file without '/' is looked up
 * in the PATH of envp (PC_SPAWN_DEFAULT_PATH when envp has none), like
 * execvp(): EACCES entries are skipped, a file the kernel cannot exec
 * (ENOEXEC) is run by /bin/sh.
 *
 * Errors are synchronous: when any step fails the child exits with 127 and
 * the parent reaps it and returns that step's errno, so a spawn that returns
 * 0 has exec'ed. The caller owns the returned pid (it must reap it) and its
 * own descriptors, which pc_spawn never closes.
 *
 * Threads: safe to call from any thread. Descriptors of the caller that are
 * not close-on-exec never reach the child, but a fork() in another thread
 * may still copy them, so callers create theirs with O_CLOEXEC.
 */
#ifndef PC_LIB_SPAWN_H
#define PC_LIB_SPAWN_H

#include <sys/types.h>

#define PC_SPAWN_DEFAULT_PATH "/usr/bin:/bin"

typedef struct pc_spawn_opts {
    const char *file;                   /* executable; looked up in envp's PATH without '/' */
    const char *const *argv;            /* argv[0] included, NULL-terminated */
    char *const *envp;                  /* the child's whole environment, NULL-terminated */
    const char *cwd;                    /* NULL: the caller's */
    int stdin_fd, stdout_fd, stderr_fd; /* become 0, 1, 2 in the child */
} pc_spawn_opts;

/* Starts the child and stores its pid in *pid. Returns 0, or the errno of
 * the step that failed (in the parent or in the child) with no child left
 * behind. */
int pc_spawn(const pc_spawn_opts *o, pid_t *pid);

#endif
