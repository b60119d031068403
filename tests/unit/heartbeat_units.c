/*
 * Unit tests of the heartbeat runtime's pure parts: run log redaction (also
 * of secrets split across chunks), the log cap, run JWTs, and runtime API
 * URL discovery.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../lib/harness.h"
#include "../lib/tap.h"
#include "lib/json.h"
#include "run/internal.h"
#include "run/jwt.h"
#include "run/runlog.h"
#include "run/runtime.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    char *buf = malloc(4 << 20);
    size_t n = fread(buf, 1, (4 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Concatenates the chunks of one stream from an ndjson log. */
static char *chunks(const char *text, const char *stream)
{
    size_t cap = strlen(text) + 1, len = 0;
    char *out = calloc(1, cap);
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, "\n");
        json_error_t e;
        json_t *j = json_loadb(p, n, 0, &e);
        const char *s = json_string_value(json_object_get(j, "stream"));
        const char *c = json_string_value(json_object_get(j, "chunk"));
        if (s && c && !strcmp(s, stream) && len + strlen(c) < cap) {
            memcpy(out + len, c, strlen(c));
            len += strlen(c);
        }
        json_decref(j);
        p += n;
        if (*p)
            p++;
    }
    out[len] = '\0';
    return out;
}

static void test_runlog(const char *dir)
{
    pc_error_t err = PC_ERROR_INIT;
    pc_runlog *l = pc_runlog_open(dir, "c1", "a1", "r1", 0, &err);
    ok(l != NULL, "runlog opens");
    if (!l)
        return;
    pc_runlog_add_secret(l, "TOPSECRET-1234567890");
    pc_runlog_add_secret(l, "abc"); /* too short: ignored */
    /* The secret arrives split over three writes and without a newline. */
    pc_runlog_write(l, "stdout", "before TOPSEC", 13);
    pc_runlog_write(l, "stdout", "RET-12345", 9);
    pc_runlog_write(l, "stdout", "67890 after\nline two abc\n", 25);
    pc_runlog_write(l, "stderr", "err TOPSECRET-1234567890", 24);
    pc_runlog_flush(l);
    char *out_ex = pc_runlog_excerpt(l, "stdout");
    is_str(out_ex, "before ***REDACTED*** after\nline two abc\n", "split secret redacted");
    free(out_ex);
    char *err_ex = pc_runlog_excerpt(l, "stderr");
    is_str(err_ex, "err ***REDACTED***", "secret at the very end redacted on flush");
    free(err_ex);
    char *red = pc_runlog_redact(l, "x TOPSECRET-1234567890 y", 24);
    is_str(red, "x ***REDACTED*** y", "pc_runlog_redact");
    free(red);
    ok(pc_runlog_seq(l) >= 2, "lines numbered");
    char sha[65];
    pc_runlog_sha256(l, sha);
    char path[1024];
    snprintf(path, sizeof path, "%s/run-logs/c1/a1/r1.ndjson", dir);
    char *text = slurp(path);
    ok(strstr(text, "TOPSECRET") == NULL && strstr(text, "TOPSEC") == NULL,
       "no part of the secret in the file");
    char *so = chunks(text, "stdout");
    is_str(so, "before ***REDACTED*** after\nline two abc\n", "file chunks join to the output");
    free(so);
    unsigned char h[32];
    crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    is_str(sha, hex, "logSha256 is the file's sha256");
    is_int(pc_runlog_bytes(l), (long long)strlen(text), "logBytes is the file size");
    free(text);
    pc_runlog_close(l);

    /* A secret spanning lines (a PEM key printed line by line) written in
     * two pieces split at its newline is still redacted whole. */
    l = pc_runlog_open(dir, "c1", "a1", "r-pem", 0, &err);
    pc_runlog_add_secret(l, "-----KEYLINE-ONE\nKEYLINE-TWO-----");
    pc_runlog_write(l, "stdout", "key: -----KEYLINE-ONE\n", 22);
    pc_runlog_write(l, "stdout", "KEYLINE-TWO----- done\n", 22);
    pc_runlog_flush(l);
    snprintf(path, sizeof path, "%s/run-logs/c1/a1/r-pem.ndjson", dir);
    text = slurp(path);
    ok(text && !strstr(text, "KEYLINE"), "a multi-line secret split at its newline is redacted");
    so = chunks(text ? text : "", "stdout");
    is_str(so, "key: ***REDACTED*** done\n", "multi-line secret: output kept around it");
    free(so);
    free(text);
    pc_runlog_close(l);

    /* Cap: 4 KiB, 100 KiB written. */
    l = pc_runlog_open(dir, "c1", "a1", "r2", 4096, &err);
    char block[1024];
    memset(block, 'x', sizeof block);
    block[sizeof block - 1] = '\n';
    for (int i = 0; i < 100; i++)
        pc_runlog_write(l, "stdout", block, sizeof block);
    pc_runlog_flush(l);
    ok(pc_runlog_truncated(l), "log reports truncation");
    snprintf(path, sizeof path, "%s/run-logs/c1/a1/r2.ndjson", dir);
    text = slurp(path);
    so = chunks(text, "stdout");
    is_int(strlen(so), 4096, "exactly the cap of output kept");
    ok(strstr(text, "run log truncated") != NULL, "truncation marker written");
    ok(strlen(text) < 4096 + 2048, "file bounded (%zu bytes)", strlen(text));
    free(so);
    free(text);
    char *tail = pc_runlog_excerpt(l, "stdout");
    is_int(strlen(tail), PC_RUNLOG_EXCERPT, "excerpt keeps the last bytes even past the cap");
    free(tail);
    pc_runlog_close(l);

    /* Invalid UTF-8 and NULs never break the JSON lines. */
    l = pc_runlog_open(dir, "c1", "a1", "r3", 0, &err);
    pc_runlog_write(l, "stdout", "bad \xff\xfe bytes \0 here\n", 20);
    pc_runlog_flush(l);
    snprintf(path, sizeof path, "%s/run-logs/c1/a1/r3.ndjson", dir);
    text = slurp(path);
    json_error_t je;
    json_t *j = json_loads(text, JSON_DISABLE_EOF_CHECK, &je);
    ok(j != NULL, "binary output still makes valid JSON");
    json_decref(j);
    free(text);
    pc_runlog_close(l);
    char *p = pc_runlog_path(dir, "../../etc/passwd");
    ok(p == NULL, "log refs cannot escape the run-logs root");
    free(p);
}

static void test_jwt(const char *dir)
{
    static pc_app app;
    snprintf(app.cfg.data_dir, sizeof app.cfg.data_dir, "%s", dir);
    pc_error_t err = PC_ERROR_INIT;
    is_int(pc_jwt_init(&app, &err), 0, "jwt secret created");
    char path[1024];
    snprintf(path, sizeof path, "%s/agent-jwt-secret", dir);
    struct stat st;
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "secret file is 0600");
    char tok[PC_JWT_MAX];
    const char *agent = "01900000-0000-7000-8000-000000000001";
    const char *company = "01900000-0000-7000-8000-000000000002";
    const char *run = "01900000-0000-7000-8000-000000000003";
    is_int(pc_jwt_mint(agent, company, "process", run, "inst", tok, &err), 0, "mint");
    int64_t now = (int64_t)time(NULL);
    json_t *c = pc_jwt_verify(tok, now, &err);
    ok(c != NULL, "verify");
    is_str(json_string_value(json_object_get(c, "sub")), agent, "sub");
    is_str(json_string_value(json_object_get(c, "company_id")), company, "company_id");
    is_str(json_string_value(json_object_get(c, "run_id")), run, "run_id");
    is_str(json_string_value(json_object_get(c, "adapter_type")), "process", "adapter_type");
    is_str(json_string_value(json_object_get(c, "iss")), "paperclip", "iss");
    is_str(json_string_value(json_object_get(c, "aud")), "paperclip-api", "aud");
    is_int(json_integer_value(json_object_get(c, "exp")) -
               json_integer_value(json_object_get(c, "iat")),
           48 * 3600, "valid 48 hours");
    json_decref(c);
    c = pc_jwt_verify(tok, now + 48 * 3600 + 5, &err);
    ok(c == NULL && err.status == 401, "expired token rejected");
    pc_error_clear(&err);
    char bad[PC_JWT_MAX];
    snprintf(bad, sizeof bad, "%s", tok);
    char *dot = strchr(bad, '.');
    dot[3] = dot[3] == 'a' ? 'b' : 'a'; /* alter the claims */
    c = pc_jwt_verify(bad, now, &err);
    ok(c == NULL, "altered claims rejected");
    pc_error_clear(&err);
    /* alg "none" with the same claims. */
    snprintf(bad, sizeof bad, "eyJhbGciOiJub25lIn0%s", strchr(tok, '.'));
    c = pc_jwt_verify(bad, now, &err);
    ok(c == NULL, "alg none rejected");
    pc_error_clear(&err);
    c = pc_jwt_verify("a.b", now, &err);
    ok(c == NULL, "garbage rejected");
    pc_error_clear(&err);
}

static void test_url(void)
{
    char primary[600];
    json_t *c = pc_runtime_url_build("", "", "", "127.0.0.1", 3100, false, primary, sizeof primary);
    is_str(primary, "http://127.0.0.1:3100", "loopback bind is primary");
    is_int(json_array_size(c), 1, "one candidate");
    json_decref(c);
    c = pc_runtime_url_build("https://pc.example.com/app", "", "a.internal, b.internal", "0.0.0.0",
                             3100, false, primary, sizeof primary);
    is_str(primary, "https://pc.example.com", "public URL origin wins");
    char *s = pc_json_dumps(c);
    is_str(s,
           "[\"https://pc.example.com\",\"https://a.internal:3100\",\"https://b.internal:3100\"]",
           "candidates: preferred, public, allowed hostnames (public protocol)");
    free(s);
    json_decref(c);
    c = pc_runtime_url_build("", "", "box.lan", "0.0.0.0", 3100, false, primary, sizeof primary);
    is_str(primary, "http://box.lan:3100", "first allowed hostname for a wildcard bind");
    json_decref(c);
    c = pc_runtime_url_build("", "", "", "::", 3100, false, primary, sizeof primary);
    is_str(primary, "http://localhost:3100", "wildcard bind falls back to localhost");
    json_decref(c);
    c = pc_runtime_url_build("", "", "", "10.1.2.3", 3100, false, primary, sizeof primary);
    is_str(primary, "http://10.1.2.3:3100", "specific bind host");
    json_decref(c);
    c = pc_runtime_url_build("http://localhost:3100", "http://tunnel:9", "", "127.0.0.1", 3100,
                             false, primary, sizeof primary);
    s = pc_json_dumps(c);
    is_str(s,
           "[\"http://tunnel:9\",\"http://localhost:3100\",\"http://127.0.0.1:3100\","
           "\"http://host.docker.internal:3100\"]",
           "explicit API URL first; docker host for a loopback public URL");
    free(s);
    json_decref(c);
    c = pc_runtime_url_build("", "", "", "::1", 3100, false, primary, sizeof primary);
    is_str(primary, "http://[::1]:3100", "IPv6 bracketed");
    json_decref(c);
}

static void test_cli_stream(void)
{
    pc_adapter_stream s;
    pc_adapter_stream_init(&s, PC_ADAPTER_CODEX);
    const char *ev = "{\"type\":\"thread.started\",\"thread_id\":\"th-1\"}\nnot json\n{\"type\":"
                     "\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"hi\"}}\n"
                     "{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":5,"
                     "\"cached_input_tokens\":2,\"output_tokens\":1}}\n";
    /* Fed one byte at a time: events may split anywhere. */
    for (const char *p = ev; *p; p++)
        pc_adapter_stream_feed(&s, p, 1);
    is_str(s.session, "th-1", "codex thread id");
    is_str(s.summary, "hi", "codex final message");
    is_int(json_integer_value(json_object_get(s.usage, "cachedInputTokens")), 2, "codex usage");
    pc_adapter_stream_free(&s);
    pc_adapter_stream_init(&s, PC_ADAPTER_CLAUDE);
    char *big = malloc(3 << 20);
    memset(big, 'a', 3 << 20);
    big[0] = '{';
    pc_adapter_stream_feed(&s, big, 3 << 20);
    free(big);
    const char *evil = "\n{\"type\":\"system\",\"session_id\":\"x; rm -rf /\"}\n"
                       "{\"type\":\"result\",\"session_id\":\"ok-2\",\"usage\":5}\n";
    pc_adapter_stream_feed(&s, evil, strlen(evil));
    is_str(s.session, "ok-2", "over-long line skipped, unsafe session id refused");
    ok(s.usage == NULL, "bad usage ignored");
    pc_adapter_stream_free(&s);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    char *dir = pc_test_tmpdir("hbunit");
    test_runlog(dir);
    test_jwt(dir);
    test_url();
    test_cli_stream();
    pc_test_rmrf(dir);
    free(dir);
    return tap_done();
}
