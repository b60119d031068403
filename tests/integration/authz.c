/*
 * The trust model (docs/security.md), row by row, against a real daemon:
 * what an agent key and a live or finished run token may do to agents,
 * issues, keys, runs and other companies; the board's grants and approvals;
 * the restricted agent view; and a search of every response and every file
 * of the data dir for canary secrets.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "heartbeat_common.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

#define CANARY "cnry-5b1e0c7a93d2"
#define PLUGIN_CANARY "plgn-94c0e1d7aa61"

static char *cid, *cid2, *tmp, *sbx;
static char *runner, *runner_key, *peer, *scratch, *outsider, *outsider_key;
static char run_token[2048], run_id[64], issue[64], sleeper_run[64];
static int canary_hits;

/* Every response passes through here so a canary in any body is counted. */
static pc_http_res scan(pc_http_res r)
{
    if (r.body && (memmem(r.body, r.len, CANARY, strlen(CANARY)) ||
                   memmem(r.body, r.len, PLUGIN_CANARY, strlen(PLUGIN_CANARY)))) {
        canary_hits++;
        tap_diag("canary in a response: %.200s", r.body);
    }
    return r;
}
#define R(...) scan(pc_test_req(&d, __VA_ARGS__))
#define B(...) scan(pc_test_req(&d, NULL, __VA_ARGS__))

static char *mint_key(const char *agent)
{
    pc_http_res r = B("POST", "{\"name\":\"k\"}", "/api/agents/%s/keys", agent);
    char *t = strdup(pc_res_str(&r, "token"));
    if (r.status != 201)
        tap_diag("key: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return t;
}

static char *make_agent(const char *company, const char *body)
{
    pc_http_res r = B("POST", body, "/api/companies/%s/agents", company);
    char *id = strdup(pc_res_str(&r, "id"));
    if (r.status != 201)
        tap_diag("agent: %ld %s", r.status, r.body);
    pc_http_res_free(&r);
    return id;
}

/* The board's view of one field of an agent, as canonical JSON text. */
static char *field_of(const char *agent, const char *field)
{
    pc_http_res r = B("GET", NULL, "/api/agents/%s", agent);
    char *s =
        json_dumps(json_object_get(r.json, field), JSON_ENCODE_ANY | JSON_SORT_KEYS | JSON_COMPACT);
    pc_http_res_free(&r);
    return s ? s : strdup("(absent)");
}

static void setup(void)
{
    cid = hb_company("Trust Co");
    cid2 = hb_company("Other Co");
    tmp = pc_test_tmpdir("authz");
    char body[1400];
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true,"
             "\"config\":{\"region\":\"test\"},\"env\":{\"FAKE_API_TOKEN\":\"" PLUGIN_CANARY "\"}}",
             pc_test_root());
    pc_http_res r = B("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "fake sandbox plugin installed (%ld)", r.status);
    pc_http_res_free(&r);
    r = B("POST",
          "{\"name\":\"Box\",\"driver\":\"sandbox\",\"config\":{\"provider\":\"fake-plugin\","
          "\"image\":\"fake:test\"}}",
          "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "sandbox environment created");
    sbx = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    /* Runner holds its run open until the test creates the release flag,
     * so its token stays live for the tests that need one. */
    char script[1200];
    snprintf(script, sizeof script,
             "printf %%s \"$PAPERCLIP_API_KEY\" > '%s/token.tmp' && mv '%s/token.tmp' '%s/token'; "
             "i=0; while [ ! -e '%s/release' ] && [ $i -lt 6000 ]; do sleep 0.05; i=$((i+1)); "
             "done; echo released",
             tmp, tmp, tmp, tmp);
    runner = hb_sh_agent(cid, "Runner", script, NULL, NULL);
    runner_key = mint_key(runner);
    /* Peer's credential is sealed; its run proves the value still reaches
     * the process (its length) and never its log. */
    peer = hb_sh_agent(
        cid, "Peer", "echo \"len ${#OPENAI_API_KEY}\"; echo \"leak $OPENAI_API_KEY\"",
        "\"env\":{\"OPENAI_API_KEY\":\"" CANARY "\",\"PLAIN_SETTING\":\"visible\"}", NULL);
    scratch = make_agent(cid, "{\"name\":\"Scratch\"}");
    outsider = make_agent(cid2, "{\"name\":\"Outsider\"}");
    outsider_key = mint_key(outsider);
    char *is = hb_issue(cid, "Routing", NULL, "backlog");
    snprintf(issue, sizeof issue, "%s", is);
    free(is);

    char *rid = hb_wake(runner, NULL);
    snprintf(run_id, sizeof run_id, "%s", rid);
    free(rid);
    char path[700];
    snprintf(path, sizeof path, "%s/token", tmp);
    char *tok = NULL;
    for (int i = 0; i < 1500 && !(tok && *tok); i++) {
        free(tok);
        tok = pc_test_read_file(path, sizeof run_token - 1);
        if (!*tok)
            pc_test_sleep_ms(20);
    }
    snprintf(run_token, sizeof run_token, "%s", tok ? tok : "");
    free(tok);
    if (!ok(strncmp(run_token, "eyJ", 3) == 0, "the live run handed out its token")) {
        r = B("GET", NULL, "/api/heartbeat-runs/%s", run_id);
        tap_diag("run: %s", r.body);
        pc_http_res_free(&r);
        char *log = hb_log(run_id);
        tap_diag("log: %s", log);
        free(log);
    }
    char url[300], auth[2200];
    snprintf(url, sizeof url, "%s/api/agents/me", d.agent_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", run_token);
    const char *hdrs[] = {auth, NULL};
    r = scan(pc_http_ex(url, "GET", NULL, 0, hdrs));
    is_int(r.status, 200, "a live run's token authenticates on the agent ingress");
    pc_http_res_free(&r);
    r = R(run_token, "GET", NULL, "/api/agents/me");
    is_int(r.status, 200, "a live run's token authenticates");
    is_str(pc_res_str(&r, "id"), runner, "as its agent");
    pc_http_res_free(&r);
}

/* Row "agent configuration": every guarded field, both agent credentials,
 * self and peer: 403 and nothing changes; the board: 200. */
static void test_field_guards(void)
{
    char reports[200], env[200];
    snprintf(reports, sizeof reports, "\"%s\"", peer);
    snprintf(env, sizeof env, "\"%s\"", sbx);
    const struct {
        const char *field, *value;
    } f[] = {
        {"adapterType", "\"codex_local\""},
        {"adapterConfig", "{\"command\":\"sh\",\"args\":[\"-c\",\"echo host\"]}"},
        {"runtimeConfig", "{\"heartbeat\":{\"enabled\":true,\"intervalSec\":1}}"},
        {"defaultEnvironmentId", env},
        {"status", "\"paused\""},
        {"role", "\"ceo\""},
        {"permissions", "{\"canCreateAgents\":true}"},
        {"budgetMonthlyCents", "999999"},
        {"reportsTo", reports},
    };
    const char *creds[] = {run_token, runner_key};
    const char *cred_name[] = {"run token", "agent key"};
    const char *targets[] = {runner, scratch};
    const char *target_name[] = {"self", "peer"};
    for (size_t i = 0; i < N(f); i++) {
        char body[400];
        snprintf(body, sizeof body, "{\"%s\":%s}", f[i].field, f[i].value);
        for (int c = 0; c < 2; c++)
            for (int t = 0; t < 2; t++) {
                char *before = field_of(targets[t], f[i].field);
                pc_http_res r = R(creds[c], "PATCH", body, "/api/agents/%s", targets[t]);
                is_int(r.status, 403, "%s: %s of %s refused", cred_name[c], f[i].field,
                       target_name[t]);
                pc_http_res_free(&r);
                char *after = field_of(targets[t], f[i].field);
                is_str(after, before, "%s: %s of %s unchanged", cred_name[c], f[i].field,
                       target_name[t]);
                free(before), free(after);
            }
        pc_http_res r = B("PATCH", body, "/api/agents/%s", scratch);
        is_int(r.status, 200, "board: %s changed", f[i].field);
        pc_http_res_free(&r);
    }
    /* Harmless self-edits stay open to an agent. */
    pc_http_res r = R(runner_key, "PATCH", "{\"title\":\"runs things\"}", "/api/agents/%s", runner);
    is_int(r.status, 200, "agent key: own title 200");
    pc_http_res_free(&r);

    /* With agents:create (granted by the board) an agent may configure a
     * peer, but never permissions, its own status or budget, or an
     * approval state. */
    r = R(runner_key, "PATCH", "{\"canCreateAgents\":true}", "/api/agents/%s/permissions", runner);
    is_int(r.status, 403, "agent cannot grant itself a permission");
    pc_http_res_free(&r);
    char *creator = make_agent(cid, "{\"name\":\"Creator\"}");
    r = B("PATCH", "{\"canCreateAgents\":true}", "/api/agents/%s/permissions", creator);
    is_int(r.status, 200, "board grants agents:create");
    ok(json_is_true(json_object_get(json_object_get(r.json, "permissions"), "canCreateAgents")),
       "grant recorded in permissions");
    pc_http_res_free(&r);
    char *ck = mint_key(creator);
    r = R(ck, "PATCH", "{\"adapterConfig\":{\"command\":\"true\"}}", "/api/agents/%s", scratch);
    is_int(r.status, 200, "agents:create: peer adapterConfig 200");
    pc_http_res_free(&r);
    r = R(ck, "PATCH", "{\"status\":\"idle\"}", "/api/agents/%s", creator);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "own status"),
       "agents:create: own status still 403");
    pc_http_res_free(&r);
    r = R(ck, "PATCH", "{\"budgetMonthlyCents\":1}", "/api/agents/%s", creator);
    is_int(r.status, 403, "agents:create: own budget still 403");
    pc_http_res_free(&r);
    r = R(ck, "PATCH", "{\"permissions\":{}}", "/api/agents/%s", scratch);
    is_int(r.status, 403, "agents:create: permissions still board only");
    pc_http_res_free(&r);
    r = R(ck, "PATCH", "{\"status\":\"terminated\"}", "/api/agents/%s", scratch);
    is_int(r.status, 403, "agents:create: terminated is the board's");
    pc_http_res_free(&r);
    free(creator), free(ck);
}

/* Row "issue routing". */
static void test_issue_routing(void)
{
    char body[300];
    snprintf(body, sizeof body, "{\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}", sbx);
    const char *creds[] = {run_token, runner_key};
    for (int c = 0; c < 2; c++) {
        pc_http_res r = R(creds[c], "PATCH", body, "/api/issues/%s", issue);
        ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "environments:manage"),
           "%s: issue execution environment 403", c ? "agent key" : "run token");
        pc_http_res_free(&r);
        r = B("GET", NULL, "/api/issues/%s", issue);
        ok(json_is_null(json_object_get(r.json, "executionWorkspaceSettings")) ||
               !json_object_get(r.json, "executionWorkspaceSettings"),
           "%s: issue environment unchanged", c ? "agent key" : "run token");
        pc_http_res_free(&r);
    }
    pc_http_res r = B("PATCH", body, "/api/issues/%s", issue);
    is_int(r.status, 200, "board: issue environment 200");
    pc_http_res_free(&r);

    snprintf(body, sizeof body, "{\"assigneeAgentId\":\"%s\"}", scratch);
    r = R(runner_key, "PATCH", body, "/api/issues/%s", issue);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "tasks:assign"),
       "agent assigning to another agent: 403 tasks:assign");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"title\":\"handoff\",\"assigneeAgentId\":\"%s\"}", scratch);
    r = R(run_token, "POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 403, "agent creating an issue for another agent: 403");
    pc_http_res_free(&r);
    snprintf(body, sizeof body,
             "{\"title\":\"mine\",\"assigneeAgentId\":\"%s\",\"status\":\"backlog\"}", runner);
    r = R(runner_key, "POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "agent creating an issue for itself: 201");
    pc_http_res_free(&r);
}

/* Row "API keys". */
static void test_keys(void)
{
    const char *creds[] = {run_token, runner_key};
    for (int c = 0; c < 2; c++) {
        pc_http_res r = R(creds[c], "POST", "{}", "/api/agents/%s/keys", runner);
        is_int(r.status, 403, "%s: minting an own key 403", c ? "agent key" : "run token");
        is_str(pc_res_str(&r, "error"), "Board access required", "upstream's text");
        ok(!strstr(r.body, "pcp_"), "no key in the refusal");
        pc_http_res_free(&r);
    }
    pc_http_res r = B("GET", NULL, "/api/agents/%s/keys", runner);
    const char *kid = json_string_value(json_object_get(json_array_get(r.json, 0), "id"));
    is_int(json_array_size(r.json), 1, "still exactly the board's key");
    char path[200];
    snprintf(path, sizeof path, "/api/agents/%s/keys/%s", runner, kid ? kid : "x");
    pc_http_res_free(&r);
    r = R(run_token, "DELETE", NULL, "%s", path);
    is_int(r.status, 403, "run token: revoking a key 403");
    pc_http_res_free(&r);
    r = R(runner_key, "GET", NULL, "/api/agents/me");
    is_int(r.status, 200, "the key still works");
    pc_http_res_free(&r);

    /* Plugins run code on the host: board only. */
    char body[1200];
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}", pc_test_root());
    r = R(runner_key, "POST", body, "/api/plugins/install");
    is_int(r.status, 403, "agent key: plugin install 403");
    pc_http_res_free(&r);
    r = R(run_token, "GET", NULL, "/api/plugins");
    is_int(r.status, 403, "run token: plugin list 403");
    pc_http_res_free(&r);
}

/* Row "runs": cancel only one's own. */
static void test_cancel(void)
{
    char script[700];
    snprintf(script, sizeof script,
             "i=0; while [ ! -e '%s/release' ] && [ $i -lt 6000 ]; do sleep 0.05; i=$((i+1)); done",
             tmp);
    char *sleeper = hb_sh_agent(cid, "Sleeper", script, NULL, NULL);
    char *rid = hb_wake(sleeper, NULL);
    snprintf(sleeper_run, sizeof sleeper_run, "%s", rid);
    free(rid);
    json_t *run = hb_wait_run(sleeper_run, "running", 20000);
    ok(run != NULL, "sleeper is running");
    json_decref(run);
    const char *creds[] = {run_token, runner_key};
    for (int c = 0; c < 2; c++) {
        pc_http_res r = R(creds[c], "POST", "{}", "/api/heartbeat-runs/%s/cancel", sleeper_run);
        is_int(r.status, 403, "%s: cancelling another agent's run 403",
               c ? "agent key" : "run token");
        pc_http_res_free(&r);
    }
    pc_http_res r = B("GET", NULL, "/api/heartbeat-runs/%s", sleeper_run);
    is_str(pc_res_str(&r, "status"), "running", "the other run is untouched");
    pc_http_res_free(&r);
    r = B("POST", "{}", "/api/heartbeat-runs/%s/cancel", sleeper_run);
    is_int(r.status, 200, "board cancels it");
    pc_http_res_free(&r);
    free(sleeper);
}

/* Row "wake another agent". */
static void test_wake(void)
{
    pc_http_res r = R(runner_key, "POST", "{}", "/api/agents/%s/wakeup", peer);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "tasks:assign"),
       "agent key: waking another agent 403 tasks:assign");
    pc_http_res_free(&r);
    r = R(run_token, "POST", "{}", "/api/agents/%s/heartbeat/invoke", peer);
    is_int(r.status, 403, "run token: invoking another agent 403");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id IN (SELECT id FROM agents "
                    "WHERE name='Peer')"),
           0, "no run was queued for the peer");
    r = B("PATCH", "{\"canAssignTasks\":true}", "/api/agents/%s/permissions", runner);
    is_int(r.status, 200, "board grants tasks:assign");
    pc_http_res_free(&r);
    r = R(runner_key, "POST", "{}", "/api/agents/%s/wakeup", peer);
    is_int(r.status, 202, "with tasks:assign: wake 202");
    char peer_run[64];
    snprintf(peer_run, sizeof peer_run, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    json_t *run = hb_wait_run(peer_run, NULL, 20000);
    is_str(js(run, "status"), "succeeded", "peer run succeeded");
    json_decref(run);
    char *log = hb_log(peer_run);
    char want[40];
    snprintf(want, sizeof want, "len %zu", strlen(CANARY));
    ok(strstr(log, want) != NULL, "the sealed value reached the run");
    ok(strstr(log, "leak ***REDACTED***") != NULL, "and was redacted from its log");
    free(log);
    r = B("PATCH", "{\"canAssignTasks\":false}", "/api/agents/%s/permissions", runner);
    is_int(r.status, 200, "board withdraws tasks:assign");
    pc_http_res_free(&r);
    r = R(runner_key, "POST", "{}", "/api/agents/%s/wakeup", peer);
    is_int(r.status, 403, "withdrawn: wake 403 again");
    pc_http_res_free(&r);
}

/* Row "other company": every route family. */
static void test_cross_company(void)
{
    char agent_body[100] = "{\"name\":\"x\"}";
    const struct {
        const char *method, *fmt, *arg, *body;
    } routes[] = {
        {"GET", "/api/companies/%s", cid, NULL},
        {"PATCH", "/api/companies/%s", cid, "{\"name\":\"x\"}"},
        {"GET", "/api/companies/%s/agents", cid, NULL},
        {"POST", "/api/companies/%s/agents", cid, agent_body},
        {"GET", "/api/agents/%s", peer, NULL},
        {"PATCH", "/api/agents/%s", peer, "{\"name\":\"x\"}"},
        {"DELETE", "/api/agents/%s", peer, NULL},
        {"POST", "/api/agents/%s/wakeup", peer, "{}"},
        {"POST", "/api/agents/%s/heartbeat/invoke", peer, "{}"},
        {"GET", "/api/agents/%s/keys", peer, NULL},
        {"POST", "/api/agents/%s/keys", peer, "{}"},
        {"PATCH", "/api/agents/%s/permissions", peer, "{\"canCreateAgents\":true}"},
        {"POST", "/api/agents/%s/approve", peer, "{}"},
        {"GET", "/api/companies/%s/issues", cid, NULL},
        {"POST", "/api/companies/%s/issues", cid, "{\"title\":\"x\"}"},
        {"GET", "/api/issues/%s", issue, NULL},
        {"PATCH", "/api/issues/%s", issue, "{\"title\":\"x\"}"},
        {"POST", "/api/issues/%s/comments", issue, "{\"body\":\"x\"}"},
        {"GET", "/api/companies/%s/heartbeat-runs", cid, NULL},
        {"GET", "/api/heartbeat-runs/%s", run_id, NULL},
        {"POST", "/api/heartbeat-runs/%s/cancel", run_id, "{}"},
        {"GET", "/api/heartbeat-runs/%s/log", run_id, NULL},
        {"GET", "/api/heartbeat-runs/%s/events", run_id, NULL},
        {"GET", "/api/companies/%s/environments", cid, NULL},
        {"GET", "/api/environments/%s", sbx, NULL},
        {"PATCH", "/api/environments/%s", sbx, "{\"name\":\"x\"}"},
        {"GET", "/api/companies/%s/activity", cid, NULL},
    };
    for (size_t i = 0; i < N(routes); i++) {
        char path[300];
        snprintf(path, sizeof path, routes[i].fmt, routes[i].arg);
        pc_http_res r = R(outsider_key, routes[i].method, routes[i].body, "%s", path);
        ok(r.status == 403 || r.status == 404, "other company's agent: %s %s -> %ld",
           routes[i].method, routes[i].fmt, r.status);
        pc_http_res_free(&r);
    }
    pc_http_res r = R(run_token, "GET", NULL, "/api/companies/%s/agents", cid2);
    is_int(r.status, 403, "run token: another company's agents 403");
    pc_http_res_free(&r);
    r = R(run_token, "GET", NULL, "/api/companies/%s/issues", cid);
    is_int(r.status, 200, "run token: own company's issues 200");
    pc_http_res_free(&r);
    r = B("GET", NULL, "/api/agents/%s", peer);
    is_str(pc_res_str(&r, "name"), "Peer", "the peer is untouched");
    pc_http_res_free(&r);
}

/* Rows "hiring" and "containment". */
static void test_approval(void)
{
    /* A company that wants every agent-made hire approved. */
    char *gated = hb_company("Gated Co");
    pc_http_res r =
        B("PATCH", "{\"requireBoardApprovalForNewAgents\":true}", "/api/companies/%s", gated);
    is_int(r.status, 200, "company requires approval for new agents");
    pc_http_res_free(&r);
    char *hirer =
        make_agent(gated, "{\"name\":\"Hirer\",\"permissions\":{\"canCreateAgents\":true}}");
    char *hk = mint_key(hirer);
    r = R(hk, "POST", "{\"name\":\"Hire\"}", "/api/companies/%s/agents", gated);
    is_int(r.status, 201, "agent hires");
    is_str(pc_res_str(&r, "status"), "pending_approval", "hire waits for the board");
    char *hire = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    r = B("POST", "{}", "/api/agents/%s/wakeup", hire);
    is_int(r.status, 409, "a pending hire cannot run");
    pc_http_res_free(&r);
    r = R(hk, "PATCH", "{\"status\":\"idle\"}", "/api/agents/%s", hire);
    is_int(r.status, 403, "the hirer cannot approve it");
    pc_http_res_free(&r);
    r = R(hk, "POST", "{}", "/api/agents/%s/approve", hire);
    is_int(r.status, 403, "nor through the approve route");
    pc_http_res_free(&r);
    r = B("POST", "{}", "/api/agents/%s/approve", hire);
    is_int(r.status, 200, "board approves");
    is_str(pc_res_str(&r, "status"), "idle", "approved hire is idle");
    pc_http_res_free(&r);
    r = B("POST", "{}", "/api/agents/%s/approve", hire);
    is_int(r.status, 409, "approving twice: 409");
    pc_http_res_free(&r);
    r = B("POST", "{}", "/api/agents/%s/wakeup", hire);
    is_int(r.status, 202, "approved hire runs");
    pc_http_res_free(&r);

    /* A confined agent (sandbox default environment) with every grant. */
    char body[400];
    snprintf(body, sizeof body,
             "{\"name\":\"Boxed\",\"defaultEnvironmentId\":\"%s\",\"permissions\":"
             "{\"canCreateAgents\":true}}",
             sbx);
    char *boxed = make_agent(cid, body);
    char *bk = mint_key(boxed);
    r = R(bk, "POST", "{\"name\":\"Child\",\"adapterConfig\":{\"command\":\"sh\"}}",
          "/api/companies/%s/agents", cid);
    is_int(r.status, 201, "confined agent hires");
    is_str(pc_res_str(&r, "status"), "pending_approval", "a confined agent's hire waits");
    char *child = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    r = B("POST", "{}", "/api/agents/%s/wakeup", child);
    is_int(r.status, 409, "the confined agent's hire cannot run");
    pc_http_res_free(&r);
    r = R(bk, "POST", "{\"name\":\"Eager\",\"status\":\"idle\"}", "/api/companies/%s/agents", cid);
    is_int(r.status, 403, "a hire's status is not the agent's to set");
    pc_http_res_free(&r);
    r = R(bk, "POST", "{\"name\":\"Mighty\",\"permissions\":{\"canCreateAgents\":true}}",
          "/api/companies/%s/agents", cid);
    is_int(r.status, 403, "a hire's permissions are the board's");
    pc_http_res_free(&r);
    r = R(bk, "PATCH", "{\"defaultEnvironmentId\":null}", "/api/agents/%s", boxed);
    is_int(r.status, 403, "confined agent cannot move itself to the host");
    pc_http_res_free(&r);
    char *f = field_of(boxed, "defaultEnvironmentId");
    snprintf(body, sizeof body, "\"%s\"", sbx);
    is_str(f, body, "still in its sandbox");
    free(f);
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", sbx);
    r = R(bk, "PATCH", body, "/api/agents/%s", boxed);
    is_int(r.status, 200, "its own environment is allowed");
    pc_http_res_free(&r);
    r = R(bk, "PATCH", "{\"adapterConfig\":{\"command\":\"sh\"}}", "/api/agents/%s", peer);
    is_int(r.status, 403, "confined agent cannot rewrite an agent that runs on the host");
    pc_http_res_free(&r);
    r = R(bk, "PATCH", "{\"name\":\"Open box\"}", "/api/environments/%s", sbx);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "confined"),
       "confined agent cannot rewrite the environment it runs in");
    pc_http_res_free(&r);
    r = R(bk, "POST", "{\"name\":\"Mine\",\"driver\":\"ssh\"}", "/api/companies/%s/environments",
          cid);
    is_int(r.status, 403, "confined agent cannot create environments");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"executionWorkspaceSettings\":{\"environmentId\":null}}");
    r = R(bk, "PATCH", body, "/api/issues/%s", issue);
    is_int(r.status, 403, "confined agent cannot send an issue to the host");
    pc_http_res_free(&r);

    /* Starting a run is placing code: a confined agent may not wake a host
     * agent, nor itself on an issue the board sent to the host. */
    r = R(bk, "POST", "{}", "/api/agents/%s/wakeup", peer);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "confined"),
       "confined agent cannot wake an agent that runs on the host");
    pc_http_res_free(&r);
    r = B("GET", NULL, "/api/companies/%s/environments?driver=local", cid);
    const char *local = js(json_array_get(r.json, 0), "id");
    snprintf(body, sizeof body,
             "{\"title\":\"host job\",\"status\":\"backlog\",\"executionWorkspaceSettings\":"
             "{\"environmentId\":\"%s\"}}",
             local);
    pc_http_res_free(&r);
    r = B("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "board sends an issue to the host");
    char *host_issue = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"issueId\":\"%s\"}", host_issue);
    r = R(bk, "POST", body, "/api/agents/%s/wakeup", boxed);
    is_int(r.status, 403, "confined agent cannot wake itself on the host issue");
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"assigneeAgentId\":\"%s\",\"status\":\"todo\"}", boxed);
    r = R(bk, "PATCH", body, "/api/issues/%s", host_issue);
    is_int(r.status, 403, "nor take the host issue");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id IN (SELECT id FROM agents "
                    "WHERE name='Boxed')"),
           0, "the confined agent started no run");
    free(host_issue);

    /* An unconfined agent in a company without the requirement hires
     * directly, as upstream. */
    char *free_hirer =
        make_agent(cid, "{\"name\":\"Free\",\"permissions\":{\"canCreateAgents\":true}}");
    char *fk = mint_key(free_hirer);
    r = R(fk, "POST", "{\"name\":\"Direct\"}", "/api/companies/%s/agents", cid);
    is_int(r.status, 201, "host agent hires");
    is_str(pc_res_str(&r, "status"), "idle", "without approval");
    pc_http_res_free(&r);
    free(gated), free(hirer), free(hk), free(hire), free(boxed), free(bk), free(child);
    free(free_hirer), free(fk);
}

static bool env_has_ref(json_t *agent, const char *key)
{
    json_t *v =
        json_object_get(json_object_get(json_object_get(agent, "adapterConfig"), "env"), key);
    return json_is_object(v) && !strcmp(js(v, "type"), "secret_ref") && js(v, "secretId")[0];
}

/* Row "restricted view". */
static void test_restricted_view(void)
{
    pc_http_res r = R(runner_key, "GET", NULL, "/api/agents/%s", peer);
    is_int(r.status, 200, "agent reads a peer");
    is_int(json_object_size(json_object_get(r.json, "adapterConfig")), 0, "peer adapterConfig {}");
    is_int(json_object_size(json_object_get(r.json, "runtimeConfig")), 0, "peer runtimeConfig {}");
    pc_http_res_free(&r);
    r = R(run_token, "GET", NULL, "/api/companies/%s/agents", cid);
    bool hidden = json_array_size(r.json) > 0;
    size_t i;
    json_t *a;
    json_array_foreach(r.json, i, a)
    {
        if (strcmp(js(a, "id"), runner) != 0 &&
            json_object_size(json_object_get(a, "adapterConfig")) != 0)
            hidden = false;
    }
    ok(hidden, "agent list: every peer's adapterConfig hidden");
    pc_http_res_free(&r);
    r = R(runner_key, "GET", NULL, "/api/agents/me");
    is_str(js(json_object_get(r.json, "adapterConfig"), "command"), "sh", "own config readable");
    pc_http_res_free(&r);
    r = B("GET", NULL, "/api/agents/%s", peer);
    ok(env_has_ref(r.json, "OPENAI_API_KEY"), "board sees a sealed reference, not the value");
    is_str(js(json_object_get(json_object_get(r.json, "adapterConfig"), "env"), "PLAIN_SETTING"),
           "visible", "a plain setting stays readable");
    pc_http_res_free(&r);
}

/* Row "run token lifetime". */
static void test_finished_token(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/release", tmp);
    FILE *fp = fopen(path, "w");
    if (fp)
        fclose(fp);
    json_t *run = hb_wait_run(run_id, NULL, 30000);
    is_str(js(run, "status"), "succeeded", "runner finished");
    json_decref(run);
    char url[300], auth[2200];
    snprintf(url, sizeof url, "%s/api/agents/me", d.agent_url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", run_token);
    const char *hdrs[] = {auth, NULL};
    pc_http_res r = scan(pc_http_ex(url, "GET", NULL, 0, hdrs));
    is_int(r.status, 401, "finished run's token on the agent ingress: 401");
    pc_http_res_free(&r);
    r = R(run_token, "GET", NULL, "/api/agents/me");
    is_int(r.status, 401, "finished run's token: 401");
    is_str(pc_res_str(&r, "error"), "Run token is no longer valid", "refusal text");
    pc_http_res_free(&r);
    r = R(run_token, "PATCH", "{\"title\":\"late\"}", "/api/agents/%s", runner);
    is_int(r.status, 401, "finished run's token cannot write");
    pc_http_res_free(&r);
}

static long grep_tree(const char *dir, const char *needle)
{
    long hits = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            hits += grep_tree(path, needle);
        } else if (S_ISREG(st.st_mode)) {
            /* Binary-safe: SQLite pages hold NUL bytes. */
            FILE *f = fopen(path, "rb");
            char *buf = f ? malloc((size_t)st.st_size + 1) : NULL;
            size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
            if (f)
                fclose(f);
            if (buf && memmem(buf, n, needle, strlen(needle))) {
                tap_diag("%s in %s", needle, path);
                hits++;
            }
            free(buf);
        }
    }
    closedir(dp);
    return hits;
}

/* Row "secrets at rest and in responses". */
static void test_canary(void)
{
    char body[1200];
    snprintf(body, sizeof body,
             "{\"name\":\"Keyed\",\"driver\":\"ssh\",\"config\":{\"host\":\"ssh.example.test\","
             "\"port\":22,\"username\":\"u\",\"remoteWorkspacePath\":\"/srv\",\"privateKey\":"
             "\"-----BEGIN OPENSSH PRIVATE KEY-----\\n" CANARY
             "\\n-----END OPENSSH PRIVATE KEY-----\"}}");
    pc_http_res r = B("POST", body, "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "environment with a private key");
    pc_http_res_free(&r);
    /* Exercise the reading routes with every credential. */
    const char *paths[] = {"/api/companies/%s/agents", "/api/companies/%s/environments",
                           "/api/companies/%s/activity", "/api/companies/%s/heartbeat-runs"};
    for (size_t i = 0; i < N(paths); i++) {
        r = B("GET", NULL, paths[i], cid);
        pc_http_res_free(&r);
        r = R(runner_key, "GET", NULL, paths[i], cid);
        pc_http_res_free(&r);
    }
    r = B("GET", NULL, "/api/plugins");
    pc_http_res_free(&r);
    r = B("GET", NULL, "/api/agents/%s", peer);
    pc_http_res_free(&r);
    is_int(canary_hits, 0, "no response carried a canary");
    is_int(grep_tree(d.data_dir, CANARY), 0, "no file of the live data dir holds a canary");
    is_int(grep_tree(d.data_dir, PLUGIN_CANARY), 0, "nor the plugin's canary");
    /* Stopping checkpoints the WAL into the database file: search again. */
    d.keep_dir = true;
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    is_int(grep_tree(d.data_dir, CANARY), 0, "no file of the stopped data dir holds a canary");
    is_int(grep_tree(d.data_dir, PLUGIN_CANARY), 0, "nor the plugin's canary");
}

int main(void)
{
    pc_daemon_opts o = {0};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    setup();
    test_field_guards();
    test_issue_routing();
    test_keys();
    test_cancel();
    test_wake();
    test_cross_company();
    test_approval();
    test_restricted_view();
    test_finished_token();
    test_canary();
    pc_test_rmrf(d.data_dir);
    pc_test_rmrf(tmp);
    free(cid), free(cid2), free(tmp), free(sbx), free(runner), free(runner_key), free(peer);
    free(scratch), free(outsider), free(outsider_key);
    return tap_done();
}
