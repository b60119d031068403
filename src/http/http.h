/*
 * HTTP server, router and request/response helpers (libmicrohttpd).
 *
 * A handler sees a parsed request — method, path parameters, query, the JSON
 * body (already size- and type-checked), the authenticated actor — and fills
 * a response, or returns -1 with err set. pc_http_error_response() is the one
 * place where an error becomes a status code and an {"error", "details"} body.
 *
 * Handlers run on libmicrohttpd's connection threads; they may block (e.g.
 * waiting for a plugin) without stalling other connections.
 */
#ifndef PC_HTTP_HTTP_H
#define PC_HTTP_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "lib/error.h"
#include "model/actor.h"

#define PC_ROUTE_MAX_PARAMS 6


typedef struct pc_req {
    pc_app *app;
    const char *method;
    const char *path;
    const char *param_names[PC_ROUTE_MAX_PARAMS];
    const char *param_values[PC_ROUTE_MAX_PARAMS];
    int nparams;
    json_t *body;          /* parsed JSON body or NULL when none was sent */
    pc_actor actor;
    void *conn;            /* struct MHD_Connection * */
    const char *run_id_header; /* X-Paperclip-Run-Id or NULL */
} pc_req;

/* A streaming body: called repeatedly with a buffer to fill; return bytes
 * written, 0 when there is nothing yet (will be called again shortly), or -1
 * at the end. `free_cb` releases ctx when the response is done. */
typedef long (*pc_stream_fn)(void *ctx, char *buf, size_t max);

typedef struct pc_resp {
    int status;
    json_t *body;          /* owned; serialised as JSON */
    char *raw;             /* owned; sent as-is with content_type when body is NULL */
    size_t raw_len;
    const char *content_type;
    pc_stream_fn stream;
    void *stream_ctx;
    void (*stream_free)(void *ctx);
} pc_resp;

typedef int (*pc_handler)(pc_req *req, pc_resp *resp, pc_error_t *err);

typedef struct pc_route {
    const char *method;
    const char *pattern; /* "/api/companies/:companyId/agents" */
    pc_handler handler;
    unsigned flags;
} pc_route;

#define PC_ROUTE_PUBLIC 0x1u /* no actor needed (health) */
#define PC_ROUTE_NO_BODY 0x2u

/* The route tables the router matches, in order (the first matching pattern
 * wins), each ending with an entry whose method is NULL; the list ends with
 * NULL and must outlive the server. The daemon sets it once, before
 * pc_http_start(): the HTTP layer has no resources of its own. */
void pc_http_set_routes(const pc_route *const *tables);

/* Path parameter or query value (NULL if absent). */
const char *pc_req_param(const pc_req *req, const char *name);
const char *pc_req_query(const pc_req *req, const char *name);

/* Response helpers: set status and steal body. Return 0. */
int pc_resp_json(pc_resp *resp, int status, json_t *body);

/* Maps err to status + {"error": ..., "details"?: ...}; 5xx messages are
 * logged and replaced by "Internal server error". */
void pc_http_error_response(const pc_error_t *err, pc_resp *resp);

/* Server lifecycle. pc_http_start opens both listeners: the operator
 * listener on cfg.bind:cfg.port and the agent ingress on
 * cfg.agent_bind:cfg.agent_port, where only agent credentials are accepted.
 * Both share one budget for in-flight request bodies (cfg.body_budget). */
typedef struct pc_http pc_http;
pc_http *pc_http_start(pc_app *app, pc_error_t *err);
/* Stops accepting, lets in-flight requests finish, joins threads. */
void pc_http_stop(pc_http *srv);
int pc_http_port(pc_http *srv);
int pc_http_agent_port(pc_http *srv);

/* Authorization helpers used by handlers (upstream texts). */
int pc_require_board(const pc_req *req, pc_error_t *err);          /* 403 "Board access required" */
int pc_require_company_access(const pc_req *req, const char *company_id, pc_error_t *err);

#endif
