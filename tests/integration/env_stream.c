/*
 * Streamed execute output: a sandboxed agent's lines reach the live run log
 * (the SSE follow stream) while the command still runs, and the final log
 * holds each line exactly once.
 *
 * The agent prints a line, then waits until the test, having seen that line
 * on the follow stream, renames the agent's issue (the agent polls its issue
 * through the API it is given, so the same marker works on the host and
 * inside a sandbox), then prints its token in two writes (redaction must
 * catch a secret split across chunks) and a last line. Done for the C fake
 * provider and, where the kernel allows, the bwrap provider. A third run
 * floods output far beyond the run log cap: the log stays bounded.
 * (A JS provider that never streams is covered by tests/node/env_js_sandbox.)
 */
#include <curl/curl.h>
#include <pthread.h>

#include "heartbeat_common.h"

#define LOG_CAP 65536

/* The agent. Markers are computed, so that the script text (which a run
 * log may quote) never contains them. */
static const char agent_script[] =
    "echo \"ALPHA-$((40+2)) first line\"\n"
    "i=0\n"
    "until curl -sS -H \"Authorization: Bearer $PAPERCLIP_API_KEY\" "
    "\"$PAPERCLIP_API_URL/api/issues/$PAPERCLIP_TASK_ID\" | grep -q go-on-now; do\n"
    "  i=$((i+1)); [ $i -lt 1200 ] || { echo 'marker never came'; exit 3; }; sleep 0.05\n"
    "done\n"
    "half=$(printf %s \"$PAPERCLIP_API_KEY\" | cut -c1-20)\n"
    "rest=$(printf %s \"$PAPERCLIP_API_KEY\" | cut -c21-)\n"
    "printf 'token %s' \"$half\"; printf '%s\\n' \"$rest\"\n"
    "echo \"BETA-$((40+2)) after the marker\" >&2\n"
    "echo \"GAMMA-$((40+2)) last line\"\n";

/* A follow stream read on its own thread into a bounded buffer. */
typedef struct follower {
    char url[512];
    pthread_mutex_t mu;
    char *buf;
    size_t len;
    bool done;
    pthread_t th;
} follower;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    follower *f = ud;
    size_t add = sz * n;
    pthread_mutex_lock(&f->mu);
    if (f->len + add < (4u << 20)) {
        f->buf = realloc(f->buf, f->len + add + 1);
        memcpy(f->buf + f->len, p, add);
        f->len += add;
        f->buf[f->len] = '\0';
    }
    pthread_mutex_unlock(&f->mu);
    return add;
}

static void *follow_main(void *p)
{
    follower *f = p;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, f->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    pthread_mutex_lock(&f->mu);
    f->done = true;
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

static void follow_start(follower *f, const char *run)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    snprintf(f->url, sizeof f->url, "%s/api/heartbeat-runs/%s/log?follow=1", d.url, run);
    pthread_create(&f->th, NULL, follow_main, f);
}

static bool follow_has(follower *f, const char *needle)
{
    pthread_mutex_lock(&f->mu);
    bool has = f->buf && strstr(f->buf, needle);
    pthread_mutex_unlock(&f->mu);
    return has;
}

static bool follow_wait(follower *f, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if (follow_has(f, needle))
            return true;
        pc_test_sleep_ms(20);
    }
    return false;
}

static void follow_finish(follower *f)
{
    pthread_join(f->th, NULL);
    pthread_mutex_destroy(&f->mu);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static char *cid;

static char *make_env(const char *name, const char *cfg)
{
    char body[600];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"driver\":\"sandbox\",\"config\":%s}", name,
             cfg);
    pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "%s: environment created", name);
    if (r.status != 201)
        tap_diag("environment: %s", r.body);
    char *id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    return id;
}

static char *make_agent(const char *name, const char *script, const char *env_id)
{
    char *enc = pc_test_json_quote(script);
    char *body = NULL;
    if (asprintf(&body,
                 "{\"name\":\"%s\",\"adapterType\":\"process\","
                 "\"adapterConfig\":{\"command\":\"sh\",\"args\":[\"-c\",%s]},"
                 "\"defaultEnvironmentId\":\"%s\"}",
                 name, enc, env_id) < 0)
        body = NULL;
    pc_http_res r = req("POST", body ? body : "{}", "/api/companies/%s/agents", cid);
    is_int(r.status, 201, "%s: agent created", name);
    char *id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    free(body);
    free(enc);
    return id;
}

/* The live-streaming scenario in one environment. */
static void live(const char *label, const char *env_id)
{
    char *agent = make_agent(label, agent_script, env_id);
    char *issue = hb_issue(cid, "stream job", agent, NULL);
    char run[64];
    hb_first_run(issue, run, sizeof run);
    ok(run[0] != '\0', "%s: the assignment started a run", label);
    follower f;
    follow_start(&f, run);

    ok(follow_wait(&f, "ALPHA-42 first line", 60000),
       "%s: the first line reached the follow stream while the command runs", label);
    ok(!follow_has(&f, "GAMMA-42"), "%s: the command is still waiting for the marker", label);
    pc_http_res r = req("GET", NULL, "/api/heartbeat-runs/%s", run);
    is_str(pc_res_str(&r, "status"), "running", "%s: the run is still running", label);
    pc_http_res_free(&r);

    r = req("PATCH", "{\"title\":\"stream job go-on-now\"}", "/api/issues/%s", issue);
    is_int(r.status, 200, "%s: marker set", label);
    pc_http_res_free(&r);

    json_t *j = hb_wait_run(run, NULL, 60000);
    is_str(js(j, "status"), "succeeded", "%s: run succeeded", label);
    if (strcmp(js(j, "status"), "succeeded") != 0)
        tap_diag("%s: error %s (%s)", label, js(j, "error"), js(j, "errorCode"));
    json_decref(j);
    follow_finish(&f);
    ok(f.buf && strstr(f.buf, "event: end"), "%s: the follow stream ended with the run", label);
    is_int(count(f.buf, "GAMMA-42 last line"), 1, "%s: the stream saw the last line once", label);

    char *log = hb_log(run);
    is_int(count(log, "ALPHA-42 first line"), 1, "%s: first line once in the final log", label);
    is_int(count(log, "BETA-42 after the marker"), 1, "%s: stderr line once", label);
    is_int(count(log, "GAMMA-42 last line"), 1, "%s: last line once", label);
    ok(strstr(log, "token ***REDACTED***") != NULL,
       "%s: the token written in two pieces is redacted", label);
    ok(strstr(log, "marker never came") == NULL, "%s: the agent saw the marker", label);
    is_int(count(f.buf, "token ***REDACTED***"), 1, "%s: the stream shows it redacted", label);
    if (!strstr(log, "GAMMA-42"))
        tap_diag("log: %.3000s", log);
    free(log);
    free(f.buf);
    free(agent), free(issue);
}

/* What the bwrap provider's environmentProbe runs. */
static bool bwrap_usable(void)
{
    return pc_test_sh("command -v bwrap >/dev/null 2>&1 && "
                      "bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr "
                      "--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
                      "--proc /proc --dev /dev -- /usr/bin/true >/dev/null 2>&1") == 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    char *tmp = pc_test_tmpdir("envstream");
    char cap_env[64];
    snprintf(cap_env, sizeof cap_env, "PAPERCLIP_RUN_LOG_MAX_BYTES=%d", LOG_CAP);
    const char *env[] = {cap_env, NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = hb_company("Stream Co");

    char body[2000];
    snprintf(body, sizeof body, "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "fake sandbox plugin installed (%ld)", r.status);
    pc_http_res_free(&r);
    char *fake = make_env("Fake box", "{\"provider\":\"fake-plugin\",\"image\":\"fake:test\"}");
    live("fake", fake);

    /* A flood: 2 MB of output, streamed in many notifications, against a
     * 64 KiB run log. */
    char *flood = make_agent("flooder",
                             "yes 'flood flood flood flood flood flood' | head -c 2000000; "
                             "echo; echo \"END-$((40+2))\"",
                             fake);
    char *run = hb_wake(flood, NULL);
    json_t *j = hb_wait_run(run, NULL, 60000);
    is_str(js(j, "status"), "succeeded", "flood: run succeeded");
    ok(json_integer_value(json_object_get(j, "logBytes")) < 4 * LOG_CAP,
       "flood: the log file stayed bounded (%lld bytes)",
       (long long)json_integer_value(json_object_get(j, "logBytes")));
    json_decref(j);
    char *log = hb_log(run);
    ok(strstr(log, "run log truncated") != NULL, "flood: the log says it was truncated");
    ok(strlen(log) < 4 * LOG_CAP, "flood: the log content is bounded (%zu bytes)", strlen(log));
    free(log);
    r = req("GET", NULL, "/api/health");
    is_int(r.status, 200, "the daemon is fine after the flood");
    pc_http_res_free(&r);
    free(run), free(flood);

    if (!bwrap_usable()) {
        tap_skip("bwrap is missing or the kernel refuses user namespaces", "bwrap streaming");
    } else {
        snprintf(body, sizeof body,
                 "{\"packageName\":\"%s/plugins/bwrap-sandbox\",\"isLocalPath\":true,"
                 "\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s/plugin-data\"}}",
                 pc_test_root(), tmp);
        r = req("POST", body, "/api/plugins/install");
        ok(r.status == 200 || r.status == 201, "bwrap plugin installed (%ld)", r.status);
        pc_http_res_free(&r);
        char *bw = make_env("Bwrap box", "{\"provider\":\"bwrap\",\"network\":\"api-only\"}");
        live("bwrap", bw);
        free(bw);
    }

    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    free(fake), free(cid);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    pc_test_rmrf(tmp);
    free(tmp);
    curl_global_cleanup();
    return tap_done();
}
