/*
 * Environment routes against a real daemon: upstream's
 * environment-routes.test.ts cases ported (list/filter, capabilities,
 * redaction, guards, SSH validation texts, private key -> secret ref, patch
 * semantics, delete, probes) plus agent API keys, sandbox provider errors
 * and "no secret in the daemon log".
 */
#include "env_common.h"

#define KEY_TEXT "-----BEGIN OPENSSH PRIVATE KEY-----\\nTOPSECRET-KEY-MATERIAL-4242\\n-----END OPENSSH PRIVATE KEY-----"
#define KEY_NEEDLE "TOPSECRET-KEY-MATERIAL-4242"
#define KEY2_NEEDLE "SECOND-KEY-MATERIAL-9999"

static char *cid, *cid2;

static const char *ssh_body(const char *name, const char *extra)
{
    static char b[2048];
    snprintf(b, sizeof b,
             "{\"name\":\"%s\",\"driver\":\"ssh\",\"config\":{\"host\":\"ssh.example.test\","
             "\"port\":2222,\"username\":\"deploy\",\"remoteWorkspacePath\":\"/srv/work\"%s}}",
             name, extra ? extra : "");
    return b;
}

static void test_list_and_local(void)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/environments", cid);
    is_int(r.status, 200, "list: 200");
    ok(json_array_size(r.json) == 1, "list: the Local environment is created on first use");
    json_t *e = json_array_get(r.json, 0);
    is_str(json_string_value(json_object_get(e, "driver")), "local", "list: driver local");
    is_str(json_string_value(json_object_get(e, "name")), "Local", "list: named Local");
    pc_http_res_free(&r);

    r = req("POST", "{\"name\":\"Second local\",\"driver\":\"local\"}",
            "/api/companies/%s/environments", cid);
    is_int(r.status, 409, "second local environment: 409");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/companies/%s/environments?driver=ssh", cid);
    ok(r.status == 200 && json_array_size(r.json) == 0, "driver filter: no ssh yet");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/environments?driver=local&status=active", cid);
    ok(r.status == 200 && json_array_size(r.json) == 1, "driver+status filter: the local one");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/companies/%s/environments?status=archived", cid);
    ok(r.status == 200 && json_array_size(r.json) == 0, "status filter: none archived");
    pc_http_res_free(&r);
}

/* The local driver's apiUrl (where a run sends its token) must stay on
 * this host: loopback or an allowed hostname, else 400 naming the field. */
static void test_local_api_url(void)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/environments?driver=local", cid);
    char *lid = strdup(json_string_value(json_object_get(json_array_get(r.json, 0), "id")));
    pc_http_res_free(&r);
    r = req("PATCH", "{\"config\":{\"apiUrl\":\"http://collector.example.com:3100\"}}",
            "/api/environments/%s", lid);
    is_int(r.status, 400, "local apiUrl on another host: 400");
    json_t *issue = json_array_get(json_object_get(r.json, "details"), 0);
    is_str(json_string_value(json_array_get(json_object_get(issue, "path"), 0)), "apiUrl",
           "local apiUrl on another host: the error names apiUrl");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"config\":{\"apiUrl\":\"http://127.0.0.1@collector.example.com/\"}}",
            "/api/environments/%s", lid);
    is_int(r.status, 400, "local apiUrl with userinfo: 400");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/environments/%s", lid);
    ok(r.status == 200 && !json_object_get(json_object_get(r.json, "config"), "apiUrl"),
       "local apiUrl: a rejected URL is not stored");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"config\":{\"apiUrl\":\"http://paperclip-ci.example.test:3100\"}}",
            "/api/environments/%s", lid);
    is_int(r.status, 200, "local apiUrl on an allowed hostname: 200");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"config\":{\"apiUrl\":\"http://127.0.0.1:3100\"}}",
            "/api/environments/%s", lid);
    is_int(r.status, 200, "local apiUrl on loopback: 200");
    is_str(json_string_value(json_object_get(json_object_get(r.json, "config"), "apiUrl")),
           "http://127.0.0.1:3100", "local apiUrl on loopback: stored");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"config\":{}}", "/api/environments/%s", lid);
    is_int(r.status, 200, "local apiUrl: cleared again");
    pc_http_res_free(&r);
    free(lid);

    r = req("POST", "{\"name\":\"Dock\",\"driver\":\"docker\"}",
            "/api/companies/%s/environments", cid);
    is_int(r.status, 400, "unknown driver: 400");
    issue = json_array_get(json_object_get(r.json, "details"), 0);
    is_str(json_string_value(json_object_get(issue, "message")),
           "Invalid enum value. Expected 'local' | 'ssh' | 'sandbox' | 'plugin'",
           "unknown driver: the table's drivers are listed");
    pc_http_res_free(&r);
}

static void test_capabilities(void)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/environments/capabilities", cid);
    is_int(r.status, 200, "capabilities: 200");
    json_t *drivers = json_object_get(r.json, "drivers");
    is_str(json_string_value(json_object_get(drivers, "local")), "supported", "capabilities: local");
    is_str(json_string_value(json_object_get(drivers, "ssh")), "supported", "capabilities: ssh");
    is_str(json_string_value(json_object_get(drivers, "plugin")), "supported",
           "capabilities: plugin environments run");
    json_t *fake = json_object_get(json_object_get(r.json, "sandboxProviders"), "fake");
    is_str(json_string_value(json_object_get(fake, "status")), "unsupported",
           "capabilities: built-in fake is probe-only");
    ok(json_is_false(json_object_get(fake, "supportsRunExecution")),
       "capabilities: fake cannot run");
    /* Only the adapters that execute here are listed; those that run
     * through a lease get every runnable driver, http (which runs from the
     * daemon) only local. */
    json_t *adapters = json_object_get(r.json, "adapters");
    bool claude_ssh = false, process_ssh = false, http_ssh = true, http_local = false;
    size_t i;
    json_t *a;
    char listed[256] = "";
    json_array_foreach(adapters, i, a) {
        const char *t = json_string_value(json_object_get(a, "adapterType"));
        json_t *ds = json_object_get(a, "drivers");
        const char *ssh = json_string_value(json_object_get(ds, "ssh"));
        if (!strcmp(t, "claude_local"))
            claude_ssh = !strcmp(ssh, "supported");
        if (!strcmp(t, "process"))
            process_ssh = !strcmp(ssh, "supported");
        if (!strcmp(t, "http")) {
            http_ssh = !strcmp(ssh, "supported");
            http_local = !strcmp(json_string_value(json_object_get(ds, "local")), "supported");
        }
        strncat(listed, t, sizeof listed - strlen(listed) - 2);
        strcat(listed, " ");
    }
    is_str(listed, "process http claude_local codex_local ",
           "capabilities: only the adapters that execute here are listed");
    ok(claude_ssh && process_ssh, "capabilities: lease-running adapters get ssh");
    ok(http_local && !http_ssh, "capabilities: http gets local only");
    pc_http_res_free(&r);
}

static void test_ssh_validation(void)
{
    struct {
        const char *cfg, *want;
    } cases[] = {
        {"{\"username\":\"u\",\"remoteWorkspacePath\":\"/w\"}", "SSH environments require a host."},
        {"{\"host\":\"  \",\"username\":\"u\",\"remoteWorkspacePath\":\"/w\"}",
         "SSH environments require a host."},
        {"{\"host\":\"h\",\"remoteWorkspacePath\":\"/w\"}", "SSH environments require a username."},
        {"{\"host\":\"h\",\"username\":\"u\"}", "SSH environments require a remote workspace path."},
        {"{\"host\":\"h\",\"username\":\"u\",\"remoteWorkspacePath\":\"relative/dir\"}",
         "SSH remote workspace path must be absolute."},
        {"{\"host\":\"h\",\"username\":\"u\",\"remoteWorkspacePath\":\"/w\",\"port\":70000}",
         "SSH port must be an integer between 1 and 65535."},
        {"{\"host\":\"h\",\"username\":\"u\",\"remoteWorkspacePath\":\"/w\",\"bogus\":1}",
         "Unrecognized key: \"bogus\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{\"name\":\"bad\",\"driver\":\"ssh\",\"config\":%s}",
                 cases[i].cfg);
        pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
        is_int(r.status, 422, "invalid ssh config %zu: 422", i);
        is_str(pc_res_str(&r, "error"), cases[i].want, "invalid ssh config %zu: text", i);
        pc_http_res_free(&r);
    }
    pc_http_res r = req("POST", "{\"driver\":\"local\"}", "/api/companies/%s/environments", cid);
    is_int(r.status, 400, "create without name: 400");
    is_str(pc_res_str(&r, "error"), "Validation error", "create without name: Validation error");
    pc_http_res_free(&r);
    r = req("POST", "{\"name\":\"x\",\"driver\":\"ssh\",\"extra\":1}",
            "/api/companies/%s/environments", cid);
    is_int(r.status, 400, "unknown body key: 400 (strict)");
    pc_http_res_free(&r);
}

static char *ssh_id, *secret1;

static void test_create_ssh(void)
{
    long long secrets0 = db_count("SELECT COUNT(*) FROM company_secrets");
    pc_http_res r = req("POST", ssh_body("Build box", ",\"privateKey\":\"" KEY_TEXT "\""),
                        "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "create ssh: 201");
    ssh_id = res_dup(&r, "id");
    json_t *cfg = json_object_get(r.json, "config");
    ok(json_is_null(json_object_get(cfg, "privateKey")), "create ssh: privateKey not returned");
    json_t *ref = json_object_get(cfg, "privateKeySecretRef");
    is_str(json_string_value(json_object_get(ref, "type")), "secret_ref", "create ssh: secret ref");
    is_str(json_string_value(json_object_get(ref, "version")), "latest", "create ssh: version latest");
    secret1 = strdup(json_string_value(json_object_get(ref, "secretId")) ?: "");
    is_int(json_integer_value(json_object_get(cfg, "port")), 2222, "create ssh: port kept");
    ok(json_is_true(json_object_get(cfg, "strictHostKeyChecking")),
       "create ssh: strictHostKeyChecking defaults to true");
    ok(json_is_null(json_object_get(cfg, "knownHosts")), "create ssh: knownHosts null");
    ok(!strstr(r.body, KEY_NEEDLE), "create ssh: key text not in the response");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM company_secrets"), secrets0 + 1,
           "create ssh: one company secret stored");
    is_int(db_count("SELECT COUNT(*) FROM environments WHERE config LIKE '%TOPSECRET%'"), 0,
           "create ssh: key text not persisted in the environment row");
    is_int(db_count("SELECT COUNT(*) FROM company_secrets WHERE ciphertext LIKE '%TOPSECRET%'"), 0,
           "create ssh: secret stored encrypted");

    json_t *act = activity(cid, "environment.created", ssh_id);
    ok(act != NULL, "create ssh: activity environment.created");
    json_t *det = json_object_get(act, "details");
    is_str(json_string_value(json_object_get(det, "driver")), "ssh", "activity: driver");
    char *s = json_dumps(act, 0);
    ok(s && !strstr(s, KEY_NEEDLE), "activity: no key text");
    free(s);
    json_decref(act);

    r = req("GET", NULL, "/api/environments/%s", ssh_id);
    ok(r.status == 200 && !strstr(r.body, KEY_NEEDLE) &&
           json_is_object(json_object_get(json_object_get(r.json, "config"), "privateKeySecretRef")),
       "get: full config for the board, key text absent");
    ok(json_object_get(r.json, "configRedacted") == NULL, "get: not redacted for the board");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/companies/%s/environments?driver=ssh", cid);
    ok(r.status == 200 && json_array_size(r.json) == 1, "driver filter: the ssh environment");
    pc_http_res_free(&r);
}

static void test_guards(void)
{
    char *plain = make_agent(cid, "Plain", NULL);
    char *granted = make_agent(cid, "Granted", "{\"environments:manage\":true}");
    char *listed = make_agent(cid, "Listed", "{\"grants\":[{\"permissionKey\":\"environments:manage\"}]}");
    char *cto = make_agent(cid, "CTO", "{\"canCreateAgents\":true}");
    char *other = make_agent(cid2, "Outsider", "{\"environments:manage\":true}");
    char *tplain = make_key(plain), *tgrant = make_key(granted), *tlist = make_key(listed),
         *tcto = make_key(cto), *tother = make_key(other);
    ok(!strncmp(tplain, "pcp_", 4) && strlen(tplain) == 52, "agent key: pcp_ + 48 hex");

    pc_http_res r = areq(tplain, "GET", NULL, "/api/companies/%s/environments", cid);
    is_int(r.status, 200, "unprivileged agent: list 200");
    bool redacted = json_array_size(r.json) > 0;
    size_t i;
    json_t *e;
    json_array_foreach(r.json, i, e) {
        if (json_object_size(json_object_get(e, "config")) != 0 ||
            !json_is_null(json_object_get(e, "metadata")) ||
            !json_is_true(json_object_get(e, "configRedacted")) ||
            !json_is_true(json_object_get(e, "metadataRedacted")))
            redacted = false;
    }
    ok(redacted, "unprivileged agent: list redacted");
    pc_http_res_free(&r);
    r = areq(tplain, "GET", NULL, "/api/environments/%s", ssh_id);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "configRedacted")) &&
           json_object_size(json_object_get(r.json, "config")) == 0,
       "unprivileged agent: detail redacted");
    pc_http_res_free(&r);
    r = areq(tplain, "POST", "{\"name\":\"nope\",\"driver\":\"local\"}",
             "/api/companies/%s/environments", cid);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "environments:manage"),
       "unprivileged agent: create 403 naming environments:manage");
    pc_http_res_free(&r);
    r = areq(tplain, "PATCH", "{\"name\":\"x\"}", "/api/environments/%s", ssh_id);
    is_int(r.status, 403, "unprivileged agent: patch 403");
    pc_http_res_free(&r);
    r = areq(tplain, "GET", NULL, "/api/environments/%s/leases", ssh_id);
    is_int(r.status, 403, "unprivileged agent: leases 403");
    pc_http_res_free(&r);
    r = areq(tplain, "POST", "{}", "/api/environments/%s/probe", ssh_id);
    is_int(r.status, 403, "unprivileged agent: probe 403");
    pc_http_res_free(&r);

    r = areq(tgrant, "GET", NULL, "/api/environments/%s", ssh_id);
    ok(r.status == 200 && json_object_get(r.json, "configRedacted") == NULL &&
           json_is_string(json_object_get(json_object_get(r.json, "config"), "host")),
       "granted agent: full read");
    pc_http_res_free(&r);
    r = areq(tgrant, "GET", NULL, "/api/environments/%s/leases", ssh_id);
    ok(r.status == 200 && json_is_array(r.json), "granted agent: leases list");
    pc_http_res_free(&r);
    r = areq(tlist, "POST", ssh_body("Agent box", NULL), "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "agent with a grants list: create 201");
    char *agent_env = res_dup(&r, "id");
    pc_http_res_free(&r);
    json_t *act = activity(cid, "environment.created", agent_env);
    is_str(json_string_value(json_object_get(act, "actorType")), "agent",
           "agent create: activity actor is the agent");
    json_decref(act);
    r = areq(tcto, "PATCH", "{\"description\":\"by cto\"}", "/api/environments/%s", agent_env);
    is_int(r.status, 200, "canCreateAgents agent: patch 200");
    pc_http_res_free(&r);

    r = areq(tother, "GET", NULL, "/api/companies/%s/environments", cid);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "another company"),
       "other company's agent: list 403 \"another company\"");
    pc_http_res_free(&r);
    r = areq(tother, "GET", NULL, "/api/environments/%s", ssh_id);
    ok(r.status == 403 && strstr(pc_res_str(&r, "error"), "another company"),
       "other company's agent: detail 403");
    pc_http_res_free(&r);
    r = areq(tother, "POST", "{\"name\":\"x\",\"driver\":\"ssh\"}",
             "/api/companies/%s/environments", cid);
    is_int(r.status, 403, "other company's agent: create 403");
    pc_http_res_free(&r);

    /* Agent keys: listing never shows the token; a revoked key stops working. */
    r = req("GET", NULL, "/api/agents/%s/keys", plain);
    ok(r.status == 200 && json_array_size(r.json) == 1 && !strstr(r.body, tplain) &&
           !json_object_get(json_array_get(r.json, 0), "token"),
       "agent keys: list without tokens");
    char *kid = strdup(json_string_value(json_object_get(json_array_get(r.json, 0), "id")) ?: "");
    pc_http_res_free(&r);
    r = areq(tgrant, "POST", "{}", "/api/agents/%s/keys", plain);
    is_int(r.status, 403, "agent keys: another agent cannot mint keys");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/agents/%s/keys/%s", plain, kid);
    is_int(r.status, 200, "agent keys: revoke");
    pc_http_res_free(&r);
    r = areq(tplain, "GET", NULL, "/api/companies/%s/environments", cid);
    is_int(r.status, 401, "agent keys: revoked key is rejected");
    pc_http_res_free(&r);

    free(kid);
    free(agent_env);
    free(plain), free(granted), free(listed), free(cto), free(other);
    free(tplain), free(tgrant), free(tlist), free(tcto), free(tother);
}

static void test_patch(void)
{
    pc_http_res r = req("PATCH", "{\"config\":{\"host\":\"new-host.example.test\"}}",
                        "/api/environments/%s", ssh_id);
    is_int(r.status, 200, "partial ssh patch: 200");
    json_t *cfg = json_object_get(r.json, "config");
    is_str(json_string_value(json_object_get(cfg, "host")), "new-host.example.test",
           "partial ssh patch: host changed");
    is_str(json_string_value(json_object_get(cfg, "username")), "deploy",
           "partial ssh patch: username kept");
    is_str(json_string_value(json_object_get(json_object_get(cfg, "privateKeySecretRef"), "secretId")),
           secret1, "partial ssh patch: secret ref kept");
    pc_http_res_free(&r);
    json_t *act = activity(cid, "environment.updated", ssh_id);
    json_t *det = json_object_get(act, "details");
    ok(json_is_true(json_object_get(det, "configChanged")) &&
           json_integer_value(json_object_get(det, "configTopLevelKeyCount")) == 1 &&
           json_is_false(json_object_get(det, "metadataChanged")),
       "update activity: redacted change summary");
    json_t *cf = json_object_get(det, "changedFields");
    ok(json_array_size(cf) == 1 && !strcmp(json_string_value(json_array_get(cf, 0)), "config"),
       "update activity: changedFields [config]");
    char *s = json_dumps(det, 0);
    ok(s && !strstr(s, "new-host"), "update activity: no config values");
    free(s);
    json_decref(act);

    long long before = db_count("SELECT COUNT(*) FROM company_secrets");
    r = req("PATCH",
            "{\"config\":{\"privateKey\":\"-----BEGIN KEY-----\\n" KEY2_NEEDLE "\\n-----END KEY-----\"}}",
            "/api/environments/%s", ssh_id);
    is_int(r.status, 200, "new key patch: 200");
    const char *sid2 = json_string_value(
        json_object_get(json_object_get(json_object_get(r.json, "config"), "privateKeySecretRef"),
                        "secretId"));
    ok(sid2 && strcmp(sid2, secret1) != 0, "new key patch: new secret ref");
    ok(!strstr(r.body, KEY2_NEEDLE), "new key patch: key text not returned");
    pc_http_res_free(&r);
    char q[256];
    snprintf(q, sizeof q, "SELECT COUNT(*) FROM company_secrets WHERE id='%s'", secret1);
    is_int(db_count(q), 0, "new key patch: old secret deleted");
    is_int(db_count("SELECT COUNT(*) FROM company_secrets"), before,
           "new key patch: secret count unchanged (one replaced)");

    r = req("PATCH", "{\"driver\":\"local\"}", "/api/environments/%s", ssh_id);
    is_int(r.status, 409, "switch to local while a Local exists: 409");
    pc_http_res_free(&r);

    /* A second ssh environment to switch drivers on. */
    r = req("POST", ssh_body("Switcher", ",\"privateKey\":\"k3\""), "/api/companies/%s/environments",
            cid);
    char *sw = res_dup(&r, "id");
    pc_http_res_free(&r);
    long long s0 = db_count("SELECT COUNT(*) FROM company_secrets");
    r = req("PATCH", "{\"driver\":\"sandbox\",\"config\":{\"provider\":\"nope\"}}",
            "/api/environments/%s", sw);
    is_int(r.status, 422, "switch to an unknown sandbox provider: 422");
    is_str(pc_res_str(&r, "error"),
           "Sandbox provider \"nope\" is not installed or its plugin worker is not running.",
           "unknown provider text");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"driver\":\"plugin\"}", "/api/environments/%s", sw);
    is_int(r.status, 422, "switch driver without the config the new driver needs: 422");
    pc_http_res_free(&r);
    r = req("PATCH",
            "{\"driver\":\"plugin\",\"config\":{\"pluginKey\":\"acme\",\"driverKey\":\"box\"}}",
            "/api/environments/%s", sw);
    is_int(r.status, 422, "switch to a plugin driver that is not installed: 422");
    pc_http_res_free(&r);
    char pbody[1200];
    snprintf(pbody, sizeof pbody,
             "{\"packageName\":\"%s/tests/plugins/env-driver\",\"isLocalPath\":true}",
             pc_test_root());
    r = req("POST", pbody, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "env-driver test plugin installed (%ld)", r.status);
    pc_http_res_free(&r);
    r = req("PATCH",
            "{\"driver\":\"plugin\",\"config\":{\"pluginKey\":\"paperclip.test-env-driver\","
            "\"driverKey\":\"host-dir\"}}",
            "/api/environments/%s", sw);
    is_int(r.status, 200, "switch ssh -> plugin with config: 200");
    json_t *pc = json_object_get(r.json, "config");
    ok(json_object_size(pc) == 3 && !json_object_get(pc, "host"),
       "driver switch: old config dropped");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM company_secrets"), s0 - 1,
           "driver switch: the ssh key secret deleted");
    r = req("PATCH", "{\"driver\":\"ssh\"}", "/api/environments/%s", sw);
    is_int(r.status, 422, "switch to ssh without config: 422");
    ok(strstr(pc_res_str(&r, "error"), "host") != NULL, "switch to ssh without config: names host");
    pc_http_res_free(&r);
    free(sw);

    r = req("PATCH", "{\"name\":\"x\"}", "/api/environments/00000000-0000-4000-8000-000000000000");
    ok(r.status == 404 && !strcmp(pc_res_str(&r, "error"), "Environment not found"),
       "patch unknown: 404 Environment not found");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/environments/00000000-0000-4000-8000-000000000000");
    ok(r.status == 404 && !strcmp(pc_res_str(&r, "error"), "Environment not found"),
       "delete unknown: 404 Environment not found");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/environments/not-a-uuid");
    is_int(r.status, 404, "get malformed id: 404");
    pc_http_res_free(&r);
}

static void test_sandbox_config(void)
{
    pc_http_res r = req("POST", "{\"name\":\"F\",\"driver\":\"sandbox\",\"config\":{\"provider\":\"fake\"}}",
                        "/api/companies/%s/environments", cid);
    is_int(r.status, 422, "built-in fake sandbox: 422");
    is_str(pc_res_str(&r, "error"),
           "Built-in fake sandbox environments are reserved for internal probes and cannot be saved.",
           "built-in fake sandbox: text");
    pc_http_res_free(&r);
    r = req("POST", "{\"name\":\"F\",\"driver\":\"sandbox\",\"config\":{\"provider\":\"ghost\"}}",
            "/api/companies/%s/environments", cid);
    is_str(pc_res_str(&r, "error"),
           "Sandbox provider \"ghost\" is not installed or its plugin worker is not running.",
           "unknown sandbox provider: 422 text");
    pc_http_res_free(&r);
    r = req("POST", "{\"driver\":\"sandbox\",\"config\":{\"provider\":\"fake\",\"image\":\"alpine:3\"}}",
            "/api/companies/%s/environments/probe-config", cid);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "ok")) &&
           strstr(pc_res_str(&r, "summary"), "alpine:3"),
       "probe-config: built-in fake sandbox probes ok");
    pc_http_res_free(&r);
}

static void test_probes(void)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/environments?driver=local", cid);
    char *local = strdup(json_string_value(json_object_get(json_array_get(r.json, 0), "id")) ?: "");
    pc_http_res_free(&r);
    r = req("POST", "{}", "/api/environments/%s/probe", local);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "ok")) &&
           !strcmp(pc_res_str(&r, "driver"), "local"),
       "probe saved local: ok");
    pc_http_res_free(&r);
    json_t *act = activity(cid, "environment.probed", local);
    ok(act && json_is_true(json_object_get(json_object_get(act, "details"), "ok")),
       "probe: activity environment.probed {ok:true}");
    json_decref(act);

    /* Saved ssh probe: the host does not resolve, so ok:false with a reason. */
    r = req("POST", NULL, "/api/environments/%s/probe", ssh_id);
    ok(r.status == 200 && json_is_false(json_object_get(r.json, "ok")) &&
           strlen(pc_res_str(&r, "summary")) > 10,
       "probe saved ssh (unreachable): ok:false with a reason");
    ok(!strstr(r.body, KEY2_NEEDLE), "probe ssh: no key text in the answer");
    pc_http_res_free(&r);
    act = activity(cid, "environment.probed", ssh_id);
    ok(act && json_is_false(json_object_get(json_object_get(act, "details"), "ok")),
       "probe ssh: activity {ok:false}");
    json_decref(act);

    long long envs = db_count("SELECT COUNT(*) FROM environments");
    long long secrets = db_count("SELECT COUNT(*) FROM company_secrets");
    r = req("POST",
            "{\"name\":\"Draft\",\"driver\":\"ssh\",\"config\":{\"host\":\"127.0.0.1\",\"port\":1,"
            "\"username\":\"u\",\"remoteWorkspacePath\":\"/tmp\",\"privateKey\":\"" KEY_TEXT "\","
            "\"strictHostKeyChecking\":false}}",
            "/api/companies/%s/environments/probe-config", cid);
    ok(r.status == 200 && json_is_false(json_object_get(r.json, "ok")),
       "probe-config ssh to a closed port: ok:false");
    ok(!strstr(r.body, KEY_NEEDLE), "probe-config: key text not echoed");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM environments"), envs, "probe-config: persists nothing");
    is_int(db_count("SELECT COUNT(*) FROM company_secrets"), secrets,
           "probe-config: creates no secret");
    r = req("POST", "{\"driver\":\"ssh\",\"config\":{\"host\":\"h\"}}",
            "/api/companies/%s/environments/probe-config", cid);
    is_int(r.status, 422, "probe-config invalid: 422");
    pc_http_res_free(&r);
    /* An environment whose key secret disappeared probes as not ok. */
    r = req("POST", ssh_body("Lost key", ",\"privateKey\":\"k-lost\""),
            "/api/companies/%s/environments", cid);
    char *lost = res_dup(&r, "id");
    char q[256];
    snprintf(q, sizeof q, "DELETE FROM company_secrets WHERE id='%s'",
             json_string_value(json_object_get(
                 json_object_get(json_object_get(r.json, "config"), "privateKeySecretRef"),
                 "secretId")));
    pc_http_res_free(&r);
    ok(db_exec(q) == 0, "lost key: secret removed behind the daemon's back");
    r = req("POST", "{}", "/api/environments/%s/probe", lost);
    ok(r.status == 200 && json_is_false(json_object_get(r.json, "ok")) &&
           strstr(pc_res_str(&r, "summary"), "Secret not found"),
       "lost key: probe answers ok:false naming the missing secret");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/environments/%s", lost);
    is_int(r.status, 200, "lost key: environment still deletable");
    pc_http_res_free(&r);
    free(lost);
    free(local);
}

static void test_agent_selection_and_delete(void)
{
    char *agent = make_agent(cid, "Worker", NULL);
    char body[256];
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", ssh_id);
    pc_http_res r = req("PATCH", body, "/api/agents/%s", agent);
    is_int(r.status, 200, "agent default environment: set");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"defaultEnvironmentId\":\"00000000-0000-4000-8000-000000000001\"}",
            "/api/agents/%s", agent);
    ok(r.status == 422 && !strcmp(pc_res_str(&r, "error"), "Environment not found."),
       "agent default environment: unknown id 422");
    pc_http_res_free(&r);

    /* Another company's environment is not selectable. */
    pc_http_res o = req("GET", NULL, "/api/companies/%s/environments", cid2);
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}",
             json_string_value(json_object_get(json_array_get(o.json, 0), "id")));
    pc_http_res_free(&o);
    r = req("PATCH", body, "/api/agents/%s", agent);
    is_int(r.status, 422, "agent default environment: other company's env 422");
    pc_http_res_free(&r);

    r = req("POST", ssh_body("Archived", ",\"strictHostKeyChecking\":false"),
            "/api/companies/%s/environments", cid);
    char *arch = res_dup(&r, "id");
    pc_http_res_free(&r);
    r = req("PATCH", "{\"status\":\"archived\"}", "/api/environments/%s", arch);
    json_t *act = activity(cid, "environment.updated", arch);
    is_str(json_string_value(json_object_get(json_object_get(act, "details"), "status")),
           "archived", "update activity: status in the summary");
    json_decref(act);
    pc_http_res_free(&r);
    snprintf(body, sizeof body, "{\"defaultEnvironmentId\":\"%s\"}", arch);
    r = req("PATCH", body, "/api/agents/%s", agent);
    is_int(r.status, 422, "agent default environment: archived env 422");
    pc_http_res_free(&r);
    free(arch);

    snprintf(body, sizeof body,
             "{\"title\":\"Pinned\",\"executionWorkspaceSettings\":{\"environmentId\":\"%s\","
             "\"keep\":1}}", ssh_id);
    r = req("POST", body, "/api/companies/%s/issues", cid);
    char *issue = res_dup(&r, "id");
    if (r.status != 201)
        tap_diag("issue create: %ld %s", r.status, r.body);
    pc_http_res_free(&r);

    long long secrets = db_count("SELECT COUNT(*) FROM company_secrets");
    r = req("DELETE", NULL, "/api/environments/%s", ssh_id);
    is_int(r.status, 200, "delete: 200");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/issues/%s", issue);
    json_t *ews = json_object_get(r.json, "executionWorkspaceSettings");
    ok(r.status == 200 && !json_object_get(ews, "environmentId") && json_object_get(ews, "keep"),
       "delete: clears the issue's environment selection (keeps the rest)");
    if (!json_object_get(ews, "keep")) tap_diag("issue: %s", r.body);
    pc_http_res_free(&r);
    free(issue);
    r = req("GET", NULL, "/api/agents/%s", agent);
    ok(json_is_null(json_object_get(r.json, "defaultEnvironmentId")),
       "delete: clears the agent's default environment");
    pc_http_res_free(&r);
    is_int(db_count("SELECT COUNT(*) FROM company_secrets"), secrets - 1,
           "delete: removes the SSH key secret");
    act = activity(cid, "environment.deleted", ssh_id);
    json_t *det = json_object_get(act, "details");
    ok(act && !strcmp(json_string_value(json_object_get(det, "driver")), "ssh") &&
           !strcmp(json_string_value(json_object_get(det, "name")), "Build box"),
       "delete: activity environment.deleted {name, driver}");
    json_decref(act);
    r = req("GET", NULL, "/api/environments/%s", ssh_id);
    is_int(r.status, 404, "delete: gone");
    pc_http_res_free(&r);
    free(agent);
}

static int cli(char **out, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)pc_test_bin();
    argv[n++] = "--api-url";
    argv[n++] = d.url;
    argv[n++] = "--json";
    argv[n++] = "env";
    const char *rest[] = {a1, a2, a3, a4};
    for (int i = 0; i < 4 && rest[i]; i++)
        argv[n++] = (char *)rest[i];
    argv[n] = NULL;
    return pc_run_capture(argv, out);
}

static void test_cli(void)
{
    char keyfile[700], *out = NULL;
    snprintf(keyfile, sizeof keyfile, "%s/cli.key", d.data_dir);
    FILE *f = fopen(keyfile, "w");
    fputs("-----BEGIN KEY-----\nCLI-KEY-MATERIAL-777\n-----END KEY-----\n", f);
    fclose(f);
    char *argv[] = {(char *)pc_test_bin(), "--api-url", d.url, "--json", "env", "create", cid,
                    "--name", "CLI box", "--driver", "ssh", "--host", "cli.example.test",
                    "--user", "ops", "--port", "2200", "--remote-path", "/srv/cli",
                    "--private-key-file", keyfile, "--no-strict-host-key-checking", NULL};
    int rc = pc_run_capture(argv, &out);
    json_t *j = json_loads(out ? out : "", 0, NULL);
    is_int(rc, 0, "cli: env create ssh exits 0");
    json_t *cfg = json_object_get(j, "config");
    ok(json_integer_value(json_object_get(cfg, "port")) == 2200 &&
           json_is_false(json_object_get(cfg, "strictHostKeyChecking")) &&
           json_is_object(json_object_get(cfg, "privateKeySecretRef")),
       "cli: flags become the ssh config, key file becomes a secret ref");
    ok(out && !strstr(out, "CLI-KEY-MATERIAL"), "cli: key not printed");
    char *id = strdup(json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    free(out);

    rc = cli(&out, "list", cid, "--driver", "ssh");
    j = json_loads(out ? out : "", 0, NULL);
    ok(rc == 0 && json_array_size(j) >= 1, "cli: env list --driver ssh");
    json_decref(j);
    free(out);
    char *targv[] = {(char *)pc_test_bin(), "--api-url", d.url, "env", "list", cid, NULL};
    rc = pc_run_capture(targv, &out);
    ok(rc == 0 && out && strstr(out, "NAME") && strstr(out, "CLI box"), "cli: env list table");
    free(out);
    rc = cli(&out, "capabilities", cid, NULL, NULL);
    ok(rc == 0 && out && strstr(out, "sandboxProviders"), "cli: env capabilities");
    free(out);
    rc = cli(&out, "update", id, "--config", "{\"host\":\"cli2.example.test\"}");
    ok(rc == 0 && out && strstr(out, "cli2.example.test"), "cli: env update --config merges");
    free(out);
    rc = cli(&out, "leases", id, NULL, NULL);
    ok(rc == 0 && out && out[0] == '[', "cli: env leases");
    free(out);
    rc = cli(&out, "get", "00000000-0000-4000-8000-000000000000", NULL, NULL);
    is_int(rc, 1, "cli: env get unknown exits 1");
    free(out);
    rc = cli(&out, "delete", id, NULL, NULL);
    is_int(rc, 0, "cli: env delete");
    free(out);
    rc = cli(&out, "bogus", NULL, NULL, NULL);
    is_int(rc, 2, "cli: unknown subcommand exits 2");
    free(out);
    free(id);
}

int main(void)
{
    static const char *const denv[] = {"PAPERCLIP_ALLOWED_HOSTNAMES=paperclip-ci.example.test",
                                       NULL};
    pc_daemon_opts o = {.env = denv};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("Env Co");
    cid2 = make_company("Other Co");
    test_list_and_local();
    test_local_api_url();
    test_capabilities();
    test_ssh_validation();
    test_create_ssh();
    test_guards();
    test_patch();
    test_sandbox_config();
    test_probes();
    test_agent_selection_and_delete();
    test_cli();

    ok(!pc_test_file_contains(d.log_path, KEY_NEEDLE) && !pc_test_file_contains(d.log_path, KEY2_NEEDLE),
       "daemon log carries no private key text");
    char path[700];
    snprintf(path, sizeof path, "%s/secrets/master.key", d.data_dir);
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32,
       "master key: 32 bytes, mode 0600");
    if (tap_failures())
        pc_daemon_dump_log(&d);
    is_int(pc_daemon_stop(&d), 0, "daemon exits cleanly (no sanitizer report)");
    free(cid), free(cid2), free(ssh_id), free(secret1);
    return tap_done();
}
