/*
 * The SSH driver against a real sshd that this test starts on a loopback
 * port, with generated ed25519 host and user keys: probe ok; wrong key ->
 * ok:false; unknown host key under strict checking -> ok:false; no
 * checking -> ok; commands run remotely with only the given environment,
 * stdin, exit codes and the realized remote cwd; the private key never
 * reaches the daemon log and no key file outlives its command.
 *
 * Skips (as a whole) when sshd or ssh-keygen is missing.
 *
 * `env_ssh --bench N` prints the median latency of N probes of an SSH
 * environment against the same loopback sshd (HTTP round trip included),
 * a row of the table bench/env.bench.sh prints; it prints nothing when sshd
 * is not installed.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/sshd.h"
#include "env_common.h"

static const char *const hook_env[] = {"PAPERCLIP_ENABLE_TEST_HOOKS=1", NULL};
static char *cid, *tmp;
static pc_test_sshd sshd;

static char *ssh_config(const char *key_file, bool with_known, bool strict)
{
    char *key = pc_test_sshd_file_json(&sshd, key_file);
    char *kh = with_known ? pc_test_sshd_known_hosts_json(&sshd) : strdup("null");
    char *cfg = NULL;
    if (asprintf(&cfg,
                 "{\"host\":\"127.0.0.1\",\"port\":%d,\"username\":\"root\","
                 "\"remoteWorkspacePath\":\"%s/remote work\",\"privateKey\":%s,"
                 "\"knownHosts\":%s,\"strictHostKeyChecking\":%s}",
                 sshd.port, tmp, key, kh, strict ? "true" : "false") < 0)
        cfg = NULL;
    free(key);
    free(kh);
    return cfg;
}

static char *create_env(const char *name, char *cfg)
{
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"%s\",\"driver\":\"ssh\",\"config\":%s}", name, cfg) < 0)
        return strdup("");
    pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
    if (r.status != 201)
        tap_diag("create %s: %ld %s", name, r.status, r.body);
    char *id = res_dup(&r, "id");
    pc_http_res_free(&r);
    free(body);
    free(cfg);
    return id;
}

static json_t *probe(const char *id)
{
    pc_http_res r = req("POST", "{}", "/api/environments/%s/probe", id);
    json_t *j = r.json ? json_incref(r.json) : json_object();
    if (!json_is_true(json_object_get(j, "ok")))
        tap_diag("probe: %s", r.body);
    pc_http_res_free(&r);
    return j;
}

static json_t *exec(const char *lid, const char *body)
{
    pc_http_res r = req("POST", body, "/api/environment-leases/%s/test-execute", lid);
    if (r.status != 200)
        tap_diag("execute: %ld %s", r.status, r.body);
    json_t *j = r.json ? json_incref(r.json) : json_object();
    pc_http_res_free(&r);
    return j;
}

static int count_entries(const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dp);
    return n;
}

/* `env_ssh --bench N`: see the header comment. */
static int bench(int n)
{
    if (!pc_test_sshd_available()) {
        fprintf(stderr, "env_ssh --bench: sshd/ssh/ssh-keygen not installed, no SSH row\n");
        return 0;
    }
    tmp = pc_test_tmpdir("ssh-bench");
    pc_daemon_opts o = {.env = hook_env};
    int rc = 1;
    if (pc_test_sshd_start(&sshd, tmp) < 0 || pc_daemon_start(&d, &o) < 0) {
        fprintf(stderr, "env_ssh --bench: sshd or the daemon did not start\n");
        pc_test_sshd_stop(&sshd);
        pc_test_rmrf(tmp);
        free(tmp);
        return 1;
    }
    cid = make_company("SSH Bench Co");
    char *env = create_env("Bench", ssh_config("user_key", true, true)), path[256];
    json_t *p = probe(env);
    if (json_is_true(json_object_get(p, "ok"))) {
        snprintf(path, sizeof path, "/api/environments/%s/probe", env);
        bench_row("env probe, ssh to loopback sshd (median)", median_ms(n, "POST", path, "{}"));
        rc = 0;
    } else {
        fprintf(stderr, "env_ssh --bench: the SSH probe fails, no SSH row\n");
    }
    json_decref(p);
    pc_daemon_stop(&d);
    pc_test_sshd_stop(&sshd);
    pc_test_rmrf(tmp);
    free(env), free(cid), free(tmp);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc > 2 && !strcmp(argv[1], "--bench"))
        return bench(atoi(argv[2]) > 0 ? atoi(argv[2]) : 100);
    if (!pc_test_sshd_available()) {
        tap_skip("sshd/ssh/ssh-keygen not installed", "ssh driver tests");
        return tap_done();
    }
    tmp = pc_test_tmpdir("ssh");
    if (pc_test_sshd_start(&sshd, tmp) < 0) {
        ok(0, "sshd starts on a loopback port");
        pc_test_sshd_dump_log(&sshd);
        pc_test_sshd_stop(&sshd);
        return tap_done();
    }
    pc_daemon_opts o = {.env = hook_env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("SSH Co");

    char *good = create_env("Good", ssh_config("user_key", true, true));
    json_t *p = probe(good);
    ok(json_is_true(json_object_get(p, "ok")), "probe: ok with the right key and known host");
    is_str(json_string_value(json_object_get(p, "driver")), "ssh", "probe: driver ssh");
    json_decref(p);
    char remote[700];
    snprintf(remote, sizeof remote, "%s/remote work", tmp);
    struct stat sb;
    ok(stat(remote, &sb) == 0 && S_ISDIR(sb.st_mode), "probe: remote workspace created");

    char *wrong = create_env("Wrong key", ssh_config("wrong_key", true, true));
    p = probe(wrong);
    ok(json_is_false(json_object_get(p, "ok")), "probe: wrong key -> ok:false");
    ok(strstr(json_string_value(json_object_get(p, "summary")) ?: "", "ermission denied") != NULL,
       "probe: wrong key reason names the failure");
    json_decref(p);

    char *unknown = create_env("Unknown host", ssh_config("user_key", false, true));
    p = probe(unknown);
    ok(json_is_false(json_object_get(p, "ok")), "probe: unknown host with strict checking -> ok:false");
    ok(strstr(json_string_value(json_object_get(p, "summary")) ?: "", "ost key") != NULL,
       "probe: reason names the host key");
    json_decref(p);

    char *lax = create_env("No checking", ssh_config("user_key", false, false));
    p = probe(lax);
    ok(json_is_true(json_object_get(p, "ok")), "probe: strictHostKeyChecking false -> ok");
    json_decref(p);

    /* probe-config: the key goes to ssh for this one probe, no secret stays. */
    long long secrets = db_count("SELECT COUNT(*) FROM company_secrets");
    char *cfg = ssh_config("user_key", true, true);
    char *body = NULL;
    if (asprintf(&body, "{\"driver\":\"ssh\",\"config\":%s}", cfg) > 0) {
        pc_http_res r = req("POST", body, "/api/companies/%s/environments/probe-config", cid);
        ok(r.status == 200 && json_is_true(json_object_get(r.json, "ok")), "probe-config: ok");
        pc_http_res_free(&r);
    }
    free(body);
    free(cfg);
    is_int(db_count("SELECT COUNT(*) FROM company_secrets"), secrets, "probe-config: no secret created");

    /* A lease: realize creates the remote cwd; commands see only their env. */
    pc_http_res r = req("POST", "{\"runId\":\"run-ssh\"}", "/api/environments/%s/test-lease", good);
    is_int(r.status, 200, "lease: acquire + realize");
    const char *lid = json_string_value(json_object_get(json_object_get(r.json, "lease"), "id"));
    char *lease_id = strdup(lid ? lid : "");
    char want_plid[800];
    snprintf(want_plid, sizeof want_plid, "ssh://root@127.0.0.1:%d%s", sshd.port, remote);
    is_str(json_string_value(json_object_get(json_object_get(r.json, "lease"), "providerLeaseId")),
           want_plid, "lease: providerLeaseId ssh://user@host:port/path");
    is_str(pc_res_str(&r, "cwd"), remote, "lease: cwd is the remote workspace");
    pc_http_res_free(&r);

    json_t *x = exec(lease_id, "{\"command\":\"sh\",\"args\":[\"-c\",\"echo \\\"$FOO\\\"; pwd; echo ${HOME:-nohome}; exit 7\"],"
                               "\"env\":{\"FOO\":\"it's a \\\"quoted\\\" $value\"}}");
    char want[1200];
    snprintf(want, sizeof want, "it's a \"quoted\" $value\n%s\nnohome\n", remote);
    is_str(json_string_value(json_object_get(x, "stdout")), want,
           "execute: stdout, quoting, remote cwd, env -i");
    is_int(json_integer_value(json_object_get(x, "exitCode")), 7, "execute: exit code");
    json_decref(x);
    x = exec(lease_id, "{\"command\":\"cat\",\"stdin\":\"over the wire\\n\"}");
    is_str(json_string_value(json_object_get(x, "stdout")), "over the wire\n", "execute: stdin");
    json_decref(x);
    x = exec(lease_id, "{\"command\":\"sleep\",\"args\":[\"30\"],\"timeoutMs\":300,\"graceMs\":300}");
    ok(json_is_true(json_object_get(x, "timedOut")), "execute: timeout ends the ssh command");
    json_decref(x);
    r = req("POST", "{\"runStatus\":\"succeeded\"}", "/api/environment-leases/%s/test-release",
            lease_id);
    is_str(pc_res_str(&r, "status"), "released", "lease: released");
    pc_http_res_free(&r);

    char tdir[700];
    snprintf(tdir, sizeof tdir, "%s/tmp", d.data_dir);
    is_int(count_entries(tdir), 0, "no key or known_hosts temp file left behind");
    char kh[800];
    snprintf(kh, sizeof kh, "%s/environments/%s/known_hosts", d.data_dir, good);
    ok(stat(kh, &sb) == 0 && (sb.st_mode & 0777) == 0600, "per-environment known_hosts, mode 0600");

    char kpath[700];
    snprintf(kpath, sizeof kpath, "%s/user_key", tmp);
    char *key = pc_test_read_file(kpath, 65536);
    char *line = strstr(key, "\n");
    char needle[40] = "";
    if (line)
        snprintf(needle, sizeof needle, "%.32s", line + 1);
    ok(needle[0] && !pc_test_file_contains(d.log_path, needle), "daemon log carries no private key text");
    free(key);

    if (tap_failures()) {
        pc_daemon_dump_log(&d);
        pc_test_sshd_dump_log(&sshd);
    }
    is_int(pc_daemon_stop(&d), 0, "daemon exits cleanly (no sanitizer report)");
    pc_test_sshd_stop(&sshd);
    pc_test_rmrf(tmp);
    free(good), free(wrong), free(unknown), free(lax), free(cid), free(tmp), free(lease_id);
    return tap_done();
}
