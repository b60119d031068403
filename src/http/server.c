/*
 * The HTTP server on libmicrohttpd.
 *
 * Thread per connection: a handler may block on the runtime (a plugin call,
 * a probe over SSH) without holding up any other client. The response is
 * always queued on the second or a later access-handler call: answering on
 * the first makes libmicrohttpd close the connection, which kills keep-alive.
 *
 * Body handling: Content-Length beyond the limit gets 413 before the body is
 * read; a chunked body is accumulated in a bounded pc_buf and gets 413 when
 * it passes the limit. POST/PATCH/PUT bodies must be application/json (415).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
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

struct pc_http {
    pc_app *app;
    struct MHD_Daemon *mhd;
    int listen_fd;
    int port;
    atomic_int inflight;
};

typedef struct pc_conn_ctx {
    pc_buf body;
    bool too_large;
    bool bad_type;
    size_t discarded;
    int64_t started_ms;
    int calls;
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

static void pc_conn_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    pc_conn_ctx *ctx = *con_cls;
    if (ctx) {
        pc_buf_release(&ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
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

static void pc_handle(pc_http *srv, struct MHD_Connection *c, const char *url, const char *method,
                      pc_conn_ctx *ctx, pc_resp *resp)
{
    pc_error_t err = PC_ERROR_INIT;
    pc_req req = {0};
    req.app = srv->app;
    req.method = method;
    req.path = url;
    req.conn = c;
    req.run_id_header = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Paperclip-Run-Id");

    if (!pc_str_has_prefix(url, "/api/") && strcmp(url, "/api") != 0) {
        if ((!strcmp(method, "GET") || !strcmp(method, "HEAD")) && pc_serve_ui(url, resp))
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
    if (pc_auth_resolve(&req, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
                        &err) < 0)
        goto fail;
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

static enum MHD_Result pc_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)version;
    pc_http *srv = cls;
    pc_conn_ctx *ctx = *con_cls;
    if (!ctx) {
        ctx = pc_xcalloc(1, sizeof *ctx);
        pc_buf_init(&ctx->body, srv->app->cfg.body_limit);
        ctx->started_ms = pc_mono_ms();
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > srv->app->cfg.body_limit)
                ctx->too_large = true;
        }
        *con_cls = ctx;
        return MHD_YES;
    }
    ctx->calls++;
    if (*upload_size > 0) {
        if (!ctx->too_large) {
            pc_error_t e = PC_ERROR_INIT;
            if (ctx->body.len == 0) {
                const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
                if (!pc_is_json_type(ct))
                    ctx->bad_type = true;
            }
            if (pc_buf_append(&ctx->body, upload, *upload_size, &e) < 0) {
                ctx->too_large = true;
                pc_buf_release(&ctx->body);
                pc_error_clear(&e);
            }
        }
        /* An oversize body is read and discarded so that the client, still
         * sending, gets to read the 413; only a body far past the limit is
         * cut off by answering early (which closes the connection). */
        if (ctx->too_large)
            ctx->discarded += *upload_size;
        *upload_size = 0;
        if (!ctx->too_large || ctx->discarded <= 4 * srv->app->cfg.body_limit)
            return MHD_YES;
    }

    atomic_fetch_add(&srv->inflight, 1);
    pc_resp resp = {0};
    pc_handle(srv, c, url, method, ctx, &resp);
    int status = resp.status ? resp.status : 200;
    enum MHD_Result ret = pc_queue(c, &resp);
    if (resp.body)
        json_decref(resp.body);
    free(resp.raw);
    if (resp.stream_free && resp.stream)
        resp.stream_free(resp.stream_ctx);
    pc_info("%s %s %d %lldms", method, url, status, (long long)(pc_mono_ms() - ctx->started_ms));
    atomic_fetch_sub(&srv->inflight, 1);
    return ret;
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

pc_http *pc_http_start(pc_app *app, pc_error_t *err)
{
    pc_http *srv = pc_xcalloc(1, sizeof *srv);
    srv->app = app;
    srv->listen_fd = pc_listen(app->cfg.bind, app->cfg.port, &srv->port, err);
    if (srv->listen_fd < 0) {
        free(srv);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC;
    srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, pc_access, srv, MHD_OPTION_LISTEN_SOCKET,
                                srv->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, pc_conn_completed, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_CONNECTION_TIMEOUT,
                                120u, MHD_OPTION_END);
    if (!srv->mhd) {
        close(srv->listen_fd);
        free(srv);
        pc_error_set(err, 500, "cannot start the HTTP server on %s:%d", app->cfg.bind,
                     app->cfg.port);
        return NULL;
    }
    return srv;
}

int pc_http_port(pc_http *srv) { return srv->port; }

void pc_http_stop(pc_http *srv)
{
    if (!srv)
        return;
    /* Stop accepting first, then give in-flight requests up to 30 s. */
    int fd = MHD_quiesce_daemon(srv->mhd);
    for (int i = 0; i < 3000 && atomic_load(&srv->inflight) > 0; i++)
        usleep(10 * 1000);
    MHD_stop_daemon(srv->mhd);
    if (fd >= 0)
        close(fd);
    free(srv);
}
