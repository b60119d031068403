/*
 * Route matching over the tables the daemon hands over (pc_http_set_routes);
 * a pattern segment that starts with ':' captures one path segment. Matching
 * is exact per segment (no prefixes, no trailing-slash tolerance except a
 * single trailing '/').
 */
#include <string.h>

#include "http/http.h"
#include "http/internal.h"

static const pc_route *const *route_tables;

void pc_http_set_routes(const pc_route *const *tables) { route_tables = tables; }

/* Matches path against pattern; fills params (pointing into the scratch copy
 * `buf`, which the caller keeps alive for the request). */
static bool pc_route_match(const char *pattern, char *buf, pc_req *req)
{
    const char *p = pattern;
    char *s = buf;
    int n = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++, s++;
        const char *pend = strchr(p, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        char *send = strchr(s, '/');
        size_t slen = send ? (size_t)(send - s) : strlen(s);
        if (*p == ':') {
            if (slen == 0 || n >= PC_ROUTE_MAX_PARAMS)
                return false;
            req->param_names[n] = p + 1; /* compared by length below */
            req->param_values[n] = s;
            n++;
        } else if (plen != slen || strncmp(p, s, plen) != 0) {
            return false;
        }
        p += plen;
        s += slen;
    }
    if (*p || (*s && strcmp(s, "/") != 0))
        return false;
    req->nparams = n;
    return true;
}

const pc_route *pc_router_find(const char *method, const char *path, char *scratch, size_t cap,
                               pc_req *req, bool *path_matched)
{
    *path_matched = false;
    size_t len = strlen(path);
    if (len + 1 > cap)
        return NULL;
    for (const pc_route *const *t = route_tables; t && *t; t++) {
        for (const pc_route *r = *t; r->method; r++) {
            memcpy(scratch, path, len + 1);
            pc_req probe = *req;
            if (!pc_route_match(r->pattern, scratch, &probe))
                continue;
            *path_matched = true;
            if (strcmp(r->method, method) != 0)
                continue;
            /* Terminate the captured values in place now that this route won. */
            *req = probe;
            for (int i = 0; i < req->nparams; i++) {
                char *v = (char *)req->param_values[i];
                char *slash = strchr(v, '/');
                if (slash)
                    *slash = '\0';
            }
            return r;
        }
    }
    return NULL;
}

const char *pc_req_param(const pc_req *req, const char *name)
{
    size_t nlen = strlen(name);
    for (int i = 0; i < req->nparams; i++) {
        const char *pn = req->param_names[i];
        const char *end = strchr(pn, '/');
        size_t plen = end ? (size_t)(end - pn) : strlen(pn);
        if (plen == nlen && !strncmp(pn, name, nlen))
            return req->param_values[i];
    }
    return NULL;
}
