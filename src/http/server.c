/*
 * The HTTP server on libmicrohttpd.
 *
 * Thread per connection: a handler may block on the runtime (a plugin call,
 * a probe over SSH) without holding up any other client. The response is
 * always queued on the second or a later access-handler call: answering on
 * the first makes libmicrohttpd close the connection, which kills keep-alive.
 *
 * Two listeners share this code: the operator listener (board, UI, CLI) and
 * the agent ingress, where runs call back. On the ingress credentials are
 * mandatory and only agent credentials count: no implicit board, no board
 * keys.
 *
 * Everything that decides whether a request may proceed happens on the first
 * access-handler call, when the headers are in and no body byte has been
 * accepted: the browser guards (guard.c), the credentials, the route's need
 * for an actor, and a reservation of the declared body length against one
 * budget shared by both listeners. A refused request's body is never
 * buffered: a small one is read and dropped so the client can read the
 * answer, a large one is cut off by answering at once.
 *
 * Body handling: Content-Length beyond the limit gets 413 before the body is
 * read; a chunked body is accumulated in a bounded pc_buf and gets 413 when
 * it passes the limit. POST/PATCH/PUT bodies must be application/json (415).
 *
 * Slow clients: libmicrohttpd closes a connection idle for idleTimeout; a
 * watchdog thread shuts down any connection whose request headers are not
 * complete headerTimeout after it opened or after its previous response, so
 * trickling one byte at a time does not hold a thread. The operator listener
 * also limits connections per client address; the ingress does not, because
 * every sandboxed run reaches it from the same loopback address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"
#include "http/internal.h"
#include "lib/buf.h"
#include "lib/common.h"
#include "lib/embedded.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

/* A refused request's body is read and dropped up to this many bytes (so the
 * client, still sending, can read the answer); past it the answer goes out at
 * once and the connection is closed. */
#define PC_REJECT_DRAIN_MAX (64u * 1024)
/* libmicrohttpd's per-connection buffer: request line and headers must fit
 * (431 otherwise), and body bytes pass through it in pieces. */
#define PC_HTTP_CONN_MEMORY (32u * 1024)

#define PC_AGENT_BIND_EXTRA_MAX 4

typedef struct pc_listener {
    struct pc_http *srv;
    struct MHD_Daemon *mhd;
    int listen_fd;
    int port;
    bool agent; /* the agent ingress */
} pc_listener;

/* One open connection, known to the watchdog from accept to close. The
 * watchdog may shut its socket down (never close it: libmicrohttpd owns the
 * descriptor) while deadline_ms is set; entries leave the list under the
 * lock before libmicrohttpd closes the descriptor. */
typedef struct pc_conn_watch {
    struct pc_conn_watch *prev, *next;
    int fd;
    int64_t deadline_ms; /* 0 while a request is being handled */
} pc_conn_watch;

struct pc_http {
    pc_app *app;
    pc_listener op, ag;
    /* Further agent ingress listeners (cfg.agent_bind_extra), on ag's port. */
    pc_listener ag_extra[PC_AGENT_BIND_EXTRA_MAX];
    int n_ag_extra;
    atomic_int inflight;
    atomic_size_t body_held; /* bytes reserved by in-flight request bodies */
    pthread_mutex_t mu;      /* guards watch */
    pc_conn_watch *watch;
    pthread_t watchdog;
    bool watchdog_started;
    atomic_bool stop;
};

typedef struct pc_conn_ctx {
    pc_buf body;
    bool too_large;
    bool bad_type;
    size_t discarded;
    size_t reserved; /* bytes of srv->body_held this request holds */
    int64_t started_ms;
    int calls;
    bool rejected;    /* answer with `reject` once the dropped body is in */
    pc_error_t reject;
    bool has_actor;   /* credentials were resolved on the first call */
    pc_actor actor;
} pc_conn_ctx;

int pc_resp_json(pc_resp *resp, int status, json_t *body)
{
    resp->status = status;
    if (resp->body)
        json_decref(resp->body);
    resp->body = body;
    return 0;
}

void pc_http_error_response(const pc_error_t *err, pc_resp *resp)
{
    int status = err && err->status >= 400 && err->status <= 599 ? err->status : 500;
    json_t *body;
    if (status >= 500 && status != 502 && status != 503 && status != 504) {
        pc_err("internal error: %s", err ? err->msg : "(unknown)");
        body = json_pack("{s:s}", "error", "Internal server error");
    } else {
        body = json_pack("{s:s}", "error", err->msg);
        if (!body) /* message with invalid UTF-8 from a plugin */
            body = json_pack("{s:s}", "error", "Request failed");
        if (err->details)
            json_object_set(body, "details", err->details);
    }
    if (resp->raw) {
        free(resp->raw);
        resp->raw = NULL;
    }
    pc_resp_json(resp, status, body);
}

const char *pc_req_query(const pc_req *req, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

static pc_conn_watch *pc_watch_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Sets (or with 0 clears) the connection's header deadline. */
static void pc_watch_arm(pc_http *srv, struct MHD_Connection *c, int64_t deadline_ms)
{
    pc_conn_watch *w = pc_watch_of(c);
    if (!w)
        return;
    pthread_mutex_lock(&srv->mu);
    w->deadline_ms = deadline_ms;
    pthread_mutex_unlock(&srv->mu);
}

static void pc_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    pc_listener *l = cls;
    pc_http *srv = l->srv;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        pc_conn_watch *w = pc_xcalloc(1, sizeof *w);
        w->fd = ci ? ci->connect_fd : -1;
        w->deadline_ms = pc_mono_ms() + (int64_t)srv->app->cfg.header_timeout_s * 1000;
        pthread_mutex_lock(&srv->mu);
        w->next = srv->watch;
        if (srv->watch)
            srv->watch->prev = w;
        srv->watch = w;
        pthread_mutex_unlock(&srv->mu);
        *socket_context = w;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        pc_conn_watch *w = *socket_context;
        if (!w)
            return;
        pthread_mutex_lock(&srv->mu);
        if (w->prev)
            w->prev->next = w->next;
        else
            srv->watch = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&srv->mu);
        free(w);
        *socket_context = NULL;
    }
}

static void *pc_watchdog_main(void *arg)
{
    pc_http *srv = arg;
    while (!atomic_load(&srv->stop)) {
        usleep(200 * 1000);
        int64_t now = pc_mono_ms();
        int cut = 0;
        pthread_mutex_lock(&srv->mu);
        for (pc_conn_watch *w = srv->watch; w; w = w->next) {
            if (w->deadline_ms && now >= w->deadline_ms && w->fd >= 0) {
                /* The connection's thread sees end-of-stream and closes it. */
                shutdown(w->fd, SHUT_RDWR);
                w->deadline_ms = 0;
                cut++;
            }
        }
        pthread_mutex_unlock(&srv->mu);
        if (cut)
            pc_info("closed %d connection%s that did not send request headers within %ds", cut,
                    cut == 1 ? "" : "s", srv->app->cfg.header_timeout_s);
    }
    return NULL;
}

static void pc_conn_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    pc_listener *l = cls;
    pc_http *srv = l->srv;
    pc_conn_ctx *ctx = *con_cls;
    if (ctx) {
        if (ctx->reserved)
            atomic_fetch_sub(&srv->body_held, ctx->reserved);
        pc_buf_release(&ctx->body);
        pc_error_clear(&ctx->reject);
        free(ctx);
        *con_cls = NULL;
    }
    /* A kept-alive connection gets the same time for its next headers. */
    pc_watch_arm(srv, c, pc_mono_ms() + (int64_t)srv->app->cfg.header_timeout_s * 1000);
}

/* Takes n bytes from the shared body budget; false when that would pass it. */
static bool pc_budget_take(pc_http *srv, pc_conn_ctx *ctx, size_t n)
{
    size_t cur = atomic_load(&srv->body_held);
    do {
        if (n > srv->app->cfg.body_budget || cur > srv->app->cfg.body_budget - n)
            return false;
    } while (!atomic_compare_exchange_weak(&srv->body_held, &cur, cur + n));
    ctx->reserved += n;
    return true;
}

static void pc_budget_error(pc_http *srv, pc_error_t *err)
{
    pc_error_set(err, 503,
                 "Server busy: request bodies in flight have reached the limit of %zu bytes; "
                 "retry shortly",
                 srv->app->cfg.body_budget);
}

static const char *pc_mime_for(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".json"))
        return "application/json";
    return "application/octet-stream";
}

/* The web UI: embedded files under ui/; unknown non-API paths get index.html
 * so client-side routes survive a reload. */
static bool pc_serve_ui(const char *path, pc_resp *resp)
{
    const pc_embedded_file *index = NULL, *hit = NULL;
    for (const pc_embedded_file *f = pc_embedded_files; f->path; f++) {
        if (!pc_str_has_prefix(f->path, "ui/"))
            continue;
        if (!strcmp(f->path, "ui/index.html"))
            index = f;
        if (!strcmp(f->path + 2, path))
            hit = f;
    }
    if (!hit && strchr(path, '.') == NULL)
        hit = index;
    if (!hit)
        return false;
    resp->status = 200;
    resp->raw = pc_xmalloc(hit->len + 1);
    memcpy(resp->raw, hit->data, hit->len);
    resp->raw_len = hit->len;
    resp->content_type = pc_mime_for(hit->path);
    return true;
}

static ssize_t pc_stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    pc_resp *r = cls;
    for (;;) {
        long n = r->stream(r->stream_ctx, buf, max);
        if (n < 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n > 0)
            return (ssize_t)n;
        usleep(50 * 1000);
    }
}

static void pc_stream_free(void *cls)
{
    pc_resp *r = cls;
    if (r->stream_free)
        r->stream_free(r->stream_ctx);
    free(r);
}

static enum MHD_Result pc_queue(struct MHD_Connection *c, pc_resp *resp)
{
    struct MHD_Response *mr;
    if (resp->stream) {
        pc_resp *copy = pc_xmalloc(sizeof *copy);
        *copy = *resp;
        resp->stream = NULL;
        resp->stream_free = NULL;
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, pc_stream_reader, copy,
                                               pc_stream_free);
        MHD_add_response_header(mr, "Content-Type",
                                resp->content_type ? resp->content_type : "text/event-stream");
        MHD_add_response_header(mr, "Cache-Control", "no-cache");
    } else if (resp->body) {
        size_t len;
        char *s = pc_json_dumps_len(resp->body, &len);
        mr = MHD_create_response_from_buffer(len, s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(mr, "Content-Type", "application/json; charset=utf-8");
    } else if (resp->raw) {
        mr = MHD_create_response_from_buffer(resp->raw_len, resp->raw, MHD_RESPMEM_MUST_FREE);
        resp->raw = NULL;
        MHD_add_response_header(mr, "Content-Type",
                                resp->content_type ? resp->content_type : "text/plain");
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)(resp->status ? resp->status : 200), mr);
    MHD_destroy_response(mr);
    return ret;
}

static bool pc_is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    return !strncasecmp(ct, "application/json", 16) &&
           (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* Whether url is under /api, the only part that takes bodies and auth. */
static bool pc_is_api_path(const char *url)
{
    return pc_str_has_prefix(url, "/api/") || !strcmp(url, "/api");
}

/* A request before auth: who is calling is resolved later. */
static void pc_req_init(pc_req *req, pc_http *srv, struct MHD_Connection *c, const char *method,
                        const char *url)
{
    *req = (pc_req){0};
    req->app = srv->app;
    req->method = method;
    req->path = url;
    req->conn = c;
    req->run_id_header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Paperclip-Run-Id");
}

static void pc_handle(pc_listener *l, struct MHD_Connection *c, const char *url,
                      const char *method, pc_conn_ctx *ctx, pc_resp *resp)
{
    pc_http *srv = l->srv;
    pc_error_t err = PC_ERROR_INIT;
    pc_req req;
    pc_req_init(&req, srv, c, method, url);

    if (ctx->rejected) {
        pc_http_error_response(&ctx->reject, resp);
        return;
    }
    if (!pc_is_api_path(url)) {
        if (!l->agent && (!strcmp(method, "GET") || !strcmp(method, "HEAD")) &&
            pc_serve_ui(url, resp))
            return;
        pc_error_set(&err, 404, "Not found");
        goto fail;
    }
    if (ctx->too_large) {
        pc_error_set(&err, 413, "Request body too large (limit %zu bytes)", srv->app->cfg.body_limit);
        goto fail;
    }

    char scratch[2048];
    bool path_matched = false;
    const pc_route *route =
        pc_router_find(method, url, scratch, sizeof scratch, &req, &path_matched);
    if (!route) {
        pc_error_set(&err, 404, "API route not found");
        goto fail;
    }
    if (ctx->bad_type) {
        pc_error_set(&err, 415, "Content-Type must be application/json");
        goto fail;
    }
    if (ctx->body.len > 0) {
        req.body = pc_json_parse(ctx->body.data, ctx->body.len, &err);
        if (!req.body)
            goto fail;
    }
    req.actor = ctx->actor;
    if (!(route->flags & PC_ROUTE_PUBLIC) && req.actor.type == PC_ACTOR_NONE) {
        pc_error_set(&err, 401, "Unauthorized");
        goto fail;
    }
    if (route->handler(&req, resp, &err) < 0)
        goto fail;
    if (!resp->status)
        resp->status = 200;
    json_decref(req.body);
    return;
fail:
    json_decref(req.body);
    pc_http_error_response(&err, resp);
    pc_error_clear(&err);
}

/* The first-call checks: browser guards, credentials, and whether the route
 * needs an actor. Returns -1 with err set when the request is refused; on
 * success ctx->actor holds the caller. */
static int pc_admit(pc_listener *l, struct MHD_Connection *c, const char *url, const char *method,
                    bool has_body, pc_conn_ctx *ctx, pc_error_t *err)
{
    pc_http *srv = l->srv;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!host || !*host)
        return pc_error_set(err, 403, "Missing Host header. To allow a hostname, add it to "
                                      "allowedHostnames (PAPERCLIP_ALLOWED_HOSTNAMES).");
    /* The Host value is the caller's; it is never echoed back. */
    if (!pc_http_host_allowed(&srv->app->cfg, host))
        return pc_error_set(err, 403, "This hostname is not allowed for this Paperclip instance. "
                                      "To allow a hostname, add it to allowedHostnames "
                                      "(PAPERCLIP_ALLOWED_HOSTNAMES).");
    if (!pc_http_origin_allowed(method, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"),
                                MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site"),
                                host))
        return pc_error_set(err, 403, "Board mutation requires trusted browser origin");
    if (!pc_is_api_path(url)) {
        /* Only the API takes bodies; the UI is for reading. */
        if (has_body)
            return pc_error_set(err, 404, "Not found");
        return 0;
    }
    pc_req req;
    pc_req_init(&req, srv, c, method, url);
    if (pc_auth_resolve(&req, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                        !l->agent, err) < 0)
        return -1;
    if (l->agent && req.actor.type == PC_ACTOR_BOARD)
        return pc_error_set(err, 401, "Board credentials are not accepted on the agent API");
    if (l->agent && req.actor.type != PC_ACTOR_AGENT)
        return pc_error_set(err, 401, "Agent credentials required");
    if (req.actor.type == PC_ACTOR_NONE) {
        char scratch[2048];
        bool path_matched = false;
        pc_req probe = req;
        const pc_route *route =
            pc_router_find(method, url, scratch, sizeof scratch, &probe, &path_matched);
        if (!route || !(route->flags & PC_ROUTE_PUBLIC) || has_body)
            return pc_error_set(err, 401, "Unauthorized");
    }
    ctx->actor = req.actor;
    ctx->has_actor = true;
    return 0;
}

static enum MHD_Result pc_answer(pc_listener *l, struct MHD_Connection *c, const char *url,
                                 const char *method, pc_conn_ctx *ctx)
{
    pc_http *srv = l->srv;
    atomic_fetch_add(&srv->inflight, 1);
    pc_resp resp = {0};
    pc_handle(l, c, url, method, ctx, &resp);
    int status = resp.status ? resp.status : 200;
    enum MHD_Result ret = pc_queue(c, &resp);
    if (resp.body)
        json_decref(resp.body);
    free(resp.raw);
    if (resp.stream_free && resp.stream)
        resp.stream_free(resp.stream_ctx);
    pc_info("%s%s %s %d %lldms", l->agent ? "agent " : "", method, url, status,
            (long long)(pc_mono_ms() - ctx->started_ms));
    atomic_fetch_sub(&srv->inflight, 1);
    return ret;
}

static enum MHD_Result pc_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    pc_listener *l = cls;
    pc_http *srv = l->srv;
    pc_conn_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = pc_xcalloc(1, sizeof *ctx);
        pc_buf_init(&ctx->body, srv->app->cfg.body_limit);
        ctx->started_ms = pc_mono_ms();
        *con_cls = ctx;
        long long declared = -1; /* -1: no Content-Length */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > srv->app->cfg.body_limit)
                ctx->too_large = true;
            declared = ctx->too_large ? (long long)srv->app->cfg.body_limit + 1 : (long long)n;
        }
        bool has_body = declared > 0 ||
                        (declared < 0 &&
                         MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding"));
        if (pc_admit(l, c, url, method, has_body, ctx, &ctx->reject) < 0) {
            ctx->rejected = true;
        } else if (declared > 0 && !ctx->too_large &&
                   !pc_budget_take(srv, ctx, (size_t)declared)) {
            pc_budget_error(srv, &ctx->reject);
            ctx->rejected = true;
        }
        /* A large refused body is not worth reading: answer now, which makes
         * libmicrohttpd close the connection after the response. A small
         * one keeps the header deadline, so trickling it holds nothing. */
        if (ctx->rejected && declared > (long long)PC_REJECT_DRAIN_MAX)
            return pc_answer(l, c, url, method, ctx);
        if (!ctx->rejected)
            pc_watch_arm(srv, c, 0);
        return MHD_YES;
    }
    ctx->calls++;
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (ctx->rejected) {
            ctx->discarded += n;
            if (ctx->discarded <= PC_REJECT_DRAIN_MAX)
                return MHD_YES;
            return pc_answer(l, c, url, method, ctx);
        }
        if (!ctx->too_large) {
            pc_error_t e = PC_ERROR_INIT;
            if (ctx->body.len == 0) {
                const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
                if (!pc_is_json_type(ct))
                    ctx->bad_type = true;
            }
            /* A chunked body reserves as it arrives; a declared one already
             * holds its whole length. */
            size_t need = ctx->body.len + n;
            if (need > ctx->reserved && need <= srv->app->cfg.body_limit &&
                !pc_budget_take(srv, ctx, need - ctx->reserved)) {
                pc_buf_release(&ctx->body);
                pc_budget_error(srv, &ctx->reject);
                ctx->rejected = true;
                return pc_answer(l, c, url, method, ctx);
            }
            if (pc_buf_append(&ctx->body, upload, n, &e) < 0) {
                ctx->too_large = true;
                pc_buf_release(&ctx->body);
                pc_error_clear(&e);
            }
        }
        /* An oversize body is read and discarded so that the client, still
         * sending, gets to read the 413; only a body far past the limit is
         * cut off by answering early (which closes the connection). */
        if (ctx->too_large)
            ctx->discarded += n;
        if (!ctx->too_large || ctx->discarded <= 4 * srv->app->cfg.body_limit)
            return MHD_YES;
    }
    return pc_answer(l, c, url, method, ctx);
}
static int pc_listen(const char *bind_addr, int port, int *out_port, pc_error_t *err)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    const char *host = !strcmp(bind_addr, "localhost") ? "127.0.0.1" : bind_addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        slen = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        slen = sizeof *v6;
    } else {
        return pc_error_set(err, 400, "invalid bind address '%s' (expected an IPv4 or IPv6 address)",
                            bind_addr);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return pc_error_errno(err, errno, "cannot create socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return pc_error_set(err, 500, "cannot listen on %s:%d: port %d is already in use",
                                bind_addr, port, port);
        return pc_error_errno(err, e, "cannot listen on %s:%d", bind_addr, port);
    }
    struct sockaddr_storage got;
    socklen_t glen = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &glen);
    *out_port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                               : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

/* Thread per connection: each open connection holds a descriptor, so the
 * soft descriptor limit is raised to what both listeners may need. */
static void pc_raise_nofile(const pc_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)cfg->max_connections * 2 + 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            pc_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

static int pc_listener_start(pc_http *srv, pc_listener *l, const char *bind_addr, int port,
                             bool agent, pc_error_t *err)
{
    const pc_config *cfg = &srv->app->cfg;
    l->srv = srv;
    l->agent = agent;
    l->listen_fd = pc_listen(bind_addr, port, &l->port, err);
    if (l->listen_fd < 0)
        return -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC;
    /* Every sandboxed run reaches the ingress from the same loopback
     * address, so a per-address limit there would throttle agents. */
    unsigned per_ip = agent ? 0u : (unsigned)cfg->max_connections_per_address;
    l->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, pc_access, l, MHD_OPTION_LISTEN_SOCKET, l->listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, pc_conn_completed, l, MHD_OPTION_NOTIFY_CONNECTION,
        pc_conn_notify, l, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)PC_HTTP_CONN_MEMORY, MHD_OPTION_END);
    if (!l->mhd) {
        close(l->listen_fd);
        l->listen_fd = -1;
        return pc_error_set(err, 500, "cannot start the HTTP server on %s:%d", bind_addr, port);
    }
    return 0;
}

/* Stops accepting, gives in-flight requests up to 30 s, then stops. */
static void pc_listener_quiesce(pc_listener *l)
{
    if (!l->mhd)
        return;
    int fd = MHD_quiesce_daemon(l->mhd);
    if (fd >= 0)
        close(fd);
}

pc_http *pc_http_start(pc_app *app, pc_error_t *err)
{
    pc_http *srv = pc_xcalloc(1, sizeof *srv);
    srv->app = app;
    srv->op.listen_fd = srv->ag.listen_fd = -1;
    pthread_mutex_init(&srv->mu, NULL);
    pc_raise_nofile(&app->cfg);
    if (pc_listener_start(srv, &srv->op, app->cfg.bind, app->cfg.port, false, err) < 0)
        goto fail;
    if (pc_listener_start(srv, &srv->ag, app->cfg.agent_bind, app->cfg.agent_port, true, err) < 0) {
        pc_error_prefix(err, "agent ingress");
        goto fail;
    }
    if (app->cfg.agent_bind_extra[0]) {
        char list[sizeof app->cfg.agent_bind_extra];
        snprintf(list, sizeof list, "%s", app->cfg.agent_bind_extra);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (srv->n_ag_extra == PC_AGENT_BIND_EXTRA_MAX) {
                pc_error_set(err, 400, "agent ingress: at most %d extra addresses",
                             PC_AGENT_BIND_EXTRA_MAX);
                goto fail;
            }
            pc_listener *x = &srv->ag_extra[srv->n_ag_extra];
            x->listen_fd = -1;
            if (pc_listener_start(srv, x, t, srv->ag.port, true, err) < 0) {
                pc_error_prefix(err, "agent ingress");
                goto fail;
            }
            srv->n_ag_extra++;
        }
    }
    if (pthread_create(&srv->watchdog, NULL, pc_watchdog_main, srv) != 0) {
        pc_error_set(err, 500, "cannot start the HTTP watchdog thread");
        goto fail;
    }
    srv->watchdog_started = true;
    return srv;
fail:
    if (srv->op.mhd)
        MHD_stop_daemon(srv->op.mhd);
    if (srv->op.listen_fd >= 0)
        close(srv->op.listen_fd);
    if (srv->ag.mhd)
        MHD_stop_daemon(srv->ag.mhd);
    if (srv->ag.listen_fd >= 0)
        close(srv->ag.listen_fd);
    for (int i = 0; i < srv->n_ag_extra; i++)
        MHD_stop_daemon(srv->ag_extra[i].mhd);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
    return NULL;
}

int pc_http_port(pc_http *srv) { return srv->op.port; }
int pc_http_agent_port(pc_http *srv) { return srv->ag.port; }

void pc_http_stop(pc_http *srv)
{
    if (!srv)
        return;
    /* Stop accepting first, then give in-flight requests up to 30 s. */
    pc_listener_quiesce(&srv->op);
    pc_listener_quiesce(&srv->ag);
    for (int i = 0; i < srv->n_ag_extra; i++)
        pc_listener_quiesce(&srv->ag_extra[i]);
    for (int i = 0; i < 3000 && atomic_load(&srv->inflight) > 0; i++)
        usleep(10 * 1000);
    MHD_stop_daemon(srv->op.mhd);
    MHD_stop_daemon(srv->ag.mhd);
    for (int i = 0; i < srv->n_ag_extra; i++)
        MHD_stop_daemon(srv->ag_extra[i].mhd);
    atomic_store(&srv->stop, true);
    if (srv->watchdog_started)
        pthread_join(srv->watchdog, NULL);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}
