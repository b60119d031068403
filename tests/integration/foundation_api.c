/* Black-box tests of the daemon core: companies, agents, activity, errors,
 * limits, auth modes, restart, lock file, CLI. */
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "../lib/tap.h"

static pc_daemon d;

static char *create_company(const char *name)
{
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    pc_http_res r = pc_http(&d, "POST", "/api/companies", body);
    char *id = r.status == 201 ? strdup(pc_res_str(&r, "id")) : NULL;
    pc_http_res_free(&r);
    return id;
}

static void expect_error(const char *method, const char *path, const char *body, long status,
                         const char *error, const char *what)
{
    pc_http_res r = pc_http(&d, method, path, body);
    is_int(r.status, status, "%s: status", what);
    if (error)
        is_str(pc_res_str(&r, "error"), error, "%s: error text", what);
    pc_http_res_free(&r);
}

static void test_companies(void)
{
    pc_http_res r = pc_http(&d, "GET", "/api/health", NULL);
    is_int(r.status, 200, "health answers");
    is_str(pc_res_str(&r, "status"), "ok", "health status ok");
    pc_http_res_free(&r);

    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Peer Co\",\"budgetMonthlyCents\":500}");
    is_int(r.status, 201, "company created");
    is_str(pc_res_str(&r, "issuePrefix"), "PEE", "issue prefix from the name");
    is_int(json_integer_value(json_object_get(r.json, "budgetMonthlyCents")), 500, "budget kept");
    char *cid = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"Peerless\"}");
    is_str(pc_res_str(&r, "issuePrefix"), "PEE2", "colliding prefix gets a number");
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"123 !!\"}");
    is_str(pc_res_str(&r, "issuePrefix"), "CMP", "no letters falls back to CMP");
    pc_http_res_free(&r);

    char path[256];
    snprintf(path, sizeof path, "/api/companies/%s", cid);
    r = pc_http(&d, "PATCH", path, "{\"description\":\"d\",\"status\":\"paused\"}");
    is_int(r.status, 200, "company patched");
    is_str(pc_res_str(&r, "status"), "paused", "status updated");
    is_str(pc_res_str(&r, "description"), "d", "description updated");
    ok(json_is_string(json_object_get(r.json, "pausedAt")), "pausedAt set when paused");
    pc_http_res_free(&r);
    expect_error("PATCH", path, "{\"status\":\"bogus\"}", 400, "Validation error", "bad status enum");

    r = pc_http(&d, "GET", "/api/companies", NULL);
    is_int(json_array_size(r.json), 3, "list has three companies");
    pc_http_res_free(&r);

    /* Bad input. */
    expect_error("POST", "/api/companies", "{\"name\":", 400, "Malformed JSON", "malformed JSON");
    expect_error("POST", "/api/companies", "[1,2]", 400, "Validation error", "non-object body");
    expect_error("POST", "/api/companies", "{}", 400, "Validation error", "missing name");
    expect_error("POST", "/api/companies", "{\"name\":7}", 400, "Validation error", "wrong type");
    expect_error("POST", "/api/companies", "{\"name\":\"x\",\"bogus\":1}", 400, "Validation error",
                 "unknown field");
    expect_error("POST", "/api/companies", "{\"name\":\"\"}", 400, "Validation error",
                 "empty name");
    expect_error("GET", "/api/companies/not-a-uuid", NULL, 404, "Company not found", "bad id");
    expect_error("GET", "/api/companies/01234567-89ab-7def-8123-456789abcdef", NULL, 404,
                 "Company not found", "unknown id");
    expect_error("GET", "/api/nope", NULL, 404, "API route not found", "unknown route");
    expect_error("PUT", "/api/companies", "{}", 404, "API route not found", "wrong method");

    /* An 11 MB body is refused without crashing the daemon. */
    size_t big = 11u * 1024 * 1024;
    char *payload = malloc(big + 32);
    memcpy(payload, "{\"name\":\"", 9);
    memset(payload + 9, 'a', big);
    memcpy(payload + 9 + big, "\"}", 3);
    char url[256];
    snprintf(url, sizeof url, "%s/api/companies", d.url);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    r = pc_http_ex(url, "POST", payload, big + 11, hdrs);
    is_int(r.status, 413, "11 MB body gets 413");
    pc_http_res_free(&r);
    free(payload);
    const char *text[] = {"Content-Type: text/plain", NULL};
    r = pc_http_ex(url, "POST", "{\"name\":\"x\"}", 12, text);
    is_int(r.status, 415, "non-JSON content type gets 415");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/health", NULL);
    is_int(r.status, 200, "daemon still healthy after bad input");
    pc_http_res_free(&r);

    /* Activity. */
    snprintf(path, sizeof path, "/api/companies/%s/activity", cid);
    r = pc_http(&d, "GET", path, NULL);
    ok(json_array_size(r.json) >= 2, "activity rows for create and update");
    const char *first = json_string_value(json_object_get(json_array_get(r.json, 0), "action"));
    is_str(first, "company.updated", "newest activity first");
    pc_http_res_free(&r);
    free(cid);
}

static void test_agents(void)
{
    char *cid = create_company("Agents Inc");
    char path[256], body[512];
    snprintf(path, sizeof path, "/api/companies/%s/agents", cid);
    pc_http_res r = pc_http(&d, "POST", path,
                            "{\"name\":\"CEO\",\"role\":\"ceo\",\"adapterType\":\"process\","
                            "\"adapterConfig\":{\"command\":\"true\",\"env\":{\"TOKEN\":\"s3cret\"}}}");
    is_int(r.status, 201, "agent created");
    char *ceo = strdup(pc_res_str(&r, "id"));
    json_t *hb = json_object_get(json_object_get(r.json, "runtimeConfig"), "heartbeat");
    is_int(json_integer_value(json_object_get(hb, "maxConcurrentRuns")), 20,
           "heartbeat defaults filled in");
    ok(json_is_false(json_object_get(hb, "enabled")), "timer off by default");
    is_str(pc_res_str(&r, "status"), "idle", "new agent is idle");
    pc_http_res_free(&r);

    snprintf(body, sizeof body,
             "{\"name\":\"Eng\",\"role\":\"engineer\",\"reportsTo\":\"%s\","
             "\"runtimeConfig\":{\"heartbeat\":{\"maxConcurrentRuns\":99}}}",
             ceo);
    r = pc_http(&d, "POST", path, body);
    is_int(r.status, 201, "report created");
    hb = json_object_get(json_object_get(r.json, "runtimeConfig"), "heartbeat");
    is_int(json_integer_value(json_object_get(hb, "maxConcurrentRuns")), 50,
           "maxConcurrentRuns clamped to 50");
    is_str(pc_res_str(&r, "reportsTo"), ceo, "reportsTo stored");
    char *eng = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    expect_error("POST", path, "{\"name\":\"X\",\"role\":\"wizard\"}", 400, "Validation error",
                 "bad role");
    expect_error("POST", path, "{\"name\":\"X\",\"adapterType\":\"nope\"}", 400,
                 "Validation error", "bad adapter type");
    expect_error("POST", path, "{\"name\":\"X\",\"adapterConfig\":[]}", 400, "Validation error",
                 "adapterConfig must be an object");
    expect_error("POST", path,
                 "{\"name\":\"X\",\"reportsTo\":\"01234567-89ab-7def-8123-456789abcdef\"}", 422,
                 NULL, "unknown manager");

    r = pc_http(&d, "GET", path, NULL);
    is_int(json_array_size(r.json), 2, "two agents listed");
    pc_http_res_free(&r);

    snprintf(path, sizeof path, "/api/agents/%s", eng);
    r = pc_http(&d, "PATCH", path, "{\"title\":\"Staff\",\"status\":\"paused\"}");
    is_int(r.status, 200, "agent patched");
    is_str(pc_res_str(&r, "title"), "Staff", "title updated");
    is_str(pc_res_str(&r, "name"), "Eng", "unpatched fields kept");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"reportsTo\":\"%s\"}", eng);
    expect_error("PATCH", path, body, 422, NULL, "agent cannot report to itself");

    snprintf(path, sizeof path, "/api/companies/%s/activity", cid);
    r = pc_http(&d, "GET", path, NULL);
    ok(strstr(r.body, "agent.created") && strstr(r.body, "agent.updated"), "agent activity logged");
    ok(!strstr(r.body, "s3cret"), "activity never carries adapterConfig secrets");
    pc_http_res_free(&r);

    snprintf(path, sizeof path, "/api/agents/%s", eng);
    r = pc_http(&d, "DELETE", path, NULL);
    is_int(r.status, 200, "agent deleted");
    pc_http_res_free(&r);
    expect_error("GET", path, NULL, 404, "Agent not found", "deleted agent gone");
    free(eng);
    free(ceo);
    free(cid);
}

static void test_keepalive(void)
{
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "%s/api/health", d.url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    long connects = -1;
    curl_easy_perform(c);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
    is_int(connects, 0, "second request reuses the keep-alive connection");
    curl_easy_cleanup(c);
    fclose(devnull);
}

static void test_cli(void)
{
    char *out = NULL;
    char *argv1[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "company", "list", NULL};
    is_int(pc_run_capture(argv1, &out), 0, "cli company list --json exits 0");
    json_t *j = json_loads(out ? out : "", 0, NULL);
    ok(json_is_array(j) && json_array_size(j) >= 3, "cli prints the API's JSON");
    json_decref(j);
    free(out);
    char *argv2[] = {(char *)pc_test_bin(), "--api-url", d.url, "company", "create", "Cli Co", NULL};
    is_int(pc_run_capture(argv2, &out), 0, "cli company create exits 0");
    ok(out && strstr(out, "issuePrefix: CLI"), "cli prints the created company");
    free(out);
    char *argv3[] = {(char *)pc_test_bin(), "--api-url", d.url, "company", "get", "nope", NULL};
    is_int(pc_run_capture(argv3, NULL), 1, "cli exits 1 on an API error");
    char *argv4[] = {(char *)pc_test_bin(), "--help", NULL};
    is_int(pc_run_capture(argv4, &out), 0, "--help exits 0");
    ok(out && strstr(out, "serve"), "--help lists commands");
    free(out);
    char *argv5[] = {(char *)pc_test_bin(), "frobnicate", NULL};
    is_int(pc_run_capture(argv5, NULL), 2, "unknown command exits 2");
    char *argv6[] = {(char *)pc_test_bin(), "--api-url", "http://127.0.0.1:1", "health", NULL};
    is_int(pc_run_capture(argv6, NULL), 3, "unreachable daemon exits 3");
}

static void test_restart_and_lock(void)
{
    d.keep_dir = true;
    /* A second daemon on the same data dir refuses. */
    char *out = NULL;
    char *argv[] = {(char *)pc_test_bin(), "serve", "--data-dir", d.data_dir, "--port", "0", NULL};
    int rc = pc_run_capture(argv, &out);
    ok(rc != 0, "second daemon on the same data dir refuses");
    free(out);
    /* A taken port is a clear error. */
    char *other = pc_test_tmpdir("port");
    char port[16];
    snprintf(port, sizeof port, "%d", d.port);
    char *argv2[] = {(char *)pc_test_bin(), "serve", "--data-dir", other, "--port", port, NULL};
    ok(pc_run_capture(argv2, NULL) != 0, "taken port refused");
    pc_test_rmrf(other);
    free(other);

    is_int(pc_daemon_stop(&d), 0, "SIGTERM exits 0");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d.data_dir);
    pc_daemon_opts o = {.data_dir = dir};
    ok(pc_daemon_start(&d, &o) == 0, "daemon restarts on the same data dir");
    pc_http_res r = pc_http(&d, "GET", "/api/companies", NULL);
    ok(json_array_size(r.json) >= 4, "companies survive a restart");
    pc_http_res_free(&r);
    d.keep_dir = false;
}

static void test_authenticated_mode(void)
{
    pc_daemon a;
    const char *args[] = {"--auth-mode", "authenticated", NULL};
    pc_daemon_opts o = {.args = args};
    if (pc_daemon_start(&a, &o) < 0) {
        ok(0, "authenticated daemon starts");
        return;
    }
    pc_http_res r = pc_http(&a, "GET", "/api/companies", NULL);
    is_int(r.status, 401, "no credentials: 401");
    pc_http_res_free(&r);
    r = pc_http(&a, "GET", "/api/health", NULL);
    is_int(r.status, 200, "health needs no credentials");
    pc_http_res_free(&r);
    char *out = NULL;
    char *argv[] = {(char *)pc_test_bin(), "auth", "create-board-key", "--data-dir", a.data_dir,
                    NULL};
    is_int(pc_run_capture(argv, &out), 0, "board key created");
    char key[128] = "";
    if (out)
        sscanf(out, "%127s", key);
    free(out);
    ok(!strncmp(key, "pcb_", 4) && strlen(key) == 52, "board key has the pcb_ form");
    r = pc_http_auth(&a, key, "POST", "/api/companies", "{\"name\":\"Auth Co\"}");
    is_int(r.status, 201, "board key authorises");
    pc_http_res_free(&r);
    r = pc_http_auth(&a, "pcb_0000", "GET", "/api/companies", NULL);
    is_int(r.status, 401, "wrong key: 401");
    pc_http_res_free(&r);
    pc_daemon_stop(&a);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    test_companies();
    test_agents();
    test_keepalive();
    test_cli();
    test_restart_and_lock();
    test_authenticated_mode();
    pc_daemon_stop(&d);
    return tap_done();
}
