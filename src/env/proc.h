/*
 * The process runner: runs one command on the runtime loop and blocks the
 * calling thread until it is over.
 *
 * Every child is spawned with pc_spawn_start() (lib/spawn.h: no copy of the
 * daemon's address space) and its exit is noticed through a pidfd (a short
 * polling timer on kernels without one): an explicit environment (never the
 * daemon's environ; PATH defaults to PC_PROC_DEFAULT_PATH when the caller
 * gives none), its own session and process group (setsid), signals reset,
 * exec failures reported synchronously as errors. stdin gets the given bytes and
 * then EOF (or /dev/null). stdout and stderr are captured into pc_bufs bounded
 * by output_cap (the rest is dropped and `truncated` set) and streamed to the
 * callback as they arrive.
 *
 * Ending: on timeout or pc_proc_cancel() the WHOLE group gets SIGTERM, then
 * SIGKILL after grace_ms. When the leader exits, descendants that still hold
 * its pipes open get a short drain period and are then killed with the group,
 * so nothing started by a command outlives it.
 *
 * Threads: pc_proc_run() must not be called on the loop thread (it would wait
 * for itself); it fails with 500 there. pc_proc_cancel() may be called from
 * any thread at any time, also before or after the run.
 */
#ifndef PC_ENV_PROC_H
#define PC_ENV_PROC_H

#include <pthread.h>
#include <stdbool.h>

#include "env/env.h"
#include "lib/loop.h"

#define PC_PROC_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
#define PC_PROC_DEFAULT_CAP (4u * 1024 * 1024)
#define PC_PROC_DEFAULT_GRACE_MS 20000

/* Cancellation handle shared between the running thread and cancellers.
 * Initialise with pc_proc_ctl_init before the first run, destroy after the
 * last. One ctl may serve several runs in sequence. */
typedef struct pc_proc_ctl {
    pthread_mutex_t mu;
    bool cancelled;  /* sticky: every later run starts cancelled */
    void *active;    /* the running proc (loop-owned), NULL when idle */
    pc_loop *loop;
} pc_proc_ctl;

void pc_proc_ctl_init(pc_proc_ctl *ctl);
void pc_proc_ctl_destroy(pc_proc_ctl *ctl);
void pc_proc_cancel(pc_proc_ctl *ctl);

typedef struct pc_proc_opts {
    const char *file;            /* looked up in the child's PATH when it has no '/' */
    const char *const *argv;     /* full argv, argv[0] included, NULL-terminated */
    const char *cwd;             /* NULL: inherit the daemon's */
    json_t *env;                 /* object of strings; borrowed; NULL = only PATH */
    const char *stdin_data;      /* NULL: /dev/null */
    size_t stdin_len;
    int64_t timeout_ms;          /* <= 0: none */
    int64_t grace_ms;            /* <= 0: PC_PROC_DEFAULT_GRACE_MS */
    size_t output_cap;           /* 0: PC_PROC_DEFAULT_CAP, per stream */
    pc_output_fn on_output;      /* may be NULL; called on the loop thread */
    void *ud;
    /* When set, "<pid> <starttime>\n" is written here while the command runs
     * (removed when it ends), so a later daemon can find and kill a process
     * group this one left behind when it died. */
    const char *pid_file;
} pc_proc_opts;

/* Kills the process group recorded in pid_file if that process still runs
 * (pid and kernel start time must both match, so a recycled pid is never
 * hit) and removes the file. Returns 1 if a group was killed, else 0. */
int pc_proc_kill_recorded(const char *pid_file);
/* Records pid (and its start time) in pid_file, as a command started with
 * pc_proc_opts.pid_file is recorded, for a process started elsewhere. */
void pc_proc_record(const char *pid_file, int pid);

/* Runs the command; fills res (initialised here; free with
 * pc_exec_result_free). Returns 0 when the command ran (whatever its exit
 * status), -1 with err when it could not be started. */
int pc_proc_run(pc_loop *loop, const pc_proc_opts *opts, pc_proc_ctl *ctl, pc_exec_result *res,
                pc_error_t *err);

#endif
