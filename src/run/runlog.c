/*
 * Run output log (see runlog.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "run/runlog.h"

#define PENDING_PIECE (32u * 1024)
#define MAX_SECRETS 32

typedef struct stream_state {
    const char *name;
    char *pending;          /* redacted-in-place bytes not yet written */
    size_t pending_len;
    char tail[PC_RUNLOG_EXCERPT];
    size_t tail_len;
} stream_state;

struct pc_runlog {
    pthread_mutex_t mu;
    int fd;
    char *ref;
    size_t cap;
    size_t chunk_bytes;     /* chunk text written (counted against cap) */
    int64_t file_bytes;
    int64_t seq;
    bool truncated;
    crypto_hash_sha256_state sha;
    char *secrets[MAX_SECRETS];
    size_t nsecrets;
    size_t max_secret;
    bool secret_has_newline; /* then a newline does not end a possible secret */
    stream_state streams[3];
    pc_runlog_watch *watch;  /* followers of this run */
};

static const char *const stream_names[] = {"stdout", "stderr", "system"};

/* ---- followers ----
 *
 * One watch entry per run that has a log open or a follower waiting, found by
 * run id in a small list. The log and each follower hold a reference; the
 * entry goes when the last one lets go. `version` counts changes (a line
 * written, the log opened or closed, the run ended), so a follower that
 * remembers the version it last acted on never misses a wake-up. */
struct pc_runlog_watch {
    struct pc_runlog_watch *next;
    char run_id[40];
    int refs;                 /* guarded by watch_mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t version;         /* guarded by mu */
};

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static pc_runlog_watch *watches;

static pc_runlog_watch *watch_get(const char *run_id)
{
    pthread_mutex_lock(&watch_mu);
    pc_runlog_watch *w = watches;
    while (w && strcmp(w->run_id, run_id) != 0)
        w = w->next;
    if (!w) {
        w = pc_xcalloc(1, sizeof *w);
        snprintf(w->run_id, sizeof w->run_id, "%s", run_id);
        pthread_mutex_init(&w->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cv, &ca);
        pthread_condattr_destroy(&ca);
        w->next = watches;
        watches = w;
    }
    w->refs++;
    pthread_mutex_unlock(&watch_mu);
    return w;
}

static void watch_put(pc_runlog_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&watch_mu);
    if (--w->refs > 0) {
        pthread_mutex_unlock(&watch_mu);
        return;
    }
    for (pc_runlog_watch **pp = &watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&watch_mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void watch_bump(pc_runlog_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->version++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

pc_runlog_watch *pc_runlog_watch_open(const char *run_id) { return watch_get(run_id); }

void pc_runlog_watch_close(pc_runlog_watch *w) { watch_put(w); }

uint64_t pc_runlog_watch_version(pc_runlog_watch *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->version;
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t pc_runlog_watch_wait(pc_runlog_watch *w, uint64_t seen, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000)
        ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_mutex_lock(&w->mu);
    while (w->version == seen)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    uint64_t v = w->version;
    pthread_mutex_unlock(&w->mu);
    return v;
}

void pc_runlog_notify(const char *run_id)
{
    pthread_mutex_lock(&watch_mu);
    pc_runlog_watch *w = watches;
    while (w && strcmp(w->run_id, run_id) != 0)
        w = w->next;
    /* The entry cannot go while watch_mu is held; bumping under it is short. */
    if (w)
        watch_bump(w);
    pthread_mutex_unlock(&watch_mu);
}

pc_runlog *pc_runlog_open(const char *data_dir, const char *company_id, const char *agent_id,
                          const char *run_id, size_t cap, pc_error_t *err)
{
    char dir[1400], path[1600];
    snprintf(dir, sizeof dir, "%s/run-logs/%s/%s", data_dir, company_id, agent_id);
    if (pc_mkdir_p(dir, 0700) < 0) {
        pc_error_errno(err, errno, "cannot create run log directory %s", dir);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.ndjson", dir, run_id);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        pc_error_errno(err, errno, "cannot open run log %s", path);
        return NULL;
    }
    pc_runlog *l = pc_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->fd = fd;
    l->ref = pc_xasprintf("%s/%s/%s.ndjson", company_id, agent_id, run_id);
    l->cap = cap ? cap : PC_RUNLOG_DEFAULT_CAP;
    crypto_hash_sha256_init(&l->sha);
    for (int i = 0; i < 3; i++) {
        l->streams[i].name = stream_names[i];
        l->streams[i].pending = pc_xmalloc(PENDING_PIECE * 2 + 1);
    }
    l->watch = watch_get(run_id);
    watch_bump(l->watch); /* the log now exists */
    return l;
}

void pc_runlog_add_secret(pc_runlog *l, const char *secret)
{
    if (!l || !secret || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&l->mu);
    if (l->nsecrets < MAX_SECRETS) {
        size_t n = strlen(secret);
        /* Held-back tails are bounded by the piece size, so longer secrets
         * are cut there (their prefix is still redacted). */
        if (n > PENDING_PIECE / 2)
            n = PENDING_PIECE / 2;
        l->secrets[l->nsecrets++] = strndup(secret, n);
        if (n > l->max_secret)
            l->max_secret = n;
        if (memchr(secret, '\n', n))
            l->secret_has_newline = true;
    }
    pthread_mutex_unlock(&l->mu);
}

/* Replaces every secret in (p, *n) in place; the buffer has room for
 * growth because the marker can be longer than a short secret: callers pass
 * a buffer of `room` bytes. Returns the new length. */
static size_t redact_into(pc_runlog *l, const char *in, size_t n, pc_buf *out)
{
    pc_buf_reset(out);
    size_t i = 0;
    while (i < n) {
        size_t best_pos = n, best_len = 0;
        for (size_t s = 0; s < l->nsecrets; s++) {
            size_t sl = strlen(l->secrets[s]);
            const char *hit = memmem(in + i, n - i, l->secrets[s], sl);
            if (hit && (size_t)(hit - in) < best_pos) {
                best_pos = (size_t)(hit - in);
                best_len = sl;
            }
        }
        pc_buf_append_trunc(out, in + i, best_pos - i);
        if (best_len == 0)
            break;
        pc_buf_append_trunc(out, PC_RUNLOG_REDACTED, strlen(PC_RUNLOG_REDACTED));
        i = best_pos + best_len;
    }
    return out->len;
}

char *pc_runlog_redact(pc_runlog *l, const char *s, size_t len)
{
    pc_buf b;
    pc_buf_init(&b, PC_BUF_UNBOUNDED);
    pthread_mutex_lock(&l->mu);
    redact_into(l, s, len, &b);
    pthread_mutex_unlock(&l->mu);
    if (!b.data)
        return pc_xstrdup("");
    return pc_buf_steal(&b, NULL);
}

static void write_line(pc_runlog *l, const char *stream, const char *text, size_t n)
{
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    _cleanup_free_ char *clean = pc_utf8_sanitize(text, n);
    json_t *j = json_pack("{s:s,s:s,s:s,s:I}", "ts", ts, "stream", stream, "chunk", clean, "seq",
                          (json_int_t)(l->seq + 1));
    if (!j)
        return;
    char *line = pc_json_dumps(j);
    json_decref(j);
    size_t ll = strlen(line);
    line[ll] = '\n'; /* replaces the NUL; the length below excludes it again */
    size_t off = 0;
    while (off < ll + 1) {
        ssize_t w = write(l->fd, line + off, ll + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    crypto_hash_sha256_update(&l->sha, (const unsigned char *)line, off);
    l->file_bytes += (int64_t)off;
    l->seq++;
    free(line);
    watch_bump(l->watch);
}

static void keep_tail(stream_state *st, const char *p, size_t n)
{
    if (n >= sizeof st->tail) {
        memcpy(st->tail, p + n - sizeof st->tail, sizeof st->tail);
        st->tail_len = sizeof st->tail;
        return;
    }
    if (st->tail_len + n > sizeof st->tail) {
        size_t drop = st->tail_len + n - sizeof st->tail;
        memmove(st->tail, st->tail + drop, st->tail_len - drop);
        st->tail_len -= drop;
    }
    memcpy(st->tail + st->tail_len, p, n);
    st->tail_len += n;
}

/* Writes redacted text, respecting the cap. */
static void emit(pc_runlog *l, stream_state *st, const char *p, size_t n)
{
    if (n == 0)
        return;
    keep_tail(st, p, n);
    if (l->truncated)
        return;
    if (l->chunk_bytes + n > l->cap) {
        size_t fit = l->cap - l->chunk_bytes;
        if (fit > 0)
            write_line(l, st->name, p, fit);
        l->chunk_bytes = l->cap;
        l->truncated = true;
        char msg[160];
        int m = snprintf(msg, sizeof msg, "[paperclip] run log truncated: output exceeded %zu bytes",
                         l->cap);
        write_line(l, "system", msg, (size_t)m);
        return;
    }
    l->chunk_bytes += n;
    write_line(l, st->name, p, n);
}

/* Emits what can no longer be part of a secret: all but the last
 * (max_secret - 1) bytes, or everything up to the last newline when no secret
 * spans lines (a PEM key printed line by line must still be caught whole),
 * never splitting a UTF-8 sequence. */
static void drain(pc_runlog *l, stream_state *st, bool all)
{
    pc_buf red;
    pc_buf_init(&red, PC_BUF_UNBOUNDED);
    redact_into(l, st->pending, st->pending_len, &red);
    size_t n = red.len;
    size_t cut = n;
    if (!all) {
        size_t hold = l->max_secret ? l->max_secret - 1 : 0;
        cut = n > hold ? n - hold : 0;
        const char *nl = NULL;
        for (size_t i = n; i > cut && !l->secret_has_newline; i--)
            if (red.data[i - 1] == '\n') {
                nl = red.data + i - 1;
                break;
            }
        if (nl)
            cut = (size_t)(nl - red.data) + 1;
        for (int k = 0; k < 3 && cut > 0 && cut < n && ((unsigned char)red.data[cut] & 0xC0) == 0x80;
             k++)
            cut--;
    }
    emit(l, st, red.data ? red.data : "", cut);
    st->pending_len = n - cut;
    if (st->pending_len)
        memcpy(st->pending, red.data + cut, st->pending_len);
    pc_buf_release(&red);
}

static stream_state *find_stream(pc_runlog *l, const char *name)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(l->streams[i].name, name))
            return &l->streams[i];
    return &l->streams[2];
}

void pc_runlog_write(pc_runlog *l, const char *stream, const char *data, size_t len)
{
    if (!l || !data)
        return;
    pthread_mutex_lock(&l->mu);
    stream_state *st = find_stream(l, stream ? stream : "system");
    while (len > 0) {
        /* pending stays below PENDING_PIECE after every drain (the hold is
         * at most PENDING_PIECE/2), so one piece always fits. */
        size_t piece = len < PENDING_PIECE ? len : PENDING_PIECE;
        memcpy(st->pending + st->pending_len, data, piece);
        st->pending_len += piece;
        data += piece;
        len -= piece;
        drain(l, st, false);
    }
    pthread_mutex_unlock(&l->mu);
}

void pc_runlog_flush(pc_runlog *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    for (int i = 0; i < 3; i++)
        drain(l, &l->streams[i], true);
    pthread_mutex_unlock(&l->mu);
}

const char *pc_runlog_ref(const pc_runlog *l) { return l->ref; }

int64_t pc_runlog_bytes(pc_runlog *l)
{
    pthread_mutex_lock(&l->mu);
    int64_t b = l->file_bytes;
    pthread_mutex_unlock(&l->mu);
    return b;
}

int64_t pc_runlog_seq(pc_runlog *l)
{
    pthread_mutex_lock(&l->mu);
    int64_t s = l->seq;
    pthread_mutex_unlock(&l->mu);
    return s;
}

bool pc_runlog_truncated(pc_runlog *l)
{
    pthread_mutex_lock(&l->mu);
    bool t = l->truncated;
    pthread_mutex_unlock(&l->mu);
    return t;
}

void pc_runlog_sha256(pc_runlog *l, char out[65])
{
    pthread_mutex_lock(&l->mu);
    crypto_hash_sha256_state copy = l->sha;
    unsigned char h[32];
    crypto_hash_sha256_final(&copy, h);
    sodium_bin2hex(out, 65, h, sizeof h);
    pthread_mutex_unlock(&l->mu);
}

char *pc_runlog_excerpt(pc_runlog *l, const char *stream)
{
    pthread_mutex_lock(&l->mu);
    stream_state *st = find_stream(l, stream);
    char *s = pc_utf8_sanitize(st->tail, st->tail_len);
    pthread_mutex_unlock(&l->mu);
    return s;
}

void pc_runlog_close(pc_runlog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    for (size_t i = 0; i < l->nsecrets; i++) {
        sodium_memzero(l->secrets[i], strlen(l->secrets[i]));
        free(l->secrets[i]);
    }
    for (int i = 0; i < 3; i++)
        free(l->streams[i].pending);
    free(l->ref);
    pthread_mutex_destroy(&l->mu);
    watch_bump(l->watch);
    watch_put(l->watch);
    free(l);
}

char *pc_runlog_path(const char *data_dir, const char *log_ref)
{
    if (!log_ref || !*log_ref || log_ref[0] == '/' || strstr(log_ref, ".."))
        return NULL;
    return pc_xasprintf("%s/run-logs/%s", data_dir, log_ref);
}
