/*
 * Workspace sync: a small ustar writer and a validating reader, and the two
 * transfer steps through pc_lease_execute (see sync.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "env/internal.h"
#include "env/sync.h"
#include "lib/common.h"
#include "lib/json.h"

#define BLK 512
#define MAX_DEPTH 128
#define MAX_PATH_LEN 4000
#define MAX_PAX 65536

/* ------------------------------------------------------------ writer */

typedef struct writer {
    FILE *out;
    size_t max;
    uint64_t total;
    int64_t entries;
    json_t *manifest;
    pc_error_t *err;
} writer;

static int w_bytes(writer *w, const void *p, size_t n)
{
    if (w->total + n > w->max)
        return pc_error_set(w->err, 413,
                            "the workspace is larger than workspaceSyncMaxBytes (%zu bytes)",
                            w->max);
    if (n && fwrite(p, 1, n, w->out) != n)
        return pc_error_errno(w->err, errno, "cannot write the sync archive");
    w->total += n;
    return 0;
}

static int w_pad(writer *w, uint64_t size)
{
    static const char zero[BLK];
    size_t r = (size_t)(size % BLK);
    return r ? w_bytes(w, zero, BLK - r) : 0;
}

static void octal(char *field, size_t width, uint64_t v)
{
    /* width-1 digits and a NUL, as every reader expects; callers keep v
     * within the digits (sizes are bounded far below 8 GiB). */
    field[width - 1] = 0;
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = (char)('0' + (v & 7));
}

static int w_header(writer *w, const char *name, char type, unsigned mode, uint64_t size,
                    int64_t mtime, const char *link);

/* A GNU long-name ('L') or long-link ('K') record for a value over 99 bytes. */
static int w_long(writer *w, char type, const char *value)
{
    size_t n = strlen(value) + 1;
    if (w_header(w, "././@LongLink", type, 0, n, 0, NULL) < 0 || w_bytes(w, value, n) < 0 ||
        w_pad(w, n) < 0)
        return -1;
    return 0;
}

static int w_header(writer *w, const char *name, char type, unsigned mode, uint64_t size,
                    int64_t mtime, const char *link)
{
    if (type != 'L' && type != 'K') {
        if (strlen(name) > 99 && w_long(w, 'L', name) < 0)
            return -1;
        if (link && strlen(link) > 99 && w_long(w, 'K', link) < 0)
            return -1;
    }
    unsigned char h[BLK];
    memset(h, 0, sizeof h);
    memcpy(h, name, strnlen(name, 99));
    /* Permission bits only: a set-id bit would let a workspace file become
     * a set-id program where a privileged user unpacks it. */
    octal((char *)h + 100, 8, mode & 0777);
    octal((char *)h + 108, 8, 0);
    octal((char *)h + 116, 8, 0);
    octal((char *)h + 124, 12, size);
    octal((char *)h + 136, 12, mtime < 0 ? 0 : (uint64_t)mtime);
    h[156] = (unsigned char)type;
    if (link)
        memcpy(h + 157, link, strnlen(link, 99));
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < BLK; i++)
        sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return w_bytes(w, h, BLK);
}

static void manifest_add(writer *w, const char *path, const char *t, const struct stat *st)
{
    json_object_set_new(w->manifest, path,
                        json_pack("{s:s,s:I,s:I}", "t", t, "s", (json_int_t)st->st_size, "m",
                                  (json_int_t)st->st_mtim.tv_sec));
}

static int w_dir(writer *w, int dfd, const char *prefix, int depth)
{
    if (depth > MAX_DEPTH)
        return pc_error_set(w->err, 422, "the workspace is nested deeper than %d levels",
                            MAX_DEPTH);
    int fd = dup(dfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return pc_error_errno(w->err, errno, "cannot read %s", *prefix ? prefix : ".");
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        if (depth == 0 && !strncmp(n, PC_SYNC_TMP_PREFIX, strlen(PC_SYNC_TMP_PREFIX)))
            continue;
        char path[MAX_PATH_LEN + 8];
        int pl = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "/" : "", n);
        if (pl < 0 || pl > MAX_PATH_LEN) {
            rc = pc_error_set(w->err, 422, "path too long in the workspace: %.200s...", path);
            break;
        }
        struct stat st;
        if (fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone meanwhile */
        if (S_ISREG(st.st_mode)) {
            int ffd = openat(dfd, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (ffd < 0) {
                rc = pc_error_errno(w->err, errno, "cannot open %s", path);
                break;
            }
            uint64_t size = (uint64_t)st.st_size;
            rc = w_header(w, path, '0', st.st_mode, size, st.st_mtim.tv_sec, NULL);
            char buf[65536];
            uint64_t left = size;
            while (rc == 0 && left > 0) {
                ssize_t r = read(ffd, buf, left < sizeof buf ? left : sizeof buf);
                if (r <= 0) {
                    rc = pc_error_set(w->err, 500, "%s changed while it was archived", path);
                    break;
                }
                rc = w_bytes(w, buf, (size_t)r);
                left -= (uint64_t)r;
            }
            close(ffd);
            if (rc == 0)
                rc = w_pad(w, size);
            if (rc == 0)
                manifest_add(w, path, "f", &st);
        } else if (S_ISLNK(st.st_mode)) {
            char target[MAX_PATH_LEN + 1];
            ssize_t tl = readlinkat(dfd, n, target, sizeof target - 1);
            if (tl < 0)
                continue;
            target[tl] = 0;
            rc = w_header(w, path, '2', 0777, 0, st.st_mtim.tv_sec, target);
            if (rc == 0)
                manifest_add(w, path, "l", &st);
        } else if (S_ISDIR(st.st_mode)) {
            char dname[MAX_PATH_LEN + 16];
            snprintf(dname, sizeof dname, "%s/", path);
            rc = w_header(w, dname, '5', st.st_mode, 0, st.st_mtim.tv_sec, NULL);
            int sub = rc == 0 ? openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                              : -1;
            if (rc == 0 && sub < 0)
                rc = pc_error_errno(w->err, errno, "cannot open %s", path);
            if (rc == 0) {
                manifest_add(w, path, "d", &st);
                rc = w_dir(w, sub, path, depth + 1);
                close(sub);
            }
        } else {
            continue; /* sockets, fifos, devices stay on the host */
        }
        if (rc == 0)
            w->entries++;
    }
    closedir(d);
    return rc;
}

int pc_sync_write_archive(const char *host_dir, FILE *out, size_t max_bytes, json_t **manifest,
                          int64_t *entries, pc_error_t *err)
{
    writer w = {.out = out, .max = max_bytes, .manifest = json_object(), .err = err};
    int dfd = open(host_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        json_decref(w.manifest);
        return pc_error_errno(err, errno, "cannot open workspace %s", host_dir);
    }
    static const char zero[2 * BLK];
    int rc = w_dir(&w, dfd, "", 0);
    close(dfd);
    if (rc == 0)
        rc = w_bytes(&w, zero, sizeof zero);
    if (rc == 0 && fflush(out) != 0)
        rc = pc_error_errno(err, errno, "cannot write the sync archive");
    if (rc < 0) {
        json_decref(w.manifest);
        return -1;
    }
    *manifest = w.manifest;
    if (entries)
        *entries = w.entries;
    return 0;
}

/* ------------------------------------------------------------ reader */

static bool parse_octal(const unsigned char *f, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && (f[i] == ' ' || f[i] == 0))
        i++;
    if (i < n && (f[0] & 0x80))
        return false; /* base-256: only for sizes far beyond any limit here */
    bool any = false;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v > (UINT64_MAX >> 3))
            return false;
        v = (v << 3) | (uint64_t)(f[i] - '0');
        any = true;
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != 0)
            return false;
    *out = any ? v : 0;
    return true;
}

/* Normalizes an archive name in place (leading "./" and trailing "/"
 * dropped) and refuses anything that could leave the root. Returns 0 (""
 * for the root itself) or -1 with err. */
static int clean_name(char *name, pc_error_t *err)
{
    char *p = name;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    while (*p == '/' && p == name)
        return pc_error_set(err, 422, "unsafe entry \"%.200s\": absolute path", name);
    memmove(name, p, strlen(p) + 1);
    size_t n = strlen(name);
    while (n > 0 && name[n - 1] == '/')
        name[--n] = 0;
    if (!strcmp(name, "."))
        name[0] = 0;
    if (n > MAX_PATH_LEN)
        return pc_error_set(err, 422, "unsafe entry: path longer than %d bytes", MAX_PATH_LEN);
    const char *s = name;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t cl = e ? (size_t)(e - s) : strlen(s);
        if (cl == 0 || (cl == 1 && s[0] == '.') || (cl == 2 && s[0] == '.' && s[1] == '.'))
            return pc_error_set(err, 422, "unsafe entry \"%.200s\": `..`, `.` or empty component",
                                name);
        s += cl;
        if (*s == '/')
            s++;
    }
    return 0;
}

/* Whether a relative symlink at `path` pointing to target stays inside the
 * root, judged on the names alone. */
static bool link_inside(const char *path, const char *target)
{
    if (!*target || target[0] == '/')
        return false;
    int depth = 0;
    for (const char *s = path; *s; s++)
        if (*s == '/')
            depth++;
    const char *s = target;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t cl = e ? (size_t)(e - s) : strlen(s);
        if (cl == 2 && s[0] == '.' && s[1] == '.') {
            if (--depth < 0)
                return false;
        } else if (cl > 0 && !(cl == 1 && s[0] == '.')) {
            depth++;
        }
        s += cl;
        if (*s == '/')
            s++;
    }
    return true;
}

/* Opens (creating with mkdir when create is set) the directory that holds
 * `path` under root_fd without following any symlink; *base points at the
 * last component. -1 with err when a component is not a real directory. */
static int open_parent(int root_fd, const char *path, bool create, const char **base,
                       pc_error_t *err)
{
    int fd = dup(root_fd);
    if (fd < 0)
        return pc_error_errno(err, errno, "cannot open the workspace");
    const char *s = path;
    for (;;) {
        const char *e = strchr(s, '/');
        if (!e) {
            *base = s;
            return fd;
        }
        char comp[256];
        size_t cl = (size_t)(e - s);
        if (cl >= sizeof comp) {
            close(fd);
            return pc_error_set(err, 422, "unsafe entry \"%.200s\": component too long", path);
        }
        memcpy(comp, s, cl);
        comp[cl] = 0;
        int nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT && create) {
            if (mkdirat(fd, comp, 0755) < 0 && errno != EEXIST) {
                int e2 = errno;
                close(fd);
                return pc_error_errno(err, e2, "cannot create %.*s", (int)(e - path), path);
            }
            nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (nfd < 0) {
            int e2 = errno;
            close(fd);
            if (e2 == ELOOP || e2 == ENOTDIR)
                return pc_error_set(err, 422,
                                    "unsafe entry \"%.200s\": %.*s is a symlink or not a "
                                    "directory",
                                    path, (int)(e - path), path);
            return pc_error_errno(err, e2, "cannot open %.*s", (int)(e - path), path);
        }
        close(fd);
        fd = nfd;
        s = e + 1;
    }
}

/* Removes name under dfd, recursively for a directory, never following a
 * symlink. */
static int remove_at(int dfd, const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(dfd, name, 0);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && remove_at(fd, de->d_name) < 0)
            rc = -1;
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0)
        rc = -1;
    return rc;
}

typedef struct reader {
    FILE *in;
    size_t max;
    uint64_t content;
    int ws_fd, tmp_fd;
    json_t *seen;      /* every path the archive has (and its parents) */
    json_t *changed;   /* [[path, type]] in archive order */
    json_t *new_dirs;  /* paths the archive turns into directories */
    json_t *manifest;  /* what the host sent (may be NULL) */
    int64_t since;     /* unsent entries older than this are left out (< 0: none) */
    pc_sync_stats *st;
    pc_error_t *err;
} reader;

static int r_read(reader *r, void *p, size_t n)
{
    if (fread(p, 1, n, r->in) != n)
        return pc_error_set(r->err, 422, "the archive is truncated");
    return 0;
}

static int r_skip(reader *r, uint64_t n)
{
    char buf[8192];
    while (n > 0) {
        size_t k = n < sizeof buf ? (size_t)n : sizeof buf;
        if (r_read(r, buf, k) < 0)
            return -1;
        n -= k;
    }
    return 0;
}

static uint64_t padded(uint64_t n) { return (n + BLK - 1) / BLK * BLK; }

/* Reads a long value (GNU 'L'/'K' data) of size n into a malloc'd string. */
static char *r_long(reader *r, uint64_t n)
{
    if (n == 0 || n > MAX_PATH_LEN + 1) {
        pc_error_set(r->err, 422, "unsafe entry: long name of %" PRIu64 " bytes", n);
        return NULL;
    }
    char *s = pc_xcalloc(1, (size_t)padded(n) + 1);
    if (r_read(r, s, (size_t)padded(n)) < 0) {
        free(s);
        return NULL;
    }
    s[n] = 0;
    return s;
}

/* Takes path=, linkpath= and size= from a pax extended header. */
static int r_pax(reader *r, uint64_t n, char **path, char **link, uint64_t *size, bool *has_size)
{
    if (n > MAX_PAX)
        return pc_error_set(r->err, 422, "pax header of %" PRIu64 " bytes", n);
    char *buf = pc_xcalloc(1, (size_t)padded(n) + 1);
    if (r_read(r, buf, (size_t)padded(n)) < 0) {
        free(buf);
        return -1;
    }
    size_t off = 0;
    while (off < n) {
        char *end = NULL;
        unsigned long len = strtoul(buf + off, &end, 10);
        if (!end || *end != ' ' || len == 0 || off + len > n || buf[off + len - 1] != '\n')
            break;
        char *kv = end + 1;
        buf[off + len - 1] = 0;
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = 0;
            const char *v = eq + 1;
            if (!strcmp(kv, "path")) {
                free(*path);
                *path = pc_xstrdup(v);
            } else if (!strcmp(kv, "linkpath")) {
                free(*link);
                *link = pc_xstrdup(v);
            } else if (!strcmp(kv, "size")) {
                char *e2 = NULL;
                *size = strtoull(v, &e2, 10);
                *has_size = e2 && !*e2;
            }
        }
        off += len;
    }
    free(buf);
    return 0;
}

static void mark_seen(reader *r, const char *path)
{
    _cleanup_free_ char *tmp = pc_xstrdup(path);
    for (;;) {
        json_object_set_new(r->seen, tmp, json_true());
        char *sl = strrchr(tmp, '/');
        if (!sl)
            break;
        *sl = 0;
    }
}

/* Whether the host already has exactly this entry. */
static bool unchanged(reader *r, const char *path, char type, uint64_t size, int64_t mtime,
                      const char *link)
{
    struct stat st;
    if (fstatat(r->ws_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return false;
    if (type == '5')
        return S_ISDIR(st.st_mode);
    if (type == '2') {
        char t[MAX_PATH_LEN + 1];
        ssize_t n = S_ISLNK(st.st_mode) ? readlinkat(r->ws_fd, path, t, sizeof t - 1) : -1;
        if (n < 0)
            return false;
        t[n] = 0;
        return !strcmp(t, link);
    }
    return S_ISREG(st.st_mode) && (uint64_t)st.st_size == size && st.st_mtim.tv_sec == mtime;
}

/* Whether `path` holds the same bytes under both directories; false on any
 * error, which only means the entry is applied. */
static bool same_content(int dfd_a, int dfd_b, const char *path)
{
    int a = openat(dfd_a, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int b = a < 0 ? -1 : openat(dfd_b, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    bool same = a >= 0 && b >= 0;
    char ba[16384], bb[16384];
    while (same) {
        ssize_t na = read(a, ba, sizeof ba);
        ssize_t nb = na <= 0 ? na : read(b, bb, (size_t)na);
        if (na < 0 || nb != na || memcmp(ba, bb, (size_t)na) != 0)
            same = false;
        else if (na == 0)
            break;
    }
    if (same) { /* b must end where a did */
        char c;
        same = read(b, &c, 1) == 0;
    }
    if (a >= 0)
        close(a);
    if (b >= 0)
        close(b);
    return same;
}

/* Whether writing `path` into the workspace would pass through a symlink
 * (or a non-directory) the host has, unless an earlier entry replaces that
 * component with a directory. Checked for every entry before anything is
 * written, so such an archive changes nothing. */
static int host_parents_safe(reader *r, const char *path)
{
    char pre[MAX_PATH_LEN + 8];
    for (const char *e = strchr(path, '/'); e; e = strchr(e + 1, '/')) {
        snprintf(pre, sizeof pre, "%.*s", (int)(e - path), path);
        if (json_object_get(r->new_dirs, pre))
            continue;
        struct stat st;
        if (fstatat(r->ws_fd, pre, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                return 0; /* created as a real directory when applied */
            return pc_error_errno(r->err, errno, "cannot inspect %s", pre);
        }
        if (!S_ISDIR(st.st_mode))
            return pc_error_set(r->err, 422,
                                "unsafe entry \"%.200s\": %s is a symlink or not a directory "
                                "in the workspace",
                                path, pre);
    }
    return 0;
}

/* Extracts one validated entry into the temporary tree. */
static int r_extract(reader *r, const char *path, char type, unsigned mode, uint64_t size,
                     int64_t mtime, const char *link)
{
    const char *base;
    int pfd = open_parent(r->tmp_fd, path, true, &base, r->err);
    if (pfd < 0)
        return -1;
    int rc = 0;
    struct stat st;
    bool exists = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (type == '5') {
        if (exists && !S_ISDIR(st.st_mode))
            rc = pc_error_set(r->err, 422, "entry \"%.200s\" appears twice", path);
        else if (!exists && mkdirat(pfd, base, 0755) < 0)
            rc = pc_error_errno(r->err, errno, "cannot create %s", path);
        if (rc == 0 && fchmodat(pfd, base, (mode & 0777) | 0700, 0) < 0)
            rc = pc_error_errno(r->err, errno, "cannot chmod %s", path);
    } else {
        if (exists)
            rc = pc_error_set(r->err, 422, "entry \"%.200s\" appears twice", path);
        if (rc == 0 && type == '2') {
            if (symlinkat(link, pfd, base) < 0)
                rc = pc_error_errno(r->err, errno, "cannot create symlink %s", path);
        } else if (rc == 0) {
            int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                            (mode & 0777) | 0600);
            if (fd < 0)
                rc = pc_error_errno(r->err, errno, "cannot create %s", path);
            char buf[65536];
            uint64_t left = size;
            while (rc == 0 && left > 0) {
                size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
                if (r_read(r, buf, k) < 0) {
                    rc = -1;
                    break;
                }
                if (write(fd, buf, k) != (ssize_t)k)
                    rc = pc_error_errno(r->err, errno, "cannot write %s", path);
                left -= k;
            }
            if (rc == 0 && r_skip(r, padded(size) - size) < 0)
                rc = -1;
            if (fd >= 0) {
                struct timespec ts[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
                futimens(fd, ts);
                close(fd);
            }
            close(pfd);
            if (rc == 0)
                json_array_append_new(r->changed, json_pack("[s,s]", path, "f"));
            return rc;
        }
    }
    close(pfd);
    if (rc == 0 && type == '5')
        json_object_set_new(r->new_dirs, path, json_true());
    if (rc == 0)
        json_array_append_new(r->changed, json_pack("[s,s]", path, type == '5' ? "d" : "l"));
    return rc;
}

/* Reads, validates and extracts every entry into the temporary tree. */
static int r_all(reader *r)
{
    char *lname = NULL, *llink = NULL;
    uint64_t psize = 0;
    bool has_psize = false;
    int rc = 0;
    unsigned char h[BLK];
    for (;;) {
        if (fread(h, 1, BLK, r->in) != BLK) {
            if (feof(r->in))
                break; /* no end-of-archive blocks: accepted like tar does */
            rc = pc_error_errno(r->err, errno, "cannot read the archive");
            break;
        }
        bool zero = true;
        for (int i = 0; i < BLK && zero; i++)
            zero = h[i] == 0;
        if (zero)
            break;
        uint64_t sum = 0, size = 0, mode = 0, mtime = 0;
        unsigned calc = 0;
        for (int i = 0; i < BLK; i++)
            calc += (i >= 148 && i < 156) ? ' ' : h[i];
        if (!parse_octal(h + 148, 8, &sum) || sum != calc) {
            rc = pc_error_set(r->err, 422, "the archive has a damaged header");
            break;
        }
        if (!parse_octal(h + 124, 12, &size) || !parse_octal(h + 100, 8, &mode) ||
            !parse_octal(h + 136, 12, &mtime)) {
            rc = pc_error_set(r->err, 422, "the archive has a damaged header");
            break;
        }
        char type = (char)h[156];
        if (type == 'L' || type == 'K') {
            char *v = r_long(r, size);
            if (!v) {
                rc = -1;
                break;
            }
            free(type == 'L' ? lname : llink);
            *(type == 'L' ? &lname : &llink) = v;
            continue;
        }
        if (type == 'x') {
            if (r_pax(r, size, &lname, &llink, &psize, &has_psize) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (type == 'g') {
            if (r_skip(r, padded(size)) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (has_psize)
            size = psize;
        char name[MAX_PATH_LEN + 260];
        if (lname) {
            snprintf(name, sizeof name, "%s", lname);
        } else {
            char nm[101] = "", pre[156] = "";
            memcpy(nm, h, 100);
            if (!memcmp(h + 257, "ustar", 5))
                memcpy(pre, h + 345, 155);
            snprintf(name, sizeof name, "%s%s%s", pre, *pre ? "/" : "", nm);
        }
        char link[MAX_PATH_LEN + 1] = "";
        if (llink && strlen(llink) > MAX_PATH_LEN) {
            rc = pc_error_set(r->err, 422, "unsafe entry: link target longer than %d bytes",
                              MAX_PATH_LEN);
            break;
        }
        if (llink) {
            snprintf(link, sizeof link, "%s", llink);
        } else {
            memcpy(link, h + 157, 100);
            link[100] = 0;
        }
        free(lname), free(llink);
        lname = llink = NULL;
        has_psize = false;
        if (clean_name(name, r->err) < 0) {
            rc = -1;
            break;
        }
        if (type == '1') {
            rc = pc_error_set(r->err, 422, "unsafe entry \"%.200s\": hard links are refused",
                              name);
            break;
        }
        if (type != '0' && type != 0 && type != '7' && type != '2' && type != '5') {
            rc = pc_error_set(r->err, 422,
                              "unsafe entry \"%.200s\": type '%c' (device, fifo or unknown) is "
                              "refused",
                              name, type >= 32 && type < 127 ? type : '?');
            break;
        }
        if (type == '7' || type == 0)
            type = '0';
        if (type != '0')
            size = 0;
        r->content += size;
        if (r->content > r->max) {
            rc = pc_error_set(r->err, 413,
                              "the workspace coming back is larger than workspaceSyncMaxBytes "
                              "(%zu bytes)",
                              r->max);
            break;
        }
        bool own = !strncmp(name, PC_SYNC_TMP_PREFIX, strlen(PC_SYNC_TMP_PREFIX));
        if (!*name || own) {
            if (r_skip(r, padded(size)) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (type == '2' && !link_inside(name, link)) {
            rc = pc_error_set(r->err, 422,
                              "unsafe entry \"%.200s\": symlink to \"%.200s\" leaves the "
                              "workspace",
                              name, link);
            break;
        }
        if (r->since >= 0 && (int64_t)mtime < r->since &&
            !(r->manifest && json_object_get(r->manifest, name))) {
            /* Left in the remote cwd by someone else (an earlier run in a
             * kept workspace), not made by this run: not taken back. */
            if (r->st)
                r->st->stale++;
            if (r_skip(r, padded(size)) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        mark_seen(r, name);
        if (host_parents_safe(r, name) < 0) {
            rc = -1;
            break;
        }
        bool same_stat = unchanged(r, name, type, size, (int64_t)mtime, link);
        if (same_stat && type != '0') {
            if (r_skip(r, padded(size)) < 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (r_extract(r, name, type, (unsigned)mode, size, (int64_t)mtime, link) < 0) {
            rc = -1;
            break;
        }
        /* Archive mtimes have whole seconds, so a file rewritten in the second
         * it was sent in looks unchanged by size and mtime: compare bytes. */
        if (same_stat && same_content(r->tmp_fd, r->ws_fd, name)) {
            unlinkat(r->tmp_fd, name, 0);
            json_array_remove(r->changed, json_array_size(r->changed) - 1);
        }
    }
    free(lname), free(llink);
    return rc;
}

/* Moves one extracted entry into the workspace. */
static int apply_one(reader *r, const char *tmp_name, const char *path, const char *t)
{
    const char *base;
    int pfd = open_parent(r->ws_fd, path, true, &base, r->err);
    if (pfd < 0)
        return -1;
    int rc = 0;
    struct stat st;
    bool exists = fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!strcmp(t, "d")) {
        /* Its extracted copy has the archive's mode; the directory itself is
         * made anew here, since its changed entries move one by one. */
        char src[MAX_PATH_LEN + 300];
        snprintf(src, sizeof src, "%s/%s", tmp_name, path);
        struct stat tst;
        mode_t mode = fstatat(r->ws_fd, src, &tst, AT_SYMLINK_NOFOLLOW) == 0
                          ? (tst.st_mode & 0777)
                          : 0755;
        if (exists && !S_ISDIR(st.st_mode) && unlinkat(pfd, base, 0) < 0)
            rc = pc_error_errno(r->err, errno, "cannot replace %s", path);
        if (rc == 0 && (!exists || !S_ISDIR(st.st_mode)) && mkdirat(pfd, base, 0700) < 0)
            rc = pc_error_errno(r->err, errno, "cannot create %s", path);
        if (rc == 0 && fchmodat(pfd, base, mode, 0) < 0)
            rc = pc_error_errno(r->err, errno, "cannot chmod %s", path);
    } else {
        if (exists && S_ISDIR(st.st_mode) && remove_at(pfd, base) < 0)
            rc = pc_error_errno(r->err, errno, "cannot replace directory %s", path);
        char src[MAX_PATH_LEN + 300];
        snprintf(src, sizeof src, "%s/%s", tmp_name, path);
        /* rename replaces a file or symlink itself, never what it points to. */
        if (rc == 0 && renameat(r->ws_fd, src, pfd, base) < 0)
            rc = pc_error_errno(r->err, errno, "cannot write %s", path);
    }
    close(pfd);
    return rc;
}

static int cmp_desc(const void *a, const void *b)
{
    return strcmp(*(const char *const *)b, *(const char *const *)a);
}

int pc_sync_apply(const char *host_dir, FILE *in, size_t max_bytes, json_t *manifest,
                  int64_t since, pc_sync_stats *st, pc_error_t *err)
{
    reader r = {.in = in, .max = max_bytes, .seen = json_object(), .changed = json_array(),
                .new_dirs = json_object(), .manifest = manifest, .since = since, .st = st,
                .err = err, .tmp_fd = -1};
    char tmp_name[64] = "";
    int rc = -1;
    r.ws_fd = open(host_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r.ws_fd < 0) {
        pc_error_errno(err, errno, "cannot open workspace %s", host_dir);
        goto out;
    }
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    snprintf(tmp_name, sizeof tmp_name, PC_SYNC_TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x",
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    if (mkdirat(r.ws_fd, tmp_name, 0700) < 0) {
        pc_error_errno(err, errno, "cannot create a temporary tree in %s", host_dir);
        tmp_name[0] = 0;
        goto out;
    }
    r.tmp_fd = openat(r.ws_fd, tmp_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (r.tmp_fd < 0) {
        pc_error_errno(err, errno, "cannot open the temporary tree");
        goto out;
    }
    if (r_all(&r) < 0)
        goto out;

    /* Everything is valid and extracted: only now does the workspace change. */
    size_t i;
    json_t *e;
    json_array_foreach(r.changed, i, e)
    {
        if (apply_one(&r, tmp_name, json_string_value(json_array_get(e, 0)),
                      json_string_value(json_array_get(e, 1))) < 0)
            goto out;
        if (st)
            st->written++;
    }
    size_t nm = manifest ? json_object_size(manifest) : 0;
    const char **gone = pc_xcalloc(nm + 1, sizeof *gone);
    size_t ng = 0;
    const char *k;
    json_t *v;
    json_object_foreach(manifest, k, v)
    {
        if (!json_object_get(r.seen, k))
            gone[ng++] = k;
    }
    /* Deepest first, so a directory is empty of what we removed by then. */
    qsort(gone, ng, sizeof *gone, cmp_desc);
    for (size_t g = 0; g < ng; g++) {
        const char *base;
        pc_error_t perr = PC_ERROR_INIT;
        int pfd = open_parent(r.ws_fd, gone[g], false, &base, &perr);
        pc_error_clear(&perr);
        if (pfd < 0)
            continue; /* its parent is gone already */
        if (remove_at(pfd, base) == 0 && st)
            st->deleted++;
        close(pfd);
    }
    free(gone);
    rc = 0;
out:
    if (r.tmp_fd >= 0)
        close(r.tmp_fd);
    if (tmp_name[0])
        remove_at(r.ws_fd, tmp_name);
    if (r.ws_fd >= 0)
        close(r.ws_fd);
    json_decref(r.seen);
    json_decref(r.changed);
    json_decref(r.new_dirs);
    return rc;
}

/* ------------------------------------------------------------ transfer */

/* Runs `sh -c script sh arg1 arg2` on the target with stdin and returns
 * its stdout (bounded by cap). */
static int remote_sh(pc_lease *lease, const char *cwd, json_t *env, const char *script,
                     const char *a1, const char *a2, const char *in, size_t cap,
                     pc_exec_result *res, pc_error_t *err)
{
    const char *args[] = {"-c", script, "sh", a1, a2, NULL};
    pc_exec_request req = {.command = "sh", .args = args, .cwd = cwd, .env = env,
                           .stdin_data = in, .timeout_ms = 300000, .grace_ms = 2000,
                           .output_cap = cap};
    memset(res, 0, sizeof *res);
    if (pc_lease_execute(lease, &req, res, err) < 0)
        return -1;
    if (res->cancelled)
        return pc_error_set(err, 409, "cancelled");
    if (res->timed_out)
        return pc_error_set(err, 504, "timed out on the target");
    if (!res->has_exit_code || res->exit_code != 0)
        return pc_error_set(err, 502, "`%s` failed on the target (exit %d): %.300s", script,
                            res->has_exit_code ? res->exit_code : -1,
                            res->err.data ? res->err.data : "");
    if (res->out.truncated)
        return pc_error_set(err, 502, "the target's output exceeded %zu bytes", cap);
    return 0;
}

static void remote_tmp(pc_lease *lease, char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/" PC_SYNC_TMP_PREFIX "%s.tar", lease->run_id);
}

/* A private directory on the host for one step's archive (a provider's
 * native sync reads or writes it by path). */
static int host_tmp_dir(pc_lease *lease, char *out, size_t cap, pc_error_t *err)
{
    char base[1200];
    snprintf(base, sizeof base, "%s/tmp", lease->app->cfg.data_dir);
    if (pc_mkdir_p(base, 0700) < 0)
        return pc_error_errno(err, errno, "cannot create %s", base);
    snprintf(out, cap, "%s/sync-XXXXXX", base);
    if (!mkdtemp(out))
        return pc_error_errno(err, errno, "cannot create a temporary directory in %s", base);
    return 0;
}

static void host_tmp_remove(const char *dir)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/archive.tar", dir);
    unlink(p);
    rmdir(dir);
}

static int native_call(pc_lease *lease, const char *method, const char *src, const char *dst,
                       pc_error_t *err)
{
    json_t *ops = json_pack("[{s:s,s:[{s:s,s:s,s:s,s:i}]}]", "operationId",
                            !strcmp(method, "environmentSyncIn") ? "workspace-in"
                                                                  : "workspace-out",
                            "files", "sourcePath", src, "targetPath", dst, "kind", "file", "mode",
                            0600);
    int rc = pc_sandbox_sync_call(lease, method, ops, err);
    json_decref(ops);
    return rc;
}

int pc_env_sync_in(pc_lease *lease, const char *host_dir, const char *remote_cwd, json_t *env,
                   size_t max_bytes, json_t **manifest, pc_sync_stats *st, pc_error_t *err)
{
    char dir[1300], path[1400], tmp[256];
    if (host_tmp_dir(lease, dir, sizeof dir, err) < 0) {
        pc_error_prefix(err, "workspace sync in");
        return -1;
    }
    snprintf(path, sizeof path, "%s/archive.tar", dir);
    remote_tmp(lease, tmp, sizeof tmp);
    bool native = pc_sandbox_native_sync(lease);
    int64_t entries = 0;
    json_t *m = NULL;
    long size = 0;
    int rc = 0;
    FILE *f = fopen(path, "w+xe");
    if (!f)
        rc = pc_error_errno(err, errno, "cannot create %s", path);
    if (rc == 0)
        rc = pc_sync_write_archive(host_dir, f, max_bytes, &m, &entries, err);
    if (rc == 0)
        size = ftell(f);
    if (rc == 0 && fseek(f, 0, SEEK_SET) != 0)
        rc = pc_error_errno(err, errno, "cannot rewind the archive");
    if (rc == 0 && native) {
        rc = native_call(lease, "environmentSyncIn", path, tmp, err);
    } else if (rc == 0) {
        unsigned char *raw = pc_xmalloc(PC_SYNC_CHUNK);
        size_t b64cap = sodium_base64_ENCODED_LEN(PC_SYNC_CHUNK, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = pc_xmalloc(b64cap);
        for (bool first = true; rc == 0; first = false) {
            size_t n = fread(raw, 1, PC_SYNC_CHUNK, f);
            if (n == 0 && !first)
                break;
            sodium_bin2base64(b64, b64cap, raw, n, sodium_base64_VARIANT_ORIGINAL);
            pc_exec_result res;
            rc = remote_sh(lease, NULL, env, first ? "base64 -d > \"$1\"" : "base64 -d >> \"$1\"",
                           tmp, "", b64, 4096, &res, err);
            pc_exec_result_free(&res);
            if (n < PC_SYNC_CHUNK)
                break;
        }
        free(raw);
        free(b64);
    }
    if (f)
        fclose(f);
    host_tmp_remove(dir);
    long long now = -1;
    if (rc == 0) {
        /* The target's own clock, read before unpacking: on the way back,
         * what the host did not send counts only if it is newer. */
        pc_exec_result res;
        rc = remote_sh(lease, NULL, env,
                       "mkdir -p \"$2\" && date +%s && tar -C \"$2\" -xf \"$1\"; rc=$?; "
                       "rm -f \"$1\"; exit $rc",
                       tmp, remote_cwd, NULL, 4096, &res, err);
        char *end = NULL;
        if (rc == 0 && res.out.data)
            now = strtoll(res.out.data, &end, 10);
        if (rc == 0 && (!end || end == res.out.data || now <= 0))
            rc = pc_error_set(err, 502, "the target reported no time");
        pc_exec_result_free(&res);
    }
    if (rc < 0) {
        if (err->status != 409) {
            /* A transfer that broke off may have left part of the archive. */
            pc_exec_result res;
            pc_error_t cerr = PC_ERROR_INIT;
            remote_sh(lease, NULL, env, "rm -f \"$1\"", tmp, "", NULL, 4096, &res, &cerr);
            pc_exec_result_free(&res);
            pc_error_clear(&cerr);
        }
        json_decref(m);
        pc_error_prefix(err, "workspace sync in");
        return -1;
    }
    if (st) {
        st->sent_entries = entries;
        st->sent_bytes = size;
        st->native = native;
    }
    /* One second of slack for mtimes the target rounds down. */
    *manifest = json_pack("{s:o,s:I}", "paths", m, "since", (json_int_t)(now - 1));
    return 0;
}

/* Fetches the remote archive of `total` bytes into f, chunk by chunk. */
static int fetch_chunks(pc_lease *lease, json_t *env, const char *tmp, uint64_t total, FILE *f,
                        pc_error_t *err)
{
    unsigned char *raw = pc_xmalloc(PC_SYNC_CHUNK + 16);
    size_t cap = sodium_base64_ENCODED_LEN(PC_SYNC_CHUNK, sodium_base64_VARIANT_ORIGINAL) +
                 PC_SYNC_CHUNK / 38 + 64; /* line breaks of base64's output */
    uint64_t got = 0;
    int rc = 0;
    for (uint64_t blk = 0; rc == 0 && got < total; blk++) {
        char skip[32];
        snprintf(skip, sizeof skip, "%" PRIu64, blk);
        pc_exec_result res;
        rc = remote_sh(lease, NULL, env,
                       "dd if=\"$1\" bs=1048576 skip=\"$2\" count=1 2>/dev/null | base64", tmp,
                       skip, NULL, cap, &res, err);
        size_t n = 0;
        if (rc == 0 &&
            sodium_base642bin(raw, PC_SYNC_CHUNK + 16, res.out.data ? res.out.data : "",
                              res.out.len, "\r\n ", &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
            rc = pc_error_set(err, 502, "the target sent bad base64");
        if (rc == 0 && (n == 0 || n > PC_SYNC_CHUNK || got + n > total))
            rc = pc_error_set(err, 502, "the target sent a chunk of %zu bytes", n);
        if (rc == 0 && fwrite(raw, 1, n, f) != n)
            rc = pc_error_errno(err, errno, "cannot write a temporary file");
        got += n;
        pc_exec_result_free(&res);
    }
    free(raw);
    return rc;
}

int pc_env_sync_out(pc_lease *lease, const char *host_dir, const char *remote_cwd, json_t *env,
                    size_t max_bytes, json_t *manifest, pc_sync_stats *st, pc_error_t *err)
{
    char tmp[256], dir[1300] = "", path[1400];
    remote_tmp(lease, tmp, sizeof tmp);
    bool native = pc_sandbox_native_sync(lease);
    pc_exec_result res;
    int rc = remote_sh(lease, NULL, env, "tar -C \"$2\" -cf \"$1\" . && wc -c < \"$1\"", tmp,
                       remote_cwd, NULL, 4096, &res, err);
    uint64_t total = 0;
    if (rc == 0) {
        char *end = NULL;
        const char *s = res.out.data ? res.out.data : "";
        while (*s == ' ')
            s++;
        total = strtoull(s, &end, 10);
        if (end == s)
            rc = pc_error_set(err, 502, "the target reported no archive size");
    }
    pc_exec_result_free(&res);
    /* The archive is bounded by what its content may be plus tar's own
     * headers, so a hostile size is refused before any byte moves. */
    uint64_t limit = (uint64_t)max_bytes + max_bytes / 8 + (1u << 20);
    if (rc == 0 && total > limit)
        rc = pc_error_set(err, 413,
                          "the workspace coming back (%" PRIu64
                          " bytes archived) is larger than workspaceSyncMaxBytes (%zu bytes)",
                          total, max_bytes);
    if (rc == 0)
        rc = host_tmp_dir(lease, dir, sizeof dir, err);
    snprintf(path, sizeof path, "%s/archive.tar", dir);
    FILE *f = NULL;
    if (rc == 0 && native) {
        rc = native_call(lease, "environmentSyncOut", tmp, path, err);
        if (rc == 0 && !(f = fopen(path, "re")))
            rc = pc_error_errno(err, errno, "the provider left no archive at %s", path);
        struct stat fst;
        if (rc == 0 && (fstat(fileno(f), &fst) < 0 || !S_ISREG(fst.st_mode) ||
                        (uint64_t)fst.st_size != total))
            rc = pc_error_set(err, 502, "the provider's archive is not the %" PRIu64
                                        " bytes the target reported", total);
    } else if (rc == 0) {
        if (!(f = fopen(path, "w+xe")))
            rc = pc_error_errno(err, errno, "cannot create %s", path);
        if (rc == 0)
            rc = fetch_chunks(lease, env, tmp, total, f, err);
        if (rc == 0 && (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0))
            rc = pc_error_errno(err, errno, "cannot rewind the archive");
    }
    if (!pc_error_is_set(err) || err->status != 409) {
        pc_error_t cerr = PC_ERROR_INIT;
        remote_sh(lease, NULL, env, "rm -f \"$1\"", tmp, "", NULL, 4096, &res, &cerr);
        pc_exec_result_free(&res);
        pc_error_clear(&cerr);
    }
    if (rc == 0)
        rc = pc_sync_apply(host_dir, f, max_bytes, json_object_get(manifest, "paths"),
                           json_is_integer(json_object_get(manifest, "since"))
                               ? (int64_t)json_integer_value(json_object_get(manifest, "since"))
                               : -1,
                           st, err);
    if (f)
        fclose(f);
    if (dir[0])
        host_tmp_remove(dir);
    if (rc < 0) {
        pc_error_prefix(err, "workspace sync out");
        return -1;
    }
    if (st) {
        st->recv_bytes = (int64_t)total;
        st->native = native;
    }
    return 0;
}
