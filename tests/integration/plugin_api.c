/*
 * /api/plugins against a real daemon: install (and every manifest/package
 * validation failure), list, get, health, logs, enable/disable, uninstall,
 * duplicate keys, restart persistence, and a canary in the daemon's
 * environment that must not appear in the worker's (read from
 * /proc/<worker pid>/environ).
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "../lib/tap.h"

#define FAKE_KEY "paperclip.fake-sandbox-provider"

static pc_daemon d;
static char *tmp;

static void write_file(const char *dir, const char *name, const char *text, int mode)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
        chmod(path, (mode_t)mode);
    }
}

static const char *GOOD_DRIVER =
    "{\"driverKey\":\"t\",\"kind\":\"sandbox_provider\",\"displayName\":\"T\",\"configSchema\":{}}";

/* A package with manifest text m (printf'd with the driver list). */
static char *make_pkg(const char *tag, const char *manifest)
{
    char *dir = NULL;
    if (asprintf(&dir, "%s/%s", tmp, tag) < 0)
        return NULL;
    mkdir(dir, 0755);
    write_file(dir, "package.json",
               "{\"name\":\"t\",\"paperclipPlugin\":{\"manifest\":\"./manifest.json\","
               "\"worker\":\"./worker\"}}",
               0644);
    write_file(dir, "manifest.json", manifest, 0644);
    write_file(dir, "worker", "#!/bin/sh\nexit 0\n", 0755);
    return dir;
}

static char *manifest(const char *id, const char *api, const char *ver, const char *dn,
                      const char *caps, const char *drivers)
{
    char *m = NULL;
    if (asprintf(&m,
                 "{\"id\":%s,\"apiVersion\":%s,\"version\":%s,\"displayName\":%s,"
                 "\"categories\":[\"automation\"],\"capabilities\":%s,"
                 "\"entrypoints\":{\"worker\":\"./worker\"}%s%s}",
                 id, api, ver, dn, caps, drivers ? ",\"environmentDrivers\":" : "",
                 drivers ? drivers : "") < 0)
        return NULL;
    return m;
}

static pc_http_res install(const char *dir)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"packageName\":\"%s\",\"isLocalPath\":true}", dir);
    return pc_http(&d, "POST", "/api/plugins/install", body);
}

static void expect_invalid(const char *tag, const char *m, int status, const char *needle)
{
    char *dir = make_pkg(tag, m);
    pc_http_res r = install(dir);
    const char *e = pc_res_str(&r, "error");
    bool good = r.status == status && strstr(e, needle);
    ok(good, "%s: %d \"%s\"", tag, (int)r.status, e);
    if (!good)
        tap_diag("  wanted %d containing \"%s\"", status, needle);
    pc_http_res_free(&r);
    free(dir);
}

static void test_validation(void)
{
    char drv2[512];
    snprintf(drv2, sizeof drv2, "[%s,%s]", GOOD_DRIVER, GOOD_DRIVER);
    char drv1[256];
    snprintf(drv1, sizeof drv1, "[%s]", GOOD_DRIVER);
    const char *caps = "[\"environment.drivers.register\"]";
    struct {
        const char *tag;
        char *m;
        const char *needle;
    } cases[] = {
        {"bad-id", manifest("\"Bad_Id\"", "1", "\"1.0.0\"", "\"X\"", caps, NULL),
         "id must match ^[a-z0-9][a-z0-9._-]*$"},
        {"no-id", manifest("null", "1", "\"1.0.0\"", "\"X\"", caps, NULL), "id must be a string"},
        {"api-2", manifest("\"a\"", "2", "\"1.0.0\"", "\"X\"", caps, NULL), "apiVersion must be 1"},
        {"semver", manifest("\"a\"", "1", "\"1.0\"", "\"X\"", caps, NULL),
         "version must be a semantic version"},
        {"semver-zero", manifest("\"a\"", "1", "\"01.0.0\"", "\"X\"", caps, NULL),
         "semantic version"},
        {"dn-empty", manifest("\"a\"", "1", "\"1.0.0\"", "\"\"", caps, NULL),
         "displayName must be at least 1"},
        {"dn-long",
         manifest("\"a\"", "1", "\"1.0.0\"",
                  "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxx\"",
                  caps, NULL),
         "displayName must be at most 100"},
        {"no-caps", manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", "[]", NULL),
         "capabilities must contain at least 1"},
        {"drivers-no-cap", manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", "[\"x\"]", drv1),
         "Capability 'environment.drivers.register' is required when environmentDrivers are "
         "declared"},
        {"dup-driver", manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", caps, drv2),
         "Duplicate environment driver keys: t"},
        {"dup-across-kinds",
         manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", caps,
                  "[{\"driverKey\":\"k\",\"kind\":\"environment_driver\",\"displayName\":\"T\","
                  "\"configSchema\":{}},{\"driverKey\":\"k\",\"kind\":\"sandbox_provider\","
                  "\"displayName\":\"U\",\"configSchema\":{}}]"),
         "Duplicate environment driver keys: k"},
        {"bad-driver-key",
         manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", caps,
                  "[{\"driverKey\":\"Bad Key\",\"displayName\":\"T\",\"configSchema\":{}}]"),
         "environmentDrivers[0].driverKey: Environment driver key must start with a lowercase "
         "alphanumeric"},
        {"bad-kind",
         manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", caps,
                  "[{\"driverKey\":\"k\",\"kind\":\"vm\",\"displayName\":\"T\",\"configSchema\":{}}]"),
         "kind must be \"sandbox_provider\" or \"environment_driver\""},
        {"no-schema",
         manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", caps,
                  "[{\"driverKey\":\"k\",\"displayName\":\"T\"}]"),
         "environmentDrivers[0].configSchema is required"},
        {"schema-not-object",
         manifest("\"a\"", "1", "\"1.0.0\"", "\"X\"", caps,
                  "[{\"driverKey\":\"k\",\"displayName\":\"T\",\"configSchema\":[]}]"),
         "configSchema must be a JSON Schema object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_invalid(cases[i].tag, cases[i].m, 422, cases[i].needle);
        free(cases[i].m);
    }
    expect_invalid("not-json", "{nope", 422, "not valid JSON");

    /* Worker escapes. */
    char *m = manifest("\"escape\"", "1", "\"1.0.0\"", "\"X\"", caps, NULL);
    char *dir = make_pkg("escape-link", m);
    char link[1024];
    snprintf(link, sizeof link, "%s/worker", dir);
    unlink(link);
    if (symlink("/bin/true", link) != 0)
        tap_diag("symlink failed");
    pc_http_res r = install(dir);
    ok(r.status == 422 && strstr(pc_res_str(&r, "error"), "outside the package directory"),
       "worker symlink out of the package is rejected: %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    free(dir);
    dir = make_pkg("escape-dots", m);
    write_file(dir, "package.json",
               "{\"paperclipPlugin\":{\"manifest\":\"./manifest.json\",\"worker\":\"../escape-link/worker\"}}",
               0644);
    r = install(dir);
    ok(r.status == 422 && strstr(pc_res_str(&r, "error"), "outside the package directory"),
       "worker ../ traversal is rejected: %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    write_file(dir, "package.json", "{\"name\":\"x\"}", 0644);
    r = install(dir);
    ok(r.status == 422 && strstr(pc_res_str(&r, "error"), "paperclipPlugin"),
       "package.json without paperclipPlugin is rejected: %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    free(dir);
    free(m);

    r = pc_http(&d, "POST", "/api/plugins/install", "{\"packageName\":\"@acme/plugin\"}");
    ok(r.status == 422 && strstr(pc_res_str(&r, "error"), "only local-path installs"),
       "npm install is refused clearly: %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/plugins/install",
                "{\"packageName\":\"relative/dir\",\"isLocalPath\":true}");
    ok(r.status == 400 && strstr(pc_res_str(&r, "error"), "must be absolute"),
       "relative path is refused: %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/plugins/install",
                "{\"packageName\":\"/nonexistent/dir\",\"isLocalPath\":true}");
    ok(r.status == 400 && strstr(pc_res_str(&r, "error"), "cannot resolve"),
       "missing dir is refused: %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/plugins/install", "{\"isLocalPath\":true}");
    is_int(r.status, 400, "packageName is required");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins", NULL);
    is_int(json_array_size(r.json), 0, "nothing was installed by the failures");
    pc_http_res_free(&r);
}

static bool environ_has(int pid, const char *needle)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '\n';
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void test_lifecycle(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/plugins/fake-sandbox", pc_test_root());
    pc_http_res r = install(dir);
    is_int(r.status, 200, "install fake-sandbox");
    is_str(pc_res_str(&r, "pluginKey"), FAKE_KEY, "pluginKey is the manifest id");
    is_str(pc_res_str(&r, "status"), "ready", "status ready after install");
    is_str(pc_res_str(&r, "packagePath"), dir, "packagePath is canonical");
    ok(json_is_object(json_object_get(r.json, "manifestJson")), "manifestJson is the manifest");
    json_t *w = json_object_get(r.json, "worker");
    int pid = (int)json_integer_value(json_object_get(w, "pid"));
    ok(pid > 0, "worker pid is reported");
    ok(json_array_size(json_object_get(w, "supportedMethods")) == 10,
       "supportedMethods has the 10 environment hooks");
    char id[64];
    snprintf(id, sizeof id, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);

    ok(pid > 0 && !environ_has(pid, "PC_PLUGIN_API_CANARY"),
       "daemon canary variable is not in the worker's /proc environ");
    ok(pid > 0 && environ_has(pid, "PAPERCLIP_PLUGIN_ID=" FAKE_KEY),
       "PAPERCLIP_PLUGIN_ID is in the worker's environ");

    r = install(dir);
    ok(r.status == 409 && strstr(pc_res_str(&r, "error"), "already installed"),
       "installing the same key again: 409 %s", pc_res_str(&r, "error"));
    pc_http_res_free(&r);

    r = pc_http(&d, "GET", "/api/plugins", NULL);
    ok(r.status == 200 && json_array_size(r.json) == 1, "list has one plugin");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins?status=error", NULL);
    ok(r.status == 200 && json_array_size(r.json) == 0, "status filter");
    pc_http_res_free(&r);

    char path[256];
    snprintf(path, sizeof path, "/api/plugins/%s", id);
    r = pc_http(&d, "GET", path, NULL);
    is_str(pc_res_str(&r, "id"), id, "get by id");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY, NULL);
    is_str(pc_res_str(&r, "id"), id, "get by plugin key");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins/nope", NULL);
    ok(r.status == 404 && !strcmp(pc_res_str(&r, "error"), "Plugin not found"), "404 Plugin not found");
    pc_http_res_free(&r);

    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY "/health", NULL);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "healthy")), "health: healthy");
    is_str(pc_res_str(&r, "pluginId"), id, "health names the plugin id");
    pc_http_res_free(&r);

    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY "/logs", NULL);
    ok(r.status == 200 && json_array_size(r.json) >= 1, "logs has the host's lines");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY "/logs?limit=0", NULL);
    is_int(r.status, 400, "bad logs limit: 400");
    pc_http_res_free(&r);

    /* Restart: installed plugins start with the daemon. */
    d.keep_dir = true;
    pc_daemon_stop(&d);
    ok(kill(pid, 0) != 0, "worker is gone after the daemon stopped");
    pc_daemon_opts o = {.data_dir = d.data_dir};
    char data_dir[512];
    snprintf(data_dir, sizeof data_dir, "%s", d.data_dir);
    o.data_dir = data_dir;
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon restarts");
        return;
    }
    d.keep_dir = false;
    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY "/health", NULL);
    ok(r.status == 200 && json_is_true(json_object_get(r.json, "healthy")),
       "plugin is started again with the daemon (health waits for initialize)");
    pc_http_res_free(&r);

    r = pc_http(&d, "POST", "/api/plugins/" FAKE_KEY "/disable", NULL);
    ok(r.status == 200 && !strcmp(pc_res_str(&r, "status"), "disabled") &&
           json_is_false(json_object_get(r.json, "enabled")),
       "disable -> status disabled");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY "/health", NULL);
    ok(r.status == 200 && json_is_false(json_object_get(r.json, "healthy")),
       "disabled plugin is not healthy");
    pc_http_res_free(&r);
    r = pc_http(&d, "POST", "/api/plugins/" FAKE_KEY "/enable", NULL);
    ok(r.status == 200 && !strcmp(pc_res_str(&r, "status"), "ready"), "enable -> ready");
    pc_http_res_free(&r);
    r = pc_http(&d, "DELETE", "/api/plugins/" FAKE_KEY, NULL);
    ok(r.status == 200 && !strcmp(pc_res_str(&r, "status"), "uninstalled"), "uninstall");
    pc_http_res_free(&r);
    r = pc_http(&d, "GET", "/api/plugins/" FAKE_KEY, NULL);
    is_int(r.status, 404, "uninstalled plugin is gone");
    pc_http_res_free(&r);
}

static void test_js_manifest_and_failing_worker(void)
{
    /* A JS manifest evaluated by node, with a native worker that fails
     * initialize: installed, but status shows why it is not ready. */
    char *dir = NULL;
    if (asprintf(&dir, "%s/js-manifest", tmp) < 0)
        return;
    mkdir(dir, 0755);
    write_file(dir, "package.json",
               "{\"name\":\"js-manifest\",\"paperclipPlugin\":{\"manifest\":\"./manifest.mjs\","
               "\"worker\":\"./worker\"}}",
               0644);
    write_file(dir, "manifest.mjs",
               "const manifest = {id: 'acme.js-manifest', apiVersion: 1, version: '1.2.3-beta.1',\n"
               "  displayName: 'JS manifest', categories: ['automation'],\n"
               "  capabilities: ['environment.drivers.register'],\n"
               "  entrypoints: {worker: './worker'}};\n"
               "export default manifest;\n",
               0644);
    write_file(dir, "worker", "#!/bin/sh\necho 'worker: cannot start, missing API key' >&2\nexit 9\n",
               0755);
    if (access("/usr/bin/node", X_OK) != 0 && system("command -v node >/dev/null 2>&1") != 0) {
        tap_skip("node is not installed", "JS manifest");
        free(dir);
        return;
    }
    pc_http_res r = install(dir);
    ok(r.status == 200 && !strcmp(pc_res_str(&r, "pluginKey"), "acme.js-manifest"),
       "JS manifest is evaluated by node (%ld %s)", r.status, pc_res_str(&r, "error"));
    ok(strcmp(pc_res_str(&r, "status"), "ready") != 0, "a worker that exits is not ready (%s)",
       pc_res_str(&r, "status"));
    ok(strstr(pc_res_str(&r, "lastError"), "missing API key") != NULL,
       "lastError carries the worker's stderr: %s", pc_res_str(&r, "lastError"));
    pc_http_res_free(&r);
    r = pc_http(&d, "DELETE", "/api/plugins/acme.js-manifest", NULL);
    is_int(r.status, 200, "uninstall the failing plugin");
    pc_http_res_free(&r);
    free(dir);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setenv("PC_PLUGIN_API_CANARY", "daemon-secret-canary", 1);
    tmp = pc_test_tmpdir("plugin-api");
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    test_validation();
    test_js_manifest_and_failing_worker();
    test_lifecycle();
    if (tap_failures())
        pc_daemon_dump_log(&d);
    pc_daemon_stop(&d);
    pc_test_rmrf(tmp);
    free(tmp);
    curl_global_cleanup();
    return tap_done();
}
