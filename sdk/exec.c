/*
 * pc_plugin_exec(): run one command with captured, bounded output, a
 * timeout that reaches the whole process group, and spawn errors reported
 * synchronously. See the contract in include/paperclip/plugin.h.
 *
 * Shape: the SDK resolves the executable in the child's PATH (so a missing
 * command is a LOOKUP failure) and maps its options onto pc_spawn_run()
 * (src/lib/spawn.h, linked into this library), which starts the child with
 * its signal state reset in a new session, feeds stdin, captures bounded
 * stdout/stderr and stops the whole group on timeout. What the SDK adds is
 * the registry of running groups, so a terminating worker can signal them.
 */
#include <paperclip/plugin.h>

#include "exec_internal.h"
#include "lib/spawn.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ---- the parent ---- */

static void group_started(pid_t pid, void *ud)
{
    (void)ud;
    groups_add(pid);
}

static void group_ended(pid_t pid, void *ud)
{
    (void)ud;
    groups_remove(pid);
}

static void forward_output(int fd, const char *data, size_t len, void *ud)
{
    const pc_plugin_exec_opts *opts = ud;
    opts->on_output(opts->on_output_arg, fd, data, len);
}

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

    /* path contains a '/', so pc_spawn() execs it as is; argv is executed
     * directly, never through a shell. */
    pc_spawn_opts so = {
        .file = path,
        .argv = (const char *const *)opts->argv,
        .envp = envp,
        .cwd = opts->cwd,
        .keep_fds = opts->keep_fds,
        .n_keep_fds = opts->n_keep_fds,
        .die_with_parent = true,
        .no_shell_fallback = true,
        .pre_exec = opts->pre_exec,
        .pre_exec_arg = opts->pre_exec_arg,
    };
    size_t cap = opts->max_output ? opts->max_output : PC_PLUGIN_EXEC_DEFAULT_MAX_OUTPUT;
    pc_spawn_run_opts ro = {
        .has_stdin = opts->has_stdin,
        .stdin_data = opts->stdin_data,
        .stdin_len = opts->stdin_len,
        .out_max = cap,
        .err_max = cap,
        .timeout_ms = opts->timeout_ms,
        .grace_ms = opts->kill_grace_ms == 0 ? PC_PLUGIN_EXEC_DEFAULT_GRACE_MS
                    : opts->kill_grace_ms < 0 ? 0
                                               : opts->kill_grace_ms,
        .drain_ms = opts->drain_ms > 0 ? opts->drain_ms : PC_PLUGIN_EXEC_DEFAULT_DRAIN_MS,
        .on_start = group_started,
        .on_end = group_ended,
        .on_output = opts->on_output ? forward_output : NULL,
        .ud = (void *)opts,
    };
    pc_spawn_result rr;
    pc_spawn_stage stage = PC_SPAWN_STAGE_NONE;
    int e = pc_spawn_run(&so, &ro, &rr, &stage);
    free(path);
    res->started_at = rr.started_at;
    res->duration_ms = rr.duration_ms;
    if (e) {
        res->spawn_stage = exec_stage(stage);
        res->spawn_errno = e;
        if (res->spawn_stage == PC_EXEC_STAGE_CHDIR)
            return pc_plugin_error_set(err, 0, "cannot change directory to %s for %s: %s",
                                       opts->cwd, cmd, strerror(e));
        return pc_plugin_error_set(err, 0, "%s %s: %s", stage_verb(res->spawn_stage), cmd,
                                   strerror(e));
    }
    res->pid = rr.pid;
    res->timed_out = rr.timed_out;
    res->exit_code = rr.exit_code;
    res->term_signal = rr.term_signal;
    res->out = rr.out.data;
    res->out_len = rr.out.len;
    res->out_truncated = rr.out.truncated;
    res->err = rr.err.data;
    res->err_len = rr.err.len;
    res->err_truncated = rr.err.truncated;
    return 0;
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
