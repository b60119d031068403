/*
 * The bubblewrap sandbox provider: real namespace isolation on one Linux
 * machine (docs/bwrap-sandbox.md).
 *
 * A lease is a directory DATA/leases/<uuid>/ holding workspace/, home/,
 * tmp/ (bound into the sandbox), etc/ (generated passwd, group, hosts,
 * bound read-only), run/ (api-only sockets) and the ownership marker
 * .paperclip-bwrap-lease (JSON: providerLeaseId, cgroups, expiry). The
 * marker sits outside every bind, so nothing in a sandbox can forge it.
 * State lives on disk only, so a restarted worker serves old leases.
 *
 * Every execute runs one `bwrap` whose arguments come through a memfd
 * (--args), so neither the command line nor the environment values are
 * visible in the host's process list. The bwrap process joins a fresh
 * per-exec cgroup below the lease cgroup before exec (the pre_exec hook),
 * so limits apply from the first instruction and the exec's processes can
 * be killed without touching concurrent execs of the same lease.
 */
#include "bwrap_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MARKER ".paperclip-bwrap-lease"
#define CG_PREFIX "paperclip-bwrap-"
#define SANDBOX_UID "1000"
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define KILL_GRACE_MS 2000
#define MAX_ARGS 4096
#define MAX_ENV 1024
#define MAX_CMD_BYTES (8 << 20)

static char data_dir[1024];
static char bwrap_path[PATH_MAX];
static char self_exe[PATH_MAX];
static atomic_uint exec_counter;

/* ---- small helpers ---- */

static const char *str_or_null(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t now_ms_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

/* The lease uuid at the end of "bwrap://<scope>/<uuid>", or NULL. The uuid
 * is the only part used to build paths, so nothing else in a host-supplied
 * id can steer us to another directory. */
static const char *lease_uuid(const char *id)
{
    if (!id || strncmp(id, "bwrap://", 8) != 0)
        return NULL;
    const char *slash = strrchr(id, '/');
    return slash && is_uuid(slash + 1) ? slash + 1 : NULL;
}

static void lease_path(char *out, size_t cap, const char *uuid, const char *sub)
{
    snprintf(out, cap, "%s/leases/%s%s%s", data_dir, uuid, sub ? "/" : "", sub ? sub : "");
}

/* An absolute sandbox path without ".", ".." or empty components, inside
 * /workspace. */
static bool workspace_path_ok(const char *s, size_t len)
{
    if (strlen(s) != len || len > 4096 || strncmp(s, "/workspace", 10) != 0 ||
        (s[10] != '\0' && s[10] != '/'))
        return false;
    for (const char *p = s; *p; p++) {
        if (*p != '/')
            continue;
        const char *c = p + 1;
        size_t cl = strcspn(c, "/");
        if ((cl == 0 && c[0] != '\0') || (cl == 1 && c[0] == '.') ||
            (cl == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (cl == 0 && c[0] == '\0' && p != s + len - 1)
            return false;
    }
    return true;
}

static int write_text_file(const char *path, const char *text, pc_plugin_error *err)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return pc_plugin_error_set(err, 0, "cannot create %s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int e = errno;
    close(fd);
    if (w != (ssize_t)n || rename(tmp, path) < 0) {
        unlink(tmp);
        return pc_plugin_error_set(err, 0, "cannot write %s: %s", path,
                                   strerror(w != (ssize_t)n ? e : errno));
    }
    return 0;
}

/*
 * Execs running in this worker, by lease. Destroy and release kill them
 * through their process groups even when no cgroup exists (rlimit mode);
 * with cgroups this is a second, cheaper path. Killing bwrap is enough:
 * its child dies by --die-with-parent and with it the pid namespace.
 */
struct running {
    struct running *next;
    char uuid[40];
    volatile pid_t *pid;
};
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static struct running *running_list;

static void running_add(struct running *r)
{
    pthread_mutex_lock(&running_lock);
    r->next = running_list;
    running_list = r;
    pthread_mutex_unlock(&running_lock);
}

static void running_del(struct running *r)
{
    pthread_mutex_lock(&running_lock);
    for (struct running **pp = &running_list; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&running_lock);
}

static void running_kill(const char *uuid)
{
    pthread_mutex_lock(&running_lock);
    for (struct running *r = running_list; r; r = r->next) {
        pid_t pid = *r->pid;
        if (pid > 0 && !strcmp(r->uuid, uuid))
            kill(-pid, SIGKILL);
    }
    pthread_mutex_unlock(&running_lock);
}

/* ---- the marker ---- */

/* Reads the marker of lease `uuid` (new reference), or NULL when the lease
 * directory or its marker is missing or not ours. */
static json_t *marker_load(const char *uuid)
{
    char path[PATH_MAX];
    lease_path(path, sizeof(path), uuid, MARKER);
    json_error_t je;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(m) || !str_or_null(m, "providerLeaseId")) {
        json_decref(m);
        return NULL;
    }
    return m;
}

static int marker_save(const char *uuid, json_t *m, pc_plugin_error *err)
{
    char path[PATH_MAX];
    lease_path(path, sizeof(path), uuid, MARKER);
    char *text = json_dumps(m, JSON_COMPACT);
    if (!text)
        return pc_plugin_error_set(err, 0, "out of memory");
    int rc = write_text_file(path, text, err);
    free(text);
    return rc;
}

/* The cgroup paths in a marker or metadata object that are really ours for
 * lease `uuid`; anything else is ignored rather than trusted. */
static void cgroups_from_json(json_t *arr, const char *uuid, struct bw_cgroups *cg)
{
    char name[64];
    snprintf(name, sizeof(name), CG_PREFIX "%s", uuid);
    memset(cg, 0, sizeof(*cg));
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (cg->n < BW_MAX_CGROUPS && json_is_string(v) &&
            bw_cg_path_is_ours(json_string_value(v), name))
            cg->paths[cg->n++] = strdup(json_string_value(v));
    }
}

static json_t *cgroups_to_json(const struct bw_cgroups *cg)
{
    json_t *a = json_array();
    for (size_t i = 0; i < cg->n; i++)
        json_array_append_new(a, json_string(cg->paths[i]));
    return a;
}

/* ---- config from params ---- */

/* The operator's policy from the instance config, then the driver config
 * checked against it; errors of both end up in `errors`. */
static int parse_with_policy(pc_plugin_ctx *ctx, json_t *params, struct bw_config *c,
                             struct bw_policy *pol, json_t *errors, json_t *warnings)
{
    int prc = bw_policy_parse(ctx ? pc_plugin_ctx_config(ctx) : NULL, data_dir, pol, errors);
    int crc = bw_config_parse(json_object_get(params, "config"), pol, c, errors, warnings);
    return prc < 0 || crc < 0 ? -1 : 0;
}

static int config_from(pc_plugin_ctx *ctx, json_t *params, struct bw_config *c,
                       struct bw_policy *pol_out, pc_plugin_error *err)
{
    json_t *errors = json_array();
    struct bw_policy pol;
    int rc = parse_with_policy(ctx, params, c, &pol, errors, NULL);
    if (pol_out)
        *pol_out = pol;
    else
        bw_policy_free(&pol);
    if (rc < 0) {
        pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "invalid bwrap config: %s",
                            json_string_value(json_array_get(errors, 0)));
        err->data = json_pack("{s:O}", "errors", errors);
    }
    json_decref(errors);
    return rc;
}

/* ---- lease creation ---- */

/* Copies a regular file of at most 4 MiB (following symlinks at the
 * source, as /etc/localtime is one); a missing source is skipped. */
static void copy_small_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0)
        return;
    if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (4 << 20)) {
        close(in);
        return;
    }
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    bool ok = out >= 0;
    char buf[65536];
    ssize_t n;
    while (ok && (n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0 && write(out, buf, (size_t)n) == n;
    }
    close(in);
    if (out >= 0)
        close(out);
    if (!ok || rename(tmp, dst) < 0)
        unlink(tmp);
}

static int make_lease_dirs(const char *uuid, pc_plugin_error *err)
{
    static const char *const subs[] = { "workspace", "home", "tmp", "etc", "run" };
    char path[PATH_MAX];
    lease_path(path, sizeof(path), uuid, NULL);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return pc_plugin_error_set(err, 0, "cannot create %s: %s", path, strerror(errno));
    for (size_t i = 0; i < sizeof(subs) / sizeof(*subs); i++) {
        lease_path(path, sizeof(path), uuid, subs[i]);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return pc_plugin_error_set(err, 0, "cannot create %s: %s", path, strerror(errno));
    }
    /* /tmp inside is world-writable with the sticky bit, like a real one. */
    lease_path(path, sizeof(path), uuid, "tmp");
    chmod(path, 01777);
    /* Minimal identity files: the sandbox user and nothing of the host's. */
    static const struct {
        const char *name, *text;
    } files[] = {
        { "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                        "agent:x:" SANDBOX_UID ":" SANDBOX_UID ":agent:/home/agent:/bin/sh\n"
                        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" },
        { "etc/group", "root:x:0:\nagent:x:" SANDBOX_UID ":\nnogroup:x:65534:\n" },
        { "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n127.0.1.1 sandbox\n" },
        { "etc/hostname", "sandbox\n" },
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
        lease_path(path, sizeof(path), uuid, files[i].name);
        if (write_text_file(path, files[i].text, err) < 0)
            return -1;
    }
    /* The few host /etc files programs need (loader cache, name service,
     * time zone), copied so that the sandbox's /etc is one bind mount
     * instead of one per file: every mount costs bwrap ~50 us. Refreshed
     * on every acquire and resume. No secrets are among them. */
    static const char *const copies[] = { "ld.so.cache", "ld.so.conf", "nsswitch.conf",
                                          "localtime", "timezone", "protocols", "services",
                                          "mime.types", "host.conf", "gai.conf" };
    for (size_t i = 0; i < sizeof(copies) / sizeof(*copies); i++) {
        char src[64], rel[64];
        snprintf(src, sizeof(src), "/etc/%s", copies[i]);
        snprintf(rel, sizeof(rel), "etc/%s", copies[i]);
        lease_path(path, sizeof(path), uuid, rel);
        copy_small_file(src, path);
    }
    /* Mount points for the host directories bound at exec time, and for
     * resolv.conf (bound only with network "host"). */
    static const char *const mnt_dirs[] = { "etc/ssl", "etc/ca-certificates", "etc/alternatives",
                                            "etc/ld.so.conf.d" };
    for (size_t i = 0; i < sizeof(mnt_dirs) / sizeof(*mnt_dirs); i++) {
        lease_path(path, sizeof(path), uuid, mnt_dirs[i]);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return pc_plugin_error_set(err, 0, "cannot create %s: %s", path, strerror(errno));
    }
    lease_path(path, sizeof(path), uuid, "etc/resolv.conf");
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0)
        close(fd);
    return 0;
}

static json_t *lease_metadata(const char *uuid, const char *id, const struct bw_config *c,
                              const struct bw_cgroups *cg, bool resumed)
{
    char dir[PATH_MAX];
    lease_path(dir, sizeof(dir), uuid, NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:I}", "provider",
                     BW_DRIVER, "providerLeaseId", id, "leaseId", uuid, "leaseDir", dir,
                     "remoteCwd", "/workspace", "network", bw_network_name(c->network), "cgroups",
                     cgroups_to_json(cg), "reuseLease", c->reuse_lease, "resumedLease", resumed,
                     "memoryMb", (json_int_t)c->memory_mb, "pids", (json_int_t)c->pids);
}

static json_t *lease_result(const char *uuid, const char *id, const struct bw_config *c,
                            const struct bw_cgroups *cg, bool resumed, int64_t expires_ms)
{
    json_t *meta = lease_metadata(uuid, id, c, cg, resumed);
    json_object_set_new(meta, "cgroupMode", json_string(cg->mode));
    json_t *exp = json_null();
    if (expires_ms > 0) {
        struct timespec ts = { (time_t)(expires_ms / 1000), (long)(expires_ms % 1000) * 1000000 };
        char buf[32];
        exp = json_string(pc_plugin_iso8601(&ts, buf));
    }
    return json_pack("{s:s, s:o, s:o}", "providerLeaseId", id, "metadata", meta, "expiresAt", exp);
}

/* Removes lease `uuid`: kills its processes, removes its cgroups and its
 * directory. Only a directory carrying our marker is deleted. Missing
 * pieces are fine (destroy is idempotent). */
static int lease_remove(const char *uuid, json_t *meta_cgroups, pc_plugin_error *err)
{
    char dir[PATH_MAX];
    lease_path(dir, sizeof(dir), uuid, NULL);
    json_t *m = marker_load(uuid);
    struct bw_cgroups cg;
    cgroups_from_json(m ? json_object_get(m, "cgroups") : meta_cgroups, uuid, &cg);
    int rc = 0;
    running_kill(uuid);
    if (cg.n && bw_cg_remove_tree(cg.paths, cg.n) < 0)
        rc = pc_plugin_error_set(err, 0, "cannot remove every cgroup of lease %s", uuid);
    bw_cg_free(&cg);
    struct stat st;
    if (m) {
        if (pc_plugin_rm_rf(dir, err) < 0)
            rc = -1;
    } else if (lstat(dir, &st) == 0) {
        rc = pc_plugin_error_set(err, 0, "refusing to remove %s: no ownership marker", dir);
    }
    json_decref(m);
    return rc;
}

/* ---- hooks ---- */

static int find_in_path(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    while (*path) {
        size_t l = strcspn(path, ":");
        if (l && snprintf(out, cap, "%.*s/%s", (int)l, path, name) < (int)cap &&
            access(out, X_OK) == 0)
            return 0;
        path += l + (path[l] == ':');
    }
    return -1;
}

static int bw_setup(pc_plugin_ctx *ctx, pc_plugin_error *err)
{
    (void)ctx;
    const char *d = getenv("PAPERCLIP_PLUGIN_DATA_DIR");
    const char *xdg = getenv("XDG_STATE_HOME");
    if (d && d[0] == '/')
        snprintf(data_dir, sizeof(data_dir), "%s", d);
    else if (xdg && xdg[0] == '/')
        snprintf(data_dir, sizeof(data_dir), "%s/paperclip/bwrap-sandbox", xdg);
    else if (geteuid() == 0)
        snprintf(data_dir, sizeof(data_dir), "/var/lib/paperclip/bwrap-sandbox");
    else
        snprintf(data_dir, sizeof(data_dir), "%s/paperclip-bwrap-sandbox-%u", pc_plugin_tmpdir(),
                 (unsigned)geteuid());
    char leases[PATH_MAX + 8];
    snprintf(leases, sizeof(leases), "%s/leases", data_dir);
    if (pc_plugin_mkdir_p(leases, err) < 0)
        return -1;
    chmod(data_dir, 0700);
    const char *b = getenv("PAPERCLIP_BWRAP");
    if (b && b[0] == '/')
        snprintf(bwrap_path, sizeof(bwrap_path), "%s", b);
    else if (find_in_path("bwrap", bwrap_path, sizeof(bwrap_path)) < 0)
        bwrap_path[0] = '\0'; /* reported by probe; execute fails clearly */
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    self_exe[n > 0 ? n : 0] = '\0';
    pc_plugin_log(ctx, PC_PLUGIN_LOG_INFO, "bwrap sandbox provider ready (data dir %s)", data_dir);
    return 0;
}

static int bw_health(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)params, (void)err;
    bool ok = bwrap_path[0] != '\0';
    *result = json_pack("{s:s, s:s}", "status", ok ? "ok" : "degraded", "message",
                        ok ? "bwrap sandbox provider healthy" : "bwrap is not installed");
    return 0;
}

static int bw_validate(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)err;
    json_t *errors = json_array(), *warnings = json_array();
    struct bw_config c;
    struct bw_policy pol;
    int rc = parse_with_policy(ctx, params, &c, &pol, errors, warnings);
    bw_policy_free(&pol);
    if (rc == 0) {
        *result = json_pack("{s:b, s:o, s:o}", "ok", 1, "normalizedConfig", bw_config_to_json(&c),
                            "warnings", warnings);
        json_decref(errors);
    } else {
        *result = json_pack("{s:b, s:o, s:o}", "ok", 0, "errors", errors, "warnings", warnings);
    }
    bw_config_free(&c);
    return 0;
}

static json_t *diag(const char *sev, const char *code, const char *msg)
{
    return json_pack("{s:s, s:s, s:s}", "severity", sev, "code", code, "message", msg);
}

/* A pre_exec that does nothing. Passing one makes the SDK fork() rather
 * than clone(CLONE_VM|CLONE_VFORK) on a private stack, which ASan builds
 * misreport as a stack-buffer-overflow in the child (see the SDK notes in
 * docs/bwrap-sandbox.md); execute always has a real pre_exec anyway. */
static int no_pre_exec(void *arg)
{
    (void)arg;
    return 0;
}

/* Runs `bwrap ... true` the way execute would, to see whether this kernel
 * lets us create the namespaces. */
static bool try_bwrap(char *msg, size_t cap)
{
    char *argv[] = { bwrap_path, "--unshare-all", "--unshare-user", "--die-with-parent",
                     "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink",
                     "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc",
                     "--dev", "/dev", "--", "/usr/bin/true", NULL };
    char *envp[] = { "PATH=" DEFAULT_PATH, NULL };
    pc_plugin_exec_opts o = { .argv = argv, .envp = envp, .timeout_ms = 10000,
                              .max_output = 4096, .pre_exec = no_pre_exec };
    pc_plugin_exec_result r;
    pc_plugin_error e = { 0 };
    bool ok = pc_plugin_exec(&o, &r, &e) == 0 && r.exit_code == 0;
    if (!ok)
        snprintf(msg, cap, "%s", e.message[0] ? e.message : r.err ? r.err : "bwrap failed");
    pc_plugin_exec_result_free(&r);
    pc_plugin_error_clear(&e);
    return ok;
}

static int bw_probe(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)err;
    json_t *errors = json_array();
    struct bw_config c;
    struct bw_policy pol;
    bool cfg_ok = parse_with_policy(ctx, params, &c, &pol, errors, NULL) == 0;
    bool seccomp = pol.seccomp;
    bw_policy_free(&pol);
    json_t *diags = json_array();
    char msg[1200];
    bool userns = false;
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) json_array_append_new(
        diags, diag("error", "invalid_config", json_string_value(e)));
    if (!bwrap_path[0]) {
        json_array_append_new(diags, diag("error", "bwrap_missing",
                                          "bwrap is not installed (Debian: apt-get install "
                                          "bubblewrap)"));
    } else {
        userns = try_bwrap(msg, sizeof(msg));
        char line[PATH_MAX + 1300];
        snprintf(line, sizeof(line), "%s: %s", userns ? "bwrap can create namespaces"
                                                      : "bwrap cannot create namespaces",
                 userns ? bwrap_path : msg);
        json_array_append_new(diags, diag(userns ? "info" : "error",
                                          userns ? "userns_ok" : "userns_denied", line));
    }
    json_t *cgd = bw_cg_describe();
    const char *mode = str_or_null(cgd, "mode");
    snprintf(msg, sizeof(msg), "%s",
             !strcmp(mode, "v2") ? "limits use cgroup v2 (memory.max, pids.max, cpu.max)"
             : !strcmp(mode, "v1")
                 ? "limits use cgroup v1 memory and pids (+cpu) hierarchies"
                 : "no writable cgroup: only RLIMIT_AS limits memory, pids are not limited");
    json_array_append_new(diags, diag(!strcmp(mode, "rlimit") ? "warning" : "info",
                                      "cgroup_mode", msg));
    char leases[PATH_MAX + 8];
    snprintf(leases, sizeof(leases), "%s/leases", data_dir);
    bool dir_ok = access(leases, W_OK) == 0;
    if (!dir_ok)
        json_array_append_new(diags, diag("error", "data_dir", "the data directory is not writable"));
    char sw[400] = "";
    int sfd = seccomp ? bw_seccomp_fd(sw, sizeof(sw)) : -1;
    if (sfd >= 0)
        close(sfd);
    json_array_append_new(diags,
                          diag(!seccomp ? "warning" : sfd >= 0 ? "info" : "error", "seccomp",
                               !seccomp    ? "the seccomp filter is turned off (instance config)"
                               : sfd >= 0 ? "commands run under the default seccomp filter"
                                           : sw));
    bool ok = cfg_ok && userns && dir_ok && (!seccomp || sfd >= 0);
    char summary[256];
    snprintf(summary, sizeof(summary), ok ? "bwrap sandbox ready (network %s, limits via %s)."
                                          : "bwrap sandbox is not usable here (network %s, limits via %s).",
             bw_network_name(c.network), mode);
    *result = json_pack("{s:b, s:s, s:o, s:{s:s, s:s?, s:b, s:s, s:O, s:s, s:o}}", "ok", ok,
                        "summary", summary, "diagnostics", diags, "metadata", "provider",
                        BW_DRIVER, "bwrapPath", bwrap_path[0] ? bwrap_path : NULL,
                        "userNamespaces", userns, "cgroupMode", mode, "cgroups", cgd, "dataDir",
                        data_dir, "config", bw_config_to_json(&c));
    json_decref(cgd);
    json_decref(errors);
    bw_config_free(&c);
    return 0;
}

/* A lease-id scope segment: the run or environment id, restricted to
 * characters that need no escaping. */
static void scope_of(const char *s, char *out, size_t cap)
{
    size_t j = 0;
    for (; s && *s && j + 1 < cap && j < 64; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '-' || *s == '_' || *s == '.')
            out[j++] = *s;
    if (!j)
        j = (size_t)snprintf(out, cap, "lease");
    out[j] = '\0';
}

static int bw_acquire(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    struct bw_config c;
    if (config_from(ctx, params, &c, NULL, err) < 0) {
        bw_config_free(&c);
        return -1;
    }
    char uuid[37], scope[80], id[160], name[64];
    pc_plugin_uuid_v4(uuid);
    scope_of(c.reuse_lease ? str_or_null(params, "environmentId") : str_or_null(params, "runId"),
             scope, sizeof(scope));
    snprintf(id, sizeof(id), "bwrap://%s/%s", scope, uuid);
    snprintf(name, sizeof(name), CG_PREFIX "%s", uuid);
    if (make_lease_dirs(uuid, err) < 0) {
        char dir[PATH_MAX];
        lease_path(dir, sizeof(dir), uuid, NULL);
        pc_plugin_error e2 = { 0 };
        pc_plugin_rm_rf(dir, &e2);
        bw_config_free(&c);
        return -1;
    }
    struct bw_cgroups cg;
    bw_cg_create(name, &c, &cg);
    int64_t created = now_ms_real();
    int64_t expires = c.lease_ttl_sec ? created + c.lease_ttl_sec * 1000 : 0;
    json_t *m = json_pack("{s:s, s:I, s:I, s:o, s:s}", "providerLeaseId", id, "createdAtMs",
                          (json_int_t)created, "expiresAtMs", (json_int_t)expires, "cgroups",
                          cgroups_to_json(&cg), "cgroupMode", cg.mode);
    int rc = marker_save(uuid, m, err);
    json_decref(m);
    if (rc < 0) {
        bw_cg_remove_tree(cg.paths, cg.n);
        char dir[PATH_MAX];
        lease_path(dir, sizeof(dir), uuid, NULL);
        pc_plugin_error e2 = { 0 };
        pc_plugin_rm_rf(dir, &e2);
    } else {
        *result = lease_result(uuid, id, &c, &cg, false, expires);
    }
    bw_cg_free(&cg);
    bw_config_free(&c);
    return rc;
}

static json_t *expired_result(void)
{
    return json_pack("{s:n, s:{s:b, s:s}}", "providerLeaseId", "metadata", "expired", 1,
                     "provider", BW_DRIVER);
}

static int bw_resume(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    const char *id = str_or_null(params, "providerLeaseId");
    const char *uuid = lease_uuid(id);
    json_t *m = uuid ? marker_load(uuid) : NULL;
    if (!m || strcmp(str_or_null(m, "providerLeaseId"), id) != 0) {
        json_decref(m);
        *result = expired_result();
        return 0;
    }
    json_int_t exp = json_integer_value(json_object_get(m, "expiresAtMs"));
    if (exp > 0 && now_ms_real() >= exp) {
        /* Past its TTL: clean it up now rather than leave it to a sweep. */
        pc_plugin_error e2 = { 0 };
        lease_remove(uuid, NULL, &e2);
        pc_plugin_error_clear(&e2);
        json_decref(m);
        *result = expired_result();
        return 0;
    }
    struct bw_config c;
    if (config_from(ctx, params, &c, NULL, err) < 0) {
        bw_config_free(&c);
        json_decref(m);
        return -1;
    }
    int rc = make_lease_dirs(uuid, err);
    struct bw_cgroups cg;
    char name[64];
    snprintf(name, sizeof(name), CG_PREFIX "%s", uuid);
    /* Re-create the cgroups (they vanish on reboot) with the current limits. */
    bw_cg_create(name, &c, &cg);
    if (rc == 0) {
        json_object_set_new(m, "cgroups", cgroups_to_json(&cg));
        json_object_set_new(m, "cgroupMode", json_string(cg.mode));
        rc = marker_save(uuid, m, err);
    }
    if (rc == 0)
        *result = lease_result(uuid, id, &c, &cg, true, exp);
    bw_cg_free(&cg);
    bw_config_free(&c);
    json_decref(m);
    return rc;
}

static const char *uuid_from_params(json_t *params)
{
    const char *u = lease_uuid(str_or_null(params, "providerLeaseId"));
    if (!u) {
        json_t *meta = json_object_get(params, "leaseMetadata");
        u = lease_uuid(str_or_null(meta, "providerLeaseId"));
    }
    return u;
}

static int bw_destroy(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)result;
    const char *uuid = uuid_from_params(params);
    if (!uuid)
        return 0; /* nothing of ours: destroy ignores not-found */
    return lease_remove(uuid, json_object_get(json_object_get(params, "leaseMetadata"), "cgroups"),
                        err);
}

static int bw_release(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    const char *uuid = uuid_from_params(params);
    if (!uuid)
        return 0;
    json_t *cfg = json_object_get(params, "config");
    json_t *meta = json_object_get(params, "leaseMetadata");
    bool reuse = json_is_true(json_object_get(cfg, "reuseLease")) ||
                 (!json_object_get(cfg, "reuseLease") &&
                  json_is_true(json_object_get(meta, "reuseLease")));
    if (!reuse)
        return bw_destroy(ctx, params, result, err);
    /* Keep the directory, but nothing may keep running between runs. */
    json_t *m = marker_load(uuid);
    if (!m)
        return 0;
    struct bw_cgroups cg;
    cgroups_from_json(json_object_get(m, "cgroups"), uuid, &cg);
    running_kill(uuid);
    int left = cg.n ? bw_cg_kill_tree(cg.paths, cg.n, 5000) : 0;
    bw_cg_free(&cg);
    json_decref(m);
    if (left)
        return pc_plugin_error_set(err, 0, "cannot stop %d processes of lease %s", left, uuid);
    return 0;
}

/* mkdir -p of `rel` (relative, already validated) under the directory fd
 * `base`, never following a symlink: the workspace is writable by the
 * sandbox, which could plant a link to a host path. */
static int mkdir_beneath(int base, const char *rel)
{
    char buf[4200];
    snprintf(buf, sizeof(buf), "%s", rel);
    int dfd = dup(base);
    for (char *sv, *c = strtok_r(buf, "/", &sv); c && dfd >= 0; c = strtok_r(NULL, "/", &sv)) {
        if (mkdirat(dfd, c, 0755) < 0 && errno != EEXIST) {
            close(dfd);
            return -1;
        }
        int nfd = openat(dfd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dfd);
        dfd = nfd;
    }
    if (dfd < 0)
        return -1;
    close(dfd);
    return 0;
}

static int bw_realize(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx;
    json_t *lease = json_object_get(params, "lease");
    const char *uuid = lease_uuid(str_or_null(lease, "providerLeaseId"));
    if (!uuid)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "lease.providerLeaseId is not a bwrap lease");
    json_t *m = marker_load(uuid);
    if (!m)
        return pc_plugin_error_set(err, 0, "lease %s is gone", uuid);
    json_decref(m);
    const char *cwd = "/workspace";
    json_t *ws = json_object_get(params, "workspace");
    json_t *rp = json_object_get(ws, "remotePath");
    json_t *mc = json_object_get(json_object_get(lease, "metadata"), "remoteCwd");
    if (json_is_string(rp) && workspace_path_ok(json_string_value(rp), json_string_length(rp)))
        cwd = json_string_value(rp);
    else if (json_is_string(mc) &&
             workspace_path_ok(json_string_value(mc), json_string_length(mc)))
        cwd = json_string_value(mc);
    char dir[PATH_MAX];
    lease_path(dir, sizeof(dir), uuid, "workspace");
    int base = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = base < 0 ? -1 : (cwd[10] ? mkdir_beneath(base, cwd + 11) : 0);
    if (base >= 0)
        close(base);
    if (rc < 0)
        return pc_plugin_error_set(err, 0, "cannot create %s in the lease: %s", cwd,
                                   strerror(errno));
    *result = json_pack("{s:s, s:{s:s, s:s}}", "cwd", cwd, "metadata", "provider", BW_DRIVER,
                        "remoteCwd", cwd);
    return 0;
}

/* ---- execute ---- */

/* A growable list of strings; every string is owned by the list. */
struct strv {
    char **v;
    size_t n, cap;
    bool oom;
};

static void sv_add(struct strv *s, const char *str)
{
    if (s->oom)
        return;
    if (s->n + 2 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        char **nv = realloc(s->v, nc * sizeof(*nv));
        if (!nv) {
            s->oom = true;
            return;
        }
        s->v = nv;
        s->cap = nc;
    }
    char *d = strdup(str);
    if (!d) {
        s->oom = true;
        return;
    }
    s->v[s->n++] = d;
    s->v[s->n] = NULL;
}

static void sv_add2(struct strv *s, const char *a, const char *b)
{
    sv_add(s, a);
    sv_add(s, b);
}

static void sv_add3(struct strv *s, const char *a, const char *b, const char *c)
{
    sv_add(s, a);
    sv_add(s, b);
    sv_add(s, c);
}

static void sv_free(struct strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static bool env_key_ok(const char *k)
{
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return false;
    for (k++; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
              *k == '_'))
            return false;
    return true;
}

/* Host directories bound read-only, or re-created as symlinks, exactly as
 * the host has them (merged-/usr hosts have symlinks, older ones dirs). */
static void add_host_root(struct strv *a)
{
    static const char *const tops[] = { "bin", "sbin", "lib", "lib64", "lib32", "libx32" };
    sv_add3(a, "--ro-bind", "/usr", "/usr");
    for (size_t i = 0; i < sizeof(tops) / sizeof(*tops); i++) {
        char p[64], target[PATH_MAX];
        snprintf(p, sizeof(p), "/%s", tops[i]);
        struct stat st;
        if (lstat(p, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(p, target, sizeof(target) - 1);
            if (n > 0) {
                target[n] = '\0';
                sv_add3(a, "--symlink", target, p);
            }
        } else if (S_ISDIR(st.st_mode)) {
            sv_add3(a, "--ro-bind", p, p);
        }
    }
}

/* A custom root: every top-level entry of `rootfs` except the ones the
 * sandbox provides itself. Binding entries one by one (rather than the
 * whole tree on /) keeps bwrap's own tmpfs as the root, so mount points
 * such as /workspace can be created on a read-only image. */
static void add_rootfs(struct strv *a, const char *rootfs)
{
    static const char *const skip[] = { "workspace", "home", "tmp", "proc", "dev", "run", "sys",
                                        NULL };
    DIR *d = opendir(rootfs);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        bool skipped = false;
        for (size_t i = 0; skip[i]; i++)
            skipped = skipped || !strcmp(e->d_name, skip[i]);
        if (skipped)
            continue;
        char src[PATH_MAX], dst[PATH_MAX], target[PATH_MAX];
        snprintf(src, sizeof(src), "%s/%s", rootfs, e->d_name);
        snprintf(dst, sizeof(dst), "/%s", e->d_name);
        struct stat st;
        if (lstat(src, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(src, target, sizeof(target) - 1);
            if (n > 0) {
                target[n] = '\0';
                sv_add3(a, "--symlink", target, dst);
            }
        } else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
            sv_add3(a, "--ro-bind", src, dst);
        }
    }
    closedir(d);
}

struct exec_job {
    /* cgroup.procs files of this exec's sub-cgroups, for pre_exec. */
    char procs[BW_MAX_CGROUPS][PATH_MAX];
    char *dirs[BW_MAX_CGROUPS];
    size_t n;
    bool rlimit;
    struct rlimit as;
    /* Watchdog. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done, timed_out, killed;
    int64_t timeout_ms;
    /* The bwrap pid, written by the child in pre_exec into memory shared
     * with the worker (the SDK forks before pre_exec). */
    volatile pid_t *pid_slot;
};

/* In the forked child, before exec of bwrap: async-signal-safe only. */
static int join_cgroups(void *arg)
{
    struct exec_job *j = arg;
    if (j->pid_slot)
        *j->pid_slot = getpid(); /* after setsid: also the process group */
    for (size_t i = 0; i < j->n; i++) {
        int fd = open(j->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            return errno ? errno : EIO;
        ssize_t w = write(fd, "0", 1);
        int e = errno;
        close(fd);
        if (w != 1)
            return e ? e : EIO;
    }
    if (j->rlimit && setrlimit(RLIMIT_AS, &j->as) < 0)
        return errno;
    return 0;
}

static void *watchdog(void *arg)
{
    struct exec_job *j = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (j->timeout_ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(j->timeout_ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&j->lock);
    while (!j->done && pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT) {
    }
    if (j->done) {
        pthread_mutex_unlock(&j->lock);
        return NULL;
    }
    j->timed_out = true;
    pthread_mutex_unlock(&j->lock);
    /* SIGTERM reaches the command and everything it started, but not the
     * outer bwrap (our own child): if bwrap died first its
     * --die-with-parent would SIGKILL the command with no chance to clean
     * up. bwrap's pid 1 ignores SIGTERM and exits when the command does. */
    bw_cg_signal_tree(j->dirs, j->n, SIGTERM, getpid());
    clock_gettime(CLOCK_REALTIME, &ts);
    ns = ts.tv_nsec + (int64_t)(KILL_GRACE_MS % 1000) * 1000000;
    ts.tv_sec += KILL_GRACE_MS / 1000 + (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_mutex_lock(&j->lock);
    while (!j->done && pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT) {
    }
    bool done = j->done;
    pthread_mutex_unlock(&j->lock);
    if (!done) {
        j->killed = bw_cg_count_procs(j->dirs, j->n) > 0;
        bw_cg_kill_tree(j->dirs, j->n, 5000);
    }
    return NULL;
}

/* Parses "http://HOST:PORT[/path]" into its parts; false for anything else.
 * IPv6 literals come bracketed. */
static bool parse_api_url(const char *url, char *host, size_t hcap, char *port, size_t pcap,
                          const char **path)
{
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *h = url + 7, *hend, *p;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':')
            return false;
        h++;
        p = hend + 2;
    } else {
        hend = strchr(h, ':');
        if (!hend)
            return false;
        p = hend + 1;
    }
    size_t hl = (size_t)(hend - h), pl = strspn(p, "0123456789");
    if (!hl || hl >= hcap || !pl || pl > 5 || pl >= pcap || (p[pl] && p[pl] != '/'))
        return false;
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, p, pl);
    port[pl] = '\0';
    if (atoi(port) < 1 || atoi(port) > 65535)
        return false;
    *path = p + pl;
    return true;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Everything one execute needs, from parsed params to the collected
 * result; each step below fills its part and bw_execute releases it all. */
struct exec_run {
    pc_plugin_ctx *ctx; /* the request, for streaming its output */
    struct bw_config c;
    struct bw_policy pol;
    json_t *m; /* lease marker */
    const char *id, *uuid;
    /* params (borrowed from the request) */
    json_t *jcmd, *jargs, *jenv, *jstdin;
    const char *cwd, *api_url;
    bool has_path, has_home;
    int64_t timeout_ms;
    /* cgroups */
    struct bw_cgroups cg;
    struct exec_job job;
    unsigned seq;
    long long pids_before, oom_before;
    /* api-only forwarder */
    struct bw_fwd_host *fwd;
    char sock[PATH_MAX], api_inside[128], aport[8];
    /* bwrap options (through --args) and its command line */
    struct strv args, cmdv;
    int fds[2]; /* the --args memfd and the --seccomp memfd (-1: none) */
    char fdarg[16];
    /* outcome */
    pc_plugin_exec_result res;
    int left;
    double t_start, t_spawn, t_done;
};

/* Validates the lease and the command, args, cwd, env, stdin and timeout. */
static int exec_parse(pc_plugin_ctx *ctx, json_t *params, struct exec_run *x,
                      pc_plugin_error *err)
{
    if (config_from(ctx, params, &x->c, &x->pol, err) < 0)
        return -1;
    if (!bwrap_path[0])
        return pc_plugin_error_set(err, 0, "bwrap is not installed on this host");
    json_t *lease = json_object_get(params, "lease");
    x->id = str_or_null(lease, "providerLeaseId");
    x->uuid = lease_uuid(x->id);
    x->m = x->uuid ? marker_load(x->uuid) : NULL;
    if (!x->m || strcmp(str_or_null(x->m, "providerLeaseId"), x->id) != 0)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "lease %s does not exist",
                                   x->id ? x->id : "(none)");

    x->jcmd = json_object_get(params, "command");
    if (!json_is_string(x->jcmd) || !json_string_length(x->jcmd) ||
        strlen(json_string_value(x->jcmd)) != json_string_length(x->jcmd))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "command must be a non-empty string without NUL bytes");
    x->jargs = json_object_get(params, "args");
    if (x->jargs && !json_is_null(x->jargs) &&
        (!json_is_array(x->jargs) || json_array_size(x->jargs) > MAX_ARGS))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "args must be an array of at most %d strings", MAX_ARGS);
    size_t i;
    json_t *v;
    size_t total = json_string_length(x->jcmd);
    json_array_foreach(x->jargs, i, v)
    {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                       "args[%zu] must be a string without NUL bytes", i);
        total += json_string_length(v);
    }
    x->cwd = "/workspace";
    json_t *jcwd = json_object_get(params, "cwd");
    if (jcwd && !json_is_null(jcwd)) {
        if (!json_is_string(jcwd) ||
            !workspace_path_ok(json_string_value(jcwd), json_string_length(jcwd)))
            return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                       "cwd must be an absolute path inside /workspace without "
                                       "\".\" or \"..\" components");
        x->cwd = json_string_value(jcwd);
    }
    x->jenv = json_object_get(params, "env");
    if (x->jenv && !json_is_null(x->jenv) &&
        (!json_is_object(x->jenv) || json_object_size(x->jenv) > MAX_ENV))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "env must be an object of at most %d strings", MAX_ENV);
    const char *k;
    json_object_foreach(x->jenv, k, v)
    {
        if (!env_key_ok(k))
            return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                       "env key \"%.100s\" must match ^[A-Za-z_][A-Za-z0-9_]*$", k);
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                       "env %s must be a string without NUL bytes", k);
        total += strlen(k) + json_string_length(v);
        x->has_path = x->has_path || !strcmp(k, "PATH");
        x->has_home = x->has_home || !strcmp(k, "HOME");
        if (!strcmp(k, "PAPERCLIP_API_URL"))
            x->api_url = json_string_value(v);
    }
    if (total > MAX_CMD_BYTES)
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS,
                                   "command, args and env exceed %d bytes", MAX_CMD_BYTES);
    x->jstdin = json_object_get(params, "stdin");
    if (x->jstdin && !json_is_null(x->jstdin) && !json_is_string(x->jstdin))
        return pc_plugin_error_set(err, PC_RPC_INVALID_PARAMS, "stdin must be a string");
    if (!json_is_string(x->jstdin))
        x->jstdin = NULL;
    x->timeout_ms = x->c.timeout_ms;
    json_t *jt = json_object_get(params, "timeoutMs");
    if (json_is_number(jt)) {
        double d = json_number_value(jt);
        if (d >= 1 && d <= 86400000.0)
            x->timeout_ms = (int64_t)d;
        else if (d > 86400000.0)
            x->timeout_ms = 86400000;
    }
    return 0;
}

/* Reads the OOM and pids-limit counters of the lease cgroups. */
static void read_limit_events(const struct bw_cgroups *cg, long long *pids, long long *oom)
{
    *pids = *oom = -1;
    for (size_t x = 0; x < cg->n; x++) {
        long long pv = bw_cg_read_key(cg->paths[x], "pids.events", "max");
        long long ov = bw_cg_read_key(cg->paths[x], "memory.oom_control", "oom_kill");
        if (ov < 0)
            ov = bw_cg_read_key(cg->paths[x], "memory.events", "oom_kill");
        if (pv >= 0)
            *pids = pv;
        if (ov >= 0)
            *oom = ov;
    }
}

/* The lease's cgroups (re-created if they vanished, e.g. after a reboot)
 * and a fresh per-exec cgroup below each. */
static int exec_cgroups(struct exec_run *x, pc_plugin_error *err)
{
    char cgname[64];
    snprintf(cgname, sizeof(cgname), CG_PREFIX "%s", x->uuid);
    cgroups_from_json(json_object_get(x->m, "cgroups"), x->uuid, &x->cg);
    snprintf(x->cg.mode, sizeof(x->cg.mode), "%s",
             str_or_null(x->m, "cgroupMode") ? str_or_null(x->m, "cgroupMode") : "rlimit");
    bool missing = false;
    for (size_t i = 0; i < x->cg.n; i++)
        missing = missing || access(x->cg.paths[i], F_OK) != 0;
    if (missing) {
        bw_cg_free(&x->cg);
        bw_cg_create(cgname, &x->c, &x->cg);
    }
    x->seq = atomic_fetch_add(&exec_counter, 1);
    char sub[64];
    snprintf(sub, sizeof(sub), "exec-%d-%u", (int)getpid(), x->seq);
    struct exec_job *j = &x->job;
    for (size_t i = 0; i < x->cg.n; i++) {
        char d[PATH_MAX];
        if (snprintf(d, sizeof(d), "%s/%s", x->cg.paths[i], sub) >= (int)sizeof(d) ||
            (mkdir(d, 0755) < 0 && errno != EEXIST))
            return pc_plugin_error_set(err, 0, "cannot create cgroup %s: %s", d, strerror(errno));
        j->dirs[j->n] = strdup(d);
        snprintf(j->procs[j->n], PATH_MAX, "%.*s/cgroup.procs", PATH_MAX - 16, d);
        j->n++;
    }
    if (!strcmp(x->cg.mode, "rlimit")) {
        j->rlimit = true;
        j->as.rlim_cur = j->as.rlim_max = (rlim_t)x->c.memory_mb << 20;
    }
    read_limit_events(&x->cg, &x->pids_before, &x->oom_before);
    return 0;
}

/* api-only: a host forwarder on a per-exec socket in the lease dir. */
static int exec_forwarder(struct exec_run *x, pc_plugin_error *err)
{
    char ahost[256];
    const char *apath = "";
    if (x->c.network != BW_NET_API_ONLY || !x->api_url ||
        !parse_api_url(x->api_url, ahost, sizeof(ahost), x->aport, sizeof(x->aport), &apath))
        return 0;
    char rel[64];
    snprintf(rel, sizeof(rel), "run/api-%u.sock", x->seq);
    lease_path(x->sock, sizeof(x->sock), x->uuid, rel);
    x->fwd = bw_fwd_host_start(x->sock, ahost, x->aport, err);
    if (!x->fwd)
        return -1;
    snprintf(x->api_inside, sizeof(x->api_inside), "http://127.0.0.1:%s%.80s", x->aport, apath);
    return 0;
}

/* The sandbox's /etc: the lease's generated files plus the host's TLS
 * trust, or a custom root's own /etc under the generated identity files. */
static void add_etc(struct exec_run *x)
{
    char lp[PATH_MAX];
    struct strv *a = &x->args;
    if (!x->c.rootfs) {
        lease_path(lp, sizeof(lp), x->uuid, "etc");
        sv_add3(a, "--ro-bind", lp, "/etc");
        static const char *const etc[] = { "/etc/ssl", "/etc/ca-certificates",
                                           "/etc/alternatives", "/etc/ld.so.conf.d", NULL };
        for (size_t i = 0; etc[i]; i++)
            sv_add3(a, "--ro-bind-try", etc[i], etc[i]);
    } else {
        /* A custom root keeps its own /etc, but never its users or hosts:
         * the generated files go over the ones the image has. */
        static const char *const gen[] = { "passwd", "group", "hosts", "hostname" };
        for (size_t i = 0; i < sizeof(gen) / sizeof(*gen); i++) {
            char rel[32], dst[32], img[PATH_MAX];
            snprintf(rel, sizeof(rel), "etc/%s", gen[i]);
            snprintf(dst, sizeof(dst), "/etc/%s", gen[i]);
            snprintf(img, sizeof(img), "%.3000s/etc/%s", x->c.rootfs, gen[i]);
            if (access(img, F_OK) != 0)
                continue; /* no mount point in a read-only image */
            lease_path(lp, sizeof(lp), x->uuid, rel);
            sv_add3(a, "--ro-bind", lp, dst);
        }
    }
    if (x->c.network == BW_NET_HOST)
        sv_add3(a, "--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf");
}

/* bwrap's options (passed through --args) and its command line. */
static int exec_build_argv(struct exec_run *x, pc_plugin_error *err)
{
    struct strv *a = &x->args;
    size_t i;
    json_t *v;
    const char *k;
    /* The sandbox environment: exactly the explicit env plus defaults. */
    sv_add(a, "--clearenv");
    if (!x->has_path)
        sv_add3(a, "--setenv", "PATH", DEFAULT_PATH);
    if (!x->has_home)
        sv_add3(a, "--setenv", "HOME", "/home/agent");
    json_object_foreach(x->jenv, k, v)
    {
        const char *val = json_string_value(v);
        if (!strcmp(k, "PAPERCLIP_API_URL") && x->c.network == BW_NET_API_ONLY)
            val = x->api_inside; /* empty when no usable URL was given */
        sv_add3(a, "--setenv", k, val);
    }
    sv_add2(a, "--unshare-all", "--unshare-user");
    if (x->c.network == BW_NET_HOST)
        sv_add(a, "--share-net");
    sv_add2(a, "--uid", SANDBOX_UID);
    sv_add2(a, "--gid", SANDBOX_UID);
    sv_add(a, "--disable-userns");
    sv_add2(a, "--hostname", "sandbox");
    sv_add(a, "--die-with-parent");
    sv_add(a, "--new-session");
    sv_add2(a, "--cap-drop", "ALL");
    if (x->c.rootfs)
        add_rootfs(a, x->c.rootfs);
    else
        add_host_root(a);
    sv_add2(a, "--proc", "/proc");
    sv_add2(a, "--dev", "/dev");
    add_etc(x);
    char lp[PATH_MAX];
    lease_path(lp, sizeof(lp), x->uuid, "tmp");
    sv_add3(a, "--bind", lp, "/tmp");
    lease_path(lp, sizeof(lp), x->uuid, "workspace");
    sv_add3(a, "--bind", lp, "/workspace");
    sv_add2(a, "--dir", "/home");
    lease_path(lp, sizeof(lp), x->uuid, "home");
    sv_add3(a, "--bind", lp, "/home/agent");
    sv_add2(a, "--tmpfs", "/run");
    /* The resolved host path goes to the configured place: a symlink
     * swapped in after validation cannot redirect the bind. */
    for (size_t b = 0; b < x->c.n_ro_binds; b++)
        sv_add3(a, "--ro-bind", x->c.ro_bind_src[b], x->c.ro_binds[b]);
    if (x->fwd) {
        sv_add3(a, "--ro-bind", x->sock, "/run/paperclip/api.sock");
        sv_add3(a, "--ro-bind", self_exe, "/run/paperclip/forward");
    }
    sv_add2(a, "--chdir", x->cwd);

    /* The command itself goes on bwrap's command line (bwrap reads only
     * options from --args); it is as visible in ps as any host command. */
    struct strv *c = &x->cmdv;
    sv_add(c, bwrap_path);
    sv_add2(c, "--args", "");
    if (x->pol.seccomp)
        sv_add2(c, "--seccomp", "");
    sv_add(c, "--");
    if (x->fwd) {
        sv_add3(c, "/run/paperclip/forward", "--forward-in", "/run/paperclip/api.sock");
        sv_add2(c, "127.0.0.1", x->aport);
        sv_add(c, "--");
    }
    sv_add(c, json_string_value(x->jcmd));
    json_array_foreach(x->jargs, i, v) sv_add(c, json_string_value(v));
    if (a->oom || c->oom)
        return pc_plugin_error_set(err, 0, "out of memory");
    return 0;
}

/* The descriptors bwrap reads: its options in a memfd (values such as
 * PAPERCLIP_API_KEY must not appear in /proc/<pid>/cmdline) and the
 * seccomp program. Their numbers replace the "" placeholders. */
static int exec_setup_fds(struct exec_run *x, pc_plugin_error *err)
{
    x->fds[0] = memfd_create("bwrap-args", MFD_CLOEXEC);
    if (x->fds[0] < 0)
        return pc_plugin_error_set(err, 0, "cannot create memfd: %s", strerror(errno));
    for (size_t i = 0; i < x->args.n; i++) {
        size_t l = strlen(x->args.v[i]) + 1;
        if (write(x->fds[0], x->args.v[i], l) != (ssize_t)l)
            return pc_plugin_error_set(err, 0, "cannot write bwrap arguments: %s",
                                       strerror(errno));
    }
    lseek(x->fds[0], 0, SEEK_SET);
    snprintf(x->fdarg, sizeof(x->fdarg), "%d", x->fds[0]);
    free(x->cmdv.v[2]);
    if (!(x->cmdv.v[2] = strdup(x->fdarg)))
        return pc_plugin_error_set(err, 0, "out of memory");
    if (!x->pol.seccomp)
        return 0;
    char why[400];
    x->fds[1] = bw_seccomp_fd(why, sizeof(why));
    if (x->fds[1] < 0)
        return pc_plugin_error_set(err, 0, "%s", why);
    char n[16];
    snprintf(n, sizeof(n), "%d", x->fds[1]);
    free(x->cmdv.v[4]);
    if (!(x->cmdv.v[4] = strdup(n)))
        return pc_plugin_error_set(err, 0, "out of memory");
    return 0;
}

/* Spawns bwrap in the exec cgroup, pumps its output (the SDK's exec),
 * enforces the timeout with the watchdog, and leaves nothing running. */
/* Output goes to the host as it is produced, so a run's log is live. */
static void exec_stream(void *arg, int stream, const char *data, size_t len)
{
    struct exec_run *x = arg;
    pc_plugin_execute_log(x->ctx, stream == 2 ? "stderr" : "stdout", data, len);
}

static int exec_spawn_wait(struct exec_run *x, pc_plugin_error *err)
{
    char *envp[] = { "PATH=" DEFAULT_PATH, NULL };
    int keep[2] = { x->fds[0], x->fds[1] };
    pc_plugin_exec_opts o = {
        .argv = x->cmdv.v,
        .envp = envp,
        .stdin_data = x->jstdin ? json_string_value(x->jstdin) : NULL,
        .stdin_len = x->jstdin ? json_string_length(x->jstdin) : 0,
        .has_stdin = x->jstdin != NULL,
        /* With cgroups our watchdog does the TERM→grace→KILL of everything
         * in the exec's cgroup; the SDK timeout is only a backstop. */
        .timeout_ms = x->job.n ? x->timeout_ms + KILL_GRACE_MS + 5000 : x->timeout_ms,
        .kill_grace_ms = KILL_GRACE_MS,
        .max_output = (size_t)x->c.max_output_bytes,
        .keep_fds = keep,
        .n_keep_fds = x->fds[1] >= 0 ? 2 : 1,
        .pre_exec = join_cgroups,
        .pre_exec_arg = &x->job,
        .on_output = exec_stream,
        .on_output_arg = x,
    };
    struct running run_entry = { .pid = NULL };
    pid_t *slot = mmap(NULL, sizeof(pid_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
    if (slot != MAP_FAILED) {
        *slot = 0;
        x->job.pid_slot = slot;
        run_entry.pid = slot;
        snprintf(run_entry.uuid, sizeof(run_entry.uuid), "%s", x->uuid);
        running_add(&run_entry);
    }
    pthread_t wd;
    bool watch = false;
    if (x->job.n) {
        x->job.timeout_ms = x->timeout_ms;
        watch = pthread_create(&wd, NULL, watchdog, &x->job) == 0;
    }
    x->t_spawn = mono_ms();
    int rc = pc_plugin_exec(&o, &x->res, err);
    x->t_done = mono_ms();
    if (slot != MAP_FAILED) {
        running_del(&run_entry);
        x->job.pid_slot = NULL;
        munmap(slot, sizeof(pid_t));
    }
    if (watch) {
        pthread_mutex_lock(&x->job.lock);
        x->job.done = true;
        pthread_cond_signal(&x->job.cond);
        pthread_mutex_unlock(&x->job.lock);
        pthread_join(wd, NULL);
    }
    /* Nothing of this exec may outlive it (the pid namespace normally
     * guarantees that; this also covers a bwrap that died early). */
    x->left = x->job.n ? bw_cg_kill_tree(x->job.dirs, x->job.n, 5000) : 0;
    return rc;
}

/* The execute result: exit, signal, output and what the limits saw. */
static json_t *exec_collect(struct exec_run *x)
{
    bool timed_out = x->job.timed_out || x->res.timed_out;
    bool oom = false, pids_hit = false;
    long long pv, ov;
    read_limit_events(&x->cg, &pv, &ov);
    pids_hit = pv >= 0 && pv > x->pids_before;
    oom = ov >= 0 && ov > x->oom_before;
    /* v1 counts both events in the cgroup of the task that hit the limit,
     * i.e. the per-exec one; v2 counts them at the limit. */
    for (size_t i = 0; i < x->job.n; i++) {
        if (bw_cg_read_key(x->job.dirs[i], "memory.oom_control", "oom_kill") > 0 ||
            bw_cg_read_key(x->job.dirs[i], "memory.events", "oom_kill") > 0)
            oom = true;
        if (bw_cg_read_key(x->job.dirs[i], "pids.events", "max") > 0)
            pids_hit = true;
    }
    const char *sig = NULL;
    if (timed_out)
        /* Without an exec cgroup the SDK's SIGTERM ends bwrap, whose
         * --die-with-parent SIGKILLs the command at once: no grace. */
        sig = x->job.killed || !x->job.n || (x->res.timed_out && x->res.term_signal == SIGKILL)
                  ? "SIGKILL"
                  : "SIGTERM";
    else if (x->res.term_signal)
        sig = pc_plugin_signal_name(x->res.term_signal);
    char started[32];
    pc_plugin_iso8601(&x->res.started_at, started);
    json_t *cl = json_array();
    size_t i;
    json_t *v;
    json_array_append(cl, x->jcmd);
    json_array_foreach(x->jargs, i, v) json_array_append(cl, v);
    json_t *meta = json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:b, s:b, s:s, s:s, s:b, s:b, s:i, s:s, s:b}", "provider",
        BW_DRIVER, "providerLeaseId", x->id, "startedAt", started, "durationMs",
        (json_int_t)x->res.duration_ms, "command", cl, "stdoutTruncated", x->res.out_truncated,
        "stderrTruncated", x->res.err_truncated, "network", bw_network_name(x->c.network),
        "cgroupMode", x->cg.mode, "oomKilled", oom, "pidsLimitHit", pids_hit,
        "leftoverProcesses", x->left, "cwd", x->cwd, "seccomp", x->pol.seccomp);
    if (!meta)
        return NULL;
    /* Where the time went, so provider overhead stays visible (bench). */
    json_object_set_new(meta, "timingMs",
                        json_pack("{s:f, s:f, s:f}", "setup", x->t_spawn - x->t_start, "bwrap",
                                  x->t_done - x->t_spawn, "cleanup", mono_ms() - x->t_done));
    if (x->c.network == BW_NET_API_ONLY)
        json_object_set_new(meta, "apiUrl",
                            x->api_inside[0] ? json_string(x->api_inside) : json_null());
    return json_pack("{s:o, s:o, s:b, s:o, s:o, s:o}", "exitCode",
                     timed_out || x->res.exit_code < 0 ? json_null()
                                                       : json_integer(x->res.exit_code),
                     "signal", sig ? json_string(sig) : json_null(), "timedOut", timed_out,
                     "stdout", pc_plugin_json_string_lossy(x->res.out, x->res.out_len), "stderr",
                     pc_plugin_json_string_lossy(x->res.err, x->res.err_len), "metadata", meta);
}

static void exec_release(struct exec_run *x)
{
    pc_plugin_exec_result_free(&x->res);
    bw_fwd_host_stop(x->fwd);
    for (size_t i = 0; i < x->job.n; i++) {
        rmdir(x->job.dirs[i]);
        free(x->job.dirs[i]);
    }
    for (size_t i = 0; i < 2; i++)
        if (x->fds[i] >= 0)
            close(x->fds[i]);
    pthread_mutex_destroy(&x->job.lock);
    pthread_cond_destroy(&x->job.cond);
    bw_cg_free(&x->cg);
    sv_free(&x->args);
    sv_free(&x->cmdv);
    json_decref(x->m);
    bw_config_free(&x->c);
    bw_policy_free(&x->pol);
}

static int bw_execute(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    struct exec_run *x = calloc(1, sizeof(*x));
    if (!x)
        return pc_plugin_error_set(err, 0, "out of memory");
    x->t_start = mono_ms();
    x->ctx = ctx;
    x->fds[0] = x->fds[1] = -1;
    pthread_mutex_init(&x->job.lock, NULL);
    pthread_cond_init(&x->job.cond, NULL);
    int rc = -1;
    if (exec_parse(ctx, params, x, err) == 0 && exec_cgroups(x, err) == 0 &&
        exec_forwarder(x, err) == 0 && exec_build_argv(x, err) == 0 &&
        exec_setup_fds(x, err) == 0 && exec_spawn_wait(x, err) == 0) {
        *result = exec_collect(x);
        rc = *result ? 0 : pc_plugin_error_set(err, 0, "out of memory");
    }
    exec_release(x);
    free(x);
    return rc;
}

static const pc_plugin_hooks hooks = {
    .setup = bw_setup,
    .health = bw_health,
    .environment_validate_config = bw_validate,
    .environment_probe = bw_probe,
    .environment_acquire_lease = bw_acquire,
    .environment_resume_lease = bw_resume,
    .environment_release_lease = bw_release,
    .environment_destroy_lease = bw_destroy,
    .environment_realize_workspace = bw_realize,
    .environment_execute = bw_execute,
};

int main(int argc, char **argv)
{
    /* The same binary is the in-sandbox half of the api-only forwarder. */
    if (argc > 1 && !strcmp(argv[1], "--forward-in"))
        return bw_forward_in_main(argc, argv);
    if (argc > 1) {
        fprintf(stderr, "usage: %s  (a Paperclip plugin worker: JSON-RPC on stdin/stdout)\n"
                        "       %s --forward-in UNIX_PATH ADDR PORT -- CMD [ARGS...]\n",
                argv[0], argv[0]);
        return 2;
    }
    return pc_plugin_run(&hooks, NULL);
}
