/*
 * Environment configs: pc_envcfg_normalize() for the local, ssh, sandbox
 * and plugin drivers on arbitrary JSON, the way the environment routes call
 * it for a create/PATCH/probe body, then pc_envcfg_secret_ids() and
 * pc_envcfg_resolve() on the result.
 *
 * Input: one byte of options, then the input config text, optionally
 * followed by a NUL byte and the stored ("base") config text a PATCH merges
 * onto. Options: bits 0-2 pick the driver, bit 3 picks PERSIST over PROBE
 * mode.
 *
 * The app has a real store (a temporary SQLite file, so secret references
 * are looked up for real and are not found) and no plugin host, so sandbox
 * providers other than the built-in "fake" are rejected before any RPC and
 * nothing is spawned. In PERSIST mode a plaintext privateKey is dropped
 * from the input: storing it needs a company and the secrets key, which
 * are the store's business, not the validator's.
 *
 * Properties (src/env/driver.h and the driver files): a rejection is a 422
 * (the local driver's apiUrl rule: a 400 naming apiUrl);
 * an accepted ssh config has a host, a port in 1..65535 and an absolute
 * workspace path; normalizing an accepted config again gives the same
 * config (what is stored validates as itself on the next PATCH).
 */
#include "fuzz_common.h"

#include <jansson.h>
#include <unistd.h>

#include "app.h"
#include "env/internal.h"
#include "lib/error.h"
#include "lib/json.h"
#include "store/db.h"

static pc_app app;
static char dir[512];

static void cleanup(void)
{
    if (app.db)
        pc_db_close(app.db);
    static const char *const files[] = {"fuzz.db", "fuzz.db-wal", "fuzz.db-shm", NULL};
    for (size_t i = 0; files[i]; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/pc-fuzz-env-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(app.cfg.data_dir, sizeof app.cfg.data_dir, "%s", dir);
    char path[600];
    snprintf(path, sizeof path, "%s/fuzz.db", dir);
    pc_error_t err = PC_ERROR_INIT;
    app.db = pc_db_open_sqlite(path, &err);
    if (!app.db) {
        fprintf(stderr, "cannot open the store: %s\n", err.msg);
        abort();
    }
    atexit(cleanup);
    return 0;
}

static const char *const drivers[] = {"local", "ssh", "sandbox", "plugin",
                                      "ssh",   "sandbox", "plugin", "docker"};

static json_t *parse(const char *p, size_t n)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *j = pc_json_parse(p, n, &err);
    pc_error_clear(&err);
    return j;
}

static json_t *normalize(const char *driver, pc_envcfg_mode mode, json_t *input, json_t *base,
                         pc_error_t *err)
{
    pc_envcfg_ctx c;
    pc_envcfg_ctx_init(&c, &app, "00000000-0000-7000-8000-000000000001", "Fuzz env", mode);
    json_t *out = pc_envcfg_normalize(&c, driver, input, base, err);
    pc_envcfg_ctx_abort(&c);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *driver = drivers[data[0] & 7];
    pc_envcfg_mode mode = (data[0] & 8) ? PC_ENVCFG_PERSIST : PC_ENVCFG_PROBE;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    const char *nul = memchr(text, '\0', n);
    size_t in_len = nul ? (size_t)(nul - text) : n;

    json_t *input = in_len ? parse(text, in_len) : NULL;
    json_t *base = nul ? parse(nul + 1, n - in_len - 1) : NULL;
    if (in_len && !input)
        goto out;
    if (mode == PC_ENVCFG_PERSIST && json_is_object(input))
        json_object_del(input, "privateKey");

    pc_error_t err = PC_ERROR_INIT;
    json_t *cfg = normalize(driver, mode, input, base, &err);
    if (!cfg) {
        /* The local driver's apiUrl rule answers 400 naming the field. */
        const char *field = json_string_value(
            json_array_get(json_object_get(json_array_get(err.details, 0), "path"), 0));
        bool api_url = !strcmp(driver, "local") && err.status == 400 && field &&
                       !strcmp(field, "apiUrl");
        FZ_CHECK(err.status == 422 || api_url, "%s rejected with status %d: %s", driver,
                 err.status, err.msg);
        pc_error_clear(&err);
        goto out;
    }
    FZ_CHECK(err.status == 0, "accepted with an error set: %s", err.msg);
    FZ_CHECK(json_is_object(cfg), "%s config is not an object", driver);
    if (!strcmp(driver, "ssh")) {
        const char *host = pc_json_str(cfg, "host");
        const char *path = pc_json_str(cfg, "remoteWorkspacePath");
        json_int_t port = json_integer_value(json_object_get(cfg, "port"));
        FZ_CHECK(host && *host, "ssh config without a host");
        FZ_CHECK(port >= 1 && port <= 65535, "ssh port %lld", (long long)port);
        FZ_CHECK(path && path[0] == '/', "ssh workspace path is not absolute");
    }

    /* A plugin-driver config given as input goes to its plugin's validator,
     * and no plugin runs here; re-check it the way a stored one is checked. */
    bool via_plugin = !strcmp(driver, "plugin");
    json_t *again = normalize(driver, mode, via_plugin ? NULL : cfg, via_plugin ? cfg : NULL, &err);
    FZ_CHECK(again != NULL, "%s config does not validate as itself: %s", driver, err.msg);
    char *a = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    char *b = json_dumps(again, JSON_COMPACT | JSON_SORT_KEYS);
    FZ_CHECK(json_equal(cfg, again), "normalizing twice changed the %s config:\n%s\n%s", driver,
             a, b);
    free(a);
    free(b);
    json_decref(again);

    json_t *ids = json_array();
    pc_envcfg_secret_ids(&app, driver, cfg, ids);
    json_decref(ids);
    json_t *resolved = pc_envcfg_resolve(&app, "00000000-0000-7000-8000-000000000001", driver, cfg,
                                         &err);
    pc_error_clear(&err);
    json_decref(resolved);
    json_decref(cfg);
out:
    json_decref(input);
    json_decref(base);
    return 0;
}
