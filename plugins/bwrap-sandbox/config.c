/*
 * Driver config of the bwrap provider: parsing, validation with one precise
 * sentence per problem, and the normalized form with every default filled
 * in. The same parser serves validateConfig and every hook that receives a
 * config, so a config the host stored is enforced identically later.
 */
#include "bwrap_sandbox.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MEMORY_MB 1024
#define DEFAULT_PIDS 512
#define DEFAULT_TIMEOUT_MS 300000
#define DEFAULT_MAX_OUTPUT (4 << 20)

static void add(json_t *arr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(json_t *arr, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    json_array_append_new(arr, json_string(buf));
}

/* An integer from a JSON number the way a JavaScript host sends it: 512 and
 * 512.0 are the same value; 512.5 is not an integer. */
static bool as_int(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            *out = (int64_t)d;
            return true;
        }
    }
    return false;
}

static void parse_int(json_t *raw, const char *key, int64_t lo, int64_t hi, int64_t def,
                      int64_t *out, json_t *errors)
{
    json_t *v = json_object_get(raw, key);
    *out = def;
    if (!v || json_is_null(v))
        return;
    int64_t n;
    if (!as_int(v, &n) || n < lo || n > hi) {
        add(errors, "%s must be an integer from %lld to %lld", key, (long long)lo, (long long)hi);
        return;
    }
    *out = n;
}

/* A path we are willing to put on bwrap's command line: absolute, no NUL,
 * no "." or ".." component, no "//", not the root itself, bounded. */
static bool clean_abs_path(json_t *v)
{
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n < 2 || n > 1024 || strlen(s) != n || s[0] != '/' || s[n - 1] == '/')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p != '/')
            continue;
        const char *c = p + 1;
        size_t cl = strcspn(c, "/");
        if (cl == 0 || (cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.'))
            return false;
    }
    return true;
}

/* Paths the sandbox itself owns; a host bind there would shadow or expose
 * the lease's own mounts (the "mount duty" of the upstream sandbox spec).
 * The first group is reserved with everything below it; the second only
 * as a whole (binding /etc/gitconfig is fine, replacing /etc is not). */
static bool reserved_target(const char *p)
{
    static const char *const subtree[] = { "/workspace", "/home", "/tmp", "/proc", "/dev", "/run" };
    static const char *const exact[] = { "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64",
                                         "/lib32", "/libx32", "/sys" };
    for (size_t i = 0; i < sizeof(subtree) / sizeof(*subtree); i++) {
        size_t l = strlen(subtree[i]);
        if (!strncmp(p, subtree[i], l) && (p[l] == '\0' || p[l] == '/'))
            return true;
    }
    for (size_t i = 0; i < sizeof(exact) / sizeof(*exact); i++)
        if (!strcmp(p, exact[i]))
            return true;
    return false;
}

/* ---- host paths ---- */

static bool under(const char *path, const char *dir)
{
    size_t l = strlen(dir);
    if (l == 1 && dir[0] == '/')
        return true;
    return !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

/* A Paperclip daemon data directory holds its database and master key. */
static bool is_data_dir(const char *dir)
{
    static const char *const marks[] = { "secrets/master.key", "paperclip.db" };
    for (size_t i = 0; i < sizeof(marks) / sizeof(*marks); i++) {
        char p[PATH_MAX + 32];
        if (snprintf(p, sizeof(p), "%.*s/%s", PATH_MAX, dir, marks[i]) >= (int)sizeof(p))
            continue;
        if (access(p, F_OK) == 0)
            return true;
    }
    return false;
}

/* True when `path`, one of its ancestors or one of its direct children is
 * a data directory (the default data dir sits at the bottom of a few
 * plain directories, so binding a parent would expose it). */
static bool near_data_dir(const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s", path);
    for (;;) {
        if (is_data_dir(p[0] ? p : "/"))
            return true;
        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
            break;
        *slash = '\0';
    }
    DIR *d = opendir(path);
    if (!d)
        return false;
    struct dirent *e;
    bool hit = false;
    for (int n = 0; !hit && n < 4096 && (e = readdir(d)); n++) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char c[PATH_MAX];
        if (snprintf(c, sizeof(c), "%s/%s", path, e->d_name) < (int)sizeof(c))
            hit = is_data_dir(c);
    }
    closedir(d);
    return hit;
}

/* Host trees never bound, whatever the operator allows: home directories
 * (keys, tokens, the default Paperclip data dir), kernel interfaces and
 * runtime sockets. */
static const char *forbidden_tree(const char *r)
{
    static const struct {
        const char *dir, *what;
    } trees[] = {
        { "/root", "a home directory" }, { "/home", "a home directory" },
        { "/proc", "/proc" },            { "/sys", "/sys" },
        { "/dev", "/dev" },              { "/run", "/run (runtime sockets)" },
        { "/var/run", "/run (runtime sockets)" },
    };
    for (size_t i = 0; i < sizeof(trees) / sizeof(*trees); i++)
        if (under(r, trees[i].dir))
            return trees[i].what;
    const char *home = getenv("HOME");
    char rh[PATH_MAX];
    if (home && home[0] == '/' && strcmp(home, "/") != 0 && realpath(home, rh) &&
        strcmp(rh, "/") != 0 && under(r, rh))
        return "a home directory";
    return NULL;
}

int bw_host_path_check(const char *path, const struct bw_policy *p, char *resolved, size_t rcap,
                       char *why, size_t wcap)
{
    char r[PATH_MAX];
    struct stat st;
    if (!realpath(path, r)) {
        snprintf(why, wcap, "does not exist on this host");
        return -1;
    }
    const char *f = forbidden_tree(r);
    if (f) {
        snprintf(why, wcap, "resolves to %.200s, inside %s, which is never bound", r, f);
        return -1;
    }
    if (stat(r, &st) == 0 && S_ISSOCK(st.st_mode)) {
        snprintf(why, wcap, "is a socket, which is never bound");
        return -1;
    }
    if (near_data_dir(r)) {
        snprintf(why, wcap, "resolves to %.200s, which holds or lies in a Paperclip data directory",
                 r);
        return -1;
    }
    char own[PATH_MAX];
    if (p && p->own_data_dir && realpath(p->own_data_dir, own) &&
        (under(r, own) || under(own, r))) {
        snprintf(why, wcap, "resolves to %.200s, which exposes the provider's lease directory", r);
        return -1;
    }
    bool allowed = false;
    for (size_t i = 0; p && i < p->n_roots && !allowed; i++)
        allowed = under(r, p->roots[i]);
    if (!allowed) {
        const char *none = p && p->n_roots
                               ? ""
                               : " (none are configured in the plugin's instance config)";
        if (strcmp(r, path) != 0)
            snprintf(why, wcap, "resolves to %.200s, which is not under allowedBindRoots%s", r,
                     none);
        else
            snprintf(why, wcap, "is not under allowedBindRoots%s", none);
        return -1;
    }
    if (strlen(r) >= rcap) {
        snprintf(why, wcap, "is too long");
        return -1;
    }
    memcpy(resolved, r, strlen(r) + 1);
    return 0;
}

int bw_policy_parse(json_t *instance, const char *own_data_dir, struct bw_policy *p,
                    json_t *errors)
{
    memset(p, 0, sizeof(*p));
    p->seccomp = true;
    p->own_data_dir = own_data_dir && own_data_dir[0] ? own_data_dir : NULL;
    size_t nerr0 = json_array_size(errors);
    if (!json_is_object(instance))
        return 0;
    json_t *sc = json_object_get(instance, "seccomp");
    if (sc && !json_is_null(sc)) {
        if (json_is_boolean(sc))
            p->seccomp = json_is_true(sc);
        else
            add(errors, "instance config seccomp must be a boolean");
    }
    json_t *roots = json_object_get(instance, "allowedBindRoots");
    if (!roots || json_is_null(roots))
        return 0;
    if (!json_is_array(roots) || json_array_size(roots) > BW_MAX_BIND_ROOTS) {
        add(errors,
            "instance config allowedBindRoots must be an array of at most %d absolute paths",
            BW_MAX_BIND_ROOTS);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(roots, i, v)
    {
        char r[PATH_MAX];
        const char *f;
        if (!clean_abs_path(v)) {
            add(errors, "allowedBindRoots[%zu] must be an absolute path without \".\" or \"..\"",
                i);
        } else if (!realpath(json_string_value(v), r)) {
            add(errors, "allowedBindRoots[%zu] (%.200s) does not exist on this host", i,
                json_string_value(v));
        } else if ((f = forbidden_tree(r))) {
            add(errors, "allowedBindRoots[%zu] (%.200s) is inside %s, which is never bound", i,
                json_string_value(v), f);
        } else if (!strcmp(r, "/")) {
            add(errors, "allowedBindRoots[%zu] must not be the root directory", i);
        } else {
            p->roots[p->n_roots++] = strdup(r);
        }
    }
    return json_array_size(errors) == nerr0 ? 0 : -1;
}

void bw_policy_free(struct bw_policy *p)
{
    for (size_t i = 0; i < p->n_roots; i++)
        free(p->roots[i]);
    memset(p, 0, sizeof(*p));
}

static const char *const known_keys[] = {
    "network", "rootfs", "readOnlyBinds", "memoryMb", "pids", "cpuWeight", "cpuQuotaPercent",
    "timeoutMs", "reuseLease", "leaseTtlSec", "maxOutputBytes", "provider", NULL,
};

int bw_config_parse(json_t *raw, const struct bw_policy *pol, struct bw_config *c, json_t *errors,
                    json_t *warnings)
{
    memset(c, 0, sizeof(*c));
    size_t nerr0 = json_array_size(errors);
    if (!json_is_object(raw))
        raw = NULL;

    json_t *net = json_object_get(raw, "network");
    c->network = BW_NET_NONE;
    if (net && !json_is_null(net)) {
        const char *s = json_is_string(net) ? json_string_value(net) : "";
        if (!strcmp(s, "none"))
            c->network = BW_NET_NONE;
        else if (!strcmp(s, "api-only"))
            c->network = BW_NET_API_ONLY;
        else if (!strcmp(s, "host"))
            c->network = BW_NET_HOST;
        else
            add(errors, "network must be one of \"none\", \"api-only\", \"host\"");
    }

    json_t *rootfs = json_object_get(raw, "rootfs");
    if (rootfs && !json_is_null(rootfs) &&
        !(json_is_string(rootfs) && json_string_length(rootfs) == 0)) {
        struct stat st;
        char r[PATH_MAX], why[400];
        if (!clean_abs_path(rootfs))
            add(errors, "rootfs must be an absolute directory path without \".\" or \"..\"");
        else if (stat(json_string_value(rootfs), &st) < 0 || !S_ISDIR(st.st_mode))
            add(errors, "rootfs %s is not a directory on this host", json_string_value(rootfs));
        else if (bw_host_path_check(json_string_value(rootfs), pol, r, sizeof(r), why,
                                    sizeof(why)) < 0)
            add(errors, "rootfs (%.200s) %s", json_string_value(rootfs), why);
        else
            c->rootfs = strdup(r);
    }

    json_t *binds = json_object_get(raw, "readOnlyBinds");
    if (binds && !json_is_null(binds)) {
        if (!json_is_array(binds) || json_array_size(binds) > BW_MAX_RO_BINDS) {
            add(errors, "readOnlyBinds must be an array of at most %d absolute paths",
                BW_MAX_RO_BINDS);
        } else {
            size_t i;
            json_t *b;
            json_array_foreach(binds, i, b)
            {
                struct stat st;
                char r[PATH_MAX], why[400];
                if (!clean_abs_path(b)) {
                    add(errors,
                        "readOnlyBinds[%zu] must be an absolute path without \".\" or \"..\"", i);
                } else if (reserved_target(json_string_value(b))) {
                    add(errors, "readOnlyBinds[%zu] (%s) would cover a path the sandbox owns", i,
                        json_string_value(b));
                } else if (stat(json_string_value(b), &st) < 0) {
                    add(errors, "readOnlyBinds[%zu] (%s) does not exist on this host", i,
                        json_string_value(b));
                } else if (bw_host_path_check(json_string_value(b), pol, r, sizeof(r), why,
                                              sizeof(why)) < 0) {
                    add(errors, "readOnlyBinds[%zu] (%.200s) %s", i, json_string_value(b), why);
                } else {
                    c->ro_bind_src[c->n_ro_binds] = strdup(r);
                    c->ro_binds[c->n_ro_binds++] = strdup(json_string_value(b));
                }
            }
        }
    }

    parse_int(raw, "memoryMb", 16, 65536, DEFAULT_MEMORY_MB, &c->memory_mb, errors);
    parse_int(raw, "pids", 8, 65536, DEFAULT_PIDS, &c->pids, errors);
    parse_int(raw, "cpuWeight", 1, 10000, 0, &c->cpu_weight, errors);
    parse_int(raw, "cpuQuotaPercent", 1, 25600, 0, &c->cpu_quota_percent, errors);
    parse_int(raw, "timeoutMs", 1, 86400000, DEFAULT_TIMEOUT_MS, &c->timeout_ms, errors);
    parse_int(raw, "leaseTtlSec", 0, 31536000, 0, &c->lease_ttl_sec, errors);
    parse_int(raw, "maxOutputBytes", 1024, 64 << 20, DEFAULT_MAX_OUTPUT, &c->max_output_bytes,
              errors);

    json_t *reuse = json_object_get(raw, "reuseLease");
    if (reuse && !json_is_null(reuse) && !json_is_boolean(reuse))
        add(errors, "reuseLease must be a boolean");
    c->reuse_lease = json_is_true(reuse);

    const char *key;
    json_t *val;
    json_object_foreach(raw, key, val)
    {
        bool known = false;
        for (size_t i = 0; known_keys[i]; i++)
            known = known || !strcmp(key, known_keys[i]);
        if (!known && warnings)
            add(warnings, "ignoring unknown config key \"%.100s\"", key);
    }
    return json_array_size(errors) == nerr0 ? 0 : -1;
}

void bw_config_free(struct bw_config *c)
{
    free(c->rootfs);
    for (size_t i = 0; i < c->n_ro_binds; i++) {
        free(c->ro_binds[i]);
        free(c->ro_bind_src[i]);
    }
    memset(c, 0, sizeof(*c));
}

const char *bw_network_name(enum bw_network n)
{
    return n == BW_NET_HOST ? "host" : n == BW_NET_API_ONLY ? "api-only" : "none";
}

json_t *bw_config_to_json(const struct bw_config *c)
{
    json_t *binds = json_array();
    for (size_t i = 0; i < c->n_ro_binds; i++)
        json_array_append_new(binds, json_string(c->ro_binds[i]));
    json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:I, s:b, s:I, s:I}", "network",
                          bw_network_name(c->network), "readOnlyBinds", binds, "memoryMb",
                          (json_int_t)c->memory_mb, "pids", (json_int_t)c->pids, "timeoutMs",
                          (json_int_t)c->timeout_ms, "reuseLease", c->reuse_lease, "leaseTtlSec",
                          (json_int_t)c->lease_ttl_sec, "maxOutputBytes",
                          (json_int_t)c->max_output_bytes);
    if (!o)
        return NULL;
    if (c->rootfs)
        json_object_set_new(o, "rootfs", json_string(c->rootfs));
    if (c->cpu_weight)
        json_object_set_new(o, "cpuWeight", json_integer(c->cpu_weight));
    if (c->cpu_quota_percent)
        json_object_set_new(o, "cpuQuotaPercent", json_integer(c->cpu_quota_percent));
    return o;
}
