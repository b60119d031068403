/* Shared between the server, router and auth; not for handlers. */
#ifndef PC_HTTP_INTERNAL_H
#define PC_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

const pc_route *pc_router_find(const char *method, const char *path, char *scratch, size_t cap,
                               pc_req *req, bool *path_matched);

/* Resolves the Authorization header into req->actor. Returns -1 with 401 on a
 * bad credential; an absent credential leaves PC_ACTOR_NONE (or the implicit
 * board in local_trusted mode). */
int pc_auth_resolve(pc_req *req, const char *authorization, pc_error_t *err);

#endif
