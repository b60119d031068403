#include "plugin/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/spawn.h"
#include "lib/util.h"

#define ENV_DRIVERS_CAP "environment.drivers.register"

void pc_plugin_package_clear(pc_plugin_package *pkg)
{
    free(pkg->dir);
    free(pkg->package_name);
    free(pkg->manifest_path);
    free(pkg->worker_path);
    if (pkg->manifest)
        json_decref(pkg->manifest);
    memset(pkg, 0, sizeof *pkg);
}

bool pc_plugin_key_valid(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
        return false;
    for (const char *p = s + 1; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A numeric semver identifier: digits, no leading zero unless it is "0". */
static const char *semver_num(const char *p)
{
    if (*p < '0' || *p > '9')
        return NULL;
    if (*p == '0')
        return p + 1;
    while (*p >= '0' && *p <= '9')
        p++;
    return p;
}

static bool ident_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* Dot-separated identifiers; prerelease ones must not be numeric with a
 * leading zero, build ones may be anything non-empty. Returns the end. */
static const char *semver_idents(const char *p, bool prerelease)
{
    for (;;) {
        const char *start = p;
        bool numeric = true;
        while (ident_char(*p)) {
            if (*p < '0' || *p > '9')
                numeric = false;
            p++;
        }
        if (p == start)
            return NULL;
        if (prerelease && numeric && p - start > 1 && *start == '0')
            return NULL;
        if (*p != '.')
            return p;
        p++;
    }
}

bool pc_plugin_semver_valid(const char *s)
{
    if (!s)
        return false;
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        p = semver_num(p);
        if (!p)
            return false;
        if (i < 2) {
            if (*p != '.')
                return false;
            p++;
        }
    }
    if (*p == '-') {
        p = semver_idents(p + 1, true);
        if (!p)
            return false;
    }
    if (*p == '+') {
        p = semver_idents(p + 1, false);
        if (!p)
            return false;
    }
    return *p == '\0';
}

/* Length in characters (code points), as upstream's zod counts them closely
 * enough for limits of 100 and 500. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static const char *json_type_name(const json_t *v)
{
    if (!v)
        return "undefined";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static int bad(pc_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(pc_error_t *err, const char *field, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_error_set(err, 422, "Invalid plugin manifest: %s", msg);
    json_t *path = json_array();
    /* "environmentDrivers[1].driverKey" -> ["environmentDrivers", "1", "driverKey"] is
     * more than clients need; the dotted field name is enough to locate it. */
    json_array_append_new(path, json_string(field));
    pc_error_details(err, json_pack("[{s:o,s:s}]", "path", path, "message", msg));
    return -1;
}

static int check_text(const json_t *obj, const char *key, const char *field, bool required,
                      size_t min, size_t max, pc_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return bad(err, field, "%s is required", field);
        return 0;
    }
    if (!json_is_string(v))
        return bad(err, field, "%s must be a string (got %s)", field, json_type_name(v));
    size_t n = utf8_chars(json_string_value(v));
    if (n < min)
        return bad(err, field, "%s must be at least %zu character(s)", field, min);
    if (n > max)
        return bad(err, field, "%s must be at most %zu characters (got %zu)", field, max, n);
    return 0;
}

static int check_string_array(const json_t *obj, const char *key, bool required, size_t min,
                              pc_error_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return bad(err, key, "%s is required", key);
        return 0;
    }
    if (!json_is_array(v))
        return bad(err, key, "%s must be an array of strings (got %s)", key, json_type_name(v));
    if (json_array_size(v) < min)
        return bad(err, key, "%s must contain at least %zu item(s)", key, min);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || json_string_length(e) == 0)
            return bad(err, key, "%s[%zu] must be a non-empty string", key, i);
    }
    return 0;
}

static bool array_has_string(const json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e) && !strcmp(json_string_value(e), s))
            return true;
    }
    return false;
}

static int validate_driver(const json_t *d, size_t i, pc_error_t *err)
{
    char f[96];
    if (!json_is_object(d)) {
        snprintf(f, sizeof f, "environmentDrivers[%zu]", i);
        return bad(err, f, "%s must be an object (got %s)", f, json_type_name(d));
    }
    /* Driver declarations are strict objects upstream: a typo in a key is an
     * error rather than a silently ignored field. */
    static const char *const known[] = {"driverKey", "kind", "displayName", "description",
                                        "supportsReusableLeases", "configSchema",
                                        /* later upstream additions, accepted as-is */
                                        "sandboxCapabilities", "supportsInteractiveSetup",
                                        "supportsTemplates", NULL};
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)d, k, v)
    {
        bool ok = false;
        for (size_t j = 0; known[j]; j++)
            ok = ok || !strcmp(known[j], k);
        if (!ok) {
            snprintf(f, sizeof f, "environmentDrivers[%zu]", i);
            return bad(err, f, "%s has an unrecognized key \"%s\"", f, k);
        }
    }
    snprintf(f, sizeof f, "environmentDrivers[%zu].driverKey", i);
    json_t *key = json_object_get(d, "driverKey");
    if (!json_is_string(key))
        return bad(err, f, "%s is required and must be a string", f);
    if (!pc_plugin_key_valid(json_string_value(key)))
        return bad(err, f,
                   "%s: Environment driver key must start with a lowercase alphanumeric and "
                   "contain only lowercase letters, digits, dots, hyphens, or underscores "
                   "(got \"%s\")",
                   f, json_string_value(key));
    /* kind is optional: without it the entry is an environment driver for
     * `plugin` environments only; sandbox_provider entries also back
     * `sandbox` environments. */
    json_t *kind = json_object_get(d, "kind");
    if (kind) {
        snprintf(f, sizeof f, "environmentDrivers[%zu].kind", i);
        if (!json_is_string(kind) || (strcmp(json_string_value(kind), "sandbox_provider") &&
                                      strcmp(json_string_value(kind), "environment_driver")))
            return bad(err, f, "%s must be \"sandbox_provider\" or \"environment_driver\"", f);
    }
    snprintf(f, sizeof f, "environmentDrivers[%zu].displayName", i);
    if (check_text(d, "displayName", f, true, 1, 100, err) < 0)
        return -1;
    snprintf(f, sizeof f, "environmentDrivers[%zu].description", i);
    if (check_text(d, "description", f, false, 0, 500, err) < 0)
        return -1;
    json_t *reuse = json_object_get(d, "supportsReusableLeases");
    if (reuse && !json_is_boolean(reuse)) {
        snprintf(f, sizeof f, "environmentDrivers[%zu].supportsReusableLeases", i);
        return bad(err, f, "%s must be a boolean", f);
    }
    json_t *schema = json_object_get(d, "configSchema");
    snprintf(f, sizeof f, "environmentDrivers[%zu].configSchema", i);
    if (!schema)
        return bad(err, f, "%s is required", f);
    if (!json_is_object(schema))
        return bad(err, f, "%s must be a JSON Schema object (got %s)", f, json_type_name(schema));
    return 0;
}

int pc_plugin_manifest_validate(const json_t *m, pc_error_t *err)
{
    if (!json_is_object(m))
        return bad(err, "manifest", "manifest must be an object (got %s)", json_type_name(m));

    json_t *id = json_object_get(m, "id");
    if (!id)
        return bad(err, "id", "id is required");
    if (!json_is_string(id))
        return bad(err, "id", "id must be a string (got %s)", json_type_name(id));
    if (!pc_plugin_key_valid(json_string_value(id)))
        return bad(err, "id", "id must match ^[a-z0-9][a-z0-9._-]*$ (got \"%s\")",
                   json_string_value(id));

    json_t *api = json_object_get(m, "apiVersion");
    if (!json_is_integer(api) || json_integer_value(api) != 1)
        return bad(err, "apiVersion", "apiVersion must be 1");

    json_t *ver = json_object_get(m, "version");
    if (!json_is_string(ver))
        return bad(err, "version", "version is required and must be a string");
    if (!pc_plugin_semver_valid(json_string_value(ver)))
        return bad(err, "version", "version must be a semantic version (got \"%s\")",
                   json_string_value(ver));

    if (check_text(m, "displayName", "displayName", true, 1, 100, err) < 0)
        return -1;
    if (check_text(m, "description", "description", false, 0, 500, err) < 0)
        return -1;
    json_t *author = json_object_get(m, "author");
    if (author && !json_is_string(author))
        return bad(err, "author", "author must be a string");
    if (check_string_array(m, "categories", true, 1, err) < 0)
        return -1;
    if (check_string_array(m, "capabilities", true, 1, err) < 0)
        return -1;

    json_t *ep = json_object_get(m, "entrypoints");
    if (!json_is_object(ep))
        return bad(err, "entrypoints", "entrypoints is required and must be an object");
    json_t *w = json_object_get(ep, "worker");
    if (!json_is_string(w) || json_string_length(w) == 0)
        return bad(err, "entrypoints.worker", "entrypoints.worker must be a non-empty string");

    json_t *drivers = json_object_get(m, "environmentDrivers");
    if (drivers) {
        if (!json_is_array(drivers))
            return bad(err, "environmentDrivers", "environmentDrivers must be an array");
        size_t i;
        json_t *d;
        json_array_foreach(drivers, i, d)
        {
            if (validate_driver(d, i, err) < 0)
                return -1;
        }
        /* Keys are unique across kinds: `plugin` environments name a driver
         * by its key alone. Upstream lists every duplicated key once. */
        pc_buf dups;
        pc_buf_init(&dups, 600);
        json_array_foreach(drivers, i, d)
        {
            const char *key = json_string_value(json_object_get(d, "driverKey"));
            size_t first = i, seen = 0;
            for (size_t j = 0; j < json_array_size(drivers); j++) {
                if (strcmp(json_string_value(json_object_get(json_array_get(drivers, j),
                                                             "driverKey")),
                           key) != 0)
                    continue;
                if (j < first)
                    first = j;
                seen++;
            }
            if (seen < 2 || first != i)
                continue;
            if (dups.len)
                pc_buf_append_trunc(&dups, ", ", 2);
            pc_buf_append_trunc(&dups, key, strlen(key));
        }
        if (dups.len) {
            int rc = bad(err, "environmentDrivers", "Duplicate environment driver keys: %.*s",
                         (int)dups.len, dups.data);
            pc_buf_release(&dups);
            return rc;
        }
        pc_buf_release(&dups);
        if (json_array_size(drivers) > 0 &&
            !array_has_string(json_object_get(m, "capabilities"), ENV_DRIVERS_CAP))
            return bad(err, "capabilities",
                       "Capability '" ENV_DRIVERS_CAP
                       "' is required when environmentDrivers are declared");
    }
    return 0;
}

/* Canonicalises rel against the package dir and checks it stays inside. */
static char *resolve_inside(const char *dir, const char *rel, const char *what, pc_error_t *err)
{
    if (!rel || !*rel) {
        pc_error_set(err, 422, "invalid plugin package: %s path is empty", what);
        return NULL;
    }
    _cleanup_free_ char *joined =
        rel[0] == '/' ? pc_xstrdup(rel) : pc_xasprintf("%s/%s", dir, rel);
    char real[PATH_MAX];
    if (!realpath(joined, real)) {
        pc_error_set(err, 422, "invalid plugin package: cannot resolve %s %s: %s", what, rel,
                     strerror(errno));
        return NULL;
    }
    size_t n = strlen(dir);
    if (strncmp(real, dir, n) != 0 || real[n] != '/') {
        pc_error_set(err, 422,
                     "invalid plugin package: %s %s resolves outside the package directory",
                     what, rel);
        return NULL;
    }
    return pc_xstrdup(real);
}

static bool is_js_path(const char *p)
{
    const char *dot = strrchr(p, '.');
    return dot && (!strcmp(dot, ".js") || !strcmp(dot, ".mjs") || !strcmp(dot, ".cjs"));
}

int pc_plugin_find_node(char *out, size_t cap)
{
    const char *env = getenv("PAPERCLIP_NODE");
    if (env && *env) {
        if (access(env, X_OK) != 0)
            return -1;
        snprintf(out, cap, "%s", env);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    _cleanup_free_ char *copy = pc_xstrdup(path);
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (d[0] != '/')
            continue; /* relative PATH entries would depend on our cwd */
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%s/node", d);
        if (access(cand, X_OK) == 0) {
            snprintf(out, cap, "%s", cand);
            return 0;
        }
    }
    return -1;
}

/* The evaluation script: import the module, print its default export. A
 * CommonJS build of an ES module nests the manifest one level deeper. */
static const char NODE_PRINT_MANIFEST[] =
    "const {pathToFileURL}=require('url');"
    "import(pathToFileURL(process.argv[1]).href).then(m=>{"
    "let v=m.default!==undefined?m.default:(m.manifest!==undefined?m.manifest:m);"
    "if(v&&typeof v==='object'&&v.default&&v.id===undefined)v=v.default;"
    "process.stdout.write(JSON.stringify(v===undefined?null:v));"
    "},e=>{process.stderr.write(String(e&&e.message||e));process.exit(1);});";

/* Runs node once to print a JS manifest; bounded output, scrubbed env, hard
 * timeout with the whole process group killed. */
static json_t *eval_js_manifest(const char *pkg_dir, const char *path, pc_error_t *err)
{
    char node[PATH_MAX];
    if (pc_plugin_find_node(node, sizeof node) < 0) {
        pc_error_set(err, 422, "cannot load JS manifest %s: node is not installed", path);
        return NULL;
    }
    const char *path_env = getenv("PATH");
    _cleanup_free_ char *e_path =
        pc_xasprintf("PATH=%s", path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin");
    char *envp[] = {e_path, "NODE_ENV=production", "TZ=UTC", NULL};
    const char *argv[] = {node, "-e", NODE_PRINT_MANIFEST, path, NULL};
    pc_spawn_opts so = {.file = node, .argv = argv, .envp = envp, .cwd = pkg_dir};
    pc_spawn_run_opts ro = {
        .out_max = PC_PLUGIN_MANIFEST_MAX,
        .err_max = 4096,
        .kill_on_out_overflow = true,
        .timeout_ms = PC_PLUGIN_MANIFEST_NODE_TIMEOUT_MS,
        .grace_ms = 0, /* nothing to save: SIGKILL at once */
        .drain_ms = 1000,
        /* Nothing the manifest module started may outlive the evaluation. */
        .kill_group_at_end = true,
    };
    pc_spawn_result r;
    int rc = pc_spawn_run(&so, &ro, &r, NULL);
    if (rc != 0) {
        pc_error_errno(err, rc, "cannot run %s", node);
        return NULL;
    }

    json_t *res = NULL;
    if (r.timed_out)
        pc_error_set(err, 422, "cannot load JS manifest %s: node did not finish within %d s", path,
                     PC_PLUGIN_MANIFEST_NODE_TIMEOUT_MS / 1000);
    else if (r.out_overflow)
        pc_error_set(err, 422, "cannot load JS manifest %s: output exceeds %d bytes", path,
                     PC_PLUGIN_MANIFEST_MAX);
    else if (r.exit_code != 0) {
        _cleanup_free_ char *msg = pc_utf8_sanitize(r.err.data, r.err.len);
        pc_error_set(err, 422, "cannot load JS manifest %s: %s", path,
                     msg[0] ? msg : "node failed");
    } else {
        pc_error_t perr = PC_ERROR_INIT;
        res = pc_json_parse(r.out.data, r.out.len, &perr);
        if (!res)
            pc_error_set(err, 422, "cannot load JS manifest %s: %s", path, perr.msg);
        pc_error_clear(&perr);
    }
    pc_spawn_result_free(&r);
    return res;
}

static json_t *read_json_file(const char *path, const char *what, pc_error_t *err)
{
    char *text = NULL;
    size_t len = 0;
    if (pc_read_file(path, PC_PLUGIN_MANIFEST_MAX, &text, &len) < 0) {
        pc_error_set(err, 422, "invalid plugin package: cannot read %s %s: %s", what, path,
                     strerror(errno));
        return NULL;
    }
    pc_error_t perr = PC_ERROR_INIT;
    json_t *j = pc_json_parse(text, len, &perr);
    free(text);
    if (!j)
        pc_error_set(err, 422, "invalid plugin package: %s %s is not valid JSON: %s", what, path,
                     perr.msg);
    pc_error_clear(&perr);
    return j;
}

int pc_plugin_package_load(const char *dir_in, pc_plugin_package *pkg, pc_error_t *err)
{
    memset(pkg, 0, sizeof *pkg);
    if (!dir_in || !*dir_in)
        return pc_error_set(err, 400, "plugin package path is empty");
    if (dir_in[0] != '/')
        return pc_error_set(err, 400, "plugin package path must be absolute: %s", dir_in);
    char dir[PATH_MAX];
    if (!realpath(dir_in, dir))
        return pc_error_set(err, 400, "cannot resolve plugin package %s: %s", dir_in,
                            strerror(errno));
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return pc_error_set(err, 400, "plugin package %s is not a directory", dir_in);

    _cleanup_free_ char *pj_path = pc_xasprintf("%s/package.json", dir);
    _cleanup_json_ json_t *pj = read_json_file(pj_path, "package.json", err);
    if (!pj)
        return -1;
    json_t *pp = json_object_get(pj, "paperclipPlugin");
    if (!json_is_object(pp))
        return pc_error_set(err, 422,
                            "invalid plugin package: %s has no \"paperclipPlugin\" object", pj_path);
    const char *man_rel = pc_json_str(pp, "manifest");
    if (!man_rel)
        return pc_error_set(err, 422,
                            "invalid plugin package: paperclipPlugin.manifest must be a string");

    pkg->dir = pc_xstrdup(dir);
    const char *name = pc_json_str(pj, "name");
    const char *base = strrchr(dir, '/');
    pkg->package_name = pc_xstrdup(name && *name ? name : (base ? base + 1 : dir));

    pkg->manifest_path = resolve_inside(dir, man_rel, "manifest", err);
    if (!pkg->manifest_path)
        goto fail;
    json_t *m = is_js_path(pkg->manifest_path)
                    ? eval_js_manifest(dir, pkg->manifest_path, err)
                    : read_json_file(pkg->manifest_path, "manifest", err);
    if (!m)
        goto fail;
    pkg->manifest = m;
    if (pc_plugin_manifest_validate(m, err) < 0)
        goto fail;

    /* package.json names the built worker; the manifest's entrypoint is the
     * fallback (upstream packages ship both, pointing at the same file). */
    const char *worker_rel = pc_json_str(pp, "worker");
    if (!worker_rel)
        worker_rel = pc_json_str(json_object_get(m, "entrypoints"), "worker");
    pkg->worker_path = resolve_inside(dir, worker_rel, "worker", err);
    if (!pkg->worker_path)
        goto fail;
    if (stat(pkg->worker_path, &st) < 0 || !S_ISREG(st.st_mode)) {
        pc_error_set(err, 422, "invalid plugin package: worker %s is not a regular file",
                     pkg->worker_path);
        goto fail;
    }
    pkg->worker_is_js = is_js_path(pkg->worker_path);
    if (!pkg->worker_is_js && access(pkg->worker_path, X_OK) != 0) {
        pc_error_set(err, 422, "invalid plugin package: worker %s is not executable",
                     pkg->worker_path);
        goto fail;
    }
    return 0;
fail:
    pc_plugin_package_clear(pkg);
    return -1;
}
