/*
 * Unit tests of the environment driver table and each driver's config
 * normalisation: valid configs and their defaults, every invalid field with
 * its exact (upstream) error text, secret fields (a plaintext SSH key
 * becomes a company secret, refs are checked and resolved), the local
 * driver's apiUrl rule (loopback or an allowed hostname, else a 400 naming
 * the field), and the plugin driver's probe and lease refusal.
 *
 * The app has a real store in a temporary directory (so secrets are created
 * and looked up for real) and no plugin host, so sandbox providers other
 * than the built-in "fake" are rejected before any RPC.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/harness.h"
#include "../lib/tap.h"
#include "env/internal.h"
#include "lib/common.h"
#include "lib/json.h"
#include "model/secrets.h"
#include "lib/util.h"
#include "store/db.h"

#define CID "00000000-0000-7000-8000-000000000001"

static pc_app app;

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        tap_diag("bad test JSON %s: %s", text, e.text);
    return j;
}

/* Normalizes text (NULL: no input) onto base_text (NULL: none). *created
 * and *obsolete (optional) receive the ids the context recorded. */
static json_t *norm_full(const char *driver, pc_envcfg_mode mode, const char *text,
                         const char *base_text, json_t **created, json_t **obsolete,
                         pc_error_t *err)
{
    json_t *in = text ? J(text) : NULL, *base = base_text ? J(base_text) : NULL;
    pc_envcfg_ctx c;
    pc_envcfg_ctx_init(&c, &app, CID, "Build box", mode);
    json_t *out = pc_envcfg_normalize(&c, driver, in, base, err);
    if (created)
        *created = json_incref(c.created);
    if (obsolete)
        *obsolete = json_incref(c.obsolete);
    /* The ids stay: the caller checks them, and nothing here commits. */
    json_decref(c.created);
    json_decref(c.obsolete);
    json_decref(in);
    json_decref(base);
    return out;
}

static json_t *norm(const char *driver, pc_envcfg_mode mode, const char *text, pc_error_t *err)
{
    return norm_full(driver, mode, text, NULL, NULL, NULL, err);
}

/* Asserts that text is rejected with status and exactly msg. */
static void rejects(const char *driver, pc_envcfg_mode mode, const char *text, int status,
                    const char *msg, const char *what)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *out = norm(driver, mode, text, &err);
    ok(out == NULL, "%s: rejected", what);
    is_int(err.status, status, "%s: status", what);
    is_str(err.msg, msg, "%s: text", what);
    json_decref(out);
    pc_error_clear(&err);
}

/* Asserts that text normalizes to exactly want (compared as JSON). */
static void accepts(const char *driver, pc_envcfg_mode mode, const char *text, const char *want,
                    const char *what)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *out = norm(driver, mode, text, &err);
    json_t *w = J(want);
    bool same = out && json_equal(out, w);
    ok(same, "%s", what);
    if (!same) {
        char *got = out ? json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        tap_diag("  got %s (%s), want %s", got ? got : "NULL", err.msg, want);
        free(got);
    }
    json_decref(w);
    json_decref(out);
    pc_error_clear(&err);
}

static void test_table(void)
{
    static const char *const names[] = {"local", "ssh", "sandbox", "plugin", NULL};
    const pc_env_driver *const *all = pc_env_drivers();
    size_t n = 0;
    for (; all[n]; n++)
        ok(all[n]->normalize != NULL, "driver %s has normalize", all[n]->name);
    is_int(n, 4, "four drivers in the table");
    for (size_t i = 0; names[i]; i++) {
        const pc_env_driver *d = pc_env_driver_find(names[i]);
        ok(d && !strcmp(d->name, names[i]), "find(%s)", names[i]);
        ok(i < n && all[i] == d, "%s is listed in API order", names[i]);
    }
    ok(pc_env_driver_find("docker") == NULL, "unknown driver not found");
    ok(pc_env_driver_find("Local") == NULL, "lookup is exact");
    ok(pc_env_driver_find(NULL) == NULL, "NULL name not found");
    ok(pc_env_driver_find("local")->one_per_company, "one local per company");
    ok(!pc_env_driver_find("ssh")->one_per_company, "any number of ssh environments");
    ok(pc_env_driver_find("plugin")->runs, "plugin environments run work");
    ok(pc_env_driver_find("plugin")->remote, "plugin environments are remote targets");
    rejects("docker", PC_ENVCFG_PERSIST, "{}", 422, "Unsupported environment driver \"docker\".",
            "unknown driver");
    rejects("local", PC_ENVCFG_PERSIST, "[]", 422, "Environment config must be an object.",
            "config must be an object");
}

/* ----------------------------------------------------------------- local */

static void api_url_ok(const char *url, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "{\"apiUrl\":\"%s\",\"shell\":\"zsh\"}", url);
    accepts("local", PC_ENVCFG_PERSIST, text, text, what);
}

static void api_url_bad(const char *json_value, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "{\"apiUrl\":%s}", json_value);
    pc_error_t err = PC_ERROR_INIT;
    json_t *out = norm("local", PC_ENVCFG_PERSIST, text, &err);
    ok(out == NULL, "apiUrl %s: rejected", what);
    is_int(err.status, 400, "apiUrl %s: 400", what);
    is_str(err.msg, "Validation error", "apiUrl %s: validation error", what);
    json_t *issue = json_array_get(err.details, 0);
    is_str(json_string_value(json_array_get(json_object_get(issue, "path"), 0)), "apiUrl",
           "apiUrl %s: the issue names the field", what);
    json_decref(out);
    pc_error_clear(&err);
}

static void test_local(void)
{
    accepts("local", PC_ENVCFG_PERSIST, NULL, "{}", "local: no config is {}");
    accepts("local", PC_ENVCFG_PERSIST, "{\"shell\":\"zsh\",\"n\":[1,{\"a\":null}]}",
            "{\"shell\":\"zsh\",\"n\":[1,{\"a\":null}]}", "local: any object stored as given");
    pc_error_t err = PC_ERROR_INIT;
    json_t *out = norm_full("local", PC_ENVCFG_PERSIST, NULL, "{\"shell\":\"bash\"}", NULL, NULL,
                            &err);
    ok(out && !strcmp(pc_json_str(out, "shell"), "bash"), "local: PATCH without config keeps it");
    json_decref(out);
    out = norm_full("local", PC_ENVCFG_PERSIST, "{\"x\":1}", "{\"shell\":\"bash\"}", NULL, NULL,
                    &err);
    ok(out && !json_object_get(out, "shell") && json_object_size(out) == 1,
       "local: a config given replaces the stored one whole");
    json_decref(out);

    api_url_ok("http://127.0.0.1:3100", "local: apiUrl on 127.0.0.1");
    api_url_ok("http://127.8.9.10/api", "local: apiUrl anywhere in 127/8");
    api_url_ok("http://localhost:3100/api?x=1#f", "local: apiUrl on localhost");
    api_url_ok("https://LOCALHOST", "local: scheme and host are case-insensitive");
    api_url_ok("http://[::1]:8443/", "local: apiUrl on [::1]");
    api_url_ok("http://paperclip.internal:3100", "local: apiUrl on an allowed hostname");
    api_url_ok("https://Build-Host.example.test/", "local: allowed hostnames match any case");
    accepts("local", PC_ENVCFG_PERSIST, "{\"apiUrl\":null}", "{\"apiUrl\":null}",
            "local: apiUrl null is no apiUrl");

    api_url_bad("\"http://evil.example.com:3100\"", "on another host");
    api_url_bad("\"http://127.0.0.1@evil.example.com/\"", "with userinfo");
    api_url_bad("\"http://evil.example.com\\\\@127.0.0.1/\"", "with a backslash");
    api_url_bad("\"http://evil.example.com#@127.0.0.1\"", "with the loopback in the fragment");
    api_url_bad("\"http://127.0.0.1.evil.example.com\"", "loopback-looking prefix");
    api_url_bad("\"http://paperclip.internal.evil.example\"", "allowed-looking prefix");
    api_url_bad("\"http://xpaperclip.internal\"", "allowed-looking suffix");
    api_url_bad("\"http://0x7f.0.0.1\"", "hex address");
    api_url_bad("\"http://2130706433\"", "integer address");
    api_url_bad("\"http://0177.0.0.1\"", "octal address");
    api_url_bad("\"http://%6cocalhost\"", "percent-encoded host");
    api_url_bad("\"http://[::ffff:8.8.8.8]\"", "mapped IPv6 address");
    api_url_bad("\"http://[fe80::1]\"", "link-local IPv6 address");
    api_url_bad("\"http://localhost:99999\"", "port out of range");
    api_url_bad("\"http://localhost:\"", "empty port");
    api_url_bad("\"http://localhost:80x\"", "bad port");
    api_url_bad("\"ftp://127.0.0.1\"", "other scheme");
    api_url_bad("\"127.0.0.1:3100\"", "without a scheme");
    api_url_bad("\"http://\"", "without a host");
    api_url_bad("\"http:// localhost\"", "with white space");
    api_url_bad("\"\"", "empty");
    api_url_bad("3100", "not a string");

    /* Nothing allowed: only loopback passes. */
    char saved[sizeof app.cfg.allowed_hostnames];
    memcpy(saved, app.cfg.allowed_hostnames, sizeof saved);
    app.cfg.allowed_hostnames[0] = '\0';
    api_url_bad("\"http://paperclip.internal:3100\"", "without allowedHostnames");
    api_url_ok("http://127.0.0.1:3100", "local: loopback needs no allowedHostnames");
    memcpy(app.cfg.allowed_hostnames, saved, sizeof saved);
}

/* ------------------------------------------------------------------- ssh */

#define SSH_MIN "\"host\":\"box.example.test\",\"username\":\"deploy\",\"remoteWorkspacePath\":\"/srv/w\""

static void test_ssh(void)
{
    accepts("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN "}",
            "{\"host\":\"box.example.test\",\"port\":22,\"username\":\"deploy\","
            "\"remoteWorkspacePath\":\"/srv/w\",\"privateKey\":null,\"privateKeySecretRef\":null,"
            "\"knownHosts\":null,\"strictHostKeyChecking\":true}",
            "ssh: defaults (port 22, strict checking, no key)");
    accepts("ssh", PC_ENVCFG_PERSIST,
            "{\"host\":\"  box  \",\"port\":\"2222\",\"username\":\" u \","
            "\"remoteWorkspacePath\":\" /w \",\"knownHosts\":\"  \","
            "\"strictHostKeyChecking\":false}",
            "{\"host\":\"box\",\"port\":2222,\"username\":\"u\",\"remoteWorkspacePath\":\"/w\","
            "\"privateKey\":null,\"privateKeySecretRef\":null,\"knownHosts\":null,"
            "\"strictHostKeyChecking\":false}",
            "ssh: trimmed strings, port as a string, empty knownHosts is null");
    accepts("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN ",\"port\":2200.0,\"knownHosts\":\"h k\"}",
            "{\"host\":\"box.example.test\",\"port\":2200,\"username\":\"deploy\","
            "\"remoteWorkspacePath\":\"/srv/w\",\"privateKey\":null,\"privateKeySecretRef\":null,"
            "\"knownHosts\":\"h k\",\"strictHostKeyChecking\":true}",
            "ssh: an integral real port");

    rejects("ssh", PC_ENVCFG_PERSIST, NULL, 422, "SSH environments require a host.",
            "ssh: no config");
    rejects("ssh", PC_ENVCFG_PERSIST, "{\"host\":\"  \"}", 422,
            "SSH environments require a host.", "ssh: blank host");
    rejects("ssh", PC_ENVCFG_PERSIST, "{\"host\":7}", 422, "SSH environments require a host.",
            "ssh: host not a string");
    static const char *const bad_ports[] = {"0", "65536", "-1", "22.5", "\"22x\"", "\"\"",
                                            "true", "[22]", NULL};
    for (size_t i = 0; bad_ports[i]; i++) {
        char text[300], what[64];
        snprintf(text, sizeof text, "{" SSH_MIN ",\"port\":%s}", bad_ports[i]);
        snprintf(what, sizeof what, "ssh: port %s", bad_ports[i]);
        rejects("ssh", PC_ENVCFG_PERSIST, text, 422,
                "SSH port must be an integer between 1 and 65535.", what);
    }
    rejects("ssh", PC_ENVCFG_PERSIST, "{\"host\":\"h\",\"remoteWorkspacePath\":\"/w\"}", 422,
            "SSH environments require a username.", "ssh: no username");
    rejects("ssh", PC_ENVCFG_PERSIST, "{\"host\":\"h\",\"username\":\"u\"}", 422,
            "SSH environments require a remote workspace path.", "ssh: no workspace path");
    rejects("ssh", PC_ENVCFG_PERSIST,
            "{\"host\":\"h\",\"username\":\"u\",\"remoteWorkspacePath\":\"srv/w\"}", 422,
            "SSH remote workspace path must be absolute.", "ssh: relative workspace path");
    rejects("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN ",\"privateKey\":42}", 422,
            "privateKey: Invalid input: expected string", "ssh: privateKey not a string");
    rejects("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN ",\"knownHosts\":{}}", 422,
            "knownHosts: Invalid input: expected string", "ssh: knownHosts not a string");
    rejects("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN ",\"strictHostKeyChecking\":\"yes\"}", 422,
            "strictHostKeyChecking: Invalid input: expected boolean",
            "ssh: strictHostKeyChecking not a boolean");
    rejects("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN ",\"password\":\"x\"}", 422,
            "Unrecognized key: \"password\"", "ssh: unknown key");
    rejects("ssh", PC_ENVCFG_PERSIST, "{" SSH_MIN ",\"privateKeySecretRef\":\"id\"}", 422,
            "privateKeySecretRef: Invalid input", "ssh: secret ref not an object");
    rejects("ssh", PC_ENVCFG_PERSIST,
            "{" SSH_MIN ",\"privateKeySecretRef\":{\"type\":\"secret_ref\",\"x\":1}}", 422,
            "Unrecognized key: \"x\"", "ssh: secret ref with an unknown key");
    rejects("ssh", PC_ENVCFG_PERSIST,
            "{" SSH_MIN ",\"privateKeySecretRef\":{\"type\":\"plain\",\"secretId\":\"" CID "\"}}",
            422, "privateKeySecretRef.type: Invalid input: expected \"secret_ref\"",
            "ssh: secret ref of another type");
    rejects("ssh", PC_ENVCFG_PERSIST,
            "{" SSH_MIN ",\"privateKeySecretRef\":{\"type\":\"secret_ref\",\"secretId\":\"nope\"}}",
            422, "privateKeySecretRef.secretId: Invalid UUID", "ssh: secret ref with a bad id");
    rejects("ssh", PC_ENVCFG_PERSIST,
            "{" SSH_MIN ",\"privateKeySecretRef\":{\"type\":\"secret_ref\",\"secretId\":\"" CID
            "\",\"version\":0}}",
            422, "privateKeySecretRef.version: Invalid input", "ssh: secret ref version 0");
    rejects("ssh", PC_ENVCFG_PERSIST,
            "{" SSH_MIN ",\"privateKeySecretRef\":{\"type\":\"secret_ref\",\"secretId\":\"" CID
            "\"}}",
            422, "Secret not found", "ssh: secret ref to a missing secret");

    /* Secrets. PERSIST: a plaintext key becomes a company secret and only
     * its reference is stored. */
    const char *key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAtest\n-----END OPENSSH PRIVATE KEY-----";
    char *text = pc_xasprintf("{" SSH_MIN ",\"privateKey\":\"  %s\\n\"}",
                              "-----BEGIN OPENSSH PRIVATE KEY-----\\nAAAAtest\\n-----END OPENSSH "
                              "PRIVATE KEY-----");
    pc_error_t err = PC_ERROR_INIT;
    json_t *created = NULL, *obsolete = NULL;
    json_t *cfg = norm_full("ssh", PC_ENVCFG_PERSIST, text, NULL, &created, &obsolete, &err);
    ok(cfg != NULL, "ssh: a plaintext key is accepted (%s)", err.msg);
    ok(json_is_null(json_object_get(cfg, "privateKey")), "ssh: the key itself is not stored");
    json_t *ref = json_object_get(cfg, "privateKeySecretRef");
    const char *sid = pc_json_str(ref, "secretId");
    is_str(pc_json_str(ref, "type"), "secret_ref", "ssh: stored as a secret ref");
    is_str(pc_json_str(ref, "version"), "latest", "ssh: the ref follows the latest version");
    is_int(json_array_size(created), 1, "ssh: one secret created");
    is_str(json_string_value(json_array_get(created, 0)), sid, "ssh: the ref names it");
    char *plain = sid ? pc_secret_resolve(app.db, CID, sid, &err) : NULL;
    is_str(plain, key, "ssh: the secret holds the trimmed key");
    pc_secret_free(plain);
    json_t *ids = json_array();
    pc_envcfg_secret_ids(&app, "ssh", cfg, ids);
    ok(json_array_size(ids) == 1 && !strcmp(json_string_value(json_array_get(ids, 0)), sid),
       "ssh: secret_ids lists the key's secret");
    json_decref(ids);
    json_t *resolved = pc_envcfg_resolve(&app, CID, "ssh", cfg, &err);
    is_str(pc_json_str(resolved, "privateKey"), key, "ssh: resolve puts the key back");
    ok(json_is_null(json_object_get(cfg, "privateKey")), "ssh: resolve leaves the config alone");
    json_decref(resolved);
    json_decref(created);
    json_decref(obsolete);

    /* A stored ref to an existing secret validates, so what was stored
     * normalizes as itself on the next PATCH. */
    char *stored = json_dumps(cfg, JSON_COMPACT);
    json_t *again = norm_full("ssh", PC_ENVCFG_PERSIST, stored, NULL, &created, &obsolete, &err);
    ok(again && json_equal(again, cfg), "ssh: a stored config normalizes as itself");
    is_int(json_array_size(created), 0, "ssh: no secret created for a ref");
    json_decref(again);
    json_decref(created);
    json_decref(obsolete);

    /* PATCH merges onto the stored config and keeps the ref. */
    again = norm_full("ssh", PC_ENVCFG_PERSIST, "{\"port\":2200}", stored, &created, &obsolete,
                      &err);
    ok(again && json_integer_value(json_object_get(again, "port")) == 2200 &&
           json_equal(json_object_get(again, "privateKeySecretRef"), ref),
       "ssh: a partial PATCH keeps the secret ref");
    is_int(json_array_size(obsolete), 0, "ssh: nothing obsolete");
    json_decref(again);
    json_decref(created);
    json_decref(obsolete);

    /* A new key replaces the secret; the old one becomes obsolete. */
    again = norm_full("ssh", PC_ENVCFG_PERSIST, "{\"privateKey\":\"other key\"}", stored, &created,
                      &obsolete, &err);
    ok(again && strcmp(pc_json_str(json_object_get(again, "privateKeySecretRef"), "secretId"),
                       sid) != 0,
       "ssh: a new key gets a new secret");
    ok(json_array_size(obsolete) == 1 &&
           !strcmp(json_string_value(json_array_get(obsolete, 0)), sid),
       "ssh: the old secret is obsolete");
    json_decref(again);
    json_decref(created);
    json_decref(obsolete);

    /* PROBE: the key stays in memory, nothing is created. */
    again = norm_full("ssh", PC_ENVCFG_PROBE, text, NULL, &created, &obsolete, &err);
    ok(again && !strcmp(pc_json_str(again, "privateKey"), key), "ssh probe: the key is kept");
    ok(json_is_null(json_object_get(again, "privateKeySecretRef")), "ssh probe: no ref");
    is_int(json_array_size(created), 0, "ssh probe: no secret created");
    json_decref(again);
    json_decref(created);
    json_decref(obsolete);

    /* A ref whose secret went missing fails resolve with the reason. */
    pc_secret_delete(app.db, CID, sid, &err);
    resolved = pc_envcfg_resolve(&app, CID, "ssh", cfg, &err);
    ok(resolved == NULL && strstr(err.msg, "cannot resolve the SSH private key"),
       "ssh: resolve of a missing secret fails (%s)", err.msg);
    json_decref(resolved);
    pc_error_clear(&err);
    free(stored);
    free(text);
    json_decref(cfg);
}

/* --------------------------------------------------------------- sandbox */

static void test_sandbox(void)
{
    accepts("sandbox", PC_ENVCFG_PROBE, NULL,
            "{\"provider\":\"fake\",\"image\":\"ubuntu:24.04\",\"reuseLease\":false}",
            "sandbox: no config probes the fake provider");
    accepts("sandbox", PC_ENVCFG_PROBE,
            "{\"provider\":\" fake \",\"image\":\" alpine:3 \",\"reuseLease\":true}",
            "{\"provider\":\"fake\",\"image\":\"alpine:3\",\"reuseLease\":true}",
            "sandbox: fake with an image and reuse");
    accepts("sandbox", PC_ENVCFG_PROBE, "{\"provider\":\"\",\"reuseLease\":null}",
            "{\"provider\":\"fake\",\"image\":\"ubuntu:24.04\",\"reuseLease\":false}",
            "sandbox: an empty provider is the fake one");
    rejects("sandbox", PC_ENVCFG_PERSIST, "{\"provider\":\"fake\"}", 422,
            "Built-in fake sandbox environments are reserved for internal probes and cannot be "
            "saved.",
            "sandbox: the fake provider cannot be saved");
    rejects("sandbox", PC_ENVCFG_PROBE, "{\"provider\":\"fake\",\"cpu\":2}", 422,
            "Unrecognized key: \"cpu\"", "sandbox: fake takes no other keys");
    rejects("sandbox", PC_ENVCFG_PROBE, "{\"provider\":\"fake\",\"image\":5}", 422,
            "image: Invalid input: expected string", "sandbox: fake image not a string");
    rejects("sandbox", PC_ENVCFG_PROBE, "{\"reuseLease\":\"yes\"}", 422,
            "reuseLease: Invalid input: expected boolean", "sandbox: reuseLease not a boolean");
    static const char *const bad_timeouts[] = {"0", "86400001", "1.5", "\"10\"", "-5", NULL};
    for (size_t i = 0; bad_timeouts[i]; i++) {
        char text[128], what[64];
        snprintf(text, sizeof text, "{\"provider\":\"fake\",\"timeoutMs\":%s}", bad_timeouts[i]);
        snprintf(what, sizeof what, "sandbox: timeoutMs %s", bad_timeouts[i]);
        rejects("sandbox", PC_ENVCFG_PROBE, text, 422,
                "timeoutMs must be an integer between 1 and 86400000.", what);
    }
    rejects("sandbox", PC_ENVCFG_PERSIST, "{\"provider\":\"Bad Provider\"}", 422,
            "Sandbox provider key must start with a lowercase alphanumeric and contain only "
            "lowercase letters, digits, dots, hyphens, or underscores",
            "sandbox: provider key syntax");
    rejects("sandbox", PC_ENVCFG_PERSIST, "{\"provider\":\"-x\"}", 422,
            "Sandbox provider key must start with a lowercase alphanumeric and contain only "
            "lowercase letters, digits, dots, hyphens, or underscores",
            "sandbox: provider key must start alphanumeric");
    rejects("sandbox", PC_ENVCFG_PERSIST, "{\"provider\":\"cloud-vm\",\"timeoutMs\":1000}", 422,
            "Sandbox provider \"cloud-vm\" is not installed or its plugin worker is not running.",
            "sandbox: a provider without a running plugin");
    json_t *ids = json_array();
    json_t *cfg = J("{\"provider\":\"cloud-vm\",\"token\":\"" CID "\"}");
    pc_envcfg_secret_ids(&app, "sandbox", cfg, ids);
    is_int(json_array_size(ids), 0, "sandbox: no provider schema, no secret fields");
    pc_error_t err = PC_ERROR_INIT;
    json_t *resolved = pc_envcfg_resolve(&app, CID, "sandbox", cfg, &err);
    ok(resolved && json_equal(resolved, cfg), "sandbox: resolve without a provider is a copy");
    json_decref(resolved);
    json_decref(cfg);
    json_decref(ids);

    json_t *env = J("{\"name\":\"Probe box\",\"driver\":\"sandbox\",\"config\":{\"provider\":"
                    "\"fake\"}}");
    const pc_env_driver *d = pc_env_driver_find("sandbox");
    ok(d->check_runnable && d->check_runnable(env, &err) < 0 && err.status == 422,
       "sandbox: the fake provider cannot run work");
    is_str(err.msg,
           "Environment \"Probe box\" uses the built-in fake sandbox provider, which is "
           "probe-only and cannot execute runs.",
           "sandbox: fake provider refusal text");
    pc_error_clear(&err);
    json_object_set_new(json_object_get(env, "config"), "provider", json_string("cloud-vm"));
    ok(d->check_runnable(env, &err) == 0, "sandbox: a plugin provider can run work");
    json_decref(env);
}

/* ---------------------------------------------------------------- plugin */

static void test_plugin(void)
{
    /* A well-formed config still needs its plugin (tests/integration/
     * env_plugin_driver.c covers an installed one). */
    rejects("plugin", PC_ENVCFG_PERSIST, "{\"pluginKey\":\"acme\",\"driverKey\":\"acme.vm\"}",
            422, "Plugin environment driver \"acme:acme.vm\" is not ready.",
            "plugin: the plugin must be installed");
    rejects("plugin", PC_ENVCFG_PROBE,
            "{\"pluginKey\":\"acme\",\"driverKey\":\"vm_1-a\",\"driverConfig\":{\"cpu\":2}}",
            422, "Plugin environment driver \"acme:vm_1-a\" is not ready.",
            "plugin: probe configs too");
    pc_error_t err = PC_ERROR_INIT;
    json_t *out = norm_full("plugin", PC_ENVCFG_PERSIST, NULL,
                            "{\"pluginKey\":\"acme\",\"driverKey\":\"vm\",\"driverConfig\":{}}",
                            NULL, NULL, &err);
    ok(out && !strcmp(pc_json_str(out, "driverKey"), "vm"), "plugin: PATCH without config keeps it");
    json_decref(out);
    rejects("plugin", PC_ENVCFG_PERSIST, NULL, 422, "pluginKey: Invalid input: expected string",
            "plugin: no config");
    rejects("plugin", PC_ENVCFG_PERSIST, "{\"pluginKey\":\"\",\"driverKey\":\"vm\"}", 422,
            "pluginKey: Invalid input: expected string", "plugin: empty pluginKey");
    rejects("plugin", PC_ENVCFG_PERSIST, "{\"pluginKey\":\"acme\",\"driverKey\":\"VM\"}", 422,
            "Environment driver key must start with a lowercase alphanumeric and contain only "
            "lowercase letters, digits, dots, hyphens, or underscores",
            "plugin: driverKey syntax");
    rejects("plugin", PC_ENVCFG_PERSIST, "{\"pluginKey\":\"acme\"}", 422,
            "Environment driver key must start with a lowercase alphanumeric and contain only "
            "lowercase letters, digits, dots, hyphens, or underscores",
            "plugin: no driverKey");
    rejects("plugin", PC_ENVCFG_PERSIST,
            "{\"pluginKey\":\"acme\",\"driverKey\":\"vm\",\"driverConfig\":[1]}", 422,
            "driverConfig: Invalid input: expected record", "plugin: driverConfig not an object");
    rejects("plugin", PC_ENVCFG_PERSIST,
            "{\"pluginKey\":\"acme\",\"driverKey\":\"vm\",\"image\":\"x\"}", 422,
            "Unrecognized key: \"image\"", "plugin: unknown key");

    json_t *cfg = J("{\"pluginKey\":\"acme\",\"driverKey\":\"vm\",\"driverConfig\":{}}");
    json_t *p = pc_env_probe(&app, CID, PC_ENV_UNSAVED_ID, "plugin", cfg, &err);
    ok(p && json_is_false(json_object_get(p, "ok")), "plugin probe: not ok");
    is_str(pc_json_str(p, "driver"), "plugin", "plugin probe: driver");
    is_str(pc_json_str(p, "summary"), "Plugin environment driver \"acme:vm\" is not ready.",
           "plugin probe: summary");
    json_decref(p);

    /* Refused before the lease row is written. */
    json_t *env = json_pack("{s:s,s:s,s:s,s:s,s:s,s:O}", "id", CID, "companyId", CID, "name",
                            "Plugin box", "driver", "plugin", "status", "active", "config", cfg);
    pc_lease_request lr = {.run_id = CID};
    pc_lease *l = pc_lease_acquire(&app, env, &lr, &err);
    ok(l == NULL && err.status == 422, "plugin: no lease");
    is_str(err.msg, "Plugin environment driver \"acme:vm\" is not ready.",
           "plugin: refusal text");
    pc_error_clear(&err);
    json_t *row = pc_db_query_one_s(app.db, "SELECT COUNT(*) AS n FROM environment_leases",
                                    json_array(), &err);
    is_int(json_integer_value(json_object_get(row, "n")), 0, "plugin: no lease row written");
    json_decref(row);
    json_decref(env);
    json_decref(cfg);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    char *dir = pc_test_tmpdir("env-config");
    snprintf(app.cfg.data_dir, sizeof app.cfg.data_dir, "%s", dir);
    snprintf(app.cfg.allowed_hostnames, sizeof app.cfg.allowed_hostnames, "%s",
             "paperclip.internal, build-host.example.test");
    char path[1100];
    snprintf(path, sizeof path, "%s/test.db", dir);
    pc_error_t err = PC_ERROR_INIT;
    app.db = pc_db_open_sqlite(path, &err);
    ok(app.db != NULL, "store opens (%s)", err.msg);
    ok(pc_secrets_init(dir, &err) == 0, "secrets key ready (%s)", err.msg);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    ok(pc_db_exec_s(app.db,
                    "INSERT INTO companies(id,name,issue_prefix,created_at,updated_at) "
                    "VALUES(?,?,?,?,?)",
                    json_pack("[s,s,s,s,s]", CID, "Acme", "ACM", ts, ts), NULL, &err) == 0,
       "company row (%s)", err.msg);
    pc_error_clear(&err);
    if (app.db) {
        test_table();
        test_local();
        test_ssh();
        test_sandbox();
        test_plugin();
        pc_db_close(app.db);
    }
    pc_test_rmrf(dir);
    free(dir);
    return tap_done();
}
