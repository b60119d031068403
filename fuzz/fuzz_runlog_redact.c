/*
 * Run logs: secret redaction and the size cap of pc_runlog_write() on
 * arbitrary chunks of process output.
 *
 * Input: one byte choosing the cap (bit 3 set: the default cap; else
 * 64 << (bits 0-2) bytes), then records [op][len][len bytes]:
 *   op & 3 == 0   register the bytes as a secret (up to a NUL),
 *   op & 3 == 1/2/3  write them to stdout/stderr/system, repeated
 *                    1 << ((op >> 4) & 7) times (so pieces past the 32 KiB
 *                    pending buffer are reached with small inputs),
 *   op & 4        (writes) name the stream "other", which the log files
 *                 under "system".
 * A truncated last record uses what is left. The log is flushed once at
 * the end, as the orchestrator does when the run's process is done.
 *
 * Properties (src/run/runlog.h): every line of the file is a JSON object
 * {ts, stream, chunk, seq} with seq counting 1, 2, ...; pc_runlog_bytes()
 * and pc_runlog_seq() match the file; excerpts are valid UTF-8 of at most
 * 3 * PC_RUNLOG_EXCERPT bytes; and no registered secret shows up, neither
 * in the file (per stream, across chunk boundaries), nor in the excerpts,
 * nor in pc_runlog_redact() of the whole stream. The secrets checked are
 * those of printable ASCII without '\n' and without a character of the
 * marker "***REDACTED***" (a secret that the marker itself can complete is
 * not something redaction can promise to remove), and output written
 * before a secret was registered may of course contain it.
 */
#include "fuzz_common.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/util.h"
#include "run/runlog.h"

#define MAX_SECRETS 32

static char dir[512];
static char file[700];

static void cleanup(void)
{
    unlink(file);
    char p[700];
    snprintf(p, sizeof p, "%s/run-logs/c/a", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/run-logs/c", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/run-logs", dir);
    rmdir(p);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/pc-fuzz-runlog-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(file, sizeof file, "%s/run-logs/c/a/r.ndjson", dir);
    atexit(cleanup);
    return 0;
}

static bool checkable(const char *s)
{
    if (strlen(s) < 4)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p > 0x7e || strchr("*REDACT", *p))
            return false;
    return true;
}

/* Growable byte strings for the per-stream texts. */
typedef struct {
    char *p;
    size_t n, cap;
} text;

static void text_add(text *t, const char *p, size_t n)
{
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        if (!t->p)
            abort();
    }
    memcpy(t->p + t->n, p, n);
    t->n += n;
    t->p[t->n] = '\0';
}

static const char *const streams[] = {"stdout", "stderr", "system"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = (data[0] & 8) ? 0 : (size_t)64 << (data[0] & 7);
    unlink(file);
    pc_error_t err = PC_ERROR_INIT;
    pc_runlog *log = pc_runlog_open(dir, "c", "a", "r", cap, &err);
    FZ_CHECK(log != NULL, "pc_runlog_open: %s", err.msg);

    char *secrets[MAX_SECRETS];
    bool early[MAX_SECRETS]; /* registered before any output */
    size_t nsecrets = 0;
    bool wrote = false;
    text written[3] = {{0}};
    size_t i = 1;
    while (i < size) {
        uint8_t op = data[i++];
        size_t len = i < size ? data[i++] : 0;
        if (len > size - i)
            len = size - i;
        const char *p = (const char *)data + i;
        i += len;
        int kind = op & 3;
        if (kind == 0) {
            char *s = fz_cstr((const uint8_t *)p, len);
            pc_runlog_add_secret(log, s);
            if (nsecrets < MAX_SECRETS && strlen(s) >= 4) {
                early[nsecrets] = !wrote;
                secrets[nsecrets++] = s;
            } else
                free(s);
        } else {
            size_t reps = (size_t)1 << ((op >> 4) & 7);
            wrote = wrote || len > 0;
            int si = (op & 4) ? 2 : kind - 1;
            for (size_t r = 0; r < reps; r++) {
                pc_runlog_write(log, (op & 4) ? "other" : streams[si], p, len);
                text_add(&written[si], p, len);
            }
        }
    }
    pc_runlog_flush(log);

    for (int s = 0; s < 3; s++) {
        char *ex = pc_runlog_excerpt(log, streams[s]);
        size_t n = strlen(ex);
        FZ_CHECK(n <= 3 * PC_RUNLOG_EXCERPT, "excerpt of %zu bytes", n);
        FZ_CHECK(fz_utf8_valid(ex, n), "excerpt of %s is not valid UTF-8", streams[s]);
        for (size_t k = 0; k < nsecrets; k++)
            FZ_CHECK(!early[k] || !checkable(secrets[k]) || !strstr(ex, secrets[k]),
                     "secret \"%s\" in the %s excerpt", secrets[k], streams[s]);
        free(ex);
        char *red = pc_runlog_redact(log, written[s].p ? written[s].p : "", written[s].n);
        for (size_t k = 0; k < nsecrets; k++)
            FZ_CHECK(!checkable(secrets[k]) || !memmem(red, strlen(red), secrets[k],
                                                        strlen(secrets[k])),
                     "secret \"%s\" survives pc_runlog_redact", secrets[k]);
        free(red);
    }
    int64_t bytes = pc_runlog_bytes(log), seq = pc_runlog_seq(log);
    bool truncated = pc_runlog_truncated(log);
    pc_runlog_close(log);

    /* Read back what was written and put each stream's chunks together. */
    char *buf = NULL;
    size_t blen = 0;
    FZ_CHECK(pc_read_file(file, (size_t)1 << 30, &buf, &blen) == 0, "cannot read the log back");
    FZ_CHECK((int64_t)blen == bytes, "pc_runlog_bytes %lld, file %zu", (long long)bytes, blen);
    text got[3] = {{0}};
    int64_t lines = 0;
    char msg[160];
    snprintf(msg, sizeof msg, "[paperclip] run log truncated: output exceeded %zu bytes",
             cap ? cap : (size_t)PC_RUNLOG_DEFAULT_CAP);
    for (char *line = buf, *nl; line < buf + blen; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(buf + blen - line));
        FZ_CHECK(nl != NULL, "last line is not terminated");
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, &jerr);
        FZ_CHECK(j != NULL, "line %lld is not JSON: %s", (long long)lines + 1, jerr.text);
        lines++;
        const char *stream = json_string_value(json_object_get(j, "stream"));
        json_t *chunk = json_object_get(j, "chunk");
        FZ_CHECK(json_is_string(json_object_get(j, "ts")), "line without ts");
        FZ_CHECK(json_integer_value(json_object_get(j, "seq")) == lines, "seq out of order");
        FZ_CHECK(stream && json_is_string(chunk), "line without stream or chunk");
        bool marker = truncated && !strcmp(stream, "system") && !strcmp(json_string_value(chunk), msg);
        for (int s = 0; s < 3 && !marker; s++)
            if (!strcmp(stream, streams[s]))
                text_add(&got[s], json_string_value(chunk), json_string_length(chunk));
        json_decref(j);
    }
    FZ_CHECK(lines == seq, "pc_runlog_seq %lld, %lld lines", (long long)seq, (long long)lines);
    for (int s = 0; s < 3; s++) {
        for (size_t k = 0; k < nsecrets; k++)
            FZ_CHECK(!early[k] || !checkable(secrets[k]) || !got[s].p ||
                         !memmem(got[s].p, got[s].n, secrets[k], strlen(secrets[k])),
                     "secret \"%s\" written to the %s log", secrets[k], streams[s]);
        free(got[s].p);
        free(written[s].p);
    }
    free(buf);
    for (size_t k = 0; k < nsecrets; k++)
        free(secrets[k]);
    return 0;
}
