/*
 * One hostile agent (tests/hostile/agent.sh, sh + curl) in every kind of
 * environment: local, a sandbox from the C fake provider, a bwrap sandbox
 * with network api-only, and SSH to a real sshd on loopback. Each kind gets
 * a fresh daemon with the same cast: in company A the hostile worker (no
 * grants), a peer agent holding secrets, a live peer run, a peer API key,
 * bystander agents nobody wakes, the local environment and a board key the
 * worker is handed as if it leaked; company B with an agent, an issue, an
 * environment and a live run. Outside local, a hiring agent (granted
 * canCreateAgents) runs the script too and tries to turn its grant into
 * execution on the host.
 *
 * The script tries every attack and prints "ATTACK <name> <status> <note>".
 * This test reads those lines from the run log, then checks each attack's
 * effect from outside with the board's credentials: a company, agent, issue,
 * key or environment that exists, a field that changed, a run that was
 * cancelled or started, data the script found in a response. An attack that
 * left an effect (or was accepted where acceptance is the effect, such as a
 * minted key) prints "not ok - attack <name> in <env> refused". The
 * reversed token the script printed is tried after its run ended.
 *
 * Controls make every refusal meaningful: the run's own token must work
 * during the run, every field value the script writes must be accepted from
 * the board, and the expired token must work once re-signed with a future
 * expiry. The bwrap and SSH kinds skip only when bwrap (or user namespaces)
 * or sshd are missing.
 */
#include <sodium.h>
#include <sys/wait.h>

#include "../lib/sshd.h"
#include "heartbeat_common.h"

#define RUN_TIMEOUT_MS 120000
#define SECRET_NEEDLE "PEERCANARYSECRET"
#define PLAIN_NEEDLE "PEERCANARYPLAIN"
#define DAEMON_CANARY "DAEMONCANARY-3f9a"
/* The wake reason that keeps a peer's or company B's run alive. */
#define HOLD "{\"reason\":\"hold\"}"
/* The same, reversed, as the script receives them (see agent.sh). */
#define SECRET_NEEDLE_REV "TERCESYRANACREEP"
#define DAEMON_CANARY_REV "a9f3-YRANACNOMEAD"

enum kind { K_LOCAL, K_FAKE, K_BWRAP, K_SSH };
static const char *const kind_names[] = {"local", "fake-sandbox", "bwrap-api-only", "ssh"};

/* Attacks the worker tries in every kind; the
 * operator-listener ones depend on the kind (see judge()). */
/* clang-format off */
static const char *const common_attacks[] = {
    "nocred_company", "nocred_agent", "nocred_plugin", "jwt_bad_sig", "jwt_alg_none",
    "jwt_expired", "jwt_other_run", "self_adapterType", "self_adapterConfig",
    "self_runtimeConfig", "self_defaultEnvironmentId", "self_role", "self_permissions",
    "self_budgetMonthlyCents", "self_reportsTo", "peer_adapterType", "peer_adapterConfig",
    "peer_runtimeConfig", "peer_defaultEnvironmentId", "peer_role", "peer_permissions",
    "peer_budgetMonthlyCents", "peer_reportsTo", "issue_env_switch", "issue_cwd_traversal",
    "key_mint_self", "key_mint_peer", "key_revoke_peer", "read_peer_secret", "read_peer_plain",
    "read_peer_secret_list", "b_company_get", "b_company_patch", "b_agents_list", "b_agent_get",
    "b_issues_list", "b_issue_get", "b_issue_create", "b_envs_list", "b_env_probe",
    "b_runs_list", "b_run_log", "b_run_cancel", "b_activity", "b_comment", "b_agent_delete",
    "c_company_delete", "assign_peer", "reassign_peer", "peer_delete", "env_delete",
    "peer_run_cancel", "peer_wakeup",
    "spawn_process_agent", "spawn_wake", "spawn_cwd_traversal", "plugin_traversal",
    "plugin_traversal_token", "env_traversal", "host_evil", "origin_evil_body",
    "origin_evil_nobody", "fetch_site_cross", "host_evil_token", "origin_evil_token",
    "fetch_site_token", "leaked_board_key", "proc_environ", "read_jwt_secret", "peer_status",
    "self_status", NULL};
static const char *const operator_attacks[] = {
    "op_nocred_company", "op_token_company", "op_host_evil", "op_origin_evil_body",
    "op_origin_evil_nobody", "op_fetch_site_cross", NULL};
static const char *const guess_attacks[] = {"op_guess", NULL};
/* What the hiring agent (granted canCreateAgents) tries from a sandbox or an
 * SSH host. */
static const char *const hirer_attacks[] = {
    "hirer_self_defaultEnvironmentId", "hirer_self_budgetMonthlyCents", "hirer_peer_adapterConfig",
    "hirer_issue_env_switch", "hirer_env_create", "hirer_spawn_process_agent",
    "hirer_spawn_approve", "hirer_spawn_activate", "hirer_spawn_wake", "hirer_spawn_on_host",
    "hirer_spawn_active", NULL};
/* clang-format on */

/* Everything one kind's run needs, ids and tokens as the board created them. */
typedef struct world {
    enum kind kind;
    const char *label;
    char tmp[512];
    char cid[64], bcid[64], bname[64];
    char run_env[64];   /* the hostile agent's environment ("" for local) */
    char local_env[64]; /* the second local environment the attacks aim at */
    char peer[64], peer_run1[64], peer_run2[64], peer_key[64];
    char bystander[64], bystander_op[64], control[64];
    char b_agent[64], b_issue[64], b_env[64], b_run[64];
    /* Targets only the delete attacks touch, so no other check loses its
     * object: an agent and an environment in A, an agent in B, company C. */
    char doomed[64], doomed_env[64], b_doomed[64], ccid[64];
    char hostile[64], task[64], issue2[64], run[64];
    char hirer[64], hirer_task[64], hirer_run[64]; /* the hiring agent (not in local) */
    char other_token[4096], expired_token[4096], live_token[4096];
    char board_key[64]; /* a board key the agent is handed, as if it leaked */
    char plugin_path[1024];
} world;

/* One line the script printed. */
typedef struct attack_line {
    char name[64];
    long status;
    char note[16];
} attack_line;

static int tried_total, succeeded_total;
/* The current kind's tally and the names of the attacks that succeeded. */
static int env_tried, env_succeeded;
static char env_names[4096];
/* Attacks the trust decisions do not refuse on purpose (see judge()). */
static int by_design_total;
static char by_design_names[512];

static void count_attack(const char *name, bool hit)
{
    env_tried++;
    if (hit) {
        env_succeeded++;
        size_t len = strlen(env_names);
        snprintf(env_names + len, sizeof env_names - len, " %s", name);
    }
}

static pc_test_sshd sshd;
static bool sshd_up;

static bool is_2xx(long s)
{
    return s >= 200 && s < 300;
}

static bool bwrap_usable(void)
{
    return pc_test_sh("command -v bwrap >/dev/null 2>&1 && "
                      "bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr "
                      "--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
                      "--proc /proc --dev /dev -- /usr/bin/true >/dev/null 2>&1") == 0;
}

/* POST that must create something; copies the new id into out. */
static bool create(char *out, size_t size, const char *body, const char *fmt, const char *arg)
{
    pc_http_res r = req("POST", body, fmt, arg);
    snprintf(out, size, "%s", pc_res_str(&r, "id"));
    bool good = r.status == 201 || r.status == 200 || r.status == 202;
    if (!good)
        tap_diag("POST %s: %ld %.300s", fmt, r.status, r.body ? r.body : "");
    pc_http_res_free(&r);
    return good && out[0];
}

static char *sh_agent_body(const char *name, const char *script, const char *extra)
{
    char *enc = pc_test_json_quote(script);
    char *body = NULL;
    if (asprintf(&body,
                 "{\"name\":\"%s\",\"adapterType\":\"process\","
                 "\"adapterConfig\":{\"command\":\"sh\",\"args\":[\"-c\",%s]%s}}",
                 name, enc, extra ? extra : "") < 0)
        body = NULL;
    free(enc);
    return body;
}

static bool sh_agent(char *out, const char *cid, const char *name, const char *script,
                     const char *extra)
{
    char *body = sh_agent_body(name, script, extra);
    bool good = create(out, 64, body ? body : "{}", "/api/companies/%s/agents", cid);
    free(body);
    return good;
}

/* The run's stdout, reassembled from the log's ndjson chunks (malloc'd). */
static char *run_stdout(const char *run)
{
    char *log = hb_log(run);
    size_t cap = strlen(log) + 1, len = 0;
    char *out = calloc(1, cap);
    char *save = NULL;
    for (char *line = strtok_r(log, "\n", &save); line && out; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j && !strcmp(js(j, "stream"), "stdout")) {
            const char *c = js(j, "chunk");
            size_t cl = strlen(c);
            if (len + cl < cap) {
                memcpy(out + len, c, cl);
                len += cl;
            }
        }
        json_decref(j);
    }
    free(log);
    return out ? out : strdup("");
}

/* Waits until the run's stdout has needle. */
static bool wait_stdout(const char *run, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        char *o = run_stdout(run);
        bool has = strstr(o, needle) != NULL;
        free(o);
        if (has)
            return true;
        pc_test_sleep_ms(50);
    }
    return false;
}

/* The reversed token after "REVTOKEN " in text, turned back into out. */
static bool unreverse_token(const char *text, char *out, size_t size)
{
    const char *p = strstr(text, "REVTOKEN ");
    out[0] = '\0';
    if (!p)
        return false;
    p += strlen("REVTOKEN ");
    size_t n = strcspn(p, "\n");
    if (n == 0 || n >= size)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = p[n - 1 - i];
    out[n] = '\0';
    return true;
}

static void b64url(const unsigned char *in, size_t len, char *out, size_t size)
{
    sodium_bin2base64(out, size, in, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* A run token for (agent, run) signed with the daemon's own secret, valid
 * from iat to exp; "" when the secret file cannot be read. */
static void mint_token(const char *agent, const char *cid, const char *run, long long iat,
                       long long exp, char *out, size_t size)
{
    out[0] = '\0';
    char path[700];
    snprintf(path, sizeof path, "%s/agent-jwt-secret", d.data_dir);
    char *hex = pc_test_read_file(path, 256);
    unsigned char key[crypto_auth_hmacsha256_KEYBYTES];
    size_t klen = 0;
    hex[strcspn(hex, "\r\n")] = '\0';
    int rc = sodium_hex2bin(key, sizeof key, hex, strlen(hex), NULL, &klen, NULL);
    free(hex);
    if (rc != 0 || klen != sizeof key)
        return;
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char claims[700];
    snprintf(claims, sizeof claims,
             "{\"sub\":\"%s\",\"company_id\":\"%s\",\"adapter_type\":\"process\","
             "\"run_id\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"iss\":\"paperclip\","
             "\"aud\":\"paperclip-api\"}",
             agent, cid, run, iat, exp);
    char h64[128], c64[1024], s64[128];
    b64url((const unsigned char *)hdr, strlen(hdr), h64, sizeof h64);
    b64url((const unsigned char *)claims, strlen(claims), c64, sizeof c64);
    char signing[1200];
    snprintf(signing, sizeof signing, "%s.%s", h64, c64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256(mac, (const unsigned char *)signing, strlen(signing), key);
    b64url(mac, sizeof mac, s64, sizeof s64);
    snprintf(out, size, "%s.%s", signing, s64);
}

static long long run_count(const char *agent, const char *extra)
{
    char sql[400];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM heartbeat_runs WHERE agent_id='%s'%s", agent,
             extra ? extra : "");
    return db_count(sql);
}

/* The element of a JSON array whose key equals value (borrowed), or NULL. */
static json_t *find_by(json_t *arr, const char *key, const char *value)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!strcmp(js(e, key), value))
            return e;
    }
    return NULL;
}

static json_t *board_get(const char *fmt, const char *arg)
{
    pc_http_res r = req("GET", NULL, fmt, arg);
    json_t *j = r.status == 200 && r.json ? json_incref(r.json) : json_null();
    pc_http_res_free(&r);
    return j;
}

static bool json_has(json_t *j, const char *needle)
{
    char *s = json_dumps(j, JSON_ENCODE_ANY);
    bool has = s && strstr(s, needle);
    free(s);
    return has;
}

/* Sets the kind's environment up in the running daemon: the plugin and the
 * environment the hostile agent runs in. */
static bool setup_kind(world *w)
{
    char body[2400];
    if (w->kind == K_LOCAL)
        return true;
    if (w->kind == K_FAKE || w->kind == K_BWRAP) {
        const char *pkg = w->kind == K_FAKE ? "fake-sandbox" : "bwrap-sandbox";
        snprintf(body, sizeof body,
                 "{\"packageName\":\"%s/plugins/%s\",\"isLocalPath\":true,"
                 "\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s/plugin-data\"}}",
                 pc_test_root(), pkg, w->tmp);
        pc_http_res r = req("POST", body, "/api/plugins/install");
        bool good =
            (r.status == 200 || r.status == 201) && !strcmp(pc_res_str(&r, "status"), "ready");
        ok(good, "%s: %s plugin installed and ready (%ld)", w->label, pkg, r.status);
        if (!good)
            tap_diag("install: %.400s", r.body ? r.body : "");
        pc_http_res_free(&r);
        if (!good)
            return false;
        snprintf(body, sizeof body, "%s",
                 w->kind == K_FAKE
                     ? "{\"name\":\"Fake box\",\"driver\":\"sandbox\","
                       "\"config\":{\"provider\":\"fake-plugin\",\"image\":\"fake:test\"}}"
                     : "{\"name\":\"Bwrap box\",\"driver\":\"sandbox\","
                       "\"config\":{\"provider\":\"bwrap\",\"network\":\"api-only\"}}");
    } else {
        char *key = pc_test_sshd_file_json(&sshd, "user_key");
        snprintf(body, sizeof body,
                 "{\"name\":\"Loopback ssh\",\"driver\":\"ssh\",\"config\":{\"host\":\"127.0.0.1\","
                 "\"port\":%d,\"username\":\"root\",\"remoteWorkspacePath\":\"%s/remote\","
                 "\"privateKey\":%s,\"strictHostKeyChecking\":false}}",
                 sshd.port, w->tmp, key);
        free(key);
    }
    bool good =
        create(w->run_env, sizeof w->run_env, body, "/api/companies/%s/environments", w->cid);
    ok(good, "%s: environment for the hostile agent created", w->label);
    return good;
}

/* The cast every kind shares; false when something a later check relies on
 * could not be made. */
static bool setup_world(world *w)
{
    char body[1200];
    bool good = true;
    good &= create(w->cid, sizeof w->cid, "{\"name\":\"Company A\"}", "/api/companies", NULL);
    snprintf(w->bname, sizeof w->bname, "Company B %s", w->label);
    snprintf(body, sizeof body, "{\"name\":\"%s\"}", w->bname);
    good &= create(w->bcid, sizeof w->bcid, body, "/api/companies", NULL);
    good &= create(w->local_env, sizeof w->local_env,
                   "{\"name\":\"Host\",\"driver\":\"local\",\"config\":{}}",
                   "/api/companies/%s/environments", w->cid);

    /* The peer prints its token reversed (as the hostile agent does) and,
     * when the test woke it ("hold"), stays running until cancelled; runs an
     * attack starts end at once, so they never fill the daemon's run pool. */
    const char *peer_sh =
        "t=$PAPERCLIP_API_KEY r=; while [ -n \"$t\" ]; do r=\"${t%\"${t#?}\"}$r\"; t=${t#?}; done; "
        "echo \"REVTOKEN $r\"; [ \"${PAPERCLIP_WAKE_REASON:-}\" = hold ] || exit 0; exec sleep 600";
    good &= sh_agent(w->peer, w->cid, "Peer", peer_sh,
                     ",\"env\":{\"PEER_SECRET\":{\"type\":\"secret\",\"value\":\"" SECRET_NEEDLE
                     "-5b1e\"},\"PEER_API_TOKEN\":\"" PLAIN_NEEDLE "-77c2\"}");
    good &= sh_agent(w->bystander, w->cid, "Bystander", "exit 0", NULL);
    good &= sh_agent(w->bystander_op, w->cid, "Bystander op", "exit 0", NULL);
    good &= sh_agent(w->control, w->cid, "Control", "exit 0", NULL);
    good &= create(w->issue2, sizeof w->issue2, "{\"title\":\"Unassigned work\"}",
                   "/api/companies/%s/issues", w->cid);
    good &= create(w->peer_key, sizeof w->peer_key, "{\"name\":\"peer key\"}",
                   "/api/agents/%s/keys", w->peer);

    /* Company B: an agent with a live run, an issue, an environment. */
    good &= sh_agent(w->b_agent, w->bcid, "B worker",
                     "[ \"${PAPERCLIP_WAKE_REASON:-}\" = hold ] || exit 0; exec sleep 600", NULL);
    good &= create(w->b_issue, sizeof w->b_issue, "{\"title\":\"B secret plans\"}",
                   "/api/companies/%s/issues", w->bcid);
    good &= create(w->b_env, sizeof w->b_env,
                   "{\"name\":\"B host\",\"driver\":\"local\",\"config\":{}}",
                   "/api/companies/%s/environments", w->bcid);
    good &= create(w->b_run, sizeof w->b_run, HOLD, "/api/agents/%s/wakeup", w->b_agent);
    good &= sh_agent(w->doomed, w->cid, "Doomed", "exit 0", NULL);
    good &= sh_agent(w->b_doomed, w->bcid, "B doomed", "exit 0", NULL);
    good &= create(w->doomed_env, sizeof w->doomed_env,
                   "{\"name\":\"Doomed ssh\",\"driver\":\"ssh\",\"config\":{\"host\":"
                   "\"127.0.0.1\",\"port\":22,\"username\":\"root\","
                   "\"remoteWorkspacePath\":\"/tmp/hostile-doomed\"}}",
                   "/api/companies/%s/environments", w->cid);
    good &= create(w->ccid, sizeof w->ccid, "{\"name\":\"Company C\"}", "/api/companies", NULL);
    if (!good)
        return false;
    json_t *j = hb_wait_run(w->b_run, "running", 60000);
    ok(j != NULL, "%s: company B's run is running", w->label);
    json_decref(j);

    /* The peer's first run: its token, once the run is cancelled, is
     * "another run's token". Its second run stays live for the attacks. */
    good &= create(w->peer_run1, sizeof w->peer_run1, HOLD, "/api/agents/%s/wakeup", w->peer);
    ok(good && wait_stdout(w->peer_run1, "REVTOKEN ", 60000), "%s: the peer printed its token",
       w->label);
    char *o = run_stdout(w->peer_run1);
    ok(unreverse_token(o, w->other_token, sizeof w->other_token), "%s: peer token read", w->label);
    free(o);
    pc_http_res r = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", w->peer_run1);
    ok(is_2xx(r.status), "%s: the board cancelled the peer's first run (%ld)", w->label, r.status);
    pc_http_res_free(&r);
    j = hb_wait_run(w->peer_run1, NULL, 60000);
    ok(j != NULL, "%s: the peer's first run ended (%s)", w->label, js(j, "status"));
    json_decref(j);
    good &= create(w->peer_run2, sizeof w->peer_run2, HOLD, "/api/agents/%s/wakeup", w->peer);
    j = good ? hb_wait_run(w->peer_run2, "running", 60000) : NULL;
    ok(j != NULL, "%s: the peer's second run is running", w->label);
    json_decref(j);

    /* Expired, correctly signed; the same claims with a future expiry are
     * the control that the signature is right. */
    long long now = (long long)time(NULL);
    mint_token(w->peer, w->cid, w->peer_run2, now - 7200, now - 3600, w->expired_token,
               sizeof w->expired_token);
    mint_token(w->peer, w->cid, w->peer_run2, now - 60, now + 3600, w->live_token,
               sizeof w->live_token);
    r = areq(w->live_token, "GET", NULL, "/api/agents/me");
    ok(r.status == 200 && !strcmp(pc_res_str(&r, "id"), w->peer),
       "%s: control: a token signed here with a future expiry authenticates (%ld)", w->label,
       r.status);
    pc_http_res_free(&r);
    /* An empty token would make the script send no credentials at all, and
     * on the operator listener that is the board: a token the test could
     * not make is sent as one that cannot work (the controls above fail). */
    if (!w->expired_token[0])
        snprintf(w->expired_token, sizeof w->expired_token, "unavailable");
    if (!w->other_token[0])
        snprintf(w->other_token, sizeof w->other_token, "unavailable");
    return good;
}

/* A board key written straight into the store (the daemon keeps only its
 * SHA-256); the control is that it acts as the board on the operator
 * listener. */
static bool board_key(world *w)
{
    unsigned char raw[24], hash[crypto_hash_sha256_BYTES];
    char hex[sizeof raw * 2 + 1], hhex[sizeof hash * 2 + 1], sql[600];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(w->board_key, sizeof w->board_key, "pcb_%s", hex);
    crypto_hash_sha256(hash, (const unsigned char *)w->board_key, strlen(w->board_key));
    sodium_bin2hex(hhex, sizeof hhex, hash, sizeof hash);
    snprintf(sql, sizeof sql,
             "INSERT INTO board_api_keys(id,user_id,name,key_hash,created_at) VALUES("
             "'hostile-board-key','board','leaked','%s','2026-01-01T00:00:00.000Z')",
             hhex);
    bool stored = pc_test_db_exec(&d, sql) == 0;
    if (!stored)
        snprintf(w->board_key, sizeof w->board_key, "pcb_unavailable");
    pc_http_res r =
        areq(w->board_key, "POST", "{\"name\":\"control board key\"}", "/api/companies");
    bool good = stored && r.status == 201;
    ok(good, "%s: control: the board key acts as the board on the operator listener (%ld)",
       w->label, r.status);
    pc_http_res_free(&r);
    return good;
}

/* The board may set every value the script writes: a refusal of the
 * script's request is then about who asks, not what is asked. */
static void controls(world *w)
{
    char envb[200], repb[200];
    snprintf(envb, sizeof envb, "{\"defaultEnvironmentId\":\"%s\"}", w->local_env);
    snprintf(repb, sizeof repb, "{\"reportsTo\":\"%s\"}", w->peer);
    const char *const bodies[] = {
        "{\"adapterType\":\"http\"}",
        "{\"adapterConfig\":{\"command\":\"sh\",\"args\":[\"-c\",\"echo hostile-pwned\"]}}",
        "{\"runtimeConfig\":{\"heartbeat\":{\"intervalSec\":77777}}}",
        envb,
        "{\"role\":\"ceo\"}",
        "{\"permissions\":{\"canCreateAgents\":true,\"hostileGranted\":true}}",
        "{\"budgetMonthlyCents\":987654}",
        repb,
        "{\"status\":\"paused\"}",
        "{\"budgetMonthlyCents\":123457}",
        NULL};
    int accepted = 0, n = 0;
    for (int i = 0; bodies[i]; i++, n++) {
        pc_http_res r = req("PATCH", bodies[i], "/api/agents/%s", w->control);
        if (is_2xx(r.status))
            accepted++;
        else
            tap_diag("control PATCH %s: %ld %.200s", bodies[i], r.status, r.body ? r.body : "");
        pc_http_res_free(&r);
    }
    is_int(accepted, n, "%s: control: the board may set every agent field the script tries",
           w->label);
    char issue[64], body[300];
    bool good = create(issue, sizeof issue, "{\"title\":\"control issue\"}",
                       "/api/companies/%s/issues", w->cid);
    snprintf(body, sizeof body, "{\"executionWorkspaceSettings\":{\"environmentId\":\"%s\"}}",
             w->local_env);
    pc_http_res r = req("PATCH", body, "/api/issues/%s", issue);
    ok(good && is_2xx(r.status), "%s: control: the board may switch an issue's environment (%ld)",
       w->label, r.status);
    pc_http_res_free(&r);
    char id[64];
    ok(create(id, sizeof id,
              "{\"name\":\"control ssh\",\"driver\":\"ssh\",\"config\":{\"host\":\"127.0.0.1\","
              "\"port\":22,\"username\":\"root\",\"remoteWorkspacePath\":\"/tmp/hostile-hirer\"}}",
              "/api/companies/%s/environments", w->cid),
       "%s: control: the board may create the environment the hiring agent tries", w->label);
    snprintf(body, sizeof body,
             "{\"name\":\"control hire\",\"adapterType\":\"process\",\"adapterConfig\":"
             "{\"command\":\"true\"},\"status\":\"active\",\"defaultEnvironmentId\":\"%s\"}",
             w->local_env);
    ok(create(id, sizeof id, body, "/api/companies/%s/agents", w->cid),
       "%s: control: the board may hire an active agent on the host", w->label);
}

/* Creates the hostile agent (the hiring one when hirer), assigns it an
 * issue and waits for the run that assignment starts. */
static bool hostile_run(world *w, bool hirer)
{
    char *agent = hirer ? w->hirer : w->hostile, *task = hirer ? w->hirer_task : w->task;
    char *run = hirer ? w->hirer_run : w->run;
    const char *who = hirer ? "hiring" : "hostile";
    char path[1100];
    snprintf(path, sizeof path, "%s/tests/hostile/agent.sh", pc_test_root());
    char *script = pc_test_read_file(path, 1 << 20);
    ok(script[0] != '\0', "%s: read %s", w->label, path);
    char ports[64] = "";
    snprintf(ports, sizeof ports, "%d %d 3100", d.port, d.port + 1);
    char opurl[160] = "";
    if (w->kind == K_LOCAL || w->kind == K_SSH)
        snprintf(opurl, sizeof opurl, "%s", d.url);
    json_t *env = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
        "HOSTILE_ENV", w->label, "HOSTILE_PEER_ID", w->peer, "HOSTILE_PEER_RUN_ID", w->peer_run2,
        "HOSTILE_PEER_KEY_ID", w->peer_key, "HOSTILE_BYSTANDER_ID", w->bystander,
        "HOSTILE_BYSTANDER_OP_ID", w->bystander_op, "HOSTILE_LOCAL_ENV_ID", w->local_env,
        "HOSTILE_B_COMPANY_ID", w->bcid, "HOSTILE_B_NAME", w->bname, "HOSTILE_B_AGENT_ID",
        w->b_agent, "HOSTILE_B_ISSUE_ID", w->b_issue, "HOSTILE_B_ENV_ID", w->b_env,
        "HOSTILE_B_RUN_ID", w->b_run, "HOSTILE_EXPIRED_TOKEN", w->expired_token,
        "HOSTILE_OTHER_RUN_TOKEN", w->other_token, "HOSTILE_PLUGIN_PATH", w->plugin_path,
        "HOSTILE_PLUGIN_DATA_DIR", w->tmp, "HOSTILE_PEER_SECRET_NEEDLE_REV", SECRET_NEEDLE_REV,
        "HOSTILE_PEER_PLAIN_NEEDLE", PLAIN_NEEDLE, "HOSTILE_OPERATOR_URL", opurl);
    json_object_set_new(env, "HOSTILE_ISSUE2_ID", json_string(w->issue2));
    json_object_set_new(env, "HOSTILE_MODE", json_string(hirer ? "hirer" : "worker"));
    json_object_set_new(env, "HOSTILE_BOARD_KEY", json_string(w->board_key));
    json_object_set_new(env, "HOSTILE_DOOMED_ID", json_string(w->doomed));
    json_object_set_new(env, "HOSTILE_DOOMED_ENV_ID", json_string(w->doomed_env));
    json_object_set_new(env, "HOSTILE_B_DOOMED_ID", json_string(w->b_doomed));
    json_object_set_new(env, "HOSTILE_C_COMPANY_ID", json_string(w->ccid));
    json_object_set_new(env, "HOSTILE_DATA_DIR", json_string(d.data_dir));
    json_object_set_new(env, "HOSTILE_DAEMON_CANARY_REV", json_string(DAEMON_CANARY_REV));
    if (w->kind == K_BWRAP)
        json_object_set_new(env, "HOSTILE_GUESS_PORTS", json_string(ports));
    /* The worker holds no grant, so every refusal it meets is the rule
     * itself; the hirer holds the grant a confined agent must not be able
     * to turn into host execution. */
    json_t *body = json_pack(
        "{s:s,s:s,s:{s:s,s:[s,s],s:o},s:o}", "name", hirer ? "Hiring manager" : "Hostile", "role",
        "engineer", "adapterConfig", "command", "sh", "args", "-c", script, "env", env,
        "permissions", hirer ? json_pack("{s:b}", "canCreateAgents", 1) : json_object());
    if (w->run_env[0])
        json_object_set_new(body, "defaultEnvironmentId", json_string(w->run_env));
    char *text = json_dumps(body, 0);
    json_decref(body);
    free(script);
    bool good = create(agent, 64, text ? text : "{}", "/api/companies/%s/agents", w->cid);
    free(text);
    char ib[300];
    snprintf(ib, sizeof ib, "{\"title\":\"%s task\",\"assigneeAgentId\":\"%s\"}", who, agent);
    good = good && create(task, 64, ib, "/api/companies/%s/issues", w->cid);
    /* The assignment queues the run; a loaded machine may take a while. */
    for (int i = 0; good && i < 12 && !run[0]; i++) {
        hb_first_run(task, run, 64);
        if (!run[0])
            pc_test_sleep_ms(100);
    }
    ok(run[0] != '\0', "%s: the assignment started the %s run", w->label, who);
    if (!run[0])
        return false;
    json_t *j = hb_wait_run(run, NULL, RUN_TIMEOUT_MS);
    ok(j != NULL, "%s: the %s run ended (%s)", w->label, who, js(j, "status"));
    if (j && strcmp(js(j, "status"), "succeeded") != 0)
        tap_diag("%s: run %s: %s (%s)", w->label, js(j, "status"), js(j, "error"),
                 js(j, "errorCode"));
    if (j && w->run_env[0])
        is_str(js(j, "environmentId"), w->run_env, "%s: the %s agent ran in the %s environment",
               w->label, who, w->label);
    json_decref(j);
    return j != NULL;
}

static size_t parse_attacks(const char *out, attack_line *lines, size_t max)
{
    size_t n = 0;
    for (const char *p = strstr(out, "ATTACK "); p && n < max; p = strstr(p + 1, "ATTACK ")) {
        if (p != out && p[-1] != '\n')
            continue;
        attack_line *a = &lines[n];
        char status[8] = "";
        if (sscanf(p, "ATTACK %63s %7s %15s", a->name, status, a->note) >= 2) {
            a->status = strtol(status, NULL, 10);
            n++;
        }
    }
    return n;
}

static const attack_line *find_attack(const attack_line *lines, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(lines[i].name, name))
            return &lines[i];
    return NULL;
}

/* The board's view after the run, for the effect checks. */
typedef struct after {
    json_t *companies, *agents_a, *issues_a, *issues_b, *company_b, *self, *peer, *task;
    json_t *keys_self, *keys_peer, *peer_run, *b_run, *envs_a, *issue2, *hirer, *hirer_task;
} after;

static void after_load(after *a, const world *w)
{
    a->companies = board_get("/api/companies", NULL);
    a->agents_a = board_get("/api/companies/%s/agents", w->cid);
    a->issues_a = board_get("/api/companies/%s/issues", w->cid);
    a->issues_b = board_get("/api/companies/%s/issues", w->bcid);
    a->company_b = board_get("/api/companies/%s", w->bcid);
    a->self = board_get("/api/agents/%s", w->hostile);
    a->peer = board_get("/api/agents/%s", w->peer);
    a->task = board_get("/api/issues/%s", w->task);
    a->keys_self = board_get("/api/agents/%s/keys", w->hostile);
    a->keys_peer = board_get("/api/agents/%s/keys", w->peer);
    a->peer_run = board_get("/api/heartbeat-runs/%s", w->peer_run2);
    a->b_run = board_get("/api/heartbeat-runs/%s", w->b_run);
    a->envs_a = board_get("/api/companies/%s/environments", w->cid);
    a->issue2 = board_get("/api/issues/%s", w->issue2);
    a->hirer = board_get("/api/agents/%s", w->hirer);
    a->hirer_task = board_get("/api/issues/%s", w->hirer_task);
}

static void after_free(after *a)
{
    json_t **all[] = {&a->companies, &a->agents_a,  &a->issues_a, &a->issues_b,
                      &a->company_b, &a->self,      &a->peer,     &a->task,
                      &a->keys_self, &a->keys_peer, &a->peer_run, &a->b_run,
                      &a->envs_a,    &a->issue2,    &a->hirer,    &a->hirer_task};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        json_decref(*all[i]);
}

/* Whether the agent's command is now `sh -c script` (what an attack wrote).
 * The hostile agent's own command contains that text inside its script, so
 * only an exact match counts. */
static bool command_is(json_t *agent, const char *script)
{
    json_t *args = json_object_get(json_object_get(agent, "adapterConfig"), "args");
    const char *got = json_string_value(json_array_get(args, 1));
    return json_array_size(args) == 2 && got && !strcmp(got, script);
}

/* Whether the agent field the attack wrote holds the attack's value. */
static bool field_changed(json_t *agent, const char *field, const char *boss, const world *w)
{
    if (!strcmp(field, "adapterType"))
        return !strcmp(js(agent, "adapterType"), "http");
    if (!strcmp(field, "adapterConfig"))
        return command_is(agent, "echo hostile-pwned");
    if (!strcmp(field, "runtimeConfig"))
        return json_integer_value(json_object_get(
                   json_object_get(json_object_get(agent, "runtimeConfig"), "heartbeat"),
                   "intervalSec")) == 77777;
    if (!strcmp(field, "defaultEnvironmentId"))
        return !strcmp(js(agent, "defaultEnvironmentId"), w->local_env);
    if (!strcmp(field, "role"))
        return !strcmp(js(agent, "role"), "ceo");
    if (!strcmp(field, "permissions"))
        return json_object_get(json_object_get(agent, "permissions"), "hostileGranted") != NULL;
    if (!strcmp(field, "budgetMonthlyCents"))
        return json_integer_value(json_object_get(agent, "budgetMonthlyCents")) == 987654;
    if (!strcmp(field, "reportsTo"))
        return !strcmp(js(agent, "reportsTo"), boss);
    if (!strcmp(field, "status"))
        return !strcmp(js(agent, "status"), "paused");
    return false;
}

static bool runnable_child(const after *a, const char *name)
{
    json_t *c = find_by(a->agents_a, "name", name);
    const char *st = c ? js(c, "status") : "";
    return c && strcmp(st, "pending_approval") != 0 && strcmp(st, "terminated") != 0;
}

static bool started_runs(const after *a, const char *name, char *why, size_t wsize, long st)
{
    json_t *c = find_by(a->agents_a, "name", name);
    long long n = c ? run_count(js(c, "id"), " AND started_at IS NOT NULL") : 0;
    snprintf(why, wsize, "status %ld, %lld started runs of %s", st, n, name);
    return n > 0;
}

static bool spawned(const after *a, const char *name, char *why, size_t wsize, long st)
{
    json_t *c = find_by(a->agents_a, "name", name);
    snprintf(why, wsize, "status %ld, agent %s %s", st, name, c ? js(c, "status") : "absent");
    return runnable_child(a, name);
}

/* The hiring agent's attacks (name without its "hirer_" prefix). */
static bool hirer_succeeded(const char *name, long st, const after *a, const world *w, char *why,
                            size_t wsize)
{
    if (!strcmp(name, "self_defaultEnvironmentId")) {
        bool changed = !strcmp(js(a->hirer, "defaultEnvironmentId"), w->local_env);
        snprintf(why, wsize, "status %ld, default environment %s", st,
                 changed ? "moved to the host" : "kept");
        return changed;
    }
    if (!strcmp(name, "self_budgetMonthlyCents")) {
        bool changed =
            json_integer_value(json_object_get(a->hirer, "budgetMonthlyCents")) == 123457;
        snprintf(why, wsize, "status %ld, budget %s", st, changed ? "changed" : "kept");
        return changed;
    }
    if (!strcmp(name, "peer_adapterConfig")) {
        bool changed = command_is(a->peer, "echo hirer-pwned");
        snprintf(why, wsize, "status %ld, the host agent's command %s", st,
                 changed ? "rewritten" : "kept");
        return changed;
    }
    if (!strcmp(name, "issue_env_switch")) {
        json_t *ews = json_object_get(a->hirer_task, "executionWorkspaceSettings");
        bool changed = !strcmp(js(ews, "environmentId"), w->local_env);
        snprintf(why, wsize, "status %ld, issue environment %s", st,
                 changed ? "moved to the host" : "kept");
        return changed;
    }
    if (!strcmp(name, "env_create")) {
        bool exists = find_by(a->envs_a, "name", "hostile-hirer_env_create") != NULL;
        snprintf(why, wsize, "status %ld, environment %s", st, exists ? "created" : "absent");
        return exists;
    }
    /* Approving or activating its own hire shows as the hire being
     * runnable; the request's acceptance counts as well. */
    if (!strcmp(name, "spawn_process_agent"))
        return spawned(a, "hostile-hirer-spawn", why, wsize, st);
    if (!strcmp(name, "spawn_approve") || !strcmp(name, "spawn_activate"))
        return spawned(a, "hostile-hirer-spawn", why, wsize, st) || is_2xx(st);
    if (!strcmp(name, "spawn_wake"))
        return started_runs(a, "hostile-hirer-spawn", why, wsize, st);
    if (!strcmp(name, "spawn_on_host"))
        return spawned(a, "hostile-hirer-spawn_host", why, wsize, st);
    if (!strcmp(name, "spawn_active"))
        return spawned(a, "hostile-hirer-spawn_active", why, wsize, st);
    snprintf(why, wsize, "no effect check for this attack");
    return true;
}

/* Whether the attack's effect is observable; why says what was seen. */
static bool judged_succeeded(const char *name, const attack_line *l, const attack_line *lines,
                             size_t n, const after *a, const world *w, char *why, size_t wsize)
{
    long st = l->status;
    char title[96];
    snprintf(title, sizeof title, "hostile-%s", name);
    snprintf(why, wsize, "status %ld", st);
    if (!strncmp(name, "hirer_", 6))
        return hirer_succeeded(name + 6, st, a, w, why, wsize);
    if (!strncmp(name, "self_", 5) || !strncmp(name, "peer_", 5)) {
        const char *field = strchr(name, '_') + 1;
        bool self = name[0] == 's';
        if (!strcmp(name, "peer_run_cancel")) {
            /* Pausing the peer (peer_status) may cancel its run too; the
             * cancellation is this attack's only when that was refused. */
            bool cancelled = !strcmp(js(a->peer_run, "status"), "cancelled");
            const attack_line *ps = find_attack(lines, n, "peer_status");
            snprintf(why, wsize, "status %ld, peer run %s", st, js(a->peer_run, "status"));
            return is_2xx(st) || (cancelled && !(ps && is_2xx(ps->status)));
        }
        if (!strcmp(name, "peer_wakeup")) {
            long long n = run_count(w->peer, NULL);
            snprintf(why, wsize, "status %ld, peer runs %lld (2 before)", st, n);
            return is_2xx(st) || n > 2;
        }
        json_t *agent = self ? a->self : a->peer;
        bool changed = field_changed(agent, field, self ? w->peer : w->hostile, w);
        snprintf(why, wsize, "status %ld, %s %s", st, field, changed ? "changed" : "unchanged");
        /* The runtime rewrites status when a run ends, so an accepted
         * request counts even when the value did not stay. */
        if (!strcmp(field, "status"))
            return changed || is_2xx(st);
        return changed;
    }
    if (!strcmp(name, "nocred_company") || !strncmp(name, "op_", 3) ||
        !strcmp(name, "leaked_board_key") || !strcmp(name, "host_evil") ||
        !strcmp(name, "origin_evil_body") || !strcmp(name, "fetch_site_cross")) {
        if (!strcmp(name, "op_origin_evil_nobody")) {
            long long n = run_count(w->bystander_op, NULL);
            snprintf(why, wsize, "status %ld, bystander runs %lld", st, n);
            return is_2xx(st) || n > 0;
        }
        bool exists = find_by(a->companies, "name", title) != NULL;
        snprintf(why, wsize, "status %ld, company %s %s", st, title, exists ? "exists" : "absent");
        return exists;
    }
    if (!strcmp(name, "origin_evil_nobody")) {
        long long n = run_count(w->bystander, NULL);
        snprintf(why, wsize, "status %ld, bystander runs %lld", st, n);
        return is_2xx(st) || n > 0;
    }
    if (!strcmp(name, "nocred_agent")) {
        bool exists = find_by(a->agents_a, "name", title) != NULL;
        snprintf(why, wsize, "status %ld, agent %s", st, exists ? "exists" : "absent");
        return exists;
    }
    if (!strcmp(name, "nocred_plugin") || !strncmp(name, "plugin_traversal", 16) ||
        !strcmp(name, "b_env_probe") || !strcmp(name, "b_run_log"))
        return is_2xx(st);
    if (!strncmp(name, "jwt_", 4) || !strcmp(name, "host_evil_token") ||
        !strcmp(name, "origin_evil_token") || !strcmp(name, "fetch_site_token")) {
        bool exists = find_by(a->issues_a, "title", title) != NULL;
        snprintf(why, wsize, "status %ld, issue %s", st, exists ? "created" : "absent");
        return exists;
    }
    if (!strcmp(name, "issue_env_switch")) {
        json_t *ews = json_object_get(a->task, "executionWorkspaceSettings");
        bool changed = !strcmp(js(ews, "environmentId"), w->local_env);
        snprintf(why, wsize, "status %ld, environmentId %s", st, changed ? "switched" : "kept");
        return changed;
    }
    if (!strcmp(name, "issue_cwd_traversal")) {
        bool changed = json_has(json_object_get(a->issue2, "executionWorkspaceSettings"), "..");
        snprintf(why, wsize, "status %ld, cwd %s", st, changed ? "stored" : "absent");
        return changed;
    }
    if (!strcmp(name, "key_mint_self") || !strcmp(name, "key_mint_peer")) {
        bool self = !strcmp(name, "key_mint_self");
        json_t *keys = self ? a->keys_self : a->keys_peer;
        size_t before = self ? 0 : 1; /* the test gave the peer one key */
        snprintf(why, wsize, "status %ld, %zu keys (%zu before)", st, json_array_size(keys),
                 before);
        return is_2xx(st) || json_array_size(keys) > before;
    }
    if (!strcmp(name, "key_revoke_peer")) {
        json_t *k = find_by(a->keys_peer, "id", w->peer_key);
        bool revoked = !k || !json_is_null(json_object_get(k, "revokedAt"));
        snprintf(why, wsize, "status %ld, peer key %s", st, revoked ? "revoked" : "intact");
        return revoked;
    }
    if (!strcmp(name, "proc_environ") || !strcmp(name, "read_jwt_secret")) {
        snprintf(why, wsize, "%s",
                 !strcmp(l->note, "found") ? "read from inside the run" : "nothing readable");
        return !strcmp(l->note, "found");
    }
    if (!strncmp(name, "read_", 5) || !strcmp(name, "b_company_get") ||
        !strcmp(name, "b_agents_list") || !strcmp(name, "b_agent_get") ||
        !strcmp(name, "b_issues_list") || !strcmp(name, "b_issue_get") ||
        !strcmp(name, "b_envs_list") || !strcmp(name, "b_runs_list") ||
        !strcmp(name, "b_activity")) {
        snprintf(why, wsize, "status %ld, target data %s in the response", st,
                 !strcmp(l->note, "found") ? "found" : "not found");
        return !strcmp(l->note, "found");
    }
    if (!strcmp(name, "b_company_patch")) {
        bool changed = !strcmp(js(a->company_b, "name"), "hostile-renamed");
        snprintf(why, wsize, "status %ld, company B %s", st, changed ? "renamed" : "unchanged");
        return changed;
    }
    if (!strcmp(name, "b_issue_create")) {
        bool exists = find_by(a->issues_b, "title", title) != NULL;
        snprintf(why, wsize, "status %ld, issue in B %s", st, exists ? "created" : "absent");
        return exists;
    }
    if (!strcmp(name, "b_comment")) {
        json_t *cm = board_get("/api/issues/%s/comments", w->b_issue);
        bool has = json_has(cm, "hostile-b_comment");
        json_decref(cm);
        snprintf(why, wsize, "status %ld, comment %s", st, has ? "posted" : "absent");
        return has;
    }
    if (!strcmp(name, "b_agent_delete") || !strcmp(name, "peer_delete") ||
        !strcmp(name, "env_delete") || !strcmp(name, "c_company_delete")) {
        const char *fmt = !strcmp(name, "env_delete")         ? "/api/environments/%s"
                          : !strcmp(name, "c_company_delete") ? "/api/companies/%s"
                                                              : "/api/agents/%s";
        const char *id = !strcmp(name, "env_delete")         ? w->doomed_env
                         : !strcmp(name, "c_company_delete") ? w->ccid
                         : !strcmp(name, "peer_delete")      ? w->doomed
                                                             : w->b_doomed;
        pc_http_res r = req("GET", NULL, fmt, id);
        bool gone = r.status == 404 || !strcmp(pc_res_str(&r, "status"), "terminated");
        snprintf(why, wsize, "status %ld, target %s (%ld)", st, gone ? "gone" : "intact", r.status);
        pc_http_res_free(&r);
        return gone;
    }
    if (!strcmp(name, "assign_peer")) {
        json_t *i = find_by(a->issues_a, "title", "hostile-assign_peer");
        bool assigned = i && !strcmp(js(i, "assigneeAgentId"), w->peer);
        snprintf(why, wsize, "status %ld, issue %s", st,
                 assigned ? "assigned to the peer"
                 : i      ? "created unassigned"
                          : "absent");
        return assigned;
    }
    if (!strcmp(name, "reassign_peer")) {
        bool assigned = !strcmp(js(a->issue2, "assigneeAgentId"), w->peer);
        snprintf(why, wsize, "status %ld, issue %s", st,
                 assigned ? "assigned to the peer" : "not the peer's");
        return assigned;
    }
    if (!strcmp(name, "b_run_cancel")) {
        snprintf(why, wsize, "status %ld, B run %s", st, js(a->b_run, "status"));
        return is_2xx(st) || !strcmp(js(a->b_run, "status"), "cancelled");
    }
    if (!strcmp(name, "spawn_process_agent"))
        return spawned(a, "hostile-spawn", why, wsize, st);
    if (!strcmp(name, "spawn_cwd_traversal"))
        return spawned(a, "hostile-spawn_cwd", why, wsize, st);
    if (!strcmp(name, "spawn_wake"))
        return started_runs(a, "hostile-spawn", why, wsize, st);
    if (!strcmp(name, "env_traversal")) {
        bool exists = find_by(a->envs_a, "name", title) != NULL;
        snprintf(why, wsize, "status %ld, environment %s", st, exists ? "created" : "absent");
        return exists;
    }
    snprintf(why, wsize, "no effect check for this attack");
    return true;
}

/* Why the attack tests no boundary in this kind of environment, or NULL.
 * In local_trusted mode the operator listener makes every caller without
 * credentials the board, and code that shares the operator's host (a local
 * run, the fake provider's commands, this test's SSH host on loopback) can
 * reach it, read other processes' environments and the data dir: no API
 * rule can contain that. Such attacks still run and their effect is
 * printed, but only a sandbox that isolates (bwrap) is asked to refuse. */
static const char *not_a_boundary(const char *name, enum kind k)
{
    if (!strcmp(name, "op_nocred_company") && (k == K_LOCAL || k == K_SSH))
        return "the run shares the operator's host; local_trusted makes every loopback caller "
               "the board";
    if ((!strcmp(name, "proc_environ") || !strcmp(name, "read_jwt_secret")) && k != K_BWRAP)
        return "a run on the host (or the fake provider) shares its processes and files";
    return NULL;
}

/* Judges the attacks of one agent's run (the hiring agent's when hirer). */
static void judge(world *w, const char *out, bool hirer)
{
    const char *who = hirer ? "hiring" : "hostile";
    attack_line lines[128];
    size_t n = parse_attacks(out, lines, 128);
    const attack_line *c = find_attack(lines, n, "control");
    after a;
    after_load(&a, w);
    bool control_issue =
        find_by(a.issues_a, "title", hirer ? "hostile-control-hirer" : "hostile-control-worker") !=
        NULL;
    ok(c && is_2xx(c->status) && control_issue,
       "%s: control: the %s run's own token creates an issue during the run (%ld)", w->label, who,
       c ? c->status : -1L);
    char want[200];
    snprintf(want, sizeof want, "inputs peer %s company-b %s", w->peer, w->bcid);
    ok(strstr(out, want) != NULL, "%s: the test's inputs reached the %s script", w->label, who);
    ok(strstr(out, "HOSTILE done") != NULL, "%s: the %s script went through every attack", w->label,
       who);

    const char *const *lists[] = {hirer ? hirer_attacks : common_attacks,
                                  hirer                                    ? NULL
                                  : w->kind == K_LOCAL || w->kind == K_SSH ? operator_attacks
                                  : w->kind == K_BWRAP                     ? guess_attacks
                                                                           : NULL};
    for (size_t li = 0; li < 2; li++) {
        for (size_t i = 0; lists[li] && lists[li][i]; i++) {
            const char *name = lists[li][i];
            const attack_line *l = find_attack(lines, n, name);
            char why[200];
            bool hit;
            if (!l) {
                hit = true;
                snprintf(why, sizeof why, "not tried: the script printed no result");
            } else {
                hit = judged_succeeded(name, l, lines, n, &a, w, why, sizeof why);
            }
            const char *why_not = not_a_boundary(name, w->kind);
            if (why_not) {
                tap_skip(why_not, "attack %s in %s (informational)", name, w->label);
                tap_diag("  %s: %s", hit ? "not refused" : "refused", why);
                if (hit) {
                    by_design_total++;
                    size_t len = strlen(by_design_names);
                    snprintf(by_design_names + len, sizeof by_design_names - len, " %s/%s", name,
                             w->label);
                }
                continue;
            }
            count_attack(name, hit);
            if (!ok(!hit, "attack %s in %s refused", name, w->label))
                tap_diag("  %s", why);
        }
    }

    /* The token printed during the run, used after it. */
    const char *prt = hirer ? "hirer_post_run_token" : "post_run_token";
    char tok[4096];
    bool have = unreverse_token(out, tok, sizeof tok);
    bool hit = false;
    if (have) {
        pc_http_res r = areq(tok, "GET", NULL, "/api/agents/me");
        long me = r.status;
        pc_http_res_free(&r);
        r = areq(tok, "POST", "{\"title\":\"hostile-post_run_token\"}", "/api/companies/%s/issues",
                 w->cid);
        long mk = r.status;
        pc_http_res_free(&r);
        hit = is_2xx(me) || is_2xx(mk);
        if (!ok(!hit, "attack %s in %s refused", prt, w->label))
            tap_diag("  GET /api/agents/me %ld, POST issue %ld after the run ended", me, mk);
    } else {
        hit = true;
        ok(0, "attack %s in %s refused", prt, w->label);
        tap_diag("  not tried: no REVTOKEN line in the run's output");
    }
    count_attack(prt, hit);
    char *statuses = NULL;
    size_t slen = 0;
    FILE *sf = open_memstream(&statuses, &slen);
    for (size_t i = 0; sf && i < n; i++)
        fprintf(sf, " %s=%ld", lines[i].name, lines[i].status);
    if (sf)
        fclose(sf);
    tap_diag("%s: %s agent's statuses:%s", w->label, who, statuses ? statuses : "");
    free(statuses);
    after_free(&a);
}

/* The board cancels what still runs (the peer's and B's long runs, and any
 * run an attack queued), so stopping the daemon waits for nothing. */
static void cancel_live_runs(const char *cid)
{
    if (!cid[0])
        return;
    json_t *runs = board_get("/api/companies/%s/heartbeat-runs", cid);
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r)
    {
        if (final_status(js(r, "status")))
            continue;
        pc_http_res c = req("POST", NULL, "/api/heartbeat-runs/%s/cancel", js(r, "id"));
        pc_http_res_free(&c);
        json_decref(hb_wait_run(js(r, "id"), NULL, 60000));
    }
    json_decref(runs);
}

static void run_kind(enum kind k)
{
    world *w = calloc(1, sizeof *w);
    w->kind = k;
    w->label = kind_names[k];
    char *tmp = pc_test_tmpdir("hostile");
    snprintf(w->tmp, sizeof w->tmp, "%s", tmp);
    free(tmp);
    /* The plugin an attack tries to install: one this daemon does not have. */
    snprintf(w->plugin_path, sizeof w->plugin_path, "%s/plugins/%s", pc_test_root(),
             k == K_FAKE ? "bwrap-sandbox" : "fake-sandbox");
    if (k == K_SSH) {
        sshd_up = pc_test_sshd_start(&sshd, w->tmp) == 0;
        ok(sshd_up, "%s: sshd starts", w->label);
        if (!sshd_up) {
            pc_test_sshd_dump_log(&sshd);
            goto out;
        }
    }
    /* A variable only the daemon has, for the scan of /proc from inside. */
    const char *denv[] = {"PC_TEST_CANARY=" DAEMON_CANARY,
                          /* Room for the long runs and whatever the attacks start. */
                          "PAPERCLIP_MAX_CONCURRENT_RUNS=16", NULL};
    pc_daemon_opts o = {.env = denv};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "%s: daemon starts", w->label);
        goto out;
    }
    bool ready = setup_world(w);
    ok(ready, "%s: the cast is set up", w->label);
    env_tried = env_succeeded = 0;
    env_names[0] = '\0';
    if (ready && setup_kind(w)) {
        controls(w);
        board_key(w);
        /* A hiring agent on the host may hire runnable agents: the host is
         * not a confinement, so it attacks only from the other kinds. */
        for (int h = 0; h < (k == K_LOCAL ? 1 : 2); h++) {
            bool ran = hostile_run(w, h == 1);
            char *out = ran ? run_stdout(h ? w->hirer_run : w->run) : strdup("");
            if (!ran || !strstr(out, "HOSTILE done")) {
                tap_diag("%s: output: %.3000s", w->label, out);
                pc_daemon_dump_log(&d);
            }
            judge(w, out, h == 1);
            free(out);
        }
        tap_diag("%s: attacks tried %d, succeeded %d%s%s", w->label, env_tried, env_succeeded,
                 env_succeeded ? ":" : "", env_names);
        tried_total += env_tried;
        succeeded_total += env_succeeded;
    } else {
        pc_daemon_dump_log(&d);
    }
    cancel_live_runs(w->cid);
    cancel_live_runs(w->bcid);
    is_int(pc_daemon_stop(&d), 0, "%s: daemon stops cleanly", w->label);
out:
    if (k == K_SSH && sshd_up)
        pc_test_sshd_stop(&sshd);
    pc_test_rmrf(w->tmp);
    free(w);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        ok(0, "libsodium initialises");
        return tap_done();
    }
    run_kind(K_LOCAL);
    run_kind(K_FAKE);
    if (bwrap_usable())
        run_kind(K_BWRAP);
    else
        tap_skip("bwrap is missing or the kernel refuses user namespaces",
                 "hostile agent in a bwrap api-only sandbox");
    if (pc_test_sshd_available())
        run_kind(K_SSH);
    else
        tap_skip("sshd/ssh/ssh-keygen not installed", "hostile agent over SSH");
    tap_diag("attacks tried %d, succeeded %d", tried_total, succeeded_total);
    if (by_design_total)
        tap_diag("not refused by design (code that shares the operator's host):%s",
                 by_design_names);
    return tap_done();
}
