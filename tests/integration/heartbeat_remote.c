/*
 * The end-to-end agent (tests/agents/checkout_agent.sh) in the two remote
 * environments: (b) a sandbox leased from the C fake provider plugin and
 * (c) an SSH host (a real sshd this test starts on a loopback port). Each
 * time it calls back with PAPERCLIP_API_URL and its run JWT to check out its
 * issue, comment and mark it done; the run row, the log, the released lease
 * and the absence of the daemon's canary variable are checked.
 *
 * The SSH part skips when sshd/ssh/ssh-keygen are missing.
 */
#include <sys/wait.h>

#include "../lib/sshd.h"
#include "heartbeat_common.h"

#define CANARY "canary-remote-51c"

static char *cid, *tmp;
static pc_test_sshd sshd;

static char *create_env(const char *name, const char *driver, const char *cfg)
{
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"%s\",\"driver\":\"%s\",\"config\":%s}", name, driver, cfg) <
        0)
        return strdup("");
    pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
    if (r.status != 201)
        tap_diag("create %s: %ld %s", name, r.status, r.body);
    char *id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    free(body);
    return id;
}

/* Runs the agent for a new issue in env_id and checks everything. */
static void e2e(const char *label, const char *agent, const char *env_id, const char *driver)
{
    char body[600];
    snprintf(body, sizeof body,
             "{\"title\":\"%s job\",\"assigneeAgentId\":\"%s\","
             "\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             label, agent, env_id);
    pc_http_res r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "%s: issue created", label);
    char issue[64];
    snprintf(issue, sizeof issue, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    char run[64];
    hb_first_run(issue, run, sizeof run);
    json_t *j = hb_wait_run(run, NULL, 60000);
    is_str(js(j, "status"), "succeeded", "%s: run succeeded", label);
    if (strcmp(js(j, "status"), "succeeded") != 0)
        tap_diag("%s: error %s (%s)", label, js(j, "error"), js(j, "errorCode"));
    is_str(js(j, "environmentId"), env_id, "%s: ran in the issue's environment", label);
    r = req("GET", NULL, "/api/issues/%s", issue);
    is_str(pc_res_str(&r, "status"), "done", "%s: the agent marked the issue done", label);
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/comments", issue);
    is_int(json_array_size(r.json), 1, "%s: the agent commented", label);
    is_str(js(json_array_get(r.json, 0), "runId"), run, "%s: comment from this run", label);
    pc_http_res_free(&r);
    char *log = hb_log(run);
    ok(strstr(log, "canary absent") != NULL, "%s: the daemon's canary never reached the agent",
       label);
    ok(strstr(log, CANARY) == NULL, "%s: canary value absent from the log", label);
    ok(strstr(log, "token ***REDACTED***") != NULL, "%s: token redacted", label);
    ok(strstr(log, "finished") != NULL, "%s: agent finished", label);
    free(log);
    r = req("GET", NULL, "/api/environment-leases/%s", js(j, "leaseId"));
    is_str(pc_res_str(&r, "status"), "released", "%s: lease released", label);
    json_t *meta = json_object_get(r.json, "metadata");
    const char *drv = js(meta, "driver");
    ok(!*drv || !strcmp(drv, driver), "%s: lease driver %s", label, driver);
    pc_http_res_free(&r);
    json_decref(j);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *env[] = {"PC_TEST_CANARY=" CANARY, NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = hb_company("Remote Co");
    char script[1024];
    snprintf(script, sizeof script, "%s/tests/agents/checkout_agent.sh", pc_test_root());
    char aconf[1200];
    snprintf(aconf, sizeof aconf, "{\"command\":\"sh\",\"args\":[\"%s\"]}", script);
    char *agent = hb_agent(cid, "Remote worker", "process", aconf, NULL);

    /* (b) sandbox on the C fake provider. */
    char body[1200];
    snprintf(body, sizeof body, "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "fake sandbox plugin installed (%ld)", r.status);
    pc_http_res_free(&r);
    char *sbx = create_env("Fake box", "sandbox", "{\"provider\":\"fake-plugin\",\"image\":\"fake:test\"}");
    e2e("sandbox", agent, sbx, "sandbox");

    /* (c) SSH to a local sshd. */
    if (!pc_test_sshd_available()) {
        tap_skip("sshd/ssh/ssh-keygen not installed", "ssh end-to-end");
    } else {
        tmp = pc_test_tmpdir("hbssh");
        if (pc_test_sshd_start(&sshd, tmp) < 0) {
            ok(0, "sshd starts");
            pc_test_sshd_dump_log(&sshd);
        } else {
            char *key = pc_test_sshd_file_json(&sshd, "user_key");
            char *cfg = NULL;
            if (asprintf(&cfg,
                         "{\"host\":\"127.0.0.1\",\"port\":%d,\"username\":\"root\","
                         "\"remoteWorkspacePath\":\"%s/remote\",\"privateKey\":%s,"
                         "\"strictHostKeyChecking\":false}",
                         sshd.port, tmp, key) < 0)
                cfg = NULL;
            char *ssh = create_env("Loopback ssh", "ssh", cfg ? cfg : "{}");
            e2e("ssh", agent, ssh, "ssh");
            free(cfg), free(key), free(ssh);
        }
        pc_test_sshd_stop(&sshd);
        pc_test_rmrf(tmp);
        free(tmp);
    }
    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    free(cid), free(agent), free(sbx);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
