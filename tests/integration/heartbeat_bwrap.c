/*
 * The end-to-end agent (tests/agents/checkout_agent.sh) in a bubblewrap
 * sandbox: plugins/bwrap-sandbox is installed through POST
 * /api/plugins/install (its data dir inside this test's temp dir), a sandbox
 * environment {provider: bwrap, network: api-only} is the agent's default
 * environment, and an issue is assigned to the agent. The agent runs inside
 * the sandbox and reaches the API only through the api-only relay, with the
 * PAPERCLIP_API_URL it was given, to check out the issue, comment and mark it
 * done. Checked: the run row, the log, the released lease, the absence of the
 * daemon's canary variable, that the command really ran in the sandbox
 * (hostname, uid), and that it could not reach a second listener on the
 * host's loopback (which the same probe reaches from the host).
 *
 * Skips when bwrap is missing or the kernel refuses user namespaces.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "heartbeat_common.h"

#define CANARY "canary-bwrap-7e3"

/* What the plugin's environmentProbe runs. */
static bool bwrap_usable(void)
{
    return pc_test_sh("command -v bwrap >/dev/null 2>&1 && "
              "bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr "
              "--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
              "--proc /proc --dev /dev -- /usr/bin/true >/dev/null 2>&1") == 0;
}

/* A listening, never-accepting TCP socket on 127.0.0.1 (non-blocking, so
 * accept() tells whether anything connected). */
static int listen_loopback(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return s;
}

/* Number of connections waiting on the listener (accepted and closed). */
static int drain_accepts(int s)
{
    int n = 0;
    for (;;) {
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            return n;
        close(c);
        n++;
    }
}

static char *json_str_of(const char *s)
{
    json_t *j = json_string(s);
    char *out = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    return out;
}

/* Entries of DIR other than . and .. (-1 if it cannot be read). */
static int dir_entries(const char *dir)
{
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "test -d '%s' && exit $(ls -A '%s' | wc -l)", dir, dir);
    return pc_test_sh(cmd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (!bwrap_usable()) {
        tap_skip("bwrap is missing or the kernel refuses user namespaces",
                 "heartbeat end-to-end in a bwrap sandbox");
        return tap_done();
    }
    char *tmp = pc_test_tmpdir("hbbwrap");
    char plugin_data[700];
    snprintf(plugin_data, sizeof plugin_data, "%s/plugin-data", tmp);

    const char *env[] = {"PC_TEST_CANARY=" CANARY, NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        pc_test_rmrf(tmp);
        free(tmp);
        return tap_done();
    }
    char *cid = hb_company("Bwrap Co");

    /* The plugin, with its state under this test's temp dir. */
    char body[2000];
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/plugins/bwrap-sandbox\",\"isLocalPath\":true,"
             "\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s\"}}",
             pc_test_root(), plugin_data);
    pc_http_res r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "bwrap plugin installed (%ld)", r.status);
    is_str(pc_res_str(&r, "status"), "ready", "its worker is ready");
    if (r.status != 200 && r.status != 201)
        tap_diag("install: %s", r.body);
    char plugin_id[64];
    snprintf(plugin_id, sizeof plugin_id, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    r = req("POST",
            "{\"name\":\"Bwrap box\",\"driver\":\"sandbox\","
            "\"config\":{\"provider\":\"bwrap\",\"network\":\"api-only\"}}",
            "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "sandbox environment created");
    if (r.status != 201)
        tap_diag("environment: %s", r.body);
    char env_id[64];
    snprintf(env_id, sizeof env_id, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    /* A second listener on the host's loopback: the agent tries it first.
     * curl exits 7 when nothing listens at that address (what the sandbox's
     * own loopback gives), 28 if it connected and waited for an answer. */
    int port2 = 0;
    int lfd = listen_loopback(&port2);
    ok(lfd >= 0, "second loopback listener on port %d", port2);

    char script_path[1024];
    snprintf(script_path, sizeof script_path, "%s/tests/agents/checkout_agent.sh", pc_test_root());
    char *agent_sh = pc_test_read_file(script_path, 1 << 20);
    ok(agent_sh[0] != '\0', "read %s", script_path);
    /* The script goes inline (sh -c): the test tree is not inside the
     * sandbox, and binding it would not work for a tree under /tmp. */
    char *script = NULL;
    if (asprintf(&script,
                 "echo \"host $(cat /proc/sys/kernel/hostname) uid $(id -u)\"\n"
                 "echo \"api url $PAPERCLIP_API_URL\"\n"
                 "if curl -sS -m 3 -o /dev/null http://127.0.0.1:%d/ 2>/dev/null; then rc=0; "
                 "else rc=$?; fi\n"
                 "echo \"loopback probe rc $rc\"\n"
                 "%s",
                 port2, agent_sh) < 0)
        script = NULL;
    char *enc = json_str_of(script ? script : "exit 1");
    char *abody = NULL;
    if (asprintf(&abody,
                 "{\"name\":\"Sandboxed worker\",\"adapterType\":\"process\","
                 "\"adapterConfig\":{\"command\":\"sh\",\"args\":[\"-c\",%s]},"
                 "\"defaultEnvironmentId\":\"%s\"}",
                 enc, env_id) < 0)
        abody = NULL;
    r = req("POST", abody ? abody : "{}", "/api/companies/%s/agents", cid);
    is_int(r.status, 201, "agent created with the sandbox as its default environment");
    is_str(pc_res_str(&r, "defaultEnvironmentId"), env_id, "defaultEnvironmentId set");
    char agent[64];
    snprintf(agent, sizeof agent, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    free(abody), free(enc), free(script), free(agent_sh);

    /* Assignment wakes the agent; the issue names no environment. */
    char *issue = hb_issue(cid, "Sandboxed job", agent, NULL);
    char run[64];
    hb_first_run(issue, run, sizeof run);
    ok(run[0] != '\0', "the assignment started a run");
    json_t *j = hb_wait_run(run, NULL, 60000);
    is_str(js(j, "status"), "succeeded", "run succeeded");
    if (strcmp(js(j, "status"), "succeeded") != 0)
        tap_diag("error %s (%s)", js(j, "error"), js(j, "errorCode"));
    is_str(js(j, "environmentId"), env_id, "ran in the agent's default environment");
    r = req("GET", NULL, "/api/issues/%s", issue);
    is_str(pc_res_str(&r, "status"), "done", "the agent marked the issue done");
    is_str(pc_res_str(&r, "assigneeAgentId"), agent, "still assigned to the agent");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/comments", issue);
    is_int(json_array_size(r.json), 1, "the agent commented");
    is_str(js(json_array_get(r.json, 0), "runId"), run, "comment from this run");
    pc_http_res_free(&r);

    char *log = hb_log(run);
    ok(strstr(log, "host sandbox uid 1000") != NULL,
       "the agent ran inside the sandbox (hostname sandbox, uid 1000)");
    char want[64];
    snprintf(want, sizeof want, "api url http://127.0.0.1:%d", d.agent_port);
    ok(strstr(log, want) != NULL, "it was given the relay's in-sandbox API URL");
    ok(strstr(log, "loopback probe rc 7") != NULL,
       "the host's second loopback listener was unreachable from the sandbox");
    ok(strstr(log, "canary absent") != NULL, "the daemon's canary never reached the agent");
    ok(strstr(log, CANARY) == NULL, "canary value absent from the log");
    ok(strstr(log, "token ***REDACTED***") != NULL, "token redacted");
    ok(strstr(log, "finished") != NULL, "agent finished");
    if (strstr(log, "finished") == NULL)
        tap_diag("log: %.4000s", log);
    free(log);
    is_int(drain_accepts(lfd), 0, "nothing connected to the second listener");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "curl -sS -m 1 -o /dev/null http://127.0.0.1:%d/ 2>/dev/null", port2);
    is_int(pc_test_sh(cmd), 28, "the same probe from the host connects (and times out waiting)");
    is_int(drain_accepts(lfd), 1, "the listener saw the host's connection");
    close(lfd);

    r = req("GET", NULL, "/api/environment-leases/%s", js(j, "leaseId"));
    is_str(pc_res_str(&r, "status"), "released", "lease released");
    json_t *meta = json_object_get(r.json, "metadata");
    is_str(js(meta, "provider"), "bwrap", "lease from the bwrap provider");
    is_str(js(meta, "network"), "api-only", "lease network api-only");
    size_t ci;
    json_t *cg;
    int cgroups_left = 0;
    json_array_foreach(json_object_get(meta, "cgroups"), ci, cg)
    {
        const char *p = json_string_value(cg);
        if (p && access(p, F_OK) == 0) {
            tap_diag("cgroup left: %s", p);
            cgroups_left++;
        }
    }
    is_int(cgroups_left, 0, "the lease's cgroups were removed (%zu)",
           json_array_size(json_object_get(meta, "cgroups")));
    pc_http_res_free(&r);
    json_decref(j);
    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    char leases[800];
    snprintf(leases, sizeof leases, "%s/leases", plugin_data);
    is_int(dir_entries(leases), 0, "the provider removed the lease directory");

    r = req("DELETE", NULL, "/api/plugins/%s", plugin_id);
    is_int(r.status, 200, "plugin uninstalled");
    pc_http_res_free(&r);
    free(cid), free(issue);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    pc_test_rmrf(tmp);
    free(tmp);
    return tap_done();
}
