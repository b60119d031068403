/*
 * Callbacks from environments whose commands cannot reach the daemon's
 * loopback address. The test makes its own network namespaces:
 *
 *   pccb-<pid>:  joined to the host by a veth pair, 10.200.N.1 (host end)
 *                and 10.200.N.2 (namespace end), N from the pid;
 *   pccbx-<pid>: no link at all, only its own loopback.
 *
 * The daemon binds 127.0.0.1, its agent ingress 127.0.0.1 and the veth's
 * host end (agentBind as a list). Then:
 *  (a) a sandbox of the netns test provider (commands in pccb) runs the
 *      end-to-end agent: the probe finds the veth address, the agent checks
 *      out, comments and closes its issue; the reused lease keeps the URL;
 *      the provider's normalizedConfig drops host fields, the host keeps them;
 *  (b) an SSH run against an sshd inside pccb completes an issue through
 *      the lease's reverse tunnel (127.0.0.1 inside the namespace);
 *  (c) a sandbox in pccbx reaches no candidate: the run fails early with
 *      an error naming every candidate; one whose lease declares no network
 *      at all is not probed and runs.
 * No traffic leaves the loopback and the test's own namespaces. The
 * namespaces are removed at exit, also after a failed assertion or a
 * signal. Skips when `ip netns` is not permitted.
 */
#include <sys/wait.h>

#include "../lib/sshd.h"
#include "heartbeat_common.h"

static char ns[32], nsx[32], veth_h[16], veth_n[16], host_ip[32], ns_ip[32];
static char *cid, *agent, *caller, *offline, *tmp;
static pc_test_sshd sshd;
static bool net_made;

static int shf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int shf(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return pc_test_sh(cmd);
}

static void net_cleanup(void)
{
    if (!net_made)
        return;
    net_made = false;
    pc_test_sshd_stop(&sshd);
    shf("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; ip link del %s 2>/dev/null; "
        "true",
        ns, nsx, veth_h);
}

static void on_signal(int sig)
{
    net_cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int net_setup(void)
{
    int n = (int)(getpid() % 250) + 1;
    snprintf(ns, sizeof ns, "pccb-%d", (int)getpid());
    snprintf(nsx, sizeof nsx, "pccbx-%d", (int)getpid());
    snprintf(veth_h, sizeof veth_h, "pcb%dh", (int)(getpid() % 1000000));
    snprintf(veth_n, sizeof veth_n, "pcb%dn", (int)(getpid() % 1000000));
    snprintf(host_ip, sizeof host_ip, "10.200.%d.1", n);
    snprintf(ns_ip, sizeof ns_ip, "10.200.%d.2", n);
    net_made = true;
    atexit(net_cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGABRT, on_signal);
    return shf("set -e; ip netns add %s; ip netns add %s; "
               "ip link add %s type veth peer name %s; ip link set %s netns %s; "
               "ip addr add %s/30 dev %s; ip link set %s up; "
               "ip netns exec %s ip addr add %s/30 dev %s; ip netns exec %s ip link set %s up; "
               "ip netns exec %s ip link set lo up; ip netns exec %s ip link set lo up",
               ns, nsx, veth_h, veth_n, veth_n, ns, host_ip, veth_h, veth_h, ns, ns_ip, veth_n,
               ns, veth_n, ns, nsx);
}

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

/* A new issue for the agent in env_id; waits for its first run. */
static json_t *run_issue_as(const char *who, const char *label, const char *env_id, char *issue,
                            size_t cap)
{
    char body[600];
    snprintf(body, sizeof body,
             "{\"title\":\"%s job\",\"assigneeAgentId\":\"%s\","
             "\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             label, who, env_id);
    pc_http_res r = req("POST", body, "/api/companies/%s/issues", cid);
    is_int(r.status, 201, "%s: issue created", label);
    snprintf(issue, cap, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    char run[64];
    hb_first_run(issue, run, sizeof run);
    return hb_wait_run(run, NULL, 90000);
}

/* The run succeeded and the agent, calling back, closed its issue. */
static void check_done(const char *label, json_t *j, const char *issue)
{
    is_str(js(j, "status"), "succeeded", "%s: run succeeded", label);
    if (strcmp(js(j, "status"), "succeeded") != 0) {
        tap_diag("%s: error %s (%s)", label, js(j, "error"), js(j, "errorCode"));
        char *log = hb_log(js(j, "id"));
        tap_diag("%s: log %s", label, log);
        free(log);
    }
    pc_http_res r = req("GET", NULL, "/api/issues/%s", issue);
    is_str(pc_res_str(&r, "status"), "done", "%s: the agent checked out and closed the issue",
           label);
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s/comments", issue);
    is_int(json_array_size(r.json), 1, "%s: the agent commented", label);
    is_str(js(json_array_get(r.json, 0), "runId"), js(j, "id"), "%s: comment from this run",
           label);
    pc_http_res_free(&r);
}

static json_t *run_issue(const char *label, const char *env_id, char *issue, size_t cap)
{
    return run_issue_as(agent, label, env_id, issue, cap);
}

static json_t *lease_meta(const char *lease_id, pc_http_res *r)
{
    *r = req("GET", NULL, "/api/environment-leases/%s", lease_id);
    return json_object_get(r->json, "metadata");
}

static void sandbox_cases(void)
{
    char body[1200], cfg[400], want[200], issue[64];
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/tests/plugins/netns-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "netns sandbox plugin installed (%ld)", r.status);
    pc_http_res_free(&r);

    /* (a) */
    snprintf(cfg, sizeof cfg,
             "{\"provider\":\"netns\",\"namespace\":\"%s\",\"reuseLease\":true,"
             "\"timeoutMs\":120000}",
             ns);
    char *env = create_env("Netns box", "sandbox", cfg);
    r = req("GET", NULL, "/api/environments/%s", env);
    json_t *c = json_object_get(r.json, "config");
    is_str(js(c, "namespace"), ns, "provider field stored");
    ok(json_is_true(json_object_get(c, "reuseLease")),
       "reuseLease kept although the provider's normalizedConfig drops it");
    is_int(json_integer_value(json_object_get(c, "timeoutMs")), 120000,
           "timeoutMs kept although the provider's normalizedConfig drops it");
    pc_http_res_free(&r);
    char api[200], patch[300];
    snprintf(api, sizeof api, "http://%s:9", ns_ip);
    snprintf(patch, sizeof patch, "{\"config\":{\"apiUrl\":\"%s\"}}", api);
    r = req("PATCH", patch, "/api/environments/%s", env);
    is_int(r.status, 200, "apiUrl accepted on a sandbox environment");
    is_str(js(json_object_get(r.json, "config"), "apiUrl"), api,
           "apiUrl kept although the provider's normalizedConfig drops it");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"config\":{\"apiUrl\":\"ftp://x\"}}", "/api/environments/%s", env);
    is_int(r.status, 422, "a non-http apiUrl is refused");
    pc_http_res_free(&r);
    /* Nothing listens on the namespace's own end at port 9: the probe tries
     * the explicit apiUrl first, passes over it and finds the veth address.
     * This agent calls back (a comment) but leaves its issue open, so the
     * reusable lease is retained for the next run. */
    snprintf(want, sizeof want, "http://%s:%d", host_ip, d.agent_port);
    char first_issue[64];
    json_t *j = run_issue_as(caller, "sandbox", env, first_issue, sizeof first_issue);
    is_str(js(j, "status"), "succeeded", "sandbox: run succeeded");
    r = req("GET", NULL, "/api/issues/%s/comments", first_issue);
    is_str(js(json_array_get(r.json, 0), "runId"), js(j, "id"),
           "sandbox: the agent called back from the namespace (its comment)");
    pc_http_res_free(&r);
    char *log = hb_log(js(j, "id"));
    ok(strstr(log, "reachable from inside the environment") && strstr(log, want),
       "sandbox: the probe chose the veth address %s", want);
    if (!strstr(log, want))
        tap_diag("log: %s", log);
    free(log);
    json_t *m = lease_meta(js(j, "leaseId"), &r);
    is_str(js(m, "callbackUrl"), want, "sandbox: callbackUrl recorded on the lease");
    is_str(pc_res_str(&r, "status"), "retained", "sandbox: the lease is retained for reuse");
    pc_http_res_free(&r);
    json_decref(j);

    /* The reused lease keeps its URL: no second probe. This agent checks
     * out, comments and closes its issue. */
    j = run_issue("sandbox again", env, issue, sizeof issue);
    check_done("sandbox again", j, issue);
    log = hb_log(js(j, "id"));
    ok(strstr(log, "kept by the reused lease") != NULL && !strstr(log, "reachable from inside"),
       "reused lease: callback URL kept, not probed again");
    free(log);
    m = lease_meta(js(j, "leaseId"), &r);
    is_str(js(m, "callbackUrl"), want, "reused lease: callbackUrl carried to the new row");
    char dir[600];
    snprintf(dir, sizeof dir, "%s", pc_res_str(&r, "providerLeaseId"));
    pc_http_res_free(&r);
    json_decref(j);
    /* Closing the first issue lets nothing hold the sandbox any more. */
    r = req("PATCH", "{\"status\":\"done\"}", "/api/issues/%s", first_issue);
    pc_http_res_free(&r);
    bool gone = false;
    for (int i = 0; i < 600 && !(gone = access(dir, F_OK) != 0); i++)
        pc_test_sleep_ms(50);
    ok(gone && strstr(dir, "/paperclip-netns-sandbox-"), "the sandbox directory is destroyed (%s)",
       dir);
    if (!gone && strstr(dir, "/paperclip-netns-sandbox-"))
        pc_test_rmrf(dir);
    free(env);

    /* (c) */
    snprintf(cfg, sizeof cfg, "{\"provider\":\"netns\",\"namespace\":\"%s\"}", nsx);
    env = create_env("Cut-off box", "sandbox", cfg);
    j = run_issue("unreachable", env, issue, sizeof issue);
    is_str(js(j, "status"), "failed", "unreachable: the run fails");
    is_str(js(j, "errorCode"), "callback_unreachable", "unreachable: errorCode");
    char loop_url[100], veth_url[100];
    snprintf(loop_url, sizeof loop_url, "http://127.0.0.1:%d", d.agent_port);
    snprintf(veth_url, sizeof veth_url, "http://%s:%d", host_ip, d.agent_port);
    const char *e = js(j, "error");
    ok(strstr(e, "No callback URL is reachable") && strstr(e, loop_url) && strstr(e, veth_url),
       "unreachable: the error names every candidate (%s)", e);
    r = req("GET", NULL, "/api/issues/%s/comments", issue);
    is_int(json_array_size(r.json), 0, "unreachable: the agent never ran");
    pc_http_res_free(&r);
    json_decref(j);
    free(env);

    /* A lease declared without any network is not probed: the operator
     * chose a run that works without calling back. */
    snprintf(cfg, sizeof cfg, "{\"provider\":\"netns\",\"namespace\":\"%s\",\"offline\":true}",
             nsx);
    env = create_env("Offline box", "sandbox", cfg);
    j = run_issue_as(offline, "offline", env, issue, sizeof issue);
    is_str(js(j, "status"), "succeeded", "offline: the run succeeds without a callback");
    log = hb_log(js(j, "id"));
    ok(strstr(log, "has no network") && strstr(log, "offline work") &&
           !strstr(log, "No callback URL"),
       "offline: not probed, the command ran");
    free(log);
    json_decref(j);
    free(env);
}

static void ssh_case(void)
{
    if (!pc_test_sshd_available()) {
        tap_skip("sshd/ssh/ssh-keygen not installed", "ssh through the tunnel");
        return;
    }
    tmp = pc_test_tmpdir("cbssh");
    if (pc_test_sshd_start_in(&sshd, tmp, ns, ns_ip) < 0) {
        ok(0, "sshd starts in the namespace");
        pc_test_sshd_dump_log(&sshd);
        return;
    }
    char *key = pc_test_sshd_file_json(&sshd, "user_key");
    char *kh = pc_test_sshd_known_hosts_json(&sshd);
    char *cfg = NULL;
    if (asprintf(&cfg,
                 "{\"host\":\"%s\",\"port\":%d,\"username\":\"root\","
                 "\"remoteWorkspacePath\":\"%s/remote\",\"privateKey\":%s,\"knownHosts\":%s}",
                 ns_ip, sshd.port, tmp, key, kh) < 0)
        cfg = NULL;
    char *env = create_env("Netns ssh", "ssh", cfg ? cfg : "{}");
    char issue[64];
    json_t *j = run_issue("ssh", env, issue, sizeof issue);
    check_done("ssh", j, issue);
    pc_http_res r;
    json_t *m = lease_meta(js(j, "leaseId"), &r);
    long port = (long)json_integer_value(json_object_get(m, "tunnelRemotePort"));
    char want[64];
    snprintf(want, sizeof want, "http://127.0.0.1:%ld", port);
    ok(port > 0 && port != d.agent_port, "ssh: a remote port was allocated (%ld)", port);
    is_str(js(m, "callbackUrl"), want, "ssh: the run called back through the tunnel");
    is_str(pc_res_str(&r, "status"), "released", "ssh: lease released");
    pc_http_res_free(&r);
    char path[800];
    snprintf(path, sizeof path, "%s/leases/%s.tunnel.pid", d.data_dir, js(j, "leaseId"));
    ok(access(path, F_OK) != 0, "ssh: the tunnel is gone with the lease");
    /* Nothing listens on the tunnel port inside the namespace any more. */
    ok(shf("ip netns exec %s bash -c 'exec 3<>/dev/tcp/127.0.0.1/%ld' 2>/dev/null", ns, port) != 0,
       "ssh: the remote forward is closed");
    json_decref(j);
    free(env), free(cfg), free(key), free(kh);
    pc_test_sshd_stop(&sshd);
    pc_test_rmrf(tmp);
    free(tmp);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (pc_test_sh("ip netns add pccb-probe-$$ 2>/dev/null && ip netns del pccb-probe-$$") != 0) {
        tap_skip("ip netns is not permitted here", "callbacks from network namespaces");
        return tap_done();
    }
    if (net_setup() != 0) {
        ok(0, "network namespaces and veth set up");
        return tap_done();
    }
    char agent_bind[100];
    snprintf(agent_bind, sizeof agent_bind, "127.0.0.1,%s", host_ip);
    const char *args[] = {"--agent-bind", agent_bind, NULL};
    pc_daemon_opts o = {.args = args};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = hb_company("Callback Co");
    char aconf[1200];
    snprintf(aconf, sizeof aconf, "{\"command\":\"sh\",\"args\":[\"%s/tests/agents/checkout_agent.sh\"]}",
             pc_test_root());
    agent = hb_agent(cid, "Callback worker", "process", aconf, NULL);
    caller = hb_sh_agent(cid, "Callback caller",
                         "curl -sS -f -H \"Authorization: Bearer $PAPERCLIP_API_KEY\" "
                         "-H \"X-Paperclip-Run-Id: $PAPERCLIP_RUN_ID\" "
                         "-H 'Content-Type: application/json' --data '{\"body\":\"called back\"}' "
                         "\"$PAPERCLIP_API_URL/api/issues/$PAPERCLIP_TASK_ID/comments\"",
                         NULL, NULL);
    offline = hb_sh_agent(cid, "Offline worker", "echo offline work", NULL, NULL);
    sandbox_cases();
    ssh_case();
    free(cid), free(agent), free(caller), free(offline);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    net_cleanup();
    return tap_done();
}
