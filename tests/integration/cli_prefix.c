/* Issue prefixes: many companies with one name all get short, distinct,
 * deterministic prefixes (LOA, LOA2, ... LOA60), also when created at once. */
#include <pthread.h>

#include "cli_common.h"

static pc_daemon d;

static void test_sequential(void)
{
    json_t *seen = json_object();
    int created = 0;
    bool short_enough = true, in_order = true;
    for (int i = 1; i <= 60; i++) {
        pc_http_res r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Loadtest\"}");
        if (r.status == 201) {
            created++;
            const char *p = cli_str(r.json, "issuePrefix");
            char want[16];
            if (i == 1)
                snprintf(want, sizeof want, "LOA");
            else
                snprintf(want, sizeof want, "LOA%d", i);
            if (strcmp(p, want) != 0) {
                in_order = false;
                tap_diag("company %d got %s, expected %s", i, p, want);
            }
            short_enough &= strlen(p) <= 5;
            json_object_set_new(seen, p, json_true());
        } else {
            tap_diag("company %d: %ld %s", i, r.status, r.body ? r.body : "");
        }
        pc_http_res_free(&r);
    }
    is_int(created, 60, "60 companies named Loadtest are all created");
    is_int(json_object_size(seen), 60, "their prefixes are distinct");
    ok(in_order, "prefixes follow LOA, LOA2, ..., LOA60");
    ok(short_enough, "no prefix is longer than five characters");
    json_decref(seen);

    /* A name whose own base looks like a numbered one does not disturb the
     * sequence, and a gap left by a deleted company is reused. */
    pc_http_res r = pc_http(&d, "GET", "/api/companies", NULL);
    const char *victim = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(r.json, i, c) {
        if (!strcmp(cli_str(c, "issuePrefix"), "LOA7"))
            victim = cli_str(c, "id");
    }
    char path[256];
    snprintf(path, sizeof path, "/api/companies/%s", victim ? victim : "none");
    pc_http_res del = pc_http(&d, "DELETE", path, NULL);
    is_int(del.status, 200, "LOA7 deleted");
    pc_http_res_free(&del);
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Loadtest again\"}");
    is_str(cli_str(r.json, "issuePrefix"), "LOA7", "the smallest free number is taken");
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Lo\"}");
    is_str(cli_str(r.json, "issuePrefix"), "LO", "a two-letter base is its own sequence");
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Lo\"}");
    is_str(cli_str(r.json, "issuePrefix"), "LO2", "and numbers on its own");
    pc_http_res_free(&r);

    /* The prefix is what issues are numbered with. */
    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Loadtest\"}");
    char *cid = strdup(cli_str(r.json, "id"));
    is_str(cli_str(r.json, "issuePrefix"), "LOA61", "the 61st gets LOA61");
    pc_http_res_free(&r);
    snprintf(path, sizeof path, "/api/companies/%s/issues", cid);
    r = pc_http(&d, "POST", path, "{\"title\":\"first\",\"status\":\"backlog\"}");
    is_str(cli_str(r.json, "identifier"), "LOA61-1", "issues carry the prefix");
    pc_http_res_free(&r);
    free(cid);
}

typedef struct {
    long status;
    char prefix[32];
} create_result;

static void *create_one(void *ud)
{
    create_result *res = ud;
    pc_http_res r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Concurrent\"}");
    res->status = r.status;
    snprintf(res->prefix, sizeof res->prefix, "%s", cli_str(r.json, "issuePrefix"));
    pc_http_res_free(&r);
    return NULL;
}

static void test_concurrent(void)
{
    enum { N = 20 };
    pthread_t th[N];
    create_result res[N];
    memset(res, 0, sizeof res);
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, create_one, &res[i]);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    json_t *seen = json_object();
    int created = 0;
    for (int i = 0; i < N; i++) {
        if (res[i].status == 201)
            created++;
        else
            tap_diag("parallel create %d: HTTP %ld", i, res[i].status);
        json_object_set_new(seen, res[i].prefix, json_true());
    }
    is_int(created, N, "20 parallel creates all succeed");
    is_int(json_object_size(seen), N, "with distinct prefixes");
    /* Whatever the order, the set is the first twenty of the sequence. */
    bool exact = json_object_get(seen, "CON") != NULL;
    for (int k = 2; k <= N; k++) {
        char want[16];
        snprintf(want, sizeof want, "CON%d", k);
        exact &= json_object_get(seen, want) != NULL;
    }
    ok(exact, "they are exactly CON, CON2, ..., CON20");
    json_decref(seen);
}

static void test_cli_create(void)
{
    char *out = NULL;
    is_int(cli_run(&out, NULL, "company", "create", "Loadtest", "--api-url", d.url, NULL), 0,
           "the CLI creates one more");
    ok(out && strstr(out, "issuePrefix: LOA62"), "and prints its prefix");
    free(out);
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    /* libcurl's global init is not thread-safe; one request first does it. */
    pc_http_res r = pc_http(&d, "GET", "/api/health", NULL);
    pc_http_res_free(&r);
    test_sequential();
    test_concurrent();
    test_cli_create();
    if (tap_failures())
        pc_daemon_dump_log(&d);
    pc_daemon_stop(&d);
    return tap_done();
}
