/*
 * The worker side of the Paperclip plugin protocol: newline-delimited
 * JSON-RPC 2.0 on stdin/stdout, each request on its own (pooled) thread.
 *
 * The main thread only reads and classifies lines; every request runs on
 * a thread of a pool held in a fixed table of PC_PLUGIN_MAX_IN_FLIGHT
 * slots. A slot's thread is created the first time the slot is needed and
 * then waits for the next request instead of exiting (a thread per request
 * cost more than the whole round trip of a cheap call), so the number of
 * threads is bounded by the peak concurrency, and every thread is joined
 * before pc_plugin_serve() returns. All output goes through send_line(),
 * which holds one mutex per line, so lines from concurrent requests never
 * interleave.
 */
#include <paperclip/plugin.h>

#include "exec_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job;

struct slot {
    pthread_t thread;
    pthread_cond_t wake; /* a job was handed over, or the pool is stopping */
    bool started;        /* the thread exists (joined at the end) */
    bool busy;           /* a request is assigned and not yet answered */
    struct job *job;     /* handed over, not yet taken by the thread */
    struct server *srv;
};

struct server {
    const pc_plugin_hooks *hooks;
    void *user;
    int in_fd, out_fd;

    pthread_mutex_t write_lock;
    bool write_failed;

    /* Guards everything below. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct slot slots[PC_PLUGIN_MAX_IN_FLIGHT];
    bool stopping; /* idle pool threads exit */
    bool initializing, initialized;
    json_t *manifest, *config;
};

struct pc_plugin_ctx {
    struct server *srv;
    const char *method;
    json_t *id; /* of the request, borrowed */
    /* pc_plugin_execute_log(): the start of a UTF-8 sequence cut at the end
     * of the last chunk, per stream (0 stdout, 1 stderr). */
    char carry[2][4];
    size_t carry_len[2];
};

struct job {
    struct server *srv;
    json_t *id;
    json_t *params;
    char *method;
};

/* The server pc_plugin_log(NULL, ...) talks through. */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct server *current;

/* ---- output ---- */

static void send_line(struct server *s, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text) {
        fprintf(stderr, "paperclip-plugin: cannot serialise a message\n");
        return;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; the length is known */
    pthread_mutex_lock(&s->write_lock);
    size_t off = 0;
    while (!s->write_failed && off < len + 1) {
        ssize_t n = write(s->out_fd, text + off, len + 1 - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s->write_failed = true;
            fprintf(stderr, "paperclip-plugin: cannot write to the host: %s\n", strerror(errno));
            break;
        }
        off += (size_t)n;
    }
    pthread_mutex_unlock(&s->write_lock);
    free(text);
}

static void send_result(struct server *s, json_t *id, json_t *result /* stolen */)
{
    json_t *msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                            "result", result ? result : json_null());
    if (msg) {
        send_line(s, msg);
        json_decref(msg);
    }
}

static void send_error(struct server *s, json_t *id, int code, const char *message,
                       json_t *data /* borrowed, may be NULL */)
{
    json_t *e = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (!e) {
        /* The message was not valid UTF-8. */
        json_t *m = pc_plugin_json_string_lossy(message, strlen(message));
        e = json_pack("{s:i, s:o}", "code", code, "message", m ? m : json_string("error"));
    }
    if (e && data)
        json_object_set(e, "data", data);
    json_t *msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                            "error", e);
    if (msg) {
        send_line(s, msg);
        json_decref(msg);
    }
}

/* ---- methods ---- */

typedef enum { M_UNKNOWN, M_INITIALIZE, M_HEALTH, M_SHUTDOWN, M_HOOK, M_NOT_IMPLEMENTED } mkind;

struct method_def {
    const char *name;
    size_t hook_offset; /* offsetof in pc_plugin_hooks */
    bool optional;      /* listed in supportedMethods when set */
};

#define HOOK(m) offsetof(pc_plugin_hooks, m)
static const struct method_def methods[] = {
    { "health", HOOK(health), false },
    { "validateConfig", HOOK(validate_config), true },
    { "configChanged", HOOK(config_changed), true },
    { "environmentValidateConfig", HOOK(environment_validate_config), true },
    { "environmentProbe", HOOK(environment_probe), true },
    { "environmentAcquireLease", HOOK(environment_acquire_lease), true },
    { "environmentResumeLease", HOOK(environment_resume_lease), true },
    { "environmentReleaseLease", HOOK(environment_release_lease), true },
    { "environmentDestroyLease", HOOK(environment_destroy_lease), true },
    { "environmentRealizeWorkspace", HOOK(environment_realize_workspace), true },
    { "environmentExecute", HOOK(environment_execute), true },
    { "environmentSyncIn", HOOK(environment_sync_in), true },
    { "environmentSyncOut", HOOK(environment_sync_out), true },
};

/* Optional methods of the TypeScript SDK this SDK has no hook for: the
 * host may call them, and they get "not implemented" rather than
 * "unknown method", as from a TypeScript worker without the handler. */
static const char *const unhooked_methods[] = {
    "onEvent", "runJob", "handleWebhook", "handleApiRequest",
    "getData", "performAction", "executeTool",
};

static pc_plugin_hook hook_of(const pc_plugin_hooks *h, const struct method_def *d)
{
    pc_plugin_hook f;
    memcpy(&f, (const char *)h + d->hook_offset, sizeof(f));
    return f;
}

static const struct method_def *find_method(const char *name)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (!strcmp(methods[i].name, name))
            return &methods[i];
    return NULL;
}

static json_t *default_result(const char *method)
{
    if (!strcmp(method, "health"))
        return json_pack("{s:s}", "status", "ok");
    if (!strcmp(method, "validateConfig"))
        return json_pack("{s:b}", "ok", 1);
    return json_null();
}

static void answer_hook_error(struct server *s, json_t *id, pc_plugin_error *err)
{
    send_error(s, id, err->code ? err->code : PC_RPC_WORKER_ERROR,
               err->message[0] ? err->message : "plugin hook failed", err->data);
    pc_plugin_error_clear(err);
}

static void do_initialize(struct server *s, json_t *id, json_t *params)
{
    /* handle_line() set s->initializing before starting this thread, so
     * requests read after initialize wait for it instead of failing. */
    pthread_mutex_lock(&s->lock);
    json_t *m = json_object_get(params, "manifest");
    json_t *c = json_object_get(params, "config");
    json_decref(s->manifest);
    json_decref(s->config);
    s->manifest = json_is_object(m) ? json_incref(m) : json_object();
    s->config = json_is_object(c) ? json_incref(c) : json_object();
    pthread_mutex_unlock(&s->lock);

    pc_plugin_ctx ctx = { .srv = s, .method = "initialize" };
    pc_plugin_error err = { 0 };
    int rc = 0;
    if (s->hooks->setup) {
        rc = s->hooks->setup(&ctx, &err);
        if (rc != 0 && !err.message[0])
            snprintf(err.message, sizeof(err.message), "plugin setup failed");
    }
    pthread_mutex_lock(&s->lock);
    s->initializing = false;
    s->initialized = rc == 0;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (rc != 0) {
        answer_hook_error(s, id, &err);
        return;
    }
    json_t *supported = json_array();
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].optional && hook_of(s->hooks, &methods[i]))
            json_array_append_new(supported, json_string(methods[i].name));
    send_result(s, id, json_pack("{s:b, s:o}", "ok", 1, "supportedMethods", supported));
}

/* ---- streamed execute output ---- */

static void send_chunk(pc_plugin_ctx *ctx, const char *stream, const char *data, size_t len)
{
    json_t *chunk = pc_plugin_json_string_lossy(data, len);
    json_t *msg = chunk ? json_pack("{s:s, s:s, s:{s:O, s:s, s:o}}", "jsonrpc", "2.0", "method",
                                    "execute.log", "params", "requestId", ctx->id, "stream",
                                    stream, "chunk", chunk)
                        : NULL;
    if (msg)
        send_line(ctx->srv, msg);
    json_decref(msg);
}

/* How many bytes at the end of (data, len) start a UTF-8 sequence that
 * continues past it (0 when the end is complete or not UTF-8 at all). */
static size_t cut_sequence(const char *data, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)data[len - back];
        if ((c & 0xC0) == 0x80)
            continue; /* a continuation byte: look further back */
        size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
        if (c >= 0xF5)
            need = 1;
        return need > back ? back : 0;
    }
    return 0;
}

int pc_plugin_execute_log(pc_plugin_ctx *ctx, const char *stream, const char *data, size_t len)
{
    if (!ctx || !ctx->method || strcmp(ctx->method, "environmentExecute") != 0 || !stream)
        return -1;
    int k = !strcmp(stream, "stdout") ? 0 : !strcmp(stream, "stderr") ? 1 : -1;
    if (k < 0)
        return -1;
    if (!data || len == 0)
        return 0;
    char head[8];
    size_t hl = ctx->carry_len[k];
    if (hl) {
        /* Complete the held-back sequence from the front of this chunk. */
        memcpy(head, ctx->carry[k], hl);
        size_t take = 0;
        while (take < len && hl + take < 4 && ((unsigned char)data[take] & 0xC0) == 0x80)
            take++;
        memcpy(head + hl, data, take);
        data += take;
        len -= take;
        ctx->carry_len[k] = 0;
        size_t rest = cut_sequence(head, hl + take);
        if (rest == hl + take && len == 0) {
            memcpy(ctx->carry[k], head, rest); /* still incomplete, nothing follows */
            ctx->carry_len[k] = rest;
            return 0;
        }
        send_chunk(ctx, stream, head, hl + take);
    }
    size_t keep = cut_sequence(data, len);
    if (len > keep)
        send_chunk(ctx, stream, data, len - keep);
    memcpy(ctx->carry[k], data + len - keep, keep);
    ctx->carry_len[k] = keep;
    return 0;
}

/* A hook that returns sends what it held back, so nothing is lost. */
static void flush_carry(pc_plugin_ctx *ctx)
{
    for (int k = 0; k < 2; k++)
        if (ctx->carry_len[k]) {
            send_chunk(ctx, k ? "stderr" : "stdout", ctx->carry[k], ctx->carry_len[k]);
            ctx->carry_len[k] = 0;
        }
}

static void do_hook(struct server *s, json_t *id, const char *method, json_t *params)
{
    pthread_mutex_lock(&s->lock);
    while (s->initializing)
        pthread_cond_wait(&s->cond, &s->lock);
    bool ready = s->initialized;
    pthread_mutex_unlock(&s->lock);
    if (!ready) {
        send_error(s, id, PC_RPC_WORKER_ERROR, "Worker not initialized", NULL);
        return;
    }
    const struct method_def *d = find_method(method);
    pc_plugin_hook f = d ? hook_of(s->hooks, d) : NULL;
    if (!f) {
        if (d && !strncmp(method, "environment", 11)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "%s is not implemented by this plugin", method);
            send_error(s, id, PC_RPC_METHOD_NOT_IMPLEMENTED, msg, NULL);
        } else {
            send_result(s, id, default_result(method));
        }
        return;
    }
    pc_plugin_ctx ctx = { .srv = s, .method = method, .id = id };
    pc_plugin_error err = { 0 };
    json_t *result = NULL;
    int rc = f(&ctx, params, &result, &err);
    flush_carry(&ctx);
    if (rc != 0) {
        json_decref(result);
        if (!err.message[0])
            snprintf(err.message, sizeof(err.message), "%s failed", method);
        answer_hook_error(s, id, &err);
        return;
    }
    pc_plugin_error_clear(&err);
    send_result(s, id, result ? result : default_result(method));
}

static void job_run(struct job *j)
{
    struct server *s = j->srv;
    if (!strcmp(j->method, "initialize"))
        do_initialize(s, j->id, j->params);
    else
        do_hook(s, j->id, j->method, j->params);
    json_decref(j->id);
    json_decref(j->params);
    free(j->method);
    free(j);
}

/* A pool thread: runs the jobs handed to its slot until the pool stops. */
static void *slot_main(void *arg)
{
    struct slot *sl = arg;
    struct server *s = sl->srv;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!sl->job && !s->stopping)
            pthread_cond_wait(&sl->wake, &s->lock);
        struct job *j = sl->job;
        if (!j)
            break;
        sl->job = NULL;
        pthread_mutex_unlock(&s->lock);
        job_run(j);
        pthread_mutex_lock(&s->lock);
        sl->busy = false;
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Waits until no request is running. Called with s->lock held. */
static void wait_idle(struct server *s)
{
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < PC_PLUGIN_MAX_IN_FLIGHT && !busy; i++)
            busy = s->slots[i].busy;
        if (!busy)
            return;
        pthread_cond_wait(&s->cond, &s->lock);
    }
}

/* Ends the pool: waits for running requests, then stops and joins every
 * thread. */
static void stop_pool(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    wait_idle(s);
    s->stopping = true;
    for (size_t i = 0; i < PC_PLUGIN_MAX_IN_FLIGHT; i++)
        pthread_cond_signal(&s->slots[i].wake);
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < PC_PLUGIN_MAX_IN_FLIGHT; i++) {
        if (s->slots[i].started)
            pthread_join(s->slots[i].thread, NULL);
        s->slots[i].started = false;
    }
}

/* Starts a thread for the request. Returns false when it could not (the
 * request has then been answered with an error). */
static bool dispatch(struct server *s, json_t *id, const char *method, json_t *params)
{
    /* Only this (the reading) thread assigns slots, so a slot found idle
     * stays idle until it is assigned below. Started threads first. */
    pthread_mutex_lock(&s->lock);
    struct slot *free_slot = NULL;
    for (size_t i = 0; i < PC_PLUGIN_MAX_IN_FLIGHT; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->busy && (!free_slot || (sl->started && !free_slot->started)))
            free_slot = sl;
        if (free_slot && free_slot->started)
            break;
    }
    pthread_mutex_unlock(&s->lock);
    if (!free_slot) {
        send_error(s, id, PC_RPC_WORKER_UNAVAILABLE, "worker busy", NULL);
        return false;
    }
    struct job *j = calloc(1, sizeof(*j));
    char *m = strdup(method);
    if (!j || !m) {
        free(j);
        free(m);
        send_error(s, id, PC_RPC_INTERNAL_ERROR, "out of memory", NULL);
        return false;
    }
    j->srv = s;
    j->id = json_incref(id);
    j->params = json_incref(params);
    j->method = m;
    pthread_mutex_lock(&s->lock);
    free_slot->busy = true;
    free_slot->job = j;
    int rc = 0;
    if (free_slot->started) {
        pthread_cond_signal(&free_slot->wake);
    } else {
        rc = pthread_create(&free_slot->thread, NULL, slot_main, free_slot);
        if (rc == 0) {
            free_slot->started = true;
        } else {
            free_slot->busy = false;
            free_slot->job = NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (rc != 0) {
        json_decref(j->id);
        json_decref(j->params);
        free(j->method);
        free(j);
        send_error(s, id, PC_RPC_WORKER_UNAVAILABLE, "worker busy", NULL);
        return false;
    }
    return true;
}

static bool valid_id(json_t *id)
{
    return json_is_string(id) || json_is_integer(id) || json_is_real(id);
}

/* Handles one complete line. Returns true when the line was `shutdown`. */
static bool handle_line(struct server *s, char *line, size_t len)
{
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    size_t start = 0;
    while (start < len && (line[start] == ' ' || line[start] == '\t'))
        start++;
    if (start == len)
        return false; /* blank lines are keep-alives, not errors */

    json_error_t jerr;
    json_t *msg = json_loadb(line + start, len - start, JSON_DECODE_ANY, &jerr);
    if (!msg) {
        char text[256];
        snprintf(text, sizeof(text), "Parse error: %s", jerr.text);
        send_error(s, NULL, PC_RPC_PARSE_ERROR, text, NULL);
        return false;
    }
    bool shutdown = false;
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    json_t *ver = json_object_get(msg, "jsonrpc");
    json_t *reply_id = valid_id(id) ? id : NULL;

    if (!json_is_object(msg) || !json_is_string(ver) || strcmp(json_string_value(ver), "2.0")) {
        send_error(s, reply_id, PC_RPC_INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object", NULL);
        goto out;
    }
    if (!method) {
        /* A response to a worker-to-host call. We make none yet; ignore. */
        if (id && (json_object_get(msg, "result") || json_object_get(msg, "error")))
            goto out;
        send_error(s, reply_id, PC_RPC_INVALID_REQUEST, "Invalid Request: missing method", NULL);
        goto out;
    }
    if (!json_is_string(method)) {
        send_error(s, reply_id, PC_RPC_INVALID_REQUEST, "Invalid Request: method must be a string", NULL);
        goto out;
    }
    if (!id)
        goto out; /* a notification: none is meaningful to a worker yet */
    if (!valid_id(id)) {
        send_error(s, NULL, PC_RPC_INVALID_REQUEST, "Invalid Request: id must be a string or a number", NULL);
        goto out;
    }
    if (params && !json_is_object(params) && !json_is_null(params)) {
        send_error(s, id, PC_RPC_INVALID_PARAMS, "Invalid params: expected an object", NULL);
        goto out;
    }
    json_t *p = json_is_object(params) ? json_incref(params) : json_object();
    const char *name = json_string_value(method);
    if (!strcmp(name, "shutdown")) {
        shutdown = true;
        /* Finish and answer everything in flight first, then run the hook,
         * then answer; the caller exits right after. */
        pthread_mutex_lock(&s->lock);
        wait_idle(s);
        bool run_hook = s->initialized;
        pthread_mutex_unlock(&s->lock);
        if (run_hook && s->hooks->shutdown) {
            pc_plugin_ctx ctx = { .srv = s, .method = "shutdown" };
            s->hooks->shutdown(&ctx);
        }
        send_result(s, id, json_null());
    } else if (!strcmp(name, "initialize")) {
        pthread_mutex_lock(&s->lock);
        bool again = s->initializing || s->initialized;
        if (!again)
            s->initializing = true;
        pthread_mutex_unlock(&s->lock);
        if (again) {
            send_error(s, id, PC_RPC_WORKER_ERROR, "Worker already initialized", NULL);
        } else if (!dispatch(s, id, name, p)) {
            pthread_mutex_lock(&s->lock);
            s->initializing = false;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
        }
    } else if (find_method(name)) {
        dispatch(s, id, name, p);
    } else {
        bool known = false;
        for (size_t i = 0; i < sizeof(unhooked_methods) / sizeof(unhooked_methods[0]); i++)
            known = known || !strcmp(unhooked_methods[i], name);
        char text[320];
        if (known) {
            snprintf(text, sizeof(text), "%.200s is not implemented by this plugin", name);
            send_error(s, id, PC_RPC_METHOD_NOT_IMPLEMENTED, text, NULL);
        } else {
            snprintf(text, sizeof(text), "Unknown method: %.200s", name);
            send_error(s, id, PC_RPC_METHOD_NOT_FOUND, text, NULL);
        }
    }
    json_decref(p);
out:
    json_decref(msg);
    return shutdown;
}

int pc_plugin_serve(const pc_plugin_hooks *hooks, void *user, int in_fd, int out_fd)
{
    static const pc_plugin_hooks no_hooks;
    struct server s;
    memset(&s, 0, sizeof(s));
    s.hooks = hooks ? hooks : &no_hooks;
    s.user = user;
    s.in_fd = in_fd;
    s.out_fd = out_fd;
    pthread_mutex_init(&s.write_lock, NULL);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    for (size_t i = 0; i < PC_PLUGIN_MAX_IN_FLIGHT; i++) {
        pthread_cond_init(&s.slots[i].wake, NULL);
        s.slots[i].srv = &s;
    }
    /* Seed jansson's hash before any thread can race to do it. */
    json_object_seed(0);
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_lock(&current_lock);
    current = &s;
    pthread_mutex_unlock(&current_lock);

    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    bool discarding = false, shutdown = false;
    int status = 0;
    char chunk[65536];
    while (buf && !shutdown) {
        ssize_t n = read(in_fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "paperclip-plugin: cannot read from the host: %s\n", strerror(errno));
            status = 1;
            break;
        }
        if (n == 0) {
            /* EOF: a final unterminated line is still a message. */
            if (len && !discarding)
                handle_line(&s, buf, len);
            break;
        }
        char *p = chunk, *end = chunk + n;
        while (p < end && !shutdown) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t piece = (size_t)((nl ? nl : end) - p);
            if (!discarding) {
                if (len + piece > PC_PLUGIN_MAX_LINE) {
                    send_error(&s, NULL, PC_RPC_INVALID_REQUEST,
                               "Invalid Request: message exceeds the 16 MiB line limit", NULL);
                    discarding = true;
                    len = 0;
                } else {
                    if (len + piece + 1 > cap) {
                        size_t want = cap;
                        while (want < len + piece + 1)
                            want *= 2;
                        char *nb = realloc(buf, want);
                        if (!nb) {
                            fprintf(stderr, "paperclip-plugin: out of memory\n");
                            status = 1;
                            goto done;
                        }
                        buf = nb;
                        cap = want;
                    }
                    memcpy(buf + len, p, piece);
                    len += piece;
                }
            }
            if (nl) {
                if (!discarding)
                    shutdown = handle_line(&s, buf, len);
                discarding = false;
                len = 0;
                p = nl + 1;
                /* Do not keep a huge buffer around after a huge line. */
                if (cap > (1u << 20)) {
                    char *nb = realloc(buf, 65536);
                    if (nb) {
                        buf = nb;
                        cap = 65536;
                    }
                }
            } else {
                p = end;
            }
        }
    }
done:
    stop_pool(&s);
    pthread_mutex_lock(&s.lock);
    bool run_hook = s.initialized && !shutdown;
    pthread_mutex_unlock(&s.lock);
    if (run_hook && s.hooks->shutdown) {
        pc_plugin_ctx ctx = { .srv = &s, .method = "shutdown" };
        s.hooks->shutdown(&ctx);
    }
    pthread_mutex_lock(&current_lock);
    current = NULL;
    pthread_mutex_unlock(&current_lock);
    if (s.write_failed && status == 0)
        status = 1;
    free(buf);
    json_decref(s.manifest);
    json_decref(s.config);
    for (size_t i = 0; i < PC_PLUGIN_MAX_IN_FLIGHT; i++)
        pthread_cond_destroy(&s.slots[i].wake);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    pthread_mutex_destroy(&s.write_lock);
    return status;
}

/* Turns SIGTERM/SIGINT/SIGHUP into "end every running command, then exit",
 * so a host that gives up on a graceful shutdown leaves no sandboxed
 * process behind. */
static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    pc__exec_kill_all(SIGKILL);
    _exit(128 + sig);
}

int pc_plugin_run(const pc_plugin_hooks *hooks, void *user)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_t th;
    bool have_thread = false;
    /* Block before any thread exists so every thread inherits the mask. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) == 0) {
        if (pthread_create(&th, NULL, signal_thread, &set) == 0) {
            pthread_detach(th);
            have_thread = true;
        } else {
            pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        }
    }
    (void)have_thread;
    return pc_plugin_serve(hooks, user, 0, 1);
}

/* ---- context and logging ---- */

void *pc_plugin_ctx_user(const pc_plugin_ctx *ctx)
{
    return ctx ? ctx->srv->user : NULL;
}

const char *pc_plugin_ctx_method(const pc_plugin_ctx *ctx)
{
    return ctx ? ctx->method : "";
}

json_t *pc_plugin_ctx_manifest(const pc_plugin_ctx *ctx)
{
    return ctx->srv->manifest;
}

json_t *pc_plugin_ctx_config(const pc_plugin_ctx *ctx)
{
    return ctx->srv->config;
}

static const char *level_name(pc_plugin_log_level level)
{
    switch (level) {
    case PC_PLUGIN_LOG_DEBUG: return "debug";
    case PC_PLUGIN_LOG_WARN: return "warn";
    case PC_PLUGIN_LOG_ERROR: return "error";
    default: return "info";
    }
}

static void vlog(pc_plugin_ctx *ctx, pc_plugin_log_level level, json_t *meta, const char *fmt,
                 va_list ap)
{
    char text[4096];
    vsnprintf(text, sizeof(text), fmt, ap);
    json_t *m = pc_plugin_json_string_lossy(text, strlen(text));
    json_t *params = json_pack("{s:s, s:o}", "level", level_name(level), "message",
                               m ? m : json_string(""));
    if (params && meta)
        json_object_set(params, "meta", meta);
    json_t *msg = params ? json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "log",
                                     "params", params)
                         : NULL;
    if (ctx) {
        if (msg)
            send_line(ctx->srv, msg);
    } else {
        /* Hold current_lock while writing so the server cannot go away. */
        pthread_mutex_lock(&current_lock);
        if (current && msg)
            send_line(current, msg);
        else
            fprintf(stderr, "[%s] %s\n", level_name(level), text);
        pthread_mutex_unlock(&current_lock);
    }
    json_decref(msg);
}

void pc_plugin_log(pc_plugin_ctx *ctx, pc_plugin_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, NULL, fmt, ap);
    va_end(ap);
}

void pc_plugin_log_meta(pc_plugin_ctx *ctx, pc_plugin_log_level level, json_t *meta,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(ctx, level, meta, fmt, ap);
    va_end(ap);
}
