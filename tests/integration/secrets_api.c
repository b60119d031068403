/*
 * The secrets API against a real daemon: create/list/get/patch/delete with
 * values that never come back (no response, activity row or CLI output
 * holds them), sealed at rest (the canary is in no file of the data dir),
 * secret refs in SSH configs (a probe against a loopback sshd opens the key
 * from an API-created secret), deleting a secret in use refused with the
 * environments that use it, the actors (read for the company's agents,
 * writes for the board and agents with environments:manage, nothing across
 * companies or sites) and `paperclip secret`.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/sshd.h"
#include "env_common.h"

#define CANARY "CANARY-SECRET-VALUE-5f1c9e"
#define CANARY2 "ROTATED-SECRET-VALUE-77ab02"
#define CANARY_CLI "CLI-SECRET-VALUE-0d4e61"

static char *cid, *cid2, *tmp;

/* Whether any regular file under dir contains needle. */
static bool tree_contains(const char *dir, const char *needle)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) < 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            found = tree_contains(path, needle);
        } else if (S_ISREG(sb.st_mode)) {
            FILE *f = fopen(path, "rb");
            if (!f)
                continue;
            size_t n = strlen(needle), len = 0;
            char *buf = malloc((size_t)sb.st_size + 1);
            if (buf)
                len = fread(buf, 1, (size_t)sb.st_size, f);
            fclose(f);
            for (size_t i = 0; buf && i + n <= len && !found; i++)
                found = !memcmp(buf + i, needle, n);
            free(buf);
        }
    }
    closedir(dp);
    return found;
}

static int cli(char **out, const char *const *args)
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)pc_test_bin();
    argv[n++] = "--api-url";
    argv[n++] = d.url;
    argv[n++] = "--json";
    argv[n++] = "secret";
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return pc_run_capture(argv, out);
}

static char *create_secret(const char *token, const char *company, const char *name,
                           const char *value, long *status)
{
    char body[512];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"value\":\"%s\",\"description\":\"test\"}",
             name, value);
    pc_http_res r = areq(token, "POST", body, "/api/companies/%s/secrets", company);
    *status = r.status;
    char *id = res_dup(&r, "id");
    if (r.status == 201 && strlen(value) > 8 && r.body && strstr(r.body, value))
        ok(0, "create response carries the value");
    pc_http_res_free(&r);
    return id;
}

static void test_crud(const char *sid)
{
    pc_http_res r = req("GET", NULL, "/api/companies/%s/secrets", cid);
    is_int(r.status, 200, "list: 200");
    ok(json_array_size(r.json) == 1, "list: the one secret");
    json_t *s = json_array_get(r.json, 0);
    is_str(json_string_value(json_object_get(s, "name")), "deploy-key", "list: name");
    is_str(json_string_value(json_object_get(s, "provider")), "local_encrypted", "list: provider");
    ok(!json_object_get(s, "value") && !strstr(r.body, CANARY), "list: no value");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/secrets/%s", sid);
    is_int(r.status, 200, "get: 200");
    is_str(pc_res_str(&r, "companyId"), cid, "get: companyId");
    ok(json_integer_value(json_object_get(r.json, "latestVersion")) == 1, "get: version 1");
    ok(!json_object_get(r.json, "value") && !strstr(r.body, CANARY), "get: no value");
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/secrets/00000000-0000-4000-8000-000000000000");
    is_int(r.status, 404, "get missing: 404");
    is_str(pc_res_str(&r, "error"), "Secret not found", "get missing: upstream text");
    pc_http_res_free(&r);

    long st;
    char *dup = create_secret(NULL, cid, "deploy-key", "other", &st);
    is_int(st, 409, "create: a name used in the company is 409");
    free(dup);
    r = req("POST", "{\"name\":\"x\"}", "/api/companies/%s/secrets", cid);
    is_int(r.status, 400, "create without value: 400");
    pc_http_res_free(&r);
    r = req("POST", "{\"name\":\"x\",\"value\":\"v\",\"secretValue\":\"v\"}",
            "/api/companies/%s/secrets", cid);
    is_int(r.status, 400, "create with an unknown key: 400");
    pc_http_res_free(&r);

    r = req("PATCH", "{\"value\":\"" CANARY2 "\",\"description\":\"rotated\"}",
            "/api/secrets/%s", sid);
    is_int(r.status, 200, "patch: 200");
    ok(json_integer_value(json_object_get(r.json, "latestVersion")) == 2,
       "patch: a new value bumps latestVersion");
    is_str(pc_res_str(&r, "description"), "rotated", "patch: description");
    ok(!strstr(r.body, CANARY2), "patch: no value in the response");
    pc_http_res_free(&r);

    json_t *a = activity(cid, "secret.updated", sid);
    ok(a != NULL, "activity: secret.updated");
    char *dump = a ? json_dumps(a, 0) : strdup("");
    ok(!strstr(dump, CANARY2) && !strstr(dump, CANARY), "activity: no value");
    free(dump);
    json_decref(a);
    a = activity(cid, "secret.created", sid);
    ok(a != NULL, "activity: secret.created");
    json_decref(a);
}

static void test_sealed_at_rest(void)
{
    /* The store may keep old pages around; neither value may be in any of
     * its files, nor in the log. */
    ok(!tree_contains(d.data_dir, CANARY), "at rest: the first value is in no file of the data dir");
    ok(!tree_contains(d.data_dir, CANARY2), "at rest: the rotated value is in no file");
    ok(db_count("SELECT COUNT(*) FROM company_secrets WHERE ciphertext LIKE '%" CANARY2 "%'") == 0,
       "at rest: the row holds ciphertext");
}

static void test_actors(const char *sid)
{
    char *reader = make_agent(cid, "Reader", NULL);
    char *manager = make_agent(cid, "Manager", "{\"environments:manage\":true}");
    char *outsider = make_agent(cid2, "Outsider", "{\"environments:manage\":true}");
    char *rk = make_key(reader), *mk = make_key(manager), *ok_ = make_key(outsider);

    pc_http_res r = areq(rk, "GET", NULL, "/api/companies/%s/secrets", cid);
    is_int(r.status, 200, "agent of the company: reads metadata");
    ok(!strstr(r.body, CANARY2), "agent read: no value");
    pc_http_res_free(&r);
    r = areq(rk, "GET", NULL, "/api/secrets/%s", sid);
    is_int(r.status, 200, "agent of the company: reads one secret");
    pc_http_res_free(&r);
    long st;
    free(create_secret(rk, cid, "agent-made", "v", &st));
    is_int(st, 403, "agent without environments:manage: create 403");
    r = areq(rk, "PATCH", "{\"name\":\"renamed\"}", "/api/secrets/%s", sid);
    is_int(r.status, 403, "agent without environments:manage: patch 403");
    pc_http_res_free(&r);
    r = areq(rk, "DELETE", NULL, "/api/secrets/%s", sid);
    is_int(r.status, 403, "agent without environments:manage: delete 403");
    pc_http_res_free(&r);

    char *msid = create_secret(mk, cid, "manager-made", "v", &st);
    is_int(st, 201, "agent with environments:manage: create 201");
    r = areq(mk, "DELETE", NULL, "/api/secrets/%s", msid);
    is_int(r.status, 200, "agent with environments:manage: delete 200");
    ok(json_is_true(json_object_get(r.json, "ok")), "delete: {ok:true}");
    pc_http_res_free(&r);
    free(msid);

    r = areq(ok_, "GET", NULL, "/api/companies/%s/secrets", cid);
    is_int(r.status, 403, "agent of another company: list 403");
    pc_http_res_free(&r);
    r = areq(ok_, "GET", NULL, "/api/secrets/%s", sid);
    is_int(r.status, 403, "agent of another company: get 403");
    pc_http_res_free(&r);
    free(create_secret(ok_, cid, "foreign", "v", &st));
    is_int(st, 403, "agent of another company (with manage there): create 403");
    r = areq(ok_, "DELETE", NULL, "/api/secrets/%s", sid);
    is_int(r.status, 403, "agent of another company: delete 403");
    pc_http_res_free(&r);

    char url[700];
    snprintf(url, sizeof url, "%s/api/companies/%s/secrets", d.url, cid);
    const char *hdrs[] = {"Origin: http://evil.example", "Content-Type: application/json", NULL};
    const char *body = "{\"name\":\"cross-site\",\"value\":\"v\"}";
    r = pc_http_ex(url, "POST", body, strlen(body), hdrs);
    is_int(r.status, 403, "cross-site create: 403");
    pc_http_res_free(&r);
    ok(db_count("SELECT COUNT(*) FROM company_secrets WHERE name IN "
                "('agent-made','foreign','cross-site')") == 0,
       "refused creates stored nothing");
    free(reader), free(manager), free(outsider), free(rk), free(mk), free(ok_);
}

/* An SSH environment keyed by an API-created secret: probe ok, secret-refs
 * lists it, deleting the secret is refused while it is used and the
 * environment's deletion keeps it. Needs a loopback sshd. */
static void test_ssh_ref(void)
{
    if (!pc_test_sshd_available()) {
        tap_skip("sshd/ssh/ssh-keygen not installed", "ssh secret-ref tests");
        return;
    }
    pc_test_sshd sshd;
    if (pc_test_sshd_start(&sshd, tmp) < 0) {
        ok(0, "sshd starts on a loopback port");
        pc_test_sshd_dump_log(&sshd);
        pc_test_sshd_stop(&sshd);
        return;
    }
    char *key = pc_test_sshd_file_json(&sshd, "user_key");
    char *kh = pc_test_sshd_known_hosts_json(&sshd);
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"ssh-user-key\",\"value\":%s}", key) < 0)
        body = NULL;
    pc_http_res r = req("POST", body, "/api/companies/%s/secrets", cid);
    is_int(r.status, 201, "ssh key secret: created");
    char *ksid = res_dup(&r, "id");
    pc_http_res_free(&r);
    free(body);

    if (asprintf(&body,
                 "{\"name\":\"Keyed by ref\",\"driver\":\"ssh\",\"config\":{\"host\":\"127.0.0.1\","
                 "\"port\":%d,\"username\":\"root\",\"remoteWorkspacePath\":\"%s/remote\","
                 "\"privateKey\":{\"type\":\"secret_ref\",\"secretId\":\"%s\"},"
                 "\"knownHosts\":%s}}",
                 sshd.port, tmp, ksid, kh) < 0)
        body = NULL;
    r = req("POST", body, "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "ssh env with privateKey as a secret ref: 201");
    if (r.status != 201)
        tap_diag("%s", r.body);
    char *env = res_dup(&r, "id");
    is_str(json_string_value(json_object_get(
               json_object_get(json_object_get(r.json, "config"), "privateKeySecretRef"),
               "secretId")),
           ksid, "ssh env: the ref is stored, pointing at the API secret");
    pc_http_res_free(&r);
    free(body);

    r = req("POST", "{}", "/api/environments/%s/probe", env);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "ok")),
       "probe: ok with the key resolved from the secret");
    if (!json_is_true(json_object_get(r.json, "ok")))
        tap_diag("%s", r.body);
    pc_http_res_free(&r);

    r = req("GET", NULL, "/api/environments/%s/secret-refs", env);
    is_int(r.status, 200, "secret-refs: 200");
    json_t *refs = json_object_get(r.json, "secretRefs");
    json_t *ref0 = json_array_get(refs, 0);
    ok(json_array_size(refs) == 1 &&
           !strcmp(json_string_value(json_object_get(ref0, "secretId")) ?: "", ksid) &&
           json_is_false(json_object_get(ref0, "missing")),
       "secret-refs: the key's secret");
    is_str(json_string_value(json_object_get(json_object_get(ref0, "secret"), "name")),
           "ssh-user-key", "secret-refs: with its metadata");
    ok(!strstr(r.body, "PRIVATE KEY"), "secret-refs: no key material");
    pc_http_res_free(&r);
    char *reader = make_agent(cid, "Ref reader", NULL);
    char *rk = make_key(reader);
    free(reader);
    r = areq(rk, "GET", NULL, "/api/environments/%s/secret-refs", env);
    is_int(r.status, 403, "secret-refs without environments:manage: 403");
    pc_http_res_free(&r);
    free(rk);

    r = req("DELETE", NULL, "/api/secrets/%s", ksid);
    is_int(r.status, 409, "delete a secret in use: 409");
    ok(strstr(pc_res_str(&r, "error"), "Keyed by ref") && strstr(pc_res_str(&r, "error"), env),
       "delete in use: the error names the environment");
    pc_http_res_free(&r);

    r = req("DELETE", NULL, "/api/environments/%s", env);
    is_int(r.status, 200, "environment deleted");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/secrets/%s", ksid);
    is_int(r.status, 200, "an API-created secret outlives the environment that used it");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/secrets/%s", ksid);
    is_int(r.status, 200, "delete once unused: 200");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/secrets/%s", ksid);
    is_int(r.status, 404, "deleted secret: 404");
    pc_http_res_free(&r);

    pc_test_sshd_stop(&sshd);
    free(key), free(kh), free(ksid), free(env);
}

/* A plaintext SSH key still becomes a secret the environment owns: it is
 * listed, and goes with the environment. */
static void test_env_managed(void)
{
    pc_http_res r = req("POST",
                        "{\"name\":\"Plain key\",\"driver\":\"ssh\",\"config\":{\"host\":\"h.test\","
                        "\"username\":\"u\",\"remoteWorkspacePath\":\"/w\","
                        "\"privateKey\":\"PLAIN-KEY-MATERIAL\"}}",
                        "/api/companies/%s/environments", cid);
    is_int(r.status, 201, "plaintext key env: 201");
    char *env = res_dup(&r, "id");
    char *ksid = strdup(json_string_value(json_object_get(
        json_object_get(json_object_get(r.json, "config"), "privateKeySecretRef"), "secretId")) ?: "");
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/secrets/%s", ksid);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "environmentManaged")),
       "the env-made secret is listed as environment-managed");
    pc_http_res_free(&r);
    r = req("DELETE", NULL, "/api/environments/%s", env);
    pc_http_res_free(&r);
    r = req("GET", NULL, "/api/secrets/%s", ksid);
    is_int(r.status, 404, "the env-made secret goes with its environment");
    pc_http_res_free(&r);
    free(env), free(ksid);
}

static void test_cli(void)
{
    char *out = NULL;
    const char *help[] = {"--help", NULL};
    int rc = cli(&out, help);
    ok(rc == 0 && out && strstr(out, "never from arguments"), "cli: secret --help");
    free(out), out = NULL;

    const char *bad[] = {"create", cid, "--name", "argv-secret", "--value", CANARY_CLI, NULL};
    rc = cli(&out, bad);
    is_int(rc, 2, "cli: a value on the command line is refused");
    free(out), out = NULL;

    char vfile[700];
    snprintf(vfile, sizeof vfile, "%s/value.txt", tmp);
    FILE *f = fopen(vfile, "w");
    if (f) {
        fputs(CANARY_CLI "\n", f);
        fclose(f);
    }
    const char *create[] = {"create", cid, "--name", "cli-secret", "--value-file", vfile, NULL};
    rc = cli(&out, create);
    ok(rc == 0 && out && strstr(out, "cli-secret") && !strstr(out, CANARY_CLI),
       "cli: create from a file prints metadata only");
    json_t *j = out ? json_loads(out, 0, NULL) : NULL;
    char *id = strdup(json_string_value(json_object_get(j, "id")) ?: "");
    json_decref(j);
    free(out), out = NULL;
    ok(db_count("SELECT COUNT(*) FROM company_secrets WHERE name='argv-secret'") == 0,
       "cli: the refused create stored nothing");
    ok(!tree_contains(d.data_dir, CANARY_CLI), "cli: the value is sealed at rest");

    /* From stdin, through a pipe as a user would. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "printf '%%s\\n' '" CANARY_CLI "-stdin' | '%s' --api-url '%s' --json secret create "
             "%s --name stdin-secret --value-stdin",
             pc_test_bin(), d.url, cid);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    rc = pc_run_capture(sh, &out);
    ok(rc == 0 && out && strstr(out, "stdin-secret") && !strstr(out, CANARY_CLI),
       "cli: create from stdin prints metadata only");
    free(out), out = NULL;
    ok(db_count("SELECT COUNT(*) FROM company_secrets WHERE name='stdin-secret'") == 1,
       "cli: the stdin secret is stored");

    const char *list[] = {"list", cid, NULL};
    rc = cli(&out, list);
    ok(rc == 0 && out && strstr(out, "cli-secret") && !strstr(out, CANARY_CLI), "cli: list");
    free(out), out = NULL;
    const char *del[] = {"delete", id, NULL};
    rc = cli(&out, del);
    ok(rc == 0, "cli: delete");
    free(out), out = NULL;
    ok(db_count("SELECT COUNT(*) FROM company_secrets WHERE name='cli-secret'") == 0,
       "cli: deleted");
    free(id);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tmp = pc_test_tmpdir("secrets");
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    cid = make_company("Secrets Co");
    cid2 = make_company("Other Co");
    long st;
    char *sid = create_secret(NULL, cid, "deploy-key", CANARY, &st);
    is_int(st, 201, "create: 201");
    test_crud(sid);
    test_sealed_at_rest();
    test_actors(sid);
    test_ssh_ref();
    test_env_managed();
    test_cli();
    ok(!tree_contains(d.data_dir, CANARY2) && !tree_contains(d.data_dir, CANARY) &&
           !tree_contains(d.data_dir, CANARY_CLI),
       "daemon log and store: no value anywhere at the end");
    pc_daemon_stop(&d);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", tmp);
    free(sid), free(cid), free(cid2), free(tmp);
    return tap_done();
}
