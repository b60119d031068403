/*
 * Plugin env values are sealed at rest. The bwrap plugin is installed with
 * two canaries in its env: PAPERCLIP_PLUGIN_DATA_DIR (a path containing a
 * canary; the worker creating <dir>/leases proves it received the value)
 * and a token the worker never prints. Neither appears in the SQLite
 * database, its WAL or shared memory, nor in any API answer; the token is
 * in no file of the data dir at all. A test plugin (tests/plugins/config-echo)
 * whose instanceConfigSchema marks two fields as secrets shows the same for
 * config: those fields are sealed, a plain field is not, and the worker
 * receives all of them in clear. After a restart the worker receives
 * the value again. A row written in plaintext (as an older version stored
 * it) is sealed when the daemon starts, and the plaintext is gone from the
 * database files.
 */
#include <sys/stat.h>

#include "heartbeat_common.h"

static bool file_has(const char *path, const char *needle)
{
    /* The files are binary: search every byte, not up to the first NUL. */
    FILE *f = fopen(path, "rb");
    bool hit = false;
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc(n > 0 ? (size_t)n : 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
            hit = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
        free(buf);
        fclose(f);
    }
    return hit;
}

static bool db_has(const char *needle)
{
    static const char *const files[] = {"paperclip.db", "paperclip.db-wal", "paperclip.db-shm"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", d.data_dir, files[i]);
        if (file_has(p, needle)) {
            tap_diag("found in %s", files[i]);
            return true;
        }
    }
    return false;
}

static bool tree_has(const char *dir, const char *needle)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "grep -raq -- '%s' '%s'", needle, dir);
    return pc_test_sh(cmd) == 0;
}

static bool wait_dir(const char *path)
{
    struct stat st;
    for (int i = 0; i < 1500; i++) { /* 30 s */
        if (stat(path, &st) == 0)
            return true;
        pc_test_sleep_ms(20);
    }
    return false;
}

int main(void)
{
    char canary[64], token[64], legacy[64];
    snprintf(canary, sizeof canary, "sealcanary%ld", (long)getpid());
    snprintf(token, sizeof token, "sealtoken%ldx", (long)getpid());
    snprintf(legacy, sizeof legacy, "legacyplain%ldy", (long)getpid());
    char *tmp = pc_test_tmpdir("sealed");
    char plugin_data[600], leases[700];
    snprintf(plugin_data, sizeof plugin_data, "%s/data-%s", tmp, canary);
    snprintf(leases, sizeof leases, "%s/leases", plugin_data);

    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    d.keep_dir = true;
    char data_dir[512];
    snprintf(data_dir, sizeof data_dir, "%s", d.data_dir);

    char body[2000];
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/plugins/bwrap-sandbox\",\"isLocalPath\":true,"
             "\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s\",\"PC_TEST_TOKEN\":\"%s\"}}",
             pc_test_root(), plugin_data, token);
    pc_http_res r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "plugin installed (%ld)", r.status);
    ok(!strstr(r.body ? r.body : "", canary) && !strstr(r.body ? r.body : "", token),
       "the install answer carries no env value");
    char id[64];
    snprintf(id, sizeof id, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    ok(wait_dir(leases), "the worker received the env value (its data dir exists)");

    r = req("GET", NULL, "/api/plugins/%s", id);
    ok(r.status == 200 && !strstr(r.body, canary) && !strstr(r.body, token),
       "the plugin record carries no env value");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/plugins");
    ok(r.status == 200 && !strstr(r.body, canary) && !strstr(r.body, token),
       "the plugin list carries no env value");
    pc_http_res_free(&r);

    ok(pc_test_db_count(&d, "SELECT count(*) FROM plugins WHERE env LIKE '%pcsealed:v1:%'") == 1,
       "the stored env is sealed");
    ok(pc_test_db_count(
           &d, "SELECT count(*) FROM plugins WHERE env LIKE '%PAPERCLIP_PLUGIN_DATA_DIR%'") == 1,
       "under its name");
    ok(!db_has(canary), "the env value is not in the database, WAL or shm");
    ok(!db_has(token), "nor is the token");
    ok(!tree_has(data_dir, token), "the token is in no file of the data dir");

    /* Secret config fields, by the manifest's instanceConfigSchema. */
    char echo[700], tok_a[64], tok_b[64], tok_c[64], region[64];
    snprintf(echo, sizeof echo, "%s/echo.json", tmp);
    snprintf(tok_a, sizeof tok_a, "cfgtoken%lda", (long)getpid());
    snprintf(tok_b, sizeof tok_b, "cfgpass%ldb", (long)getpid());
    snprintf(tok_c, sizeof tok_c, "envsecret%ldc", (long)getpid());
    snprintf(region, sizeof region, "plainregion%ld", (long)getpid());
    snprintf(body, sizeof body,
             "{\"packageName\":\"%s/tests/plugins/config-echo\",\"isLocalPath\":true,"
             "\"config\":{\"region\":\"%s\",\"apiToken\":\"%s\",\"password\":\"%s\"},"
             "\"env\":{\"PAPERCLIP_ECHO_FILE\":\"%s\",\"ECHO_SECRET\":\"%s\"}}",
             pc_test_root(), region, tok_a, tok_b, echo, tok_c);
    r = req("POST", body, "/api/plugins/install");
    ok(r.status == 200 || r.status == 201, "config-echo plugin installed (%ld)", r.status);
    if (r.status != 200 && r.status != 201)
        tap_diag("install: %s", r.body);
    pc_http_res_free(&r);
    ok(wait_dir(echo), "the config-echo worker started");
    char *got = pc_test_read_file(echo, 1 << 20);
    ok(got && strstr(got, tok_a) && strstr(got, tok_b) && strstr(got, tok_c) &&
           strstr(got, region),
       "the worker receives the secret config fields and env in clear");
    free(got);
    ok(!db_has(tok_a) && !db_has(tok_b), "secret config fields are not in the database files");
    ok(!db_has(tok_c), "nor is its env value");
    ok(db_has(region), "a config field not marked secret is stored as is");

    /* Restart: the value is opened again for the new worker. */
    pc_daemon_stop(&d);
    pc_test_rmrf(plugin_data);
    pc_daemon_opts o = {.data_dir = data_dir};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon restarts");
        pc_test_rmrf(tmp);
        return tap_done();
    }
    d.keep_dir = true;
    ok(wait_dir(leases), "after a restart the worker receives the value again");
    ok(!db_has(canary) && !db_has(token), "still nothing in the database files");

    /* A plaintext row, as an older version wrote it: sealed at start-up. */
    pc_daemon_stop(&d);
    pc_test_rmrf(plugin_data);
    char sql[1600];
    snprintf(sql, sizeof sql,
             "UPDATE plugins SET env = '{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s\","
             "\"PC_TEST_TOKEN\":\"%s\"}' WHERE plugin_key = 'paperclip.bwrap-sandbox'",
             plugin_data, legacy);
    ok(pc_test_db_exec(&d, sql) == 0, "a plaintext env is written behind the daemon's back");
    ok(db_has(legacy), "the plaintext is in the database file (so the next check can fail)");
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon restarts over the plaintext row");
        pc_test_rmrf(tmp);
        return tap_done();
    }
    ok(wait_dir(leases), "the worker gets the migrated value");
    ok(pc_test_db_count(&d, "SELECT count(*) FROM plugins WHERE env LIKE '%pcsealed:v1:%' AND "
                            "env NOT LIKE '%legacyplain%' AND "
                            "plugin_key = 'paperclip.bwrap-sandbox'") == 1,
       "the row is sealed at start-up");
    ok(!db_has(legacy), "the plaintext is gone from the database files");

    d.keep_dir = false;
    pc_daemon_stop(&d);
    pc_test_rmrf(tmp);
    free(tmp);
    return tap_done();
}
