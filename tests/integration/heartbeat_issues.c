/*
 * The issues API: identifiers, filters, lookup by identifier, validation,
 * checkout compare-and-set (409 on conflict, exactly one winner under a
 * race), release, comments, deletion and agent confinement (agent keys).
 */
#include <pthread.h>

#include "heartbeat_common.h"

static char *key_for(const char *agent)
{
    pc_http_res r = req("POST", "{\"name\":\"k\"}", "/api/agents/%s/keys", agent);
    char *t = strdup(pc_res_str(&r, "token"));
    pc_http_res_free(&r);
    return t;
}

typedef struct race {
    const char *issue, *agent, *key;
    long status;
} race;

static void *race_main(void *p)
{
    race *r = p;
    char body[200];
    snprintf(body, sizeof body, "{\"agentId\":\"%s\",\"expectedStatuses\":[\"todo\"]}", r->agent);
    pc_http_res res = areq(r->key, "POST", body, "/api/issues/%s/checkout", r->issue);
    r->status = res.status;
    pc_http_res_free(&res);
    return NULL;
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Issue Co");
    /* Agents that are never woken: a process agent with nothing to run
     * would fail, which is fine, but their issues are created in backlog. */
    char *a1 = hb_sh_agent(cid, "one", "true", NULL, NULL);
    char *a2 = hb_sh_agent(cid, "two", "true", NULL, NULL);

    pc_http_res r = req("POST", "{\"title\":\"First\"}", "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "create: 201");
    is_str(pc_res_str(&r, "identifier"), "ISS-1", "identifier PREFIX-1");
    is_str(pc_res_str(&r, "status"), "backlog", "default status backlog");
    is_str(pc_res_str(&r, "priority"), "medium", "default priority medium");
    char i1[64];
    snprintf(i1, sizeof i1, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    r = req("POST", "{\"title\":\"Second\",\"status\":\"todo\",\"priority\":\"high\"}",
            "/api/companies/%s/issues", cid);
    is_str(pc_res_str(&r, "identifier"), "ISS-2", "identifier increments");
    char i2[64];
    snprintf(i2, sizeof i2, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s", cid);
    is_int(json_integer_value(json_object_get(r.json, "issueCounter")), 2, "company issueCounter");
    pc_http_res_free(&r);

    r = req("POST", "{\"status\":\"todo\"}", "/api/companies/%s/issues", cid);
    is_int(r.status, 400, "missing title: 400");
    is_str(pc_res_str(&r, "error"), "Validation error", "Validation error");
    pc_http_res_free(&r);
    r = req("POST", "{\"title\":\"x\",\"status\":\"weird\"}", "/api/companies/%s/issues", cid);
    is_int(r.status, 400, "bad status: 400");
    pc_http_res_free(&r);
    r = req("POST", "{\"title\":\"x\",\"assigneeAgentId\":\"00000000-0000-7000-8000-000000000000\"}",
            "/api/companies/%s/issues", cid);
    is_int(r.status, 422, "unknown assignee: 422");
    pc_http_res_free(&r);
    r = req("POST", "[1,2]", "/api/companies/%s/issues", cid);
    is_int(r.status, 400, "non-object body: 400");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/issues/ISS-2");
    is_str(pc_res_str(&r, "id"), i2, "lookup by identifier");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/NOPE-9");
    is_int(r.status, 404, "unknown issue: 404");
    is_str(pc_res_str(&r, "error"), "Issue not found", "Issue not found");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/issues?status=todo", cid);
    is_int(json_array_size(r.json), 1, "status filter");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/issues?status=todo,backlog", cid);
    is_int(json_array_size(r.json), 2, "status list filter");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/issues?status=nope", cid);
    is_int(r.status, 400, "bad status filter: 400");
    pc_http_res_free(&r);

    /* Checkout compare-and-set. */
    char body[300];
    snprintf(body, sizeof body, "{\"agentId\":\"%s\",\"expectedStatuses\":[\"todo\"]}", a1);
    r = req("POST", body, "/api/issues/%s/checkout", i2);
    is_int(r.status, 200, "checkout: 200");
    is_str(pc_res_str(&r, "status"), "in_progress", "checked out issue is in_progress");
    is_str(pc_res_str(&r, "assigneeAgentId"), a1, "assigned to the agent");
    ok(json_is_string(json_object_get(r.json, "startedAt")), "startedAt set");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"agentId\":\"%s\",\"expectedStatuses\":[\"todo\"]}", a2);
    r = req("POST", body, "/api/issues/%s/checkout", i2);
    is_int(r.status, 409, "second agent: 409");
    is_str(pc_res_str(&r, "error"), "Issue checkout conflict", "conflict text");
    is_str(js(json_object_get(r.json, "details"), "assigneeAgentId"), a1, "details name the holder");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"agentId\":\"%s\",\"expectedStatuses\":[\"in_progress\"]}", a1);
    r = req("POST", body, "/api/issues/%s/checkout", i2);
    is_int(r.status, 200, "same agent may check out again");
    pc_http_res_free(&r);
    r = req("POST", "{\"agentId\":\"nope\"}", "/api/issues/%s/checkout", i2);
    is_int(r.status, 400, "bad agentId: 400");
    pc_http_res_free(&r);

    r = req("POST", NULL, "/api/issues/%s/release", i2);
    is_int(r.status, 200, "release: 200");
    is_str(pc_res_str(&r, "status"), "todo", "released issue back to todo");
    ok(json_is_null(json_object_get(r.json, "assigneeAgentId")), "and unassigned");
    pc_http_res_free(&r);

    /* Race: two agents with their own keys, one winner. */
    char *k1 = key_for(a1), *k2 = key_for(a2);
    for (int round = 0; round < 5; round++) {
        char *is = hb_issue(cid, "race", NULL, "todo");
        race ra = {is, a1, k1, 0}, rb = {is, a2, k2, 0};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race_main, &ra);
        pthread_create(&tb, NULL, race_main, &rb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        ok((ra.status == 200 && rb.status == 409) || (ra.status == 409 && rb.status == 200),
           "race %d: exactly one checkout wins (%ld, %ld)", round, ra.status, rb.status);
        free(is);
    }

    /* Agent keys are confined. */
    snprintf(body, sizeof body, "{\"agentId\":\"%s\"}", a2);
    r = areq(k1, "POST", body, "/api/issues/%s/checkout", i1);
    is_int(r.status, 403, "an agent cannot check out for another agent");
    pc_http_res_free(&r);
    char *other = hb_company("Else Co");
    r = areq(k1, "POST", "{\"title\":\"sneaky\"}", "/api/companies/%s/issues", other);
    is_int(r.status, 403, "an agent cannot create issues in another company");
    pc_http_res_free(&r);
    char *oi = hb_issue(other, "theirs", NULL, NULL);
    r = areq(k1, "GET", NULL, "/api/issues/%s", oi);
    is_int(r.status, 403, "nor read them");
    pc_http_res_free(&r);
    r = areq(k1, "POST", "{\"title\":\"mine\"}", "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "an agent creates issues in its company");
    is_str(pc_res_str(&r, "createdByAgentId"), a1, "createdByAgentId");
    pc_http_res_free(&r);
    r = areq(k1, "DELETE", NULL, "/api/issues/%s", i1);
    is_int(r.status, 403, "agents cannot delete issues");
    pc_http_res_free(&r);

    /* Comments and patch. */
    r = areq(k1, "POST", "{\"body\":\"hello\"}", "/api/issues/%s/comments", i1);
    is_int(r.status, 201, "comment: 201");
    is_str(pc_res_str(&r, "authorAgentId"), a1, "authored by the agent");
    pc_http_res_free(&r);
    r = req("POST", "{\"body\":\"\"}", "/api/issues/%s/comments", i1);
    is_int(r.status, 400, "empty comment: 400");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"status\":\"done\",\"comment\":\"closing\"}", "/api/issues/%s", i1);
    is_int(r.status, 200, "patch: 200");
    is_str(pc_res_str(&r, "status"), "done", "status done");
    ok(json_is_string(json_object_get(r.json, "completedAt")), "completedAt set");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/comments", i1);
    is_int(json_array_size(r.json), 2, "patch comment added");
    is_str(js(json_array_get(r.json, 1), "authorUserId"), "local-board", "by the board");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"priority\":\"urgent\"}", "/api/issues/%s", i1);
    is_int(r.status, 400, "bad priority: 400");
    pc_http_res_free(&r);

    r = req("DELETE", NULL, "/api/issues/%s", i1);
    is_int(r.status, 200, "delete: 200");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s", i1);
    is_int(r.status, 404, "deleted issue: 404");
    pc_http_res_free(&r);

    free(cid), free(a1), free(a2), free(k1), free(k2), free(other), free(oi);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
