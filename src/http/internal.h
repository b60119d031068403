/* Shared between the server, router and auth; not for handlers. */
#ifndef PC_HTTP_INTERNAL_H
#define PC_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

const pc_route *pc_router_find(const char *method, const char *path, char *scratch, size_t cap,
                               pc_req *req, bool *path_matched);

/* Resolves the Authorization header into req->actor. Returns -1 with 401 on a
 * bad credential; an absent credential leaves PC_ACTOR_NONE, or the implicit
 * board when `implicit_board` is set (the operator listener in local_trusted
 * mode). */
int pc_auth_resolve(pc_req *req, const char *authorization, bool implicit_board, pc_error_t *err);

/* Browser guards (guard.c). The Host header (NULL when absent) must name a
 * loopback host, a bound address, an allowed hostname or the public URL's
 * host. A mutating method passes only when Sec-Fetch-Site is not cross-site
 * or same-site and Origin, if sent, names the same host:port as Host. */
bool pc_http_host_allowed(const pc_config *cfg, const char *host_header);
bool pc_http_origin_allowed(const char *method, const char *origin, const char *fetch_site,
                            const char *host_header);

#endif
