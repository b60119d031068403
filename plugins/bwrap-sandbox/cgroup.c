/*
 * Per-lease cgroups of the bwrap provider.
 *
 * Limits come from the first of these that works on the host:
 *   v2     - a unified-hierarchy directory whose parent delegates the memory
 *            and pids controllers (memory.max, pids.max, cpu.weight/cpu.max);
 *   v1     - legacy memory + pids (+ cpu) hierarchies, as on hybrid hosts
 *            (memory.limit_in_bytes, pids.max, cpu.shares/cfs_quota_us);
 *   rlimit - no cgroup can be created: only RLIMIT_AS is applied, in the
 *            child before exec (see main.c). pids cannot be limited then.
 * Independently of the mode, a v2 directory is created whenever a unified
 * hierarchy is mounted, because cgroup.kill there kills a whole subtree in
 * one write even when v2 has no controllers (hybrid hosts).
 *
 * Directories go next to the worker's own cgroup in each hierarchy (read
 * from /proc/self/cgroup), so limits imposed on the daemon still apply to
 * its sandboxes.
 */
#include "bwrap_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"

static int write_file(const char *dir, const char *file, const char *text)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return -1;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (int)len;
}

static bool exists(const char *dir, const char *file)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

/* The worker's own cgroup path in the hierarchy named `ctl` ("" = v2),
 * copied into `out`; false when the worker is not in such a hierarchy. */
static bool self_cgroup(const char *ctl, char *out, size_t cap)
{
    char buf[8192];
    if (read_file("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
        return false;
    for (char *lsv, *line = strtok_r(buf, "\n", &lsv); line; line = strtok_r(NULL, "\n", &lsv)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctls = c1 + 1;
        bool match = false;
        if (!*ctl) {
            match = *ctls == '\0';
        } else {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "%s", ctls);
            for (char *sv, *t = strtok_r(tmp, ",", &sv); t; t = strtok_r(NULL, ",", &sv))
                match = match || !strcmp(t, ctl);
        }
        if (match) {
            /* "/" becomes "" so paths never get a double slash. */
            snprintf(out, cap, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
            return true;
        }
    }
    return false;
}

/* The v2 mount: /sys/fs/cgroup on pure-v2 hosts, /sys/fs/cgroup/unified on
 * hybrid ones, or NULL. */
static const char *v2_mount(void)
{
    if (exists(CG_ROOT, "cgroup.controllers"))
        return CG_ROOT;
    if (exists(CG_ROOT "/unified", "cgroup.controllers"))
        return CG_ROOT "/unified";
    return NULL;
}

/* Parent directory for new lease cgroups in a hierarchy, or false. */
static bool v2_parent(char *out, size_t cap)
{
    const char *m = v2_mount();
    char self[PATH_MAX];
    if (!m || !self_cgroup("", self, sizeof(self)))
        return false;
    /* Our own cgroup, or its parent when ours has processes and the
     * no-internal-processes rule would forbid enabling controllers. */
    return snprintf(out, cap, "%s%s", m, self) < (int)cap;
}

static bool v1_parent(const char *ctl, char *out, size_t cap)
{
    char self[PATH_MAX], mnt[64];
    snprintf(mnt, sizeof(mnt), CG_ROOT "/%s", ctl);
    if (!exists(mnt, "cgroup.procs") || !self_cgroup(ctl, self, sizeof(self)))
        return false;
    return snprintf(out, cap, "%s%s", mnt, self) < (int)cap && access(out, W_OK) == 0;
}

/* True when the v2 parent delegates memory and pids (enabling them in
 * subtree_control if needed and allowed). */
static bool v2_limits_usable(const char *parent)
{
    char path[PATH_MAX], buf[512];
    snprintf(path, sizeof(path), "%s/cgroup.subtree_control", parent);
    if (read_file(path, buf, sizeof(buf)) < 0)
        return false;
    if (strstr(buf, "memory") && strstr(buf, "pids"))
        return true;
    snprintf(path, sizeof(path), "%s/cgroup.controllers", parent);
    if (read_file(path, buf, sizeof(buf)) < 0 || !strstr(buf, "memory") || !strstr(buf, "pids"))
        return false;
    if (write_file(parent, "cgroup.subtree_control", "+memory +pids") < 0)
        return false;
    (void)write_file(parent, "cgroup.subtree_control", "+cpu");
    return true;
}

/* PAPERCLIP_BWRAP_NO_CGROUP=1 in the worker's environment forces the
 * rlimit fallback: for hosts where cgroups are shared with something that
 * must not be disturbed, and to test the fallback on hosts that have them. */
static bool cgroups_disabled(void)
{
    const char *v = getenv("PAPERCLIP_BWRAP_NO_CGROUP");
    return v && *v && strcmp(v, "0") != 0;
}

const char *bw_cg_mode_available(void)
{
    char p[PATH_MAX];
    if (cgroups_disabled())
        return "rlimit";
    if (v2_parent(p, sizeof(p)) && v2_limits_usable(p))
        return "v2";
    if (v1_parent("memory", p, sizeof(p)) && v1_parent("pids", p, sizeof(p)))
        return "v1";
    return "rlimit";
}

json_t *bw_cg_describe(void)
{
    char p[PATH_MAX];
    const char *m = v2_mount();
    bool v2p = v2_parent(p, sizeof(p));
    json_t *o = json_pack("{s:s, s:o, s:b, s:b, s:b}", "mode", bw_cg_mode_available(),
                          "v2Mount", m ? json_string(m) : json_null(), "v2Kill",
                          v2p && access(p, W_OK) == 0, "v1Memory",
                          v1_parent("memory", p, sizeof(p)), "v1Pids",
                          v1_parent("pids", p, sizeof(p)));
    return o;
}

static void apply_v1(const char *ctl, const char *dir, const struct bw_config *c)
{
    char v[64];
    if (!strcmp(ctl, "memory")) {
        snprintf(v, sizeof(v), "%lld", (long long)c->memory_mb << 20);
        (void)write_file(dir, "memory.limit_in_bytes", v);
        /* memsw must be >= the memory limit; set after it. Absent without
         * swap accounting, which is fine. */
        if (exists(dir, "memory.memsw.limit_in_bytes"))
            (void)write_file(dir, "memory.memsw.limit_in_bytes", v);
    } else if (!strcmp(ctl, "pids")) {
        snprintf(v, sizeof(v), "%lld", (long long)c->pids);
        (void)write_file(dir, "pids.max", v);
    } else if (!strcmp(ctl, "cpu")) {
        long long shares = c->cpu_weight ? c->cpu_weight * 1024 / 100 : 1024;
        if (shares < 2)
            shares = 2;
        snprintf(v, sizeof(v), "%lld", shares);
        (void)write_file(dir, "cpu.shares", v);
        (void)write_file(dir, "cpu.cfs_period_us", "100000");
        snprintf(v, sizeof(v), "%lld", c->cpu_quota_percent ? c->cpu_quota_percent * 1000LL : -1LL);
        (void)write_file(dir, "cpu.cfs_quota_us", v);
    }
}

static void apply_v2(const char *dir, const struct bw_config *c)
{
    char v[64];
    snprintf(v, sizeof(v), "%lld", (long long)c->memory_mb << 20);
    (void)write_file(dir, "memory.max", v);
    (void)write_file(dir, "memory.swap.max", "0");
    snprintf(v, sizeof(v), "%lld", (long long)c->pids);
    (void)write_file(dir, "pids.max", v);
    snprintf(v, sizeof(v), "%lld", (long long)(c->cpu_weight ? c->cpu_weight : 100));
    (void)write_file(dir, "cpu.weight", v);
    if (c->cpu_quota_percent)
        snprintf(v, sizeof(v), "%lld 100000", (long long)c->cpu_quota_percent * 1000LL);
    else
        snprintf(v, sizeof(v), "max 100000");
    (void)write_file(dir, "cpu.max", v);
}

static bool make_dir(const char *parent, const char *name, char *out, size_t cap)
{
    if (snprintf(out, cap, "%s/%s", parent, name) >= (int)cap)
        return false;
    return mkdir(out, 0755) == 0 || errno == EEXIST;
}

/*
 * Every exec moves the new bwrap process into each of the lease's
 * hierarchies, and on kernels without favordynmods each such migration
 * waits for an RCU grace period (measured here: 3-4 ms per hierarchy). So a
 * lease uses as few hierarchies as its limits need: v2 alone when it has
 * the controllers; else v1 memory + pids, plus cpu only when a CPU limit
 * is configured; the v2 directory (for cgroup.kill) only when there is no
 * v1 either. The v1 kill loop is reliable because pids.max bounds forking.
 */
void bw_cg_create(const char *name, const struct bw_config *c, struct bw_cgroups *cg)
{
    memset(cg, 0, sizeof(*cg));
    if (cgroups_disabled()) {
        snprintf(cg->mode, sizeof(cg->mode), "rlimit");
        return;
    }
    char parent[PATH_MAX], dir[PATH_MAX];
    bool v2 = v2_parent(parent, sizeof(parent));
    if (v2 && v2_limits_usable(parent) && make_dir(parent, name, dir, sizeof(dir))) {
        apply_v2(dir, c);
        cg->paths[cg->n++] = strdup(dir);
        snprintf(cg->mode, sizeof(cg->mode), "v2");
        return;
    }
    static const char *const ctls[] = { "memory", "pids", "cpu" };
    char v1dirs[3][PATH_MAX];
    bool v1ok = v1_parent("memory", v1dirs[0], sizeof(v1dirs[0])) &&
                v1_parent("pids", v1dirs[1], sizeof(v1dirs[1]));
    bool want_cpu = c->cpu_weight || c->cpu_quota_percent;
    if (v1ok) {
        for (size_t i = 0; i < 3; i++) {
            if (i == 2 && (!want_cpu || !v1_parent("cpu", v1dirs[2], sizeof(v1dirs[2]))))
                break;
            if (!make_dir(v1dirs[i], name, dir, sizeof(dir))) {
                if (i < 2)
                    v1ok = false;
                continue;
            }
            apply_v1(ctls[i], dir, c);
            cg->paths[cg->n++] = strdup(dir);
        }
    }
    if (v1ok) {
        snprintf(cg->mode, sizeof(cg->mode), "v1");
        return;
    }
    /* No limits possible: still group the processes for killing. */
    for (size_t i = 0; i < cg->n; i++)
        free(cg->paths[i]);
    cg->n = 0;
    snprintf(cg->mode, sizeof(cg->mode), "rlimit");
    if (v2 && make_dir(parent, name, dir, sizeof(dir)))
        cg->paths[cg->n++] = strdup(dir);
}

void bw_cg_free(struct bw_cgroups *cg)
{
    for (size_t i = 0; i < cg->n; i++)
        free(cg->paths[i]);
    memset(cg, 0, sizeof(*cg));
}

bool bw_cg_path_is_ours(const char *path, const char *name)
{
    size_t pl = strlen(path), nl = strlen(name);
    if (strncmp(path, CG_ROOT "/", sizeof(CG_ROOT)) != 0 || strstr(path, "/..") ||
        strstr(path, "//") || pl <= nl + 1 || strcmp(path + pl - nl, name) != 0 ||
        path[pl - nl - 1] != '/')
        return false;
    return true;
}

long long bw_cg_read_key(const char *dir, const char *file, const char *key)
{
    char path[PATH_MAX], buf[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (read_file(path, buf, sizeof(buf)) < 0)
        return -1;
    size_t kl = strlen(key);
    for (char *lsv, *line = strtok_r(buf, "\n", &lsv); line; line = strtok_r(NULL, "\n", &lsv))
        if (!strncmp(line, key, kl) && line[kl] == ' ')
            return atoll(line + kl + 1);
    return -1;
}

/* Calls fn(pid) for each process of `dir` and its sub-directories (bounded
 * depth, so a hostile tree cannot make us recurse forever) and returns the
 * number of processes seen. */
static int walk_procs(const char *dir, int depth, void (*fn)(pid_t, void *), void *arg)
{
    char path[PATH_MAX], buf[65536];
    int count = 0;
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    if (read_file(path, buf, sizeof(buf)) > 0) {
        for (char *sv, *t = strtok_r(buf, "\n", &sv); t; t = strtok_r(NULL, "\n", &sv)) {
            pid_t pid = (pid_t)atoi(t);
            if (pid > 0) {
                count++;
                if (fn)
                    fn(pid, arg);
            }
        }
    }
    if (depth >= 8)
        return count;
    DIR *d = opendir(dir);
    if (!d)
        return count;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        count += walk_procs(path, depth + 1, fn, arg);
    }
    closedir(d);
    return count;
}

struct sig_arg {
    int sig;
    pid_t spare;
};

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof(buf)) <= 0)
        return 0;
    /* "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
     * parse from the last ')'. */
    char *p = strrchr(buf, ')');
    int ppid = 0;
    char st;
    if (!p || sscanf(p + 1, " %c %d", &st, &ppid) != 2)
        return 0;
    return (pid_t)ppid;
}

static void send_sig(pid_t pid, void *arg)
{
    struct sig_arg *a = arg;
    if (a->spare && parent_of(pid) == a->spare)
        return;
    kill(pid, a->sig);
}

void bw_cg_signal_tree(char *const *paths, size_t n, int sig, pid_t spare)
{
    struct sig_arg a = { sig, spare };
    for (size_t i = 0; i < n; i++)
        walk_procs(paths[i], 0, send_sig, &a);
}

int bw_cg_count_procs(char *const *paths, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += walk_procs(paths[i], 0, NULL, NULL);
    return c;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int bw_cg_kill_tree(char *const *paths, size_t n, int deadline_ms)
{
    for (size_t i = 0; i < n; i++)
        if (exists(paths[i], "cgroup.kill"))
            (void)write_file(paths[i], "cgroup.kill", "1");
    int64_t end = now_ms() + deadline_ms;
    for (;;) {
        struct sig_arg a = { SIGKILL, 0 };
        int left = 0;
        for (size_t i = 0; i < n; i++)
            left += walk_procs(paths[i], 0, send_sig, &a);
        /* A killed process stays listed until it is reaped; give the
         * kernel (or its parent) a moment and look again. */
        if (left == 0 || now_ms() >= end)
            return left;
        struct timespec ts = { 0, 2 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

static void rmdir_tree(const char *dir, int depth)
{
    if (depth < 8) {
        DIR *d = opendir(dir);
        if (d) {
            struct dirent *e;
            char path[PATH_MAX];
            while ((e = readdir(d))) {
                if (e->d_type != DT_DIR || e->d_name[0] == '.')
                    continue;
                snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                rmdir_tree(path, depth + 1);
            }
            closedir(d);
        }
    }
    /* rmdir fails with EBUSY while an exiting task is still attached. */
    for (int i = 0; i < 200 && rmdir(dir) < 0 && errno == EBUSY; i++) {
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

int bw_cg_remove_tree(char *const *paths, size_t n)
{
    int left = bw_cg_kill_tree(paths, n, 5000);
    for (size_t i = 0; i < n; i++)
        rmdir_tree(paths[i], 0);
    int gone = 0;
    for (size_t i = 0; i < n; i++)
        gone += access(paths[i], F_OK) != 0;
    return left == 0 && gone == (int)n ? 0 : -1;
}
