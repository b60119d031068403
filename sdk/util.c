/*
 * Small helpers of the plugin SDK: errors, lossy JSON strings, time stamps,
 * UUIDs, the temporary directory, rm -rf and mkdir -p.
 */
#include <paperclip/plugin.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/utf8.h"

int pc_plugin_error_set(pc_plugin_error *err, int code, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    json_decref(err->data);
    err->data = NULL;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

void pc_plugin_error_clear(pc_plugin_error *err)
{
    if (!err)
        return;
    json_decref(err->data);
    memset(err, 0, sizeof(*err));
}

json_t *pc_plugin_json_string_lossy(const char *bytes, size_t len)
{
    size_t cap = pc_utf8_repaired_len(bytes, len);
    if (cap == len)
        return json_stringn(len ? bytes : "", len);
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    json_t *j = json_stringn(buf, pc_utf8_repair(bytes, len, buf));
    free(buf);
    return j;
}

char *pc_plugin_iso8601(const struct timespec *ts, char *buf)
{
    struct tm tm;
    time_t t = ts->tv_sec;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, 25, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)((ts->tv_nsec / 1000000) % 1000);
    if (n + 6 <= 25) {
        buf[n++] = '.';
        buf[n++] = (char)('0' + ms / 100);
        buf[n++] = (char)('0' + ms / 10 % 10);
        buf[n++] = (char)('0' + ms % 10);
        buf[n++] = 'Z';
        buf[n] = '\0';
    }
    return buf;
}

char *pc_plugin_uuid_v4(char *buf)
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            /* getrandom cannot fail on Linux >= 3.17 short of a bad buffer;
             * fall back to something unique enough for a directory name. */
            for (size_t i = got; i < sizeof(b); i++)
                b[i] = (unsigned char)(rand() ^ (getpid() >> (i % 8)));
            break;
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            buf[o++] = '-';
        buf[o++] = hex[b[i] >> 4];
        buf[o++] = hex[b[i] & 0x0F];
    }
    buf[o] = '\0';
    return buf;
}

static pthread_once_t tmpdir_once = PTHREAD_ONCE_INIT;
static char tmpdir_buf[4096];

static void tmpdir_init(void)
{
    const char *t = getenv("TMPDIR");
    if (!t || t[0] != '/' || strlen(t) >= sizeof(tmpdir_buf)) {
        strcpy(tmpdir_buf, "/tmp");
        return;
    }
    strcpy(tmpdir_buf, t);
    size_t n = strlen(tmpdir_buf);
    while (n > 1 && tmpdir_buf[n - 1] == '/')
        tmpdir_buf[--n] = '\0';
}

const char *pc_plugin_tmpdir(void)
{
    pthread_once(&tmpdir_once, tmpdir_init);
    return tmpdir_buf;
}

/* Removes the entries of the directory open as dfd (which this closes),
 * staying on device dev. */
static int rm_dir_contents(int dfd, dev_t dev, const char *path, pc_plugin_error *err)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return pc_plugin_error_set(err, 0, "cannot read directory %s: %s", path, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                continue;
            rc = pc_plugin_error_set(err, 0, "cannot stat %s/%s: %s", path, e->d_name,
                                     strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            if (st.st_dev != dev) {
                rc = pc_plugin_error_set(err, 0, "refusing to cross a mount at %s/%s", path,
                                         e->d_name);
                break;
            }
            int cfd = openat(dirfd(d), e->d_name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                rc = pc_plugin_error_set(err, 0, "cannot open %s/%s: %s", path, e->d_name,
                                         strerror(errno));
                break;
            }
            /* Give the owner write access so read-only trees (e.g. a Go
             * module cache) can be emptied. */
            fchmod(cfd, 0700);
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *child = malloc(n);
            if (!child) {
                close(cfd);
                rc = pc_plugin_error_set(err, 0, "out of memory");
                break;
            }
            snprintf(child, n, "%s/%s", path, e->d_name);
            rc = rm_dir_contents(cfd, dev, child, err);
            free(child);
            if (rc < 0)
                break;
            if (unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                rc = pc_plugin_error_set(err, 0, "cannot remove %s/%s: %s", path, e->d_name,
                                         strerror(errno));
                break;
            }
        } else if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
            rc = pc_plugin_error_set(err, 0, "cannot remove %s/%s: %s", path, e->d_name,
                                     strerror(errno));
            break;
        }
    }
    closedir(d);
    return rc;
}

int pc_plugin_rm_rf(const char *path, pc_plugin_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return pc_plugin_error_set(err, 0, "cannot stat %s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return pc_plugin_error_set(err, 0, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return pc_plugin_error_set(err, 0, "cannot open %s: %s", path, strerror(errno));
    if (rm_dir_contents(dfd, st.st_dev, path, err) < 0)
        return -1;
    if (rmdir(path) < 0 && errno != ENOENT)
        return pc_plugin_error_set(err, 0, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

int pc_plugin_mkdir_p(const char *path, pc_plugin_error *err)
{
    size_t n = strlen(path);
    if (n == 0)
        return pc_plugin_error_set(err, 0, "cannot create an empty path");
    char *p = strdup(path);
    if (!p)
        return pc_plugin_error_set(err, 0, "out of memory");
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            int e = errno;
            pc_plugin_error_set(err, 0, "cannot create directory %s: %s", p, strerror(e));
            free(p);
            return -1;
        }
        p[i] = c;
    }
    struct stat st;
    int serr = stat(path, &st) < 0 ? errno : 0;
    if (serr || !S_ISDIR(st.st_mode)) {
        pc_plugin_error_set(err, 0, "cannot create directory %s: %s", path,
                            serr ? strerror(serr) : "not a directory");
        free(p);
        return -1;
    }
    free(p);
    return 0;
}
