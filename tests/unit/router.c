/* Unit tests for src/http/router.c over tables shaped like the daemon's:
 * path parameters, table order, methods, what a miss reports (the server
 * answers both kinds with 404 "API route not found"), trailing slashes,
 * percent-encoded bytes (the router does not decode; MHD hands it the
 * decoded path), empty segments, the parameter limit and the scratch
 * bound. */
#include <stdlib.h>
#include <string.h>

#include "../lib/tap.h"
#include "app.h"
#include "http/http.h"
#include "http/internal.h"

static int handler(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    (void)req, (void)resp, (void)err;
    return 0;
}

/* Two tables, matched in order: the first holds the literal /api/agents/me
 * so that it wins over /api/agents/:agentId in the second. */
static const pc_route runtime_routes[] = {
    {"GET", "/api/agents/me", handler, 0},
    {NULL, NULL, NULL, 0},
};

static const pc_route main_routes[] = {
    {"GET", "/api/health", handler, PC_ROUTE_PUBLIC},
    {"GET", "/api/companies", handler, 0},
    {"POST", "/api/companies", handler, 0},
    {"GET", "/api/companies/:companyId", handler, 0},
    {"PATCH", "/api/companies/:companyId", handler, 0},
    {"DELETE", "/api/companies/:companyId", handler, 0},
    {"GET", "/api/companies/:companyId/agents", handler, 0},
    {"GET", "/api/companies/:companyId/environments", handler, 0},
    {"GET", "/api/companies/:companyId/environments/capabilities", handler, 0},
    {"GET", "/api/agents/:agentId", handler, 0},
    {"PATCH", "/api/agents/:agentId", handler, 0},
    {"DELETE", "/api/agents/:agentId/keys/:keyId", handler, 0},
    {"GET", "/six/:a/:b/:c/:d/:e/:f", handler, 0},
    {"GET", "/seven/:a/:b/:c/:d/:e/:f/:g", handler, 0},
    {NULL, NULL, NULL, 0},
};

static const pc_route *const tables[] = {runtime_routes, main_routes, NULL};

typedef struct match {
    const pc_route *route;
    bool path_matched;
    pc_req req;
    char scratch[512];
} match;

static const pc_route *find(match *m, const char *method, const char *path)
{
    memset(m, 0, sizeof *m);
    m->route = pc_router_find(method, path, m->scratch, sizeof m->scratch, &m->req,
                              &m->path_matched);
    return m->route;
}

static const char *pattern(const match *m) { return m->route ? m->route->pattern : "(none)"; }

static void test_params(void)
{
    match m;
    ok(find(&m, "GET", "/api/companies/c-1/agents") != NULL, "GET company agents matches");
    is_str(pattern(&m), "/api/companies/:companyId/agents", "the company agents route wins");
    is_str(m.route ? m.route->method : "", "GET", "with its own method");
    is_int(m.req.nparams, 1, "one parameter captured");
    is_str(pc_req_param(&m.req, "companyId"), "c-1", "companyId captured");
    ok(pc_req_param(&m.req, "company") == NULL, "a prefix of a name is not that name");
    ok(pc_req_param(&m.req, "companyIdX") == NULL, "nor is a longer name");

    ok(find(&m, "DELETE", "/api/agents/a-9/keys/k-3") != NULL, "two-parameter route matches");
    is_int(m.req.nparams, 2, "two parameters captured");
    is_str(pc_req_param(&m.req, "agentId"), "a-9", "first value ends at its segment");
    is_str(pc_req_param(&m.req, "keyId"), "k-3", "second value");

    ok(find(&m, "GET", "/api/companies/c-1") != NULL, "a parameter as the last segment");
    is_str(pc_req_param(&m.req, "companyId"), "c-1", "last-segment value");

    ok(find(&m, "GET", "/api/companies/c-1/environments/capabilities") != NULL,
       "a literal segment after a parameter");
    is_str(pattern(&m), "/api/companies/:companyId/environments/capabilities",
           "the longer literal route, not a parameter route");
}

static void test_order(void)
{
    match m;
    ok(find(&m, "GET", "/api/agents/me") != NULL, "GET /api/agents/me matches");
    is_str(pattern(&m), "/api/agents/me", "the literal 'me' route comes before :agentId");
    is_int(m.req.nparams, 0, "and captures nothing");
    ok(find(&m, "PATCH", "/api/agents/me") != NULL, "PATCH /api/agents/me matches");
    is_str(pattern(&m), "/api/agents/:agentId", "other methods fall through to :agentId");
    is_str(pc_req_param(&m.req, "agentId"), "me", "with 'me' as the id");
}

static void test_methods(void)
{
    match m;
    ok(find(&m, "PUT", "/api/companies/c-1") == NULL, "unknown method: no route");
    ok(m.path_matched, "but the path is known (reported for a 405-style answer)");
    ok(find(&m, "POST", "/api/health") == NULL && m.path_matched,
       "POST on a GET-only path: no route, path known");
    ok(find(&m, "get", "/api/health") == NULL, "methods are case-sensitive");
    ok(find(&m, "GET", "/api/nothing-here") == NULL, "unknown path: no route");
    ok(!m.path_matched, "and the path is not known");
    ok(find(&m, "GET", "/") == NULL && !m.path_matched, "the root is not an API route");
    ok(find(&m, "GET", "") == NULL && !m.path_matched, "nor is an empty path");
}

static void test_slashes(void)
{
    match m;
    ok(find(&m, "GET", "/api/companies/") != NULL, "one trailing slash is tolerated");
    is_str(pattern(&m), "/api/companies", "on the list route");
    ok(find(&m, "GET", "/api/companies/c-1/") != NULL, "after a parameter too");
    is_str(pc_req_param(&m.req, "companyId"), "c-1", "the slash is not part of the value");
    ok(find(&m, "GET", "/api/companies//") == NULL, "two trailing slashes are not");
    ok(find(&m, "GET", "/api/companies//agents") == NULL, "an empty parameter never matches");
    ok(find(&m, "GET", "//api/companies") == NULL, "a doubled leading slash does not match");
    ok(find(&m, "GET", "api/companies") == NULL, "a path must start with '/'");
    ok(find(&m, "GET", "/api/companies/c-1/agents/extra") == NULL,
       "extra segments do not match a shorter route");
    ok(find(&m, "GET", "/api/companiesX") == NULL, "literal segments match whole");
    ok(find(&m, "GET", "/API/companies") == NULL, "literal segments are case-sensitive");
}

static void test_encoding(void)
{
    match m;
    ok(find(&m, "GET", "/api/companies/a%2Fb/agents") != NULL,
       "a percent-encoded slash stays inside one segment");
    is_str(pc_req_param(&m.req, "companyId"), "a%2Fb", "the value is passed through undecoded");
    ok(find(&m, "GET", "/api/companies/a/b/agents") == NULL,
       "a decoded slash splits the segment, so the route no longer matches");
    ok(find(&m, "GET", "/api/companies/%C3%A9t%C3%A9") != NULL, "encoded UTF-8 in a value");
    is_str(pc_req_param(&m.req, "companyId"), "%C3%A9t%C3%A9", "kept as sent");
    ok(find(&m, "GET", "/api/companies/\xc3\xa9t\xc3\xa9") != NULL, "raw UTF-8 in a value");
    is_str(pc_req_param(&m.req, "companyId"), "\xc3\xa9t\xc3\xa9", "kept byte for byte");
    ok(find(&m, "GET", "/api/%63ompanies") == NULL, "an encoded literal segment does not match");
}

static void test_bounds(void)
{
    match m;
    ok(find(&m, "GET", "/six/1/2/3/4/5/6") != NULL, "PC_ROUTE_MAX_PARAMS (%d) parameters match",
       PC_ROUTE_MAX_PARAMS);
    is_int(m.req.nparams, 6, "all of them captured");
    is_str(pc_req_param(&m.req, "f"), "6", "the last one whole");
    ok(find(&m, "GET", "/seven/1/2/3/4/5/6/7") == NULL, "one parameter too many: no match");
    ok(!m.path_matched, "and the path is not reported as known");
    char long_path[600];
    memset(long_path, 'x', sizeof long_path - 1);
    long_path[sizeof long_path - 1] = '\0';
    memcpy(long_path, "/api/companies/", 15);
    ok(find(&m, "GET", long_path) == NULL && !m.path_matched,
       "a path longer than the scratch space matches nothing");
    char fits[sizeof m.scratch];
    memset(fits, 'y', sizeof fits - 1);
    fits[sizeof fits - 1] = '\0';
    memcpy(fits, "/api/companies/", 15);
    ok(find(&m, "GET", fits) != NULL, "a path that just fits the scratch space matches");
    const char *v = pc_req_param(&m.req, "companyId");
    is_int(v ? strlen(v) : 0, sizeof fits - 1 - 15, "and its value is whole");
}

int main(void)
{
    match m;
    ok(find(&m, "GET", "/api/health") == NULL && !m.path_matched,
       "before tables are set nothing matches");
    pc_http_set_routes(tables);
    test_params();
    test_order();
    test_methods();
    test_slashes();
    test_encoding();
    test_bounds();
    return tap_done();
}
