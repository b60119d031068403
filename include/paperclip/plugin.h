/*
 * paperclip/plugin.h - the C SDK for Paperclip plugin workers.
 *
 * A plugin worker is a program the Paperclip host starts as a child process.
 * The host writes JSON-RPC 2.0 requests to the worker's stdin, one JSON
 * object per '\n'-terminated line, and reads the answers from the worker's
 * stdout the same way; stderr is free-form log text. This is the protocol of
 * the published @paperclipai/plugin-sdk, so a host cannot tell a C worker
 * from a TypeScript one.
 *
 * A worker author fills a `pc_plugin_hooks` with the callbacks the plugin
 * implements, leaves the others NULL, and calls `pc_plugin_run()` from
 * main():
 *
 *     static const pc_plugin_hooks hooks = {
 *         .health = my_health,
 *         .environment_execute = my_execute,
 *     };
 *     int main(void) { return pc_plugin_run(&hooks, NULL); }
 *
 * JSON values are jansson `json_t *` (https://jansson.readthedocs.io);
 * jansson is part of this public API, and a worker links against it
 * (`pkg-config --libs paperclip-plugin` says how).
 *
 * Ownership, everywhere in this header:
 *
 *  - "borrowed" means the SDK owns the value and it stays valid only for the
 *    duration of the call; take your own reference (json_incref) to keep it.
 *  - "new reference" means the receiver now owns one reference and must drop
 *    it (json_decref) or hand it on.
 *  - Strings passed in are copied when the SDK keeps them.
 *
 * Threads: every request is handled on its own thread, so hooks run
 * concurrently with each other (a long environment_execute never delays a
 * health check). Threads are pooled, so thread-local state may outlive a
 * request. Hooks that share state must lock it themselves. Writes to
 * stdout are serialised by the SDK; a hook must never write to stdout itself
 * (use stderr or pc_plugin_log()).
 */
#ifndef PAPERCLIP_PLUGIN_H
#define PAPERCLIP_PLUGIN_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The plugin API version this SDK speaks (`apiVersion` in initialize). */
#define PC_PLUGIN_API_VERSION 1

/* The longest request line the SDK accepts, newline excluded. A longer line
 * is read to its end, dropped, and answered with an error whose id is null. */
#define PC_PLUGIN_MAX_LINE ((size_t)16 << 20)

/* How many requests may run at once. One more gets -32000 "worker busy". */
#define PC_PLUGIN_MAX_IN_FLIGHT 64

/*
 * JSON-RPC error codes, the standard ones and those of the Paperclip plugin
 * protocol. A hook failure is PC_RPC_WORKER_ERROR unless the hook sets
 * another code.
 */
enum pc_rpc_error_code {
    PC_RPC_PARSE_ERROR = -32700,
    PC_RPC_INVALID_REQUEST = -32600,
    PC_RPC_METHOD_NOT_FOUND = -32601,
    PC_RPC_INVALID_PARAMS = -32602,
    PC_RPC_INTERNAL_ERROR = -32603,
    PC_RPC_WORKER_UNAVAILABLE = -32000,
    PC_RPC_CAPABILITY_DENIED = -32001,
    PC_RPC_WORKER_ERROR = -32002,
    PC_RPC_TIMEOUT = -32003,
    PC_RPC_METHOD_NOT_IMPLEMENTED = -32004,
    PC_RPC_UNKNOWN = -32099,
};

/*
 * The error a hook (or an SDK helper) reports. The SDK hands every hook a
 * zeroed one; a failing hook fills it, usually through pc_plugin_error_set(),
 * and returns -1. The SDK turns it into the JSON-RPC error object
 * {code, message, data?}.
 *
 *  - `code` 0 means PC_RPC_WORKER_ERROR.
 *  - `message` is always NUL-terminated; an empty message becomes
 *    "plugin hook failed".
 *  - `data`, if not NULL, is owned by the error (one reference) and is sent
 *    as error.data. pc_plugin_error_clear() drops it; the SDK clears the
 *    error after sending it.
 */
typedef struct pc_plugin_error {
    int code;
    char message[1024];
    json_t *data;
} pc_plugin_error;

/*
 * Fills `err` (if not NULL) with `code` and a printf-formatted message,
 * truncating a too-long message, and returns -1 so a hook can write
 * `return pc_plugin_error_set(err, 0, "cannot open %s", path);`.
 * Any previous `data` is dropped.
 */
int pc_plugin_error_set(pc_plugin_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drops err->data and resets the error to zero. Safe on a zeroed error. */
void pc_plugin_error_clear(pc_plugin_error *err);

/*
 * The context of one request, passed to every hook. Opaque; valid only
 * during the hook call. The accessors below never return NULL unless said.
 */
typedef struct pc_plugin_ctx pc_plugin_ctx;

/* The `user` pointer given to pc_plugin_run(). May be NULL. */
void *pc_plugin_ctx_user(const pc_plugin_ctx *ctx);

/* The JSON-RPC method being served, e.g. "environmentExecute". */
const char *pc_plugin_ctx_method(const pc_plugin_ctx *ctx);

/* The `manifest` and `config` the host sent in initialize (borrowed; an
 * empty object if the host sent none). Stable for the life of the worker. */
json_t *pc_plugin_ctx_manifest(const pc_plugin_ctx *ctx);
json_t *pc_plugin_ctx_config(const pc_plugin_ctx *ctx);

/*
 * A request hook. `params` is the request's params (borrowed; an empty
 * object if the host sent none or null). On success the hook returns 0 and
 * may store a new reference in `*result`; leaving it NULL answers with the
 * method's default (null for void methods). On failure the hook fills `err`
 * and returns -1; anything left in `*result` is dropped. Any other return
 * value is treated as -1.
 */
typedef int (*pc_plugin_hook)(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                              pc_plugin_error *err);

/*
 * The callbacks of a plugin. Every member may be NULL.
 *
 * Lifecycle:
 *  - `setup` runs once while answering `initialize`, before the answer; a
 *    failure answers initialize with the error (the host then stops the
 *    worker). Requests other than initialize are refused until it succeeded.
 *  - `shutdown` runs once when the host sends `shutdown` or closes stdin,
 *    after every in-flight request has been answered; the worker then exits.
 *    It cannot fail.
 *
 * Request hooks (see pc_plugin_hook for the contract). Method names and the
 * result when the hook is NULL:
 *  - health                        "health"        → {"status":"ok"}
 *  - validate_config               "validateConfig" → {"ok":true}
 *  - config_changed                "configChanged" → null
 *  - environment_validate_config   "environmentValidateConfig"
 *  - environment_probe             "environmentProbe"
 *  - environment_acquire_lease     "environmentAcquireLease"
 *  - environment_resume_lease      "environmentResumeLease"
 *  - environment_release_lease     "environmentReleaseLease"
 *  - environment_destroy_lease     "environmentDestroyLease"
 *  - environment_realize_workspace "environmentRealizeWorkspace"
 *  - environment_execute           "environmentExecute"
 *  - environment_sync_in           "environmentSyncIn"
 *  - environment_sync_out          "environmentSyncOut"
 *    (the host uses the two sync hooks only when both are set)
 * An environment method whose hook is NULL is answered with -32004
 * "<method> is not implemented by this plugin". initialize's
 * supportedMethods lists exactly the optional methods whose hook is set.
 * Shapes of params and results are those of @paperclipai/plugin-sdk and are
 * described in docs/plugin-sdk.md.
 */
typedef struct pc_plugin_hooks {
    int (*setup)(pc_plugin_ctx *ctx, pc_plugin_error *err);
    void (*shutdown)(pc_plugin_ctx *ctx);

    pc_plugin_hook health;
    pc_plugin_hook validate_config;
    pc_plugin_hook config_changed;

    pc_plugin_hook environment_validate_config;
    pc_plugin_hook environment_probe;
    pc_plugin_hook environment_acquire_lease;
    pc_plugin_hook environment_resume_lease;
    pc_plugin_hook environment_release_lease;
    pc_plugin_hook environment_destroy_lease;
    pc_plugin_hook environment_realize_workspace;
    pc_plugin_hook environment_execute;
    pc_plugin_hook environment_sync_in;
    pc_plugin_hook environment_sync_out;
} pc_plugin_hooks;

/*
 * Serves the protocol on stdin/stdout until `shutdown` or end of input and
 * returns the exit status for main(): 0 after a clean shutdown or EOF, 1 if
 * stdin/stdout failed. Before returning it waits for every in-flight request
 * to be answered. It sets SIGPIPE to ignored (a host that went away shows up
 * as a write error, not a dead worker). `hooks` must outlive the call.
 */
int pc_plugin_run(const pc_plugin_hooks *hooks, void *user);

/* Like pc_plugin_run(), on the given descriptors (for tests and embedding).
 * The descriptors are not closed. */
int pc_plugin_serve(const pc_plugin_hooks *hooks, void *user, int in_fd, int out_fd);

/* Log levels of the `log` notification. */
typedef enum pc_plugin_log_level {
    PC_PLUGIN_LOG_DEBUG,
    PC_PLUGIN_LOG_INFO,
    PC_PLUGIN_LOG_WARN,
    PC_PLUGIN_LOG_ERROR,
} pc_plugin_log_level;

/*
 * Sends the host a `log` notification {level, message}. `ctx` may be NULL
 * (e.g. from a helper thread) as long as pc_plugin_run() is serving; outside
 * of it the line goes to stderr. Invalid UTF-8 in the message is replaced.
 * pc_plugin_log_meta() also sends `meta` (borrowed; may be NULL).
 */
void pc_plugin_log(pc_plugin_ctx *ctx, pc_plugin_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pc_plugin_log_meta(pc_plugin_ctx *ctx, pc_plugin_log_level level, json_t *meta,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Streams command output of the environmentExecute request `ctx` belongs to:
 * sends the host an `execute.log` notification {requestId, stream, chunk},
 * where requestId is the id of that request, so a host with several executes
 * in flight on one worker appends each chunk to the run that asked for it.
 * `stream` is "stdout" or "stderr"; `data` holds `len` raw bytes. A UTF-8
 * sequence cut at the end of `data` is held back (at most 3 bytes per
 * stream) and sent with the next call, or when the hook returns, so split
 * characters arrive whole; other invalid bytes are replaced by U+FFFD.
 *
 * A provider that streams promises that everything it streamed is also in
 * the final result's stdout/stderr, and the host then does not append the
 * result's output a second time. Calls for one ctx must not overlap (call it
 * from the hook's thread, e.g. from pc_plugin_exec_opts.on_output). Returns
 * 0, or -1 (nothing sent) when ctx is NULL, the request is not
 * environmentExecute or `stream` is neither name.
 */
int pc_plugin_execute_log(pc_plugin_ctx *ctx, const char *stream, const char *data, size_t len);

/* ------------------------------------------------------------------------
 * Running commands: pc_plugin_exec()
 *
 * Runs one command to completion the way a sandbox provider needs it:
 *
 *  - argv is executed directly, never through a shell. A command without a
 *    '/' is looked up in the PATH of `envp` (or, if envp has none,
 *    "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin") before forking.
 *  - The child gets exactly `envp`, never the worker's environment.
 *  - The child starts a new session (setsid), so it leads its own process
 *    group; every signal the SDK sends goes to that whole group, which
 *    reaches grandchildren that stayed in it. Signal dispositions are reset
 *    to default and the signal mask is cleared. The child receives SIGKILL
 *    if the worker thread that started it dies (PR_SET_PDEATHSIG).
 *  - stdin is a pipe fed with `stdin_data` and then closed (the child always
 *    sees EOF) when `has_stdin`; otherwise it is /dev/null.
 *  - Every descriptor other than 0, 1, 2 and `keep_fds` is closed on exec.
 *  - Failures before the command runs (PATH lookup, chdir, pre_exec, execve)
 *    are reported synchronously: pc_plugin_exec() returns -1 with
 *    `res->spawn_errno` set, `res->spawn_stage` naming the step, and `err`
 *    filled ("cannot exec foo: No such file or directory"). The command
 *    therefore never "exits 127" because it was not found.
 *  - stdout and stderr are captured separately, each up to `max_output`
 *    bytes; the rest is read and discarded (so the child never blocks on a
 *    full pipe) and the `*_truncated` flag is set.
 *  - On timeout the group gets SIGTERM, then SIGKILL after `kill_grace_ms`.
 *  - When the command has exited, output still arriving from processes that
 *    inherited its pipes is read for at most `drain_ms`; then the group is
 *    sent SIGKILL and reading stops. pc_plugin_exec() thus always returns
 *    once the command and its timeout are done.
 *
 * Safe to call from several threads at once. Sets SIGPIPE to ignored.
 * ------------------------------------------------------------------------ */

/* Defaults used when the corresponding option is 0. */
#define PC_PLUGIN_EXEC_DEFAULT_MAX_OUTPUT ((size_t)4 << 20)
#define PC_PLUGIN_EXEC_DEFAULT_GRACE_MS 2000
#define PC_PLUGIN_EXEC_DEFAULT_DRAIN_MS 250
#define PC_PLUGIN_EXEC_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"

/* Steps that can fail before the command runs (res->spawn_stage). */
typedef enum pc_plugin_exec_stage {
    PC_EXEC_STAGE_NONE = 0, /* the command ran */
    PC_EXEC_STAGE_SETUP,    /* pipes, fork, bad options: in the worker */
    PC_EXEC_STAGE_LOOKUP,   /* PATH search found no executable */
    PC_EXEC_STAGE_CHDIR,    /* chdir(cwd) failed in the child */
    PC_EXEC_STAGE_PRE_EXEC, /* the pre_exec callback failed */
    PC_EXEC_STAGE_EXEC,     /* execve failed */
} pc_plugin_exec_stage;

typedef struct pc_plugin_exec_opts {
    /* The command and its arguments, NULL-terminated; argv[0] is required
     * and is what is executed (see lookup above). Borrowed. */
    char *const *argv;
    /* The complete environment, "NAME=value" strings, NULL-terminated.
     * NULL means an empty environment. Borrowed. */
    char *const *envp;
    /* Working directory of the child; NULL keeps the worker's. */
    const char *cwd;

    /* Bytes written to the child's stdin, then closed, if has_stdin. */
    const void *stdin_data;
    size_t stdin_len;
    bool has_stdin;

    /* Milliseconds before the group is signalled; 0 or less: no limit. */
    int64_t timeout_ms;
    /* Milliseconds between SIGTERM and SIGKILL after a timeout; 0 means
     * PC_PLUGIN_EXEC_DEFAULT_GRACE_MS, negative means SIGKILL at once. */
    int64_t kill_grace_ms;
    /* Milliseconds to keep reading pipes after the command exited;
     * 0 means PC_PLUGIN_EXEC_DEFAULT_DRAIN_MS. */
    int64_t drain_ms;
    /* Capture limit per stream in bytes; 0 means the default (4 MiB). */
    size_t max_output;

    /* Descriptors the child keeps open across exec (e.g. a bwrap --info-fd).
     * They keep their numbers. Must not be 0, 1 or 2. */
    const int *keep_fds;
    size_t n_keep_fds;

    /*
     * Called in the child after fork, after setsid, chdir and stdio setup,
     * just before execve (e.g. to join a cgroup, set rlimits, drop
     * privileges). It runs in a forked copy of a multi-threaded process, so
     * it may only use async-signal-safe functions: no malloc, no stdio, no
     * locks. Return 0 to go on; return an errno value (>0) to abort: the
     * parent then fails with spawn_stage PC_EXEC_STAGE_PRE_EXEC and that
     * errno.
     */
    int (*pre_exec)(void *arg);
    void *pre_exec_arg;

    /*
     * Called on the calling thread with each piece of output as the command
     * produces it (`stream` 1 for stdout, 2 for stderr), e.g. to pass it to
     * pc_plugin_execute_log(). Only bytes within `max_output` are passed, so
     * what is seen here is exactly what ends up in the result. May be NULL.
     */
    void (*on_output)(void *arg, int stream, const char *data, size_t len);
    void *on_output_arg;
} pc_plugin_exec_opts;

typedef struct pc_plugin_exec_result {
    /* The exit status when the command exited normally, else -1. */
    int exit_code;
    /* The signal that ended the command, else 0 (pc_plugin_signal_name()). */
    int term_signal;
    /* The timeout expired and the group was signalled. */
    bool timed_out;

    /* Captured output. Always allocated and NUL-terminated after a call
     * that returned 0 (the bytes may contain NULs; use the lengths). Owned
     * by the result; pc_plugin_exec_result_free() releases them. */
    char *out;
    size_t out_len;
    bool out_truncated;
    char *err;
    size_t err_len;
    bool err_truncated;

    /* Wall-clock time just before fork, and how long the call took. */
    struct timespec started_at;
    int64_t duration_ms;
    pid_t pid;

    /* Set when pc_plugin_exec() returned -1 (see pc_plugin_exec_stage). */
    int spawn_errno;
    pc_plugin_exec_stage spawn_stage;
} pc_plugin_exec_result;

/*
 * Runs the command described by `opts` (see above) and fills `res`, which
 * the call initialises first. Returns 0 when the command ran (whatever its
 * exit status, signal or timeout) and -1 when it could not be started; then
 * `err` says why, `res->spawn_errno` and `res->spawn_stage` are set and no
 * output is allocated. Call pc_plugin_exec_result_free() in both cases.
 */
int pc_plugin_exec(const pc_plugin_exec_opts *opts, pc_plugin_exec_result *res,
                   pc_plugin_error *err);

/* Frees the output buffers of `res` and zeroes it. Safe to call twice. */
void pc_plugin_exec_result_free(pc_plugin_exec_result *res);

/* "SIGTERM", "SIGKILL", ... for a signal number; "SIG<n>" style names are
 * not invented: an unknown number gives NULL. */
const char *pc_plugin_signal_name(int sig);

/* ------------------------------------------------------------------------
 * Small helpers every provider needs.
 * ------------------------------------------------------------------------ */

/*
 * A JSON string (new reference) from arbitrary bytes: invalid UTF-8
 * sequences and NUL bytes are each replaced by U+FFFD, so command output
 * can always be sent. Returns NULL only when out of memory.
 */
json_t *pc_plugin_json_string_lossy(const char *bytes, size_t len);

/* Formats `ts` as ISO-8601 UTC with milliseconds, "2026-04-24T10:00:00.000Z",
 * into `buf` (at least 25 bytes). Returns buf. */
char *pc_plugin_iso8601(const struct timespec *ts, char *buf);

/* Writes a random (version 4) UUID, lower case with dashes, into `buf`
 * (at least 37 bytes). Returns buf. */
char *pc_plugin_uuid_v4(char *buf);

/* The temporary directory: $TMPDIR when it is a non-empty absolute path
 * (trailing slashes removed), else "/tmp". The string is static. */
const char *pc_plugin_tmpdir(void);

/* Removes `path` and everything below it, not following symlinks and not
 * crossing into other file systems. A missing path is success. Returns 0,
 * or -1 with `err` filled. */
int pc_plugin_rm_rf(const char *path, pc_plugin_error *err);

/* Creates `path` and missing parents with mode 0777 & ~umask. An existing
 * directory is success. Returns 0, or -1 with `err` filled. */
int pc_plugin_mkdir_p(const char *path, pc_plugin_error *err);

#ifdef __cplusplus
}
#endif

#endif
