/*
 * Plugin host: worker supervision and JSON-RPC framing on the runtime loop.
 * The public contract is in host.h; the design in docs/plugins.md.
 *
 * Everything below `---- loop side ----` runs on the loop thread only. The
 * public functions at the end package their arguments (JSON serialised on
 * the caller's thread), post a task and wait on a pc_waiter that the loop
 * side signals when the outcome is known — for a call, when the answer,
 * the timeout or the worker's death arrives.
 */
#include "plugin/host.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <uv.h>

#include "app.h"
#include "lib/buf.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/spawn.h"
#include "lib/util.h"
#include "plugin/manifest.h"

#define LOG_RING 500
#define LOG_MSG_MAX 2048
#define STDERR_TAIL 8192
#define STDERR_LINE_MAX 16384
#define CRASH_RING 64
#define READ_CHUNK 65536
#define EXIT_GRACE_MS 200 /* after exit, how long stdout and stderr may still deliver */
#define EXIT_POLL_MS 10   /* without a pidfd, how often the exit is looked for */
#define MAX_TIMEOUT_MS 2147483647LL

typedef struct plugin plugin;
typedef struct pending pending;
typedef struct proc proc;

typedef void (*pending_done_fn)(pending *p, json_t *result, const pc_error_t *err);

/* One request to a worker: queued (worker starting) or sent (awaiting the
 * answer). The timer runs from creation, so queued calls time out too. */
struct pending {
    pending *prev, *next;
    pending **list; /* the list p is on; NULL once completed */
    plugin *pl;
    int64_t id;
    char *method;
    char *params_text; /* serialised params; NULL means {} */
    int64_t timeout_ms;
    uv_timer_t timer;
    pending_done_fn done;
    void *ud;
    /* environmentExecute output the worker streams (execute.log); NULL
     * drops it. Called on the loop thread before the answer arrives. */
    pc_plugin_chunk_cb on_chunk;
    void *chunk_ud;
};

typedef struct log_entry {
    int64_t ts;
    const char *level;
    const char *source;
    char *msg;
} log_entry;

typedef struct waiter_node {
    pc_waiter *w;
    int *state_out; /* settle waiters: the state reached */
    char *err_out;  /* settle waiters: last error (1024 bytes) */
    struct waiter_node *next;
} waiter_node;

typedef enum { T_NONE, T_RESTART, T_DRAIN, T_SHUTDOWN_WAIT, T_TERM_GRACE } timer_action;

/* What happens to a worker; see transition(). */
typedef enum worker_event {
    EV_START,   /* the plugin was added */
    EV_READY,   /* initialize answered ok */
    EV_EXIT,    /* the worker process is gone (or could not be started) */
    EV_RETRY,   /* after a crash: below the crash limit */
    EV_GIVE_UP, /* after a crash: the crash limit is reached */
    EV_RESTART, /* the backoff timer fired */
    EV_STOP,    /* disable, remove or host stop */
    EV__COUNT
} worker_event;

/* One incarnation of a worker process. It outlives its plugin's interest in
 * it only while its libuv handles close. */
struct proc {
    plugin *pl; /* NULL once finalized */
    /* The exit is noticed through a pidfd, or where the kernel has none by
     * a timer polling waitpid(): the loop never blocks on the child. */
    int pidfd;
    uv_poll_t exitw;
    uv_timer_t tick;
    bool watching; /* exitw or tick is initialised */
    uv_pipe_t in, out, err;
    uv_timer_t grace;
    int handles_open;
    int pid;
    bool exited, out_done, err_done, finalized, doomed;
    int64_t exit_status;
    int term_signal;
    pc_buf line;
    char errline[STDERR_LINE_MAX];
    size_t errlen;
    bool errline_cut;
    char kill_reason[512];
    char rbuf_out[READ_CHUNK];
    char rbuf_err[8192];
};

struct plugin {
    plugin *next;
    pc_plugin_host *host;
    char *key, *id, *dir, *worker;
    bool is_js;
    json_t *manifest, *config, *env;
    pc_worker_state state;
    proc *proc;
    pending *sent, *queued;
    int64_t next_id;
    json_t *supported; /* array of method names */
    uv_timer_t timer;
    timer_action timer_action;
    bool shutdown_sent, removing;
    int64_t crash_times[CRASH_RING];
    int crash_head, crash_count;
    int64_t crash_burst; /* crashes within the window at the last crash */
    int restart_count;
    int64_t backoff_ms;
    char last_error[1024];
    bool has_error;
    char tail[STDERR_TAIL];
    size_t tail_len;
    log_entry logs[LOG_RING];
    int log_head, log_count;
    waiter_node *settle_waiters, *gone_waiters;
};

struct pc_plugin_host {
    pc_loop *loop;
    pc_plugin_host_opts o;
    char instance_id[128];
    char host_version[64];
    char node[PATH_MAX];
    bool have_node;
    char path_env[4096];
    char tz_env[256];
    char node_path_env[4096];
    plugin *plugins;
    /* Plugins whose timer handle is not closed yet. A plugin leaves the list
     * before its close callback runs; the host may only be freed once every
     * callback has run, so stopping waits for this count, not the list. */
    int open_plugins;
    bool stopping;
    pc_waiter *stop_waiter;
};

const char *pc_worker_state_name(pc_worker_state s)
{
    switch (s) {
    case PC_WORKER_STOPPED: return "stopped";
    case PC_WORKER_STARTING: return "starting";
    case PC_WORKER_RUNNING: return "running";
    case PC_WORKER_STOPPING: return "stopping";
    case PC_WORKER_CRASHED: return "crashed";
    case PC_WORKER_BACKOFF: return "backoff";
    case PC_WORKER_ERROR: return "error";
    }
    return "unknown";
}

/* ---- loop side ---- */

static void plugin_log(plugin *pl, pc_log_level level, const char *source, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void plugin_log(plugin *pl, pc_log_level level, const char *source, const char *fmt, ...)
{
    char raw[LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof raw ? sizeof raw - 1 : (size_t)n;
    char *msg = pc_utf8_sanitize(raw, len);

    int slot = (pl->log_head + pl->log_count) % LOG_RING;
    if (pl->log_count == LOG_RING) {
        slot = pl->log_head;
        free(pl->logs[slot].msg);
        pl->log_head = (pl->log_head + 1) % LOG_RING;
    } else {
        pl->log_count++;
    }
    pl->logs[slot] = (log_entry){pc_now_ms(), pc_log_level_name(level), source, msg};

    json_t *fields = json_pack("{s:s,s:s}", "plugin", pl->key, "source", source);
    pc_log_fields(level, fields, "[plugin %s] %s", pl->key, msg);
    json_decref(fields);
}

static void set_error(plugin *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(plugin *pl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pl->last_error, sizeof pl->last_error, fmt, ap);
    va_end(ap);
    pl->has_error = true;
}

static void signal_list(waiter_node **list, int state, const char *err)
{
    waiter_node *n = *list;
    *list = NULL;
    while (n) {
        waiter_node *next = n->next;
        if (n->state_out)
            *n->state_out = state;
        if (n->err_out)
            snprintf(n->err_out, 1024, "%s", err ? err : "");
        pc_waiter_signal(n->w);
        free(n);
        n = next;
    }
}

static void pending_closed(uv_handle_t *h)
{
    pending *p = h->data;
    free(p->method);
    free(p->params_text);
    free(p);
}

static void list_push(pending **list, pending *p)
{
    p->prev = NULL;
    p->next = *list;
    if (*list)
        (*list)->prev = p;
    *list = p;
    p->list = list;
}

static void list_unlink(pending *p)
{
    if (!p->list)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        *p->list = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->list = NULL;
}

static void maybe_finish_drain(plugin *pl);

/* Completes p exactly once: unlinks it, reports, frees it via its timer. */
static void pending_complete(pending *p, json_t *result, const pc_error_t *err)
{
    plugin *pl = p->pl;
    list_unlink(p);
    uv_timer_stop(&p->timer);
    p->done(p, result, err);
    uv_close((uv_handle_t *)&p->timer, pending_closed);
    if (pl)
        maybe_finish_drain(pl);
}

static void fail_list(pending **list, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_list(pending **list, int status, int code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    while (*list) {
        pending *p = *list;
        pc_error_t e = PC_ERROR_INIT;
        pc_error_set(&e, status, "%s", msg);
        e.rpc_code = code;
        pending_complete(p, NULL, &e);
        pc_error_clear(&e);
    }
}

static void on_write(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as the worker's exit */
    free(req->data);
    free(req);
}

static void proc_write(proc *pr, char *data, size_t len)
{
    if (!pr || pr->exited || pr->doomed || uv_is_closing((uv_handle_t *)&pr->in)) {
        free(data);
        return;
    }
    uv_write_t *req = pc_xmalloc(sizeof *req);
    req->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    if (uv_write(req, (uv_stream_t *)&pr->in, &b, 1, on_write) < 0) {
        free(data);
        free(req);
    }
}

static void pending_send(plugin *pl, pending *p)
{
    p->id = ++pl->next_id;
    char *line = pc_xasprintf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"%s\",\"params\":%s}\n",
                              (long long)p->id, p->method, p->params_text ? p->params_text : "{}");
    free(p->params_text);
    p->params_text = NULL;
    list_push(&pl->sent, p);
    proc_write(pl->proc, line, strlen(line));
}

static void on_pending_timeout(uv_timer_t *t)
{
    pending *p = t->data;
    pc_error_t e = PC_ERROR_INIT;
    pc_error_set(&e, 504, "plugin %s: %s timed out after %lld ms", p->pl->key, p->method,
                 (long long)p->timeout_ms);
    e.rpc_code = PC_RPC_TIMEOUT;
    /* The entry is dropped now; an answer arriving later finds no id and is
     * logged and ignored. */
    plugin_log(p->pl, PC_LOG_WARN, "host", "%s (id %lld) timed out after %lld ms", p->method,
               (long long)p->id, (long long)p->timeout_ms);
    pending_complete(p, NULL, &e);
    pc_error_clear(&e);
}

static pending *pending_new(plugin *pl, const char *method, char *params_text, int64_t timeout_ms,
                            pending_done_fn done, void *ud)
{
    pending *p = pc_xcalloc(1, sizeof *p);
    p->pl = pl;
    p->method = pc_xstrdup(method);
    p->params_text = params_text;
    p->timeout_ms = timeout_ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : timeout_ms;
    p->done = done;
    p->ud = ud;
    uv_timer_init(pc_loop_uv(pl->host->loop), &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_pending_timeout, (uint64_t)p->timeout_ms, 0);
    return p;
}

static void plugin_timer(plugin *pl, timer_action a, int64_t ms);
static void spawn_worker(plugin *pl);
static void send_shutdown(plugin *pl);
static void term_worker(plugin *pl);

static void maybe_finish_drain(plugin *pl)
{
    if (pl->state == PC_WORKER_STOPPING && !pl->shutdown_sent && !pl->sent && pl->proc &&
        pl->timer_action == T_DRAIN)
        send_shutdown(pl);
}

static void kill_group(proc *pr, int sig)
{
    if (pr && !pr->exited && pr->pid > 0)
        kill(-pr->pid, sig);
}

/* The worker misbehaved or failed initialize: kill it; its exit then takes
 * the crash path with this reason. */
static void doom(proc *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void doom(proc *pr, const char *fmt, ...)
{
    if (pr->doomed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pr->kill_reason, sizeof pr->kill_reason, fmt, ap);
    va_end(ap);
    pr->doomed = true;
    if (pr->pl)
        plugin_log(pr->pl, PC_LOG_ERROR, "host", "killing worker: %s", pr->kill_reason);
    kill_group(pr, SIGKILL);
}

/* -- incoming messages -- */

static void answer_worker_request(plugin *pl, json_t *id, const char *method)
{
    json_t *resp = json_pack("{s:s,s:O,s:{s:i,s:s+}}", "jsonrpc", "2.0", "id", id, "error", "code",
                             PC_RPC_METHOD_NOT_FOUND, "message", "Unknown method: ", method);
    if (!resp)
        return;
    char *text = pc_json_dumps(resp);
    json_decref(resp);
    char *line = pc_xasprintf("%s\n", text);
    free(text);
    proc_write(pl->proc, line, strlen(line));
}

static void handle_log_notification(plugin *pl, json_t *params)
{
    const char *lvl = pc_json_str(params, "level");
    const char *msg = pc_json_str(params, "message");
    pc_log_level level = PC_LOG_INFO;
    if (lvl && !strcmp(lvl, "error"))
        level = PC_LOG_ERROR;
    else if (lvl && !strcmp(lvl, "warn"))
        level = PC_LOG_WARN;
    else if (lvl && !strcmp(lvl, "debug"))
        level = PC_LOG_DEBUG;
    plugin_log(pl, level, "worker", "%s", msg ? msg : "(no message)");
}

static pending *find_sent(plugin *pl, int64_t id)
{
    for (pending *p = pl->sent; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

/* execute.log {requestId?, stream, chunk}: a piece of the output of an
 * environmentExecute in flight. Without requestId (the upstream shape) it
 * can only belong to the worker's one execute in flight; with several it is
 * dropped rather than given to the wrong run. */
static void handle_execute_log(plugin *pl, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    const char *stream = pc_json_str(params, "stream");
    json_t *chunk = json_object_get(params, "chunk");
    if (!stream || (strcmp(stream, "stdout") != 0 && strcmp(stream, "stderr") != 0) ||
        !json_is_string(chunk)) {
        plugin_log(pl, PC_LOG_DEBUG, "host", "ignoring malformed execute.log notification");
        return;
    }
    pending *p = NULL;
    if (json_is_integer(rid)) {
        p = find_sent(pl, json_integer_value(rid));
    } else if (!rid || json_is_null(rid)) {
        for (pending *q = pl->sent; q; q = q->next)
            if (!strcmp(q->method, "environmentExecute")) {
                if (p) {
                    p = NULL;
                    break;
                }
                p = q;
            }
    }
    if (!p || strcmp(p->method, "environmentExecute") != 0) {
        plugin_log(pl, PC_LOG_DEBUG, "host", "ignoring execute.log for no execute in flight");
        return;
    }
    if (p->on_chunk)
        p->on_chunk(p->chunk_ud, stream, json_string_value(chunk), json_string_length(chunk));
}

static void handle_line(proc *pr, const char *line, size_t len)
{
    plugin *pl = pr->pl;
    if (!pl || pr->doomed)
        return;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    json_error_t je;
    json_t *msg = json_loadb(line, len, JSON_DECODE_ANY, &je);
    if (!msg || !json_is_object(msg)) {
        plugin_log(pl, PC_LOG_WARN, "host", "ignoring stdout line that is not a JSON-RPC message: %.200s",
                   line);
        json_decref(msg);
        return;
    }
    const char *ver = pc_json_str(msg, "jsonrpc");
    if (!ver || strcmp(ver, "2.0") != 0) {
        plugin_log(pl, PC_LOG_WARN, "host", "ignoring message without jsonrpc \"2.0\": %.200s", line);
        json_decref(msg);
        return;
    }
    json_t *id = json_object_get(msg, "id");
    const char *method = pc_json_str(msg, "method");
    if (method) {
        if (id && !json_is_null(id)) {
            plugin_log(pl, PC_LOG_DEBUG, "host", "worker called unsupported host method %.100s",
                       method);
            answer_worker_request(pl, id, method);
        } else if (!strcmp(method, "log")) {
            handle_log_notification(pl, json_object_get(msg, "params"));
        } else if (!strcmp(method, "execute.log")) {
            handle_execute_log(pl, json_object_get(msg, "params"));
        } else {
            plugin_log(pl, PC_LOG_DEBUG, "host", "ignoring notification %.100s", method);
        }
        json_decref(msg);
        return;
    }
    if (!json_is_integer(id)) {
        plugin_log(pl, PC_LOG_WARN, "host", "ignoring response with a non-numeric id: %.200s", line);
        json_decref(msg);
        return;
    }
    pending *p = find_sent(pl, json_integer_value(id));
    if (!p) {
        plugin_log(pl, PC_LOG_WARN, "host",
                   "ignoring response to unknown or already answered request id %lld",
                   (long long)json_integer_value(id));
        json_decref(msg);
        return;
    }
    json_t *error = json_object_get(msg, "error");
    if (error) {
        pc_error_t e = PC_ERROR_INIT;
        const char *m = pc_json_str(error, "message");
        json_t *code = json_object_get(error, "code");
        _cleanup_free_ char *clean = m ? pc_utf8_sanitize(m, strlen(m)) : NULL;
        pc_error_set(&e, 502, "%s", clean ? clean : "plugin worker returned an error");
        e.rpc_code = json_is_integer(code) ? (int)json_integer_value(code) : PC_RPC_UNKNOWN;
        json_t *data = json_object_get(error, "data");
        if (data)
            pc_error_details(&e, json_deep_copy(data));
        pending_complete(p, NULL, &e);
        pc_error_clear(&e);
    } else {
        /* Detach the result from the message so that the receiving thread
         * owns the only reference. */
        json_t *result = json_object_get(msg, "result");
        result = result ? json_incref(result) : json_null();
        json_object_del(msg, "result");
        pending_complete(p, result, NULL);
    }
    json_decref(msg);
}

static void feed_stdout(proc *pr, const char *data, size_t n)
{
    while (n > 0 && !pr->doomed) {
        const char *nl = memchr(data, '\n', n);
        size_t seg = nl ? (size_t)(nl - data) : n;
        pc_error_t e = PC_ERROR_INIT;
        if (nl && pr->line.len == 0) {
            handle_line(pr, data, seg); /* the common case: no copy */
        } else if (pc_buf_append(&pr->line, data, seg, &e) < 0) {
            pc_error_clear(&e);
            doom(pr, "stdout line exceeds %zu bytes", pr->line.max);
            pc_buf_release(&pr->line);
            return;
        } else if (nl) {
            handle_line(pr, pr->line.data, pr->line.len);
            pc_buf_reset(&pr->line);
        }
        if (!nl)
            return;
        data = nl + 1;
        n -= seg + 1;
    }
}

static void tail_append(plugin *pl, const char *s, size_t n)
{
    if (n >= STDERR_TAIL) {
        memcpy(pl->tail, s + n - STDERR_TAIL, STDERR_TAIL);
        pl->tail_len = STDERR_TAIL;
        return;
    }
    if (pl->tail_len + n > STDERR_TAIL) {
        size_t drop = pl->tail_len + n - STDERR_TAIL;
        memmove(pl->tail, pl->tail + drop, pl->tail_len - drop);
        pl->tail_len -= drop;
    }
    memcpy(pl->tail + pl->tail_len, s, n);
    pl->tail_len += n;
}

static void flush_errline(proc *pr)
{
    if (pr->pl && (pr->errlen > 0 || pr->errline_cut))
        plugin_log(pr->pl, PC_LOG_INFO, "stderr", "%.*s%s", (int)pr->errlen, pr->errline,
                   pr->errline_cut ? " [line truncated]" : "");
    pr->errlen = 0;
    pr->errline_cut = false;
}

static void feed_stderr(proc *pr, const char *data, size_t n)
{
    if (pr->pl)
        tail_append(pr->pl, data, n);
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            flush_errline(pr);
        } else if (pr->errlen < sizeof pr->errline) {
            pr->errline[pr->errlen++] = data[i];
        } else {
            pr->errline_cut = true;
        }
    }
}

static void proc_handle_closed(uv_handle_t *h)
{
    proc *pr = h->data;
    if (--pr->handles_open == 0) {
        if (pr->pidfd >= 0)
            close(pr->pidfd);
        pc_buf_release(&pr->line);
        free(pr);
    }
}

static void proc_close_all(proc *pr)
{
    uv_handle_t *watch = pr->pidfd >= 0 ? (uv_handle_t *)&pr->exitw : (uv_handle_t *)&pr->tick;
    uv_handle_t *hs[] = {pr->watching ? watch : NULL, (uv_handle_t *)&pr->in,
                         (uv_handle_t *)&pr->out, (uv_handle_t *)&pr->err,
                         (uv_handle_t *)&pr->grace};
    for (size_t i = 0; i < PC_ARRAY_LEN(hs); i++)
        if (hs[i] && !uv_is_closing(hs[i]))
            uv_close(hs[i], proc_handle_closed);
}

static int64_t crashes_in_window(plugin *pl, int64_t now)
{
    int n = 0;
    for (int i = 0; i < pl->crash_count; i++) {
        int idx = (pl->crash_head - 1 - i + CRASH_RING) % CRASH_RING;
        if (now - pl->crash_times[idx] <= pl->host->o.crash_window_ms)
            n++;
    }
    return n;
}

static void plugin_stopped(plugin *pl);
static bool transition(plugin *pl, worker_event ev, const char *reason);

/* The worker is gone (exited, or never started). */
static void worker_gone(plugin *pl, const char *reason)
{
    pl->proc = NULL;
    if (pl->supported) {
        json_decref(pl->supported);
        pl->supported = NULL;
    }
    uv_timer_stop(&pl->timer);
    pl->timer_action = T_NONE;
    transition(pl, EV_EXIT, reason);
}

/* Every call still waiting on the worker that just went away fails. */
static void fail_all(plugin *pl, const char *reason)
{
    fail_list(&pl->sent, 502, PC_RPC_WORKER_UNAVAILABLE, "plugin %s worker %s", pl->key, reason);
    fail_list(&pl->queued, 502, PC_RPC_WORKER_UNAVAILABLE, "plugin %s worker %s", pl->key,
              reason);
}

/* A_CRASH: counts the crash, keeps the reason with the stderr tail and
 * decides: retry after a backoff, or give up. */
static void on_crash(plugin *pl, const char *reason)
{
    fail_all(pl, reason);
    int64_t now = pc_mono_ms();
    pl->crash_times[pl->crash_head] = now;
    pl->crash_head = (pl->crash_head + 1) % CRASH_RING;
    if (pl->crash_count < CRASH_RING)
        pl->crash_count++;
    pl->crash_burst = crashes_in_window(pl, now);
    /* The last stderr is what an operator needs to see why. */
    char tail[STDERR_TAIL + 1];
    memcpy(tail, pl->tail, pl->tail_len);
    tail[pl->tail_len] = '\0';
    char *t = tail;
    size_t room = sizeof pl->last_error - strlen(reason) - 128;
    if (strlen(t) > room)
        t += strlen(t) - room;
    set_error(pl, "plugin worker %s%s%s", reason, *t ? "; stderr: " : "", t);
    plugin_log(pl, PC_LOG_ERROR, "host", "worker crashed: %s", reason);
    transition(pl, pl->crash_burst >= pl->host->o.crash_limit ? EV_GIVE_UP : EV_RETRY, reason);
}

/* A_GIVE_UP */
static void on_give_up(plugin *pl)
{
    int64_t n = pl->crash_burst;
    plugin_log(pl, PC_LOG_ERROR, "host",
               "giving up after %lld crashes within %lld ms; re-enable the plugin to retry",
               (long long)n, (long long)pl->host->o.crash_window_ms);
    char msg[sizeof pl->last_error];
    snprintf(msg, sizeof msg, "%s", pl->last_error);
    set_error(pl, "crashed %lld times within %lld s: %s", (long long)n,
              (long long)(pl->host->o.crash_window_ms / 1000), msg);
}

/* A_BACKOFF: 1 s (backoff_initial_ms), doubling per crash in the window. */
static void on_backoff(plugin *pl)
{
    int64_t delay = pl->host->o.backoff_initial_ms;
    for (int64_t i = 1; i < pl->crash_burst && delay < pl->host->o.backoff_max_ms; i++)
        delay *= 2;
    if (delay > pl->host->o.backoff_max_ms)
        delay = pl->host->o.backoff_max_ms;
    pl->backoff_ms = delay;
    plugin_timer(pl, T_RESTART, delay);
}

static void proc_finalize(proc *pr)
{
    if (pr->finalized)
        return;
    pr->finalized = true;
    flush_errline(pr);
    plugin *pl = pr->pl;
    pr->pl = NULL;
    char reason[700];
    if (pr->kill_reason[0])
        snprintf(reason, sizeof reason, "was killed: %s", pr->kill_reason);
    else if (pr->term_signal)
        snprintf(reason, sizeof reason, "was killed by signal %d (%s)", pr->term_signal,
                 strsignal(pr->term_signal));
    else
        snprintf(reason, sizeof reason, "exited with code %lld", (long long)pr->exit_status);
    proc_close_all(pr);
    if (pl)
        worker_gone(pl, reason);
}

static void on_grace(uv_timer_t *t)
{
    proc_finalize(t->data);
}

static void on_exit_cb(proc *pr, int64_t status, int sig)
{
    pr->exited = true;
    pr->exit_status = status;
    pr->term_signal = sig;
    /* Anything the worker left behind in its process group goes with it: a
     * crashed provider must not leave orphaned commands running. */
    if (pr->pid > 0)
        kill(-pr->pid, SIGKILL);
    /* The pidfd may report the exit before the last output is read: the
     * answer to a call, or the stderr lines that say why it died. */
    if (pr->out_done && pr->err_done)
        proc_finalize(pr);
    else
        uv_timer_start(&pr->grace, on_grace, EXIT_GRACE_MS, 0);
}

/* Reaps the worker if it has exited: true with its status, and the
 * watcher stopped before anything (which may close it) runs. */
static bool proc_reap(proc *pr, int64_t *status, int *sig)
{
    int ws = 0;
    pid_t r;
    do
        r = waitpid(pr->pid, &ws, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (pr->pidfd >= 0)
        uv_poll_stop(&pr->exitw);
    else
        uv_timer_stop(&pr->tick);
    *status = r < 0 ? -1 : WIFEXITED(ws) ? WEXITSTATUS(ws) : 0; /* r < 0: reaped elsewhere */
    *sig = r > 0 && WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
    return true;
}

static void on_exit_seen(proc *pr)
{
    int64_t status;
    int sig;
    if (!pr->exited && proc_reap(pr, &status, &sig))
        on_exit_cb(pr, status, sig);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    on_exit_seen(h->data);
}

static void on_exit_tick(uv_timer_t *t) { on_exit_seen(t->data); }

static void alloc_out(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    proc *pr = h->data;
    *b = uv_buf_init(pr->rbuf_out, sizeof pr->rbuf_out);
}

static void alloc_err(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    (void)sz;
    proc *pr = h->data;
    *b = uv_buf_init(pr->rbuf_err, sizeof pr->rbuf_err);
}

static void on_out(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    proc *pr = s->data;
    if (n > 0) {
        if (!pr->doomed)
            feed_stdout(pr, b->base, (size_t)n);
        if (pr->doomed) {
            uv_read_stop(s);
            pr->out_done = true;
        }
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        pr->out_done = true;
        if (pr->exited && pr->err_done)
            proc_finalize(pr);
    }
}

static void on_err(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    proc *pr = s->data;
    if (n > 0) {
        feed_stderr(pr, b->base, (size_t)n);
        return;
    }
    if (n < 0) {
        uv_read_stop(s);
        pr->err_done = true;
        if (pr->exited && pr->out_done)
            proc_finalize(pr);
    }
}

static void on_init_done(pending *p, json_t *result, const pc_error_t *err)
{
    plugin *pl = p->pl;
    proc *pr = pl->proc;
    if (pl->state != PC_WORKER_STARTING || !pr) {
        json_decref(result);
        return;
    }
    if (err) {
        set_error(pl, "initialize failed: %s", err->msg);
        doom(pr, "initialize failed: %s", err->msg);
        return;
    }
    json_t *ok = json_object_get(result, "ok");
    if (!json_is_object(result) || json_is_false(ok)) {
        set_error(pl, "initialize failed: the worker answered ok:false");
        doom(pr, "initialize answered ok:false");
        json_decref(result);
        return;
    }
    json_t *sm = json_object_get(result, "supportedMethods");
    pl->supported = json_array();
    size_t i;
    json_t *v;
    if (json_is_array(sm))
        json_array_foreach(sm, i, v) if (json_is_string(v)) json_array_append(pl->supported, v);
    json_decref(result);
    pl->has_error = false;
    pl->last_error[0] = '\0';
    transition(pl, EV_READY, NULL);
}

/* A_READY: the worker answered initialize; send what waited for it. */
static void on_ready(plugin *pl)
{
    plugin_log(pl, PC_LOG_INFO, "host", "worker running (pid %d)", pl->proc->pid);
    /* Oldest first: the queue is a stack, so reverse it. */
    pending *q = pl->queued, *rev = NULL;
    pl->queued = NULL;
    while (q) {
        pending *next = q->next;
        q->list = NULL;
        q->next = rev;
        rev = q;
        q = next;
    }
    while (rev) {
        pending *next = rev->next;
        rev->next = rev->prev = NULL;
        pending_send(pl, rev);
        rev = next;
    }
}

static void ignore_done(pending *p, json_t *result, const pc_error_t *err)
{
    (void)p;
    (void)err;
    json_decref(result);
}

static char *env_entry(const char *k, const char *v) { return pc_xasprintf("%s=%s", k, v); }

static bool env_name_ok(const char *k)
{
    if (!k || !*k || (*k >= '0' && *k <= '9'))
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

static bool env_reserved(const char *k)
{
    static const char *const r[] = {"PATH", "NODE_PATH", "PAPERCLIP_PLUGIN_ID", "NODE_ENV", "TZ",
                                     NULL};
    for (size_t i = 0; r[i]; i++)
        if (!strcmp(r[i], k))
            return true;
    return false;
}

static void spawn_worker(plugin *pl)
{
    pc_plugin_host *h = pl->host;
    uv_loop_t *uv = pc_loop_uv(h->loop);
    pl->shutdown_sent = false;
    pl->tail_len = 0;

    if (pl->is_js && !h->have_node) {
        char reason[256];
        snprintf(reason, sizeof reason, "could not start: node is not installed");
        plugin_log(pl, PC_LOG_ERROR, "host", "%s", reason);
        worker_gone(pl, reason);
        return;
    }

    /* The worker's whole environment: nothing of the daemon's own leaks in
     * (database URLs, API keys...), only what a worker needs plus the
     * values configured for this plugin. */
    char *envp[80];
    size_t ne = 0;
    envp[ne++] = env_entry("PATH", h->path_env);
    envp[ne++] = env_entry("PAPERCLIP_PLUGIN_ID", pl->key);
    envp[ne++] = env_entry("TZ", h->tz_env);
    if (pl->is_js) {
        envp[ne++] = env_entry("NODE_ENV", "production");
        if (h->node_path_env[0])
            envp[ne++] = env_entry("NODE_PATH", h->node_path_env);
    }
    const char *k;
    json_t *v;
    json_object_foreach(pl->env, k, v)
    {
        if (ne >= PC_ARRAY_LEN(envp) - 1)
            break;
        if (json_is_string(v) && env_name_ok(k) && !env_reserved(k))
            envp[ne++] = env_entry(k, json_string_value(v));
    }
    envp[ne] = NULL;

    const char *args[3];
    if (pl->is_js) {
        args[0] = h->node;
        args[1] = pl->worker;
        args[2] = NULL;
    } else {
        args[0] = pl->worker;
        args[1] = NULL;
    }

    /* Its own session and process group (pc_spawn_start always makes one),
     * so stop and crash cleanup can signal the worker together with
     * everything it started. */
    pc_spawn_opts so = {
        .file = args[0],
        .argv = args,
        .envp = envp,
        .cwd = pl->dir,
        .stdio = {PC_SPAWN_IO_PIPE, PC_SPAWN_IO_PIPE, PC_SPAWN_IO_PIPE},
    };
    pc_spawn_proc sp;
    pc_spawn_stage stage;
    int e = pc_spawn_start(&so, &sp, &stage);
    for (size_t i = 0; i < ne; i++)
        free(envp[i]);
    if (e) {
        char reason[PATH_MAX + 128];
        snprintf(reason, sizeof reason, "could not start %s: %s", args[0],
                 uv_strerror(uv_translate_sys_error(e)));
        worker_gone(pl, reason);
        return;
    }

    proc *pr = pc_xcalloc(1, sizeof *pr);
    pr->pl = pl;
    pr->pid = sp.pid;
    pr->pidfd = sp.pidfd;
    pc_buf_init(&pr->line, h->o.max_line);
    uv_pipe_init(uv, &pr->in, 0);
    uv_pipe_init(uv, &pr->out, 0);
    uv_pipe_init(uv, &pr->err, 0);
    uv_timer_init(uv, &pr->grace);
    pr->in.data = pr->out.data = pr->err.data = pr->grace.data = pr;
    pr->exitw.data = pr->tick.data = pr;
    pr->handles_open = 4;
    int rc = pr->pidfd >= 0 ? uv_poll_init(uv, &pr->exitw, pr->pidfd)
                            : uv_timer_init(uv, &pr->tick);
    if (rc == 0) {
        pr->watching = true;
        pr->handles_open++;
    }
    if (rc == 0 && (rc = uv_pipe_open(&pr->in, sp.fd[0])) == 0)
        sp.fd[0] = -1;
    if (rc == 0 && (rc = uv_pipe_open(&pr->out, sp.fd[1])) == 0)
        sp.fd[1] = -1;
    if (rc == 0 && (rc = uv_pipe_open(&pr->err, sp.fd[2])) == 0)
        sp.fd[2] = -1;
    if (rc == 0)
        rc = pr->pidfd >= 0 ? uv_poll_start(&pr->exitw, UV_READABLE, on_pidfd)
                            : uv_timer_start(&pr->tick, on_exit_tick, EXIT_POLL_MS, EXIT_POLL_MS);
    if (rc < 0) {
        /* Started but cannot be watched: stop it before reporting. */
        sp.pidfd = -1; /* closed with pr */
        pc_spawn_proc_close(&sp);
        pc_spawn_kill_group(sp.pid, SIGKILL);
        while (waitpid(sp.pid, NULL, 0) < 0 && errno == EINTR) {
        }
        char reason[PATH_MAX + 128];
        snprintf(reason, sizeof reason, "could not watch %s: %s", args[0], uv_strerror(rc));
        pr->pl = NULL;
        pr->finalized = true;
        proc_close_all(pr);
        worker_gone(pl, reason);
        return;
    }
    pl->proc = pr;
    uv_read_start((uv_stream_t *)&pr->out, alloc_out, on_out);
    uv_read_start((uv_stream_t *)&pr->err, alloc_err, on_err);

    json_t *params = json_pack("{s:O,s:O,s:{s:s,s:s},s:i}", "manifest", pl->manifest, "config",
                               pl->config, "instanceInfo", "instanceId", h->instance_id,
                               "hostVersion", h->host_version, "apiVersion", 1);
    pending *p = pending_new(pl, "initialize", pc_json_dumps(params), h->o.init_timeout_ms,
                             on_init_done, NULL);
    json_decref(params);
    pending_send(pl, p);
}

static void on_plugin_timer(uv_timer_t *t)
{
    plugin *pl = t->data;
    timer_action a = pl->timer_action;
    pl->timer_action = T_NONE;
    switch (a) {
    case T_RESTART:
        transition(pl, EV_RESTART, NULL);
        break;
    case T_DRAIN:
        plugin_log(pl, PC_LOG_WARN, "host",
                   "calls still in flight after %lld ms; terminating the worker",
                   (long long)pl->host->o.drain_timeout_ms);
        term_worker(pl);
        break;
    case T_SHUTDOWN_WAIT:
        plugin_log(pl, PC_LOG_WARN, "host", "worker did not exit after shutdown; sending SIGTERM");
        term_worker(pl);
        break;
    case T_TERM_GRACE:
        plugin_log(pl, PC_LOG_WARN, "host", "worker ignored SIGTERM; sending SIGKILL");
        kill_group(pl->proc, SIGKILL);
        break;
    case T_NONE:
        break;
    }
}

static void plugin_timer(plugin *pl, timer_action a, int64_t ms)
{
    pl->timer_action = a;
    uv_timer_start(&pl->timer, on_plugin_timer, (uint64_t)(ms < 0 ? 0 : ms), 0);
}

static void send_shutdown(plugin *pl)
{
    pl->shutdown_sent = true;
    pending *p = pending_new(pl, "shutdown", NULL, pl->host->o.shutdown_timeout_ms, ignore_done,
                             NULL);
    pending_send(pl, p);
    plugin_timer(pl, T_SHUTDOWN_WAIT, pl->host->o.shutdown_timeout_ms);
}

static void term_worker(plugin *pl)
{
    if (!pl->proc)
        return;
    kill_group(pl->proc, SIGTERM);
    plugin_timer(pl, T_TERM_GRACE, pl->host->o.term_grace_ms);
}

static void plugin_closed(uv_handle_t *h)
{
    plugin *pl = h->data;
    pc_plugin_host *host = pl->host;
    signal_list(&pl->settle_waiters, PC_WORKER_STOPPED, NULL);
    signal_list(&pl->gone_waiters, PC_WORKER_STOPPED, NULL);
    for (int i = 0; i < pl->log_count; i++)
        free(pl->logs[(pl->log_head + i) % LOG_RING].msg);
    json_decref(pl->manifest);
    json_decref(pl->config);
    json_decref(pl->env);
    json_decref(pl->supported);
    free(pl->key);
    free(pl->id);
    free(pl->dir);
    free(pl->worker);
    free(pl);
    host->open_plugins--;
    if (host->stopping && host->open_plugins == 0 && host->stop_waiter) {
        pc_waiter *w = host->stop_waiter;
        host->stop_waiter = NULL;
        pc_waiter_signal(w);
    }
}

/* Called once the plugin has no worker and is in `stopped`. */
static void plugin_stopped(plugin *pl)
{
    if (!pl->removing) {
        signal_list(&pl->gone_waiters, PC_WORKER_STOPPED, NULL);
        return;
    }
    pc_plugin_host *h = pl->host;
    for (plugin **pp = &h->plugins; *pp; pp = &(*pp)->next) {
        if (*pp == pl) {
            *pp = pl->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&pl->timer, plugin_closed);
}

static void begin_stop(plugin *pl) { transition(pl, EV_STOP, NULL); }

/* ---- the worker lifecycle ----
 *
 * Every change of pl->state goes through transition(), driven by the table
 * below (documented in docs/plugins.md): for each state and event, the next
 * state and the action to run once the state is set. A pair that is not in
 * the table is a bug elsewhere: it is logged and changes nothing. */

typedef enum worker_action {
    A_NONE,
    A_SPAWN,         /* start a worker process */
    A_RESPAWN,       /* the same, counted as a restart */
    A_READY,         /* send the calls queued during start */
    A_CRASH,         /* fail calls, count the crash, then RETRY or GIVE_UP */
    A_BACKOFF,       /* arm the restart timer */
    A_GIVE_UP,       /* keep why in lastError */
    A_STOP_STARTING, /* fail queued calls, SIGTERM the group (initialize may race a shutdown) */
    A_DRAIN,         /* fail queued calls, let in-flight ones finish, then shutdown */
    A_EXITED,        /* a stopping worker exited: fail what is left, report stopped */
    A_STOPPED,       /* no worker: cancel any restart, report stopped */
} worker_action;

typedef struct worker_step {
    bool legal;
    pc_worker_state next;
    worker_action action;
} worker_step;

#define STEP(next, action) {true, PC_WORKER_##next, action}

static const worker_step lifecycle[PC_WORKER_ERROR + 1][EV__COUNT] = {
    [PC_WORKER_STOPPED] = {[EV_START] = STEP(STARTING, A_SPAWN),
                           [EV_STOP] = STEP(STOPPED, A_STOPPED)},
    [PC_WORKER_STARTING] = {[EV_READY] = STEP(RUNNING, A_READY),
                            [EV_EXIT] = STEP(CRASHED, A_CRASH),
                            [EV_STOP] = STEP(STOPPING, A_STOP_STARTING)},
    [PC_WORKER_RUNNING] = {[EV_EXIT] = STEP(CRASHED, A_CRASH),
                           [EV_STOP] = STEP(STOPPING, A_DRAIN)},
    [PC_WORKER_STOPPING] = {[EV_EXIT] = STEP(STOPPED, A_EXITED),
                            [EV_STOP] = STEP(STOPPING, A_NONE)},
    [PC_WORKER_CRASHED] = {[EV_RETRY] = STEP(BACKOFF, A_BACKOFF),
                           [EV_GIVE_UP] = STEP(ERROR, A_GIVE_UP),
                           [EV_STOP] = STEP(STOPPED, A_STOPPED)},
    [PC_WORKER_BACKOFF] = {[EV_RESTART] = STEP(STARTING, A_RESPAWN),
                           [EV_STOP] = STEP(STOPPED, A_STOPPED)},
    [PC_WORKER_ERROR] = {[EV_STOP] = STEP(STOPPED, A_STOPPED)},
};

#undef STEP

static const char *worker_event_name(worker_event ev)
{
    switch (ev) {
    case EV_START: return "start";
    case EV_READY: return "ready";
    case EV_EXIT: return "exit";
    case EV_RETRY: return "retry";
    case EV_GIVE_UP: return "give-up";
    case EV_RESTART: return "restart";
    case EV_STOP: return "stop";
    case EV__COUNT: break;
    }
    return "unknown";
}

/* Applies ev to pl: sets the next state, wakes whoever waits for the end of
 * `starting`, runs the action. Returns false (and changes nothing) for a
 * pair the table does not allow. `reason` is the exit reason for EV_EXIT
 * and what follows it. */
static bool transition(plugin *pl, worker_event ev, const char *reason)
{
    pc_worker_state old = pl->state;
    const worker_step *st = (unsigned)old <= PC_WORKER_ERROR && (unsigned)ev < EV__COUNT
                                ? &lifecycle[old][ev]
                                : NULL;
    if (!st || !st->legal) {
        plugin_log(pl, PC_LOG_ERROR, "host", "ignoring event %s in state %s",
                   worker_event_name(ev), pc_worker_state_name(old));
        return false;
    }
    pl->state = st->next;
    if (old != st->next) {
        pc_debug("plugin %s: %s -> %s (%s)", pl->key, pc_worker_state_name(old),
                 pc_worker_state_name(st->next), worker_event_name(ev));
        if (old == PC_WORKER_STARTING)
            signal_list(&pl->settle_waiters, st->next, pl->has_error ? pl->last_error : NULL);
    }
    switch (st->action) {
    case A_NONE:
        break;
    case A_RESPAWN:
        pl->restart_count++;
        /* fall through */
    case A_SPAWN:
        spawn_worker(pl);
        break;
    case A_READY:
        on_ready(pl);
        break;
    case A_CRASH:
        on_crash(pl, reason ? reason : "exited");
        break;
    case A_BACKOFF:
        on_backoff(pl);
        break;
    case A_GIVE_UP:
        on_give_up(pl);
        break;
    case A_STOP_STARTING:
        fail_list(&pl->queued, 503, PC_RPC_WORKER_UNAVAILABLE, "plugin %s is stopping", pl->key);
        /* initialize is still in flight; shutdown now would race it. */
        term_worker(pl);
        break;
    case A_DRAIN:
        fail_list(&pl->queued, 503, PC_RPC_WORKER_UNAVAILABLE, "plugin %s is stopping", pl->key);
        /* Never send shutdown while calls are in flight: upstream's worker
         * exits without answering them. Let them finish first. */
        plugin_timer(pl, T_DRAIN, pl->host->o.drain_timeout_ms);
        maybe_finish_drain(pl);
        break;
    case A_EXITED:
        fail_all(pl, reason ? reason : "exited");
        plugin_log(pl, PC_LOG_INFO, "host", "worker stopped (%s)", reason ? reason : "exited");
        plugin_stopped(pl);
        break;
    case A_STOPPED:
        uv_timer_stop(&pl->timer);
        pl->timer_action = T_NONE;
        plugin_stopped(pl);
        break;
    }
    return true;
}

static plugin *find_plugin(pc_plugin_host *h, const char *key)
{
    for (plugin *pl = h->plugins; pl; pl = pl->next)
        if (!strcmp(pl->key, key))
            return pl;
    return NULL;
}

/* ---- tasks posted from other threads ---- */

typedef struct task {
    pc_waiter w;
    pc_plugin_host *host;
    pc_error_t err;
    /* add */
    plugin *newpl;
    int64_t wait_ms;
    int settle_state;
    char settle_err[1024];
    /* call */
    char *key, *method, *params_text;
    int64_t timeout_ms;
    json_t *result;
    pc_plugin_call_cb cb;
    pc_plugin_chunk_cb on_chunk;
    void *cb_ud;
    bool async;
    /* queries */
    json_t *out;
    const char *driver_key;
    pc_plugin_provider_info *info;
} task;

static void task_add(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    pc_plugin_host *h = t->host;
    plugin *pl = t->newpl;
    plugin *old = find_plugin(h, pl->key);
    if (h->stopping || old) {
        if (old)
            pc_error_set(&t->err, 409, "plugin %s is already %s", pl->key,
                         old->removing ? "being removed" : "registered");
        else
            pc_error_set(&t->err, 503, "the plugin host is stopping");
        pc_waiter_signal(&t->w);
        return; /* the caller frees newpl (never touched the loop) */
    }
    t->newpl = NULL;
    uv_timer_init(pc_loop_uv(h->loop), &pl->timer);
    pl->timer.data = pl;
    pl->next = h->plugins;
    h->plugins = pl;
    h->open_plugins++;
    if (t->wait_ms > 0) {
        waiter_node *n = pc_xcalloc(1, sizeof *n);
        n->w = &t->w;
        n->state_out = &t->settle_state;
        n->err_out = t->settle_err;
        n->next = pl->settle_waiters;
        pl->settle_waiters = n;
    }
    transition(pl, EV_START, NULL);
    if (t->wait_ms <= 0)
        pc_waiter_signal(&t->w);
}

static void task_remove(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    plugin *pl = find_plugin(t->host, t->key);
    if (!pl || pl->removing) {
        pc_error_set(&t->err, 404, "plugin %s is not registered", t->key);
        pc_waiter_signal(&t->w);
        return;
    }
    pl->removing = true;
    waiter_node *n = pc_xcalloc(1, sizeof *n);
    n->w = &t->w;
    n->next = pl->gone_waiters;
    pl->gone_waiters = n;
    begin_stop(pl);
}

static void task_stop_all(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    pc_plugin_host *h = t->host;
    h->stopping = true;
    if (h->open_plugins == 0) {
        pc_waiter_signal(&t->w);
        return;
    }
    h->stop_waiter = &t->w;
    plugin *pl = h->plugins;
    while (pl) {
        plugin *next = pl->next; /* begin_stop may unlink pl */
        pl->removing = true;
        begin_stop(pl);
        pl = next;
    }
}

static void call_done(pending *p, json_t *result, const pc_error_t *err)
{
    task *t = p->ud;
    if (t->async) {
        t->cb(t->cb_ud, result, err);
        free(t->key);
        free(t->method);
        free(t);
        return;
    }
    t->result = result;
    if (err) {
        pc_error_set(&t->err, err->status, "%s", err->msg);
        t->err.rpc_code = err->rpc_code;
        if (err->details)
            t->err.details = json_incref(err->details);
    }
    pc_waiter_signal(&t->w);
}

static void call_fail_now(task *t, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void call_fail_now(task *t, int status, int code, const char *fmt, ...)
{
    pc_error_t e = PC_ERROR_INIT;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_error_set(&e, status, "%s", msg);
    e.rpc_code = code;
    free(t->params_text);
    t->params_text = NULL;
    pending fake = {.ud = t};
    call_done(&fake, NULL, &e);
    pc_error_clear(&e);
}

static void task_call(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    pc_plugin_host *h = t->host;
    plugin *pl = h->stopping ? NULL : find_plugin(h, t->key);
    if (!pl || pl->removing) {
        call_fail_now(t, 404, PC_RPC_WORKER_UNAVAILABLE, "plugin %s is not installed", t->key);
        return;
    }
    if (pl->state != PC_WORKER_RUNNING && pl->state != PC_WORKER_STARTING) {
        call_fail_now(t, 503, PC_RPC_WORKER_UNAVAILABLE,
                      "plugin %s worker is not running (state: %s)", t->key,
                      pc_worker_state_name(pl->state));
        return;
    }
    pending *p = pending_new(pl, t->method, t->params_text, t->timeout_ms, call_done, t);
    t->params_text = NULL;
    p->on_chunk = t->on_chunk;
    p->chunk_ud = t->cb_ud;
    if (pl->state == PC_WORKER_RUNNING)
        pending_send(pl, p);
    else
        list_push(&pl->queued, p);
}

static json_t *status_json(plugin *pl)
{
    return json_pack("{s:s,s:s?,s:s,s:o,s:i,s:I,s:o,s:o,s:s#,s:I}", "pluginKey", pl->key,
                     "pluginId", pl->id, "state", pc_worker_state_name(pl->state), "pid",
                     pl->proc ? json_integer(pl->proc->pid) : json_null(), "restartCount",
                     pl->restart_count, "crashesInWindow",
                     (json_int_t)crashes_in_window(pl, pc_mono_ms()), "lastError",
                     pl->has_error ? json_string(pl->last_error) : json_null(),
                     "supportedMethods", pl->supported ? json_deep_copy(pl->supported) : json_array(),
                     "stderrTail", pl->tail, pl->tail_len, "backoffMs", (json_int_t)pl->backoff_ms);
}

static void task_status(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    plugin *pl = find_plugin(t->host, t->key);
    if (!pl)
        pc_error_set(&t->err, 404, "plugin %s is not registered", t->key);
    else {
        t->out = status_json(pl);
        if (!t->out) /* stderr tail was not valid UTF-8 */
        {
            _cleanup_free_ char *clean = pc_utf8_sanitize(pl->tail, pl->tail_len);
            size_t save = pl->tail_len;
            char saved[STDERR_TAIL];
            memcpy(saved, pl->tail, save);
            snprintf(pl->tail, sizeof pl->tail, "%s", clean);
            pl->tail_len = strlen(pl->tail);
            t->out = status_json(pl);
            memcpy(pl->tail, saved, save);
            pl->tail_len = save;
        }
    }
    pc_waiter_signal(&t->w);
}

static void task_logs(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    plugin *pl = find_plugin(t->host, t->key);
    if (!pl) {
        pc_error_set(&t->err, 404, "plugin %s is not registered", t->key);
    } else {
        t->out = json_array();
        for (int i = 0; i < pl->log_count; i++) {
            log_entry *e = &pl->logs[(pl->log_head + i) % LOG_RING];
            char iso[PC_ISO_LEN + 1];
            pc_iso8601(e->ts, iso);
            json_array_append_new(t->out, json_pack("{s:s,s:s,s:s,s:s}", "ts", iso, "level",
                                                    e->level, "source", e->source, "message",
                                                    e->msg));
        }
    }
    pc_waiter_signal(&t->w);
}

static bool supports(plugin *pl, const char *m)
{
    size_t i;
    json_t *v;
    if (!pl->supported)
        return false;
    json_array_foreach(pl->supported, i, v) if (!strcmp(json_string_value(v), m)) return true;
    return false;
}

static bool reuse_methods(plugin *pl)
{
    return supports(pl, "environmentResumeLease") && supports(pl, "environmentReleaseLease") &&
           supports(pl, "environmentDestroyLease");
}

static json_t *find_driver(plugin *pl, const char *driver_key)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(pl->manifest, "environmentDrivers"), i, d)
    {
        const char *k = pc_json_str(d, "driverKey");
        const char *kind = pc_json_str(d, "kind");
        if (k && kind && !strcmp(kind, "sandbox_provider") && (!driver_key || !strcmp(k, driver_key)))
            return d;
    }
    return NULL;
}

static void task_find_provider(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    plugin *best = NULL;
    json_t *bestd = NULL;
    for (plugin *pl = t->host->plugins; pl; pl = pl->next) {
        if (pl->removing)
            continue;
        json_t *d = find_driver(pl, t->driver_key);
        if (d && (!best || (pl->state == PC_WORKER_RUNNING && best->state != PC_WORKER_RUNNING))) {
            best = pl;
            bestd = d;
        }
    }
    if (!best) {
        pc_error_set(&t->err, 404,
                     "Sandbox provider \"%s\" is not installed or its plugin worker is not running.",
                     t->driver_key);
    } else {
        pc_plugin_provider_info *o = t->info;
        snprintf(o->plugin_key, sizeof o->plugin_key, "%s", best->key);
        snprintf(o->plugin_id, sizeof o->plugin_id, "%s", best->id ? best->id : "");
        snprintf(o->driver_key, sizeof o->driver_key, "%s", t->driver_key);
        const char *dn = pc_json_str(bestd, "displayName");
        const char *ds = pc_json_str(bestd, "description");
        snprintf(o->display_name, sizeof o->display_name, "%s", dn ? dn : t->driver_key);
        snprintf(o->description, sizeof o->description, "%s", ds ? ds : "");
        json_t *cs = json_object_get(bestd, "configSchema");
        o->config_schema = cs ? json_deep_copy(cs) : json_object();
        o->supports_reusable_leases = pc_json_bool(bestd, "supportsReusableLeases", false);
        o->reuse_methods_supported = reuse_methods(best);
        o->sync_methods_supported = supports(best, "environmentSyncIn") &&
                                    supports(best, "environmentSyncOut");
        o->running = best->state == PC_WORKER_RUNNING;
        o->state = best->state;
    }
    pc_waiter_signal(&t->w);
}

static void task_list_providers(pc_loop *loop, void *arg)
{
    (void)loop;
    task *t = arg;
    t->out = json_array();
    for (plugin *pl = t->host->plugins; pl; pl = pl->next) {
        if (pl->removing)
            continue;
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(pl->manifest, "environmentDrivers"), i, d)
        {
            const char *kind = pc_json_str(d, "kind");
            if (!kind || strcmp(kind, "sandbox_provider"))
                continue;
            json_t *cs = json_object_get(d, "configSchema");
            json_array_append_new(
                t->out,
                json_pack("{s:s,s:s,s:s?,s:s,s:o,s:o,s:b,s:b,s:s}", "driverKey",
                          pc_json_str(d, "driverKey"), "pluginKey", pl->key, "pluginId", pl->id,
                          "displayName", pc_json_str(d, "displayName"), "description",
                          pc_json_str(d, "description") ? json_string(pc_json_str(d, "description"))
                                                        : json_null(),
                          "configSchema", cs ? json_deep_copy(cs) : json_object(),
                          "supportsReusableLeases",
                          pc_json_bool(d, "supportsReusableLeases", false) && reuse_methods(pl),
                          "running", pl->state == PC_WORKER_RUNNING, "state",
                          pc_worker_state_name(pl->state)));
        }
    }
    pc_waiter_signal(&t->w);
}

/* ---- public API ---- */

static int run_task(pc_plugin_host *h, pc_loop_fn fn, task *t, pc_error_t *err)
{
    if (!h)
        return pc_error_set(err, 503, "the plugin host is not running");
    if (pc_loop_on_thread(h->loop))
        return pc_error_set(err, 500, "plugin host: blocking call on the runtime loop thread");
    t->host = h;
    pc_waiter_init(&t->w);
    if (pc_loop_post(h->loop, fn, t) < 0) {
        pc_waiter_destroy(&t->w);
        return pc_error_set(err, 503, "the runtime loop is stopping");
    }
    pc_waiter_wait(&t->w, -1);
    pc_waiter_destroy(&t->w);
    if (pc_error_is_set(&t->err)) {
        pc_error_move(err, &t->err);
        return -1;
    }
    return 0;
}

static int64_t opt(int64_t v, int64_t dflt) { return v > 0 ? v : dflt; }

pc_plugin_host *pc_plugin_host_new(pc_loop *loop, const pc_plugin_host_opts *o, pc_error_t *err)
{
    if (!loop) {
        pc_error_set(err, 500, "plugin host needs a runtime loop");
        return NULL;
    }
    pc_plugin_host_opts z = {0};
    if (!o)
        o = &z;
    pc_plugin_host *h = pc_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->o = *o;
    h->o.init_timeout_ms = opt(o->init_timeout_ms, 15000);
    h->o.call_timeout_ms = opt(o->call_timeout_ms, 30000);
    h->o.probe_timeout_ms = opt(o->probe_timeout_ms, 120000);
    h->o.execute_slack_ms = opt(o->execute_slack_ms, 30000);
    h->o.drain_timeout_ms = opt(o->drain_timeout_ms, 10000);
    h->o.shutdown_timeout_ms = opt(o->shutdown_timeout_ms, 10000);
    h->o.term_grace_ms = opt(o->term_grace_ms, 5000);
    h->o.backoff_initial_ms = opt(o->backoff_initial_ms, 1000);
    h->o.backoff_max_ms = opt(o->backoff_max_ms, 300000);
    h->o.crash_limit = o->crash_limit > 0 ? o->crash_limit : 10;
    h->o.crash_window_ms = opt(o->crash_window_ms, 600000);
    h->o.max_line = o->max_line > 0 ? o->max_line : (size_t)16 << 20;
    snprintf(h->instance_id, sizeof h->instance_id, "%s",
             o->instance_id && *o->instance_id ? o->instance_id : "paperclip-c");
    snprintf(h->host_version, sizeof h->host_version, "%s",
             o->host_version && *o->host_version ? o->host_version : PC_VERSION);
    h->o.instance_id = NULL;
    h->o.host_version = NULL;
    h->have_node = pc_plugin_find_node(h->node, sizeof h->node) == 0;
    const char *path = getenv("PATH");
    snprintf(h->path_env, sizeof h->path_env, "%s",
             path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    const char *tz = getenv("TZ");
    snprintf(h->tz_env, sizeof h->tz_env, "%s", tz && *tz ? tz : "UTC");
    const char *np = getenv("NODE_PATH");
    snprintf(h->node_path_env, sizeof h->node_path_env, "%s", np ? np : "");
    return h;
}

void pc_plugin_host_free(pc_plugin_host *h)
{
    if (!h)
        return;
    task t = {0};
    pc_error_t err = PC_ERROR_INIT;
    if (run_task(h, task_stop_all, &t, &err) < 0)
        pc_warn("plugin host: cannot stop workers: %s", err.msg);
    pc_error_clear(&err);
    free(h);
}

static json_t *copy_or(const json_t *j, json_t *dflt)
{
    if (!j) {
        return dflt;
    }
    json_decref(dflt);
    return json_deep_copy(j);
}

int pc_plugin_host_add(pc_plugin_host *h, const pc_plugin_spec *s, int64_t wait_ms, pc_error_t *err)
{
    if (!s || !s->plugin_key || !s->package_dir || !s->worker_path || !s->manifest)
        return pc_error_set(err, 500, "plugin host: incomplete plugin spec");
    plugin *pl = pc_xcalloc(1, sizeof *pl);
    pl->host = h;
    pl->key = pc_xstrdup(s->plugin_key);
    pl->id = s->plugin_id ? pc_xstrdup(s->plugin_id) : NULL;
    pl->dir = pc_xstrdup(s->package_dir);
    pl->worker = pc_xstrdup(s->worker_path);
    pl->is_js = s->worker_is_js;
    pl->manifest = json_deep_copy(s->manifest);
    pl->config = copy_or(s->config, json_object());
    pl->env = copy_or(s->env, json_object());
    task t = {0};
    t.newpl = pl;
    t.wait_ms = wait_ms;
    t.settle_state = -1;
    int rc = run_task(h, task_add, &t, err);
    if (t.newpl) { /* never reached the loop */
        json_decref(pl->manifest);
        json_decref(pl->config);
        json_decref(pl->env);
        free(pl->key);
        free(pl->id);
        free(pl->dir);
        free(pl->worker);
        free(pl);
    }
    if (rc < 0)
        return -1;
    if (wait_ms > 0 && t.settle_state != PC_WORKER_RUNNING)
        return pc_error_set(err, 502, "plugin %s did not start: %s", s->plugin_key,
                            t.settle_err[0] ? t.settle_err
                                            : pc_worker_state_name(t.settle_state < 0
                                                                       ? PC_WORKER_STOPPED
                                                                       : t.settle_state));
    return 0;
}

int pc_plugin_host_remove(pc_plugin_host *h, const char *key, pc_error_t *err)
{
    task t = {0};
    t.key = (char *)key;
    return run_task(h, task_remove, &t, err);
}

bool pc_plugin_host_has(pc_plugin_host *h, const char *key)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *st = pc_plugin_host_status(h, key, &err);
    pc_error_clear(&err);
    json_decref(st);
    return st != NULL;
}

int64_t pc_plugin_default_timeout(const pc_plugin_host *h, const char *method, const json_t *params)
{
    if (!strcmp(method, "initialize"))
        return h->o.init_timeout_ms;
    if (!strcmp(method, "environmentProbe"))
        return h->o.probe_timeout_ms;
    if (!strcmp(method, "environmentExecute")) {
        json_t *t = json_object_get(params, "timeoutMs");
        if (!json_is_number(t) || json_number_value(t) <= 0)
            t = json_object_get(json_object_get(params, "config"), "timeoutMs");
        if (json_is_number(t) && json_number_value(t) > 0) {
            double v = json_number_value(t) + (double)h->o.execute_slack_ms;
            return v > (double)MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : (int64_t)v;
        }
    }
    return h->o.call_timeout_ms;
}

static bool method_ok(const char *m)
{
    if (!m || !*m || strlen(m) > 200)
        return false;
    for (const char *p = m; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == '/'))
            return false;
    return true;
}

static task *call_task(pc_plugin_host *h, const char *key, const char *method, json_t *params,
                       int64_t timeout_ms)
{
    task *t = pc_xcalloc(1, sizeof *t);
    t->host = h;
    t->key = pc_xstrdup(key);
    t->method = pc_xstrdup(method);
    t->params_text = params ? pc_json_dumps(params) : NULL;
    t->timeout_ms = timeout_ms > 0 ? timeout_ms : pc_plugin_default_timeout(h, method, params);
    return t;
}

int pc_plugin_call(pc_plugin_host *h, const char *key, const char *method, json_t *params,
                   int64_t timeout_ms, json_t **result, pc_error_t *err)
{
    *result = NULL;
    if (!h)
        return pc_error_set(err, 503, "the plugin host is not running");
    if (!key || !method_ok(method))
        return pc_error_set(err, 400, "invalid plugin method name");
    if (params && !json_is_object(params) && !json_is_array(params))
        return pc_error_set(err, 400, "plugin call params must be an object");
    task *t = call_task(h, key, method, params, timeout_ms);
    int rc = run_task(h, task_call, t, err);
    *result = t->result;
    free(t->params_text);
    free(t->key);
    free(t->method);
    free(t);
    if (rc < 0) {
        json_decref(*result);
        *result = NULL;
    }
    return rc;
}

void pc_plugin_call_async(pc_plugin_host *h, const char *key, const char *method, json_t *params,
                          int64_t timeout_ms, pc_plugin_call_cb cb, void *ud)
{
    pc_plugin_call_async_stream(h, key, method, params, timeout_ms, cb, NULL, ud);
}

void pc_plugin_call_async_stream(pc_plugin_host *h, const char *key, const char *method,
                                 json_t *params, int64_t timeout_ms, pc_plugin_call_cb cb,
                                 pc_plugin_chunk_cb on_chunk, void *ud)
{
    task *t = call_task(h, key, method, params, timeout_ms);
    t->async = true;
    t->cb = cb;
    t->on_chunk = on_chunk;
    t->cb_ud = ud;
    if (!method_ok(method)) {
        /* Still report from a posted task, never inline. */
        free(t->method);
        t->method = pc_xstrdup("invalid");
        free(t->key);
        t->key = pc_xstrdup("");
    }
    if (pc_loop_post(h->loop, task_call, t) < 0) {
        free(t->params_text);
        free(t->key);
        free(t->method);
        free(t);
    }
}

static json_t *query(pc_plugin_host *h, const char *key, pc_loop_fn fn, pc_error_t *err)
{
    task t = {0};
    t.key = (char *)key;
    if (run_task(h, fn, &t, err) < 0)
        return NULL;
    return t.out;
}

json_t *pc_plugin_host_status(pc_plugin_host *h, const char *key, pc_error_t *err)
{
    return query(h, key, task_status, err);
}

json_t *pc_plugin_host_logs(pc_plugin_host *h, const char *key, pc_error_t *err)
{
    return query(h, key, task_logs, err);
}

int pc_plugin_find_sandbox_provider(pc_plugin_host *h, const char *driver_key,
                                    pc_plugin_provider_info *out, pc_error_t *err)
{
    memset(out, 0, sizeof *out);
    if (!driver_key)
        return pc_error_set(err, 400, "sandbox provider key is required");
    task t = {0};
    t.driver_key = driver_key;
    t.info = out;
    return run_task(h, task_find_provider, &t, err);
}

void pc_plugin_provider_info_clear(pc_plugin_provider_info *info)
{
    if (info->config_schema)
        json_decref(info->config_schema);
    memset(info, 0, sizeof *info);
}

json_t *pc_plugin_list_sandbox_providers(pc_plugin_host *h)
{
    task t = {0};
    pc_error_t err = PC_ERROR_INIT;
    if (run_task(h, task_list_providers, &t, &err) < 0) {
        pc_error_clear(&err);
        return json_array();
    }
    return t.out;
}
