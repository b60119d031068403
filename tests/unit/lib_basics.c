/* Unit tests for src/lib: bounded buffers, errors, JSON validation, UUIDs,
 * times, UTF-8 sanitising, config precedence. */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "../lib/tap.h"
#include "app.h"
#include "lib/buf.h"
#include "lib/config.h"
#include "lib/error.h"
#include "lib/json.h"
#include "lib/util.h"

static void test_buf(void)
{
    pc_buf b;
    pc_error_t err = PC_ERROR_INIT;
    pc_buf_init(&b, 8);
    ok(pc_buf_append(&b, "abcd", 4, &err) == 0, "append within limit");
    ok(pc_buf_append(&b, "efgh", 4, &err) == 0, "append up to the limit exactly");
    is_str(b.data, "abcdefgh", "contents NUL-terminated");
    ok(pc_buf_append(&b, "i", 1, &err) < 0, "append past the limit fails");
    is_int(err.status, 413, "overflow maps to 413");
    is_int(b.len, 8, "failed append leaves the buffer unchanged");
    pc_error_clear(&err);
    pc_buf_reset(&b);
    is_int(pc_buf_append_trunc(&b, "0123456789", 10), 8, "truncating append keeps what fits");
    ok(b.truncated, "truncated flag set");
    pc_buf_release(&b);
    pc_buf_init(&b, PC_BUF_UNBOUNDED);
    for (int i = 0; i < 1000; i++)
        pc_buf_printf(&b, &err, "%04d", i);
    is_int(b.len, 4000, "printf grows the buffer");
    ok(!strncmp(b.data + 3996, "0999", 4), "printf appends in order");
    pc_buf_release(&b);
}

static void test_error(void)
{
    pc_error_t err = PC_ERROR_INIT;
    ok(!pc_error_is_set(&err), "fresh error is unset");
    pc_error_set(&err, 404, "Agent not found");
    pc_error_prefix(&err, "cannot wake agent");
    is_str(err.msg, "cannot wake agent: Agent not found", "prefix adds context");
    is_int(err.status, 404, "status kept across prefix");
    pc_error_validation(&err, "name", "Required");
    is_str(err.msg, "Validation error", "validation message is upstream's");
    json_t *issue = json_array_get(err.details, 0);
    is_str(json_string_value(json_array_get(json_object_get(issue, "path"), 0)), "name",
           "details name the field");
    pc_error_clear(&err);
    ok(err.details == NULL && err.status == 0, "clear releases details");
}

static void test_json(void)
{
    pc_error_t err = PC_ERROR_INIT;
    json_t *j = pc_json_parse("{\"a\":1,", 7, &err);
    ok(j == NULL && err.status == 400, "malformed JSON is a 400");
    ok(json_integer_value(json_object_get(err.details, "line")) == 1, "parse error has a line");
    pc_error_clear(&err);
    j = pc_json_parse("{\"a\":1,\"a\":2}", 13, &err);
    ok(j == NULL, "duplicate keys rejected");
    pc_error_clear(&err);

    json_t *o = json_pack("{s:s,s:i,s:b,s:n,s:s}", "name", "x", "n", 5, "flag", 1, "nul", "e", "z");
    const char *s = NULL;
    int64_t n = 0;
    bool present = false, flag = false;
    ok(pc_json_check_string(o, "name", PC_J_REQUIRED, 1, 10, &s, &err) == 0 && !strcmp(s, "x"),
       "string accepted");
    ok(pc_json_check_string(o, "missing", PC_J_REQUIRED, 1, 10, &s, &err) < 0, "missing required");
    pc_error_clear(&err);
    ok(pc_json_check_string(o, "n", 0, 0, 10, &s, &err) < 0, "number is not a string");
    pc_error_clear(&err);
    ok(pc_json_check_string(o, "name", 0, 2, 10, &s, &err) < 0, "too short rejected");
    pc_error_clear(&err);
    ok(pc_json_check_int(o, "n", 0, 0, 4, &n, &present, &err) < 0, "out of range int rejected");
    pc_error_clear(&err);
    ok(pc_json_check_int(o, "n", 0, 0, 10, &n, &present, &err) == 0 && n == 5 && present,
       "int accepted");
    ok(pc_json_check_bool(o, "flag", 0, &flag, NULL, &err) == 0 && flag, "bool accepted");
    ok(pc_json_check_string(o, "nul", 0, 0, 10, &s, &err) < 0, "null not allowed by default");
    pc_error_clear(&err);
    ok(pc_json_check_string(o, "nul", PC_J_NULLABLE, 0, 10, &s, &err) == 0, "nullable null ok");
    static const char *const allowed[] = {"a", "b", NULL};
    ok(pc_json_check_enum(o, "e", 0, allowed, &s, &err) < 0, "enum rejects unknown value");
    pc_error_clear(&err);
    static const char *const keys[] = {"name", "n", "flag", "nul", NULL};
    ok(pc_json_check_keys(o, keys, &err) < 0, "unknown key rejected");
    pc_error_clear(&err);
    json_decref(o);
}

static void test_ids_and_time(void)
{
    char a[PC_UUID_LEN + 1], b[PC_UUID_LEN + 1];
    pc_uuid_v7(a);
    pc_uuid_v7(b);
    ok(pc_uuid_valid(a) && a[14] == '7', "uuid v7 well-formed");
    ok(strcmp(a, b) != 0, "uuids differ");
    ok(!pc_uuid_valid("not-a-uuid") && !pc_uuid_valid("01234567-89ab-cdef-0123-456789abcdeg"),
       "invalid uuids rejected");
    char iso[PC_ISO_LEN + 1];
    pc_iso8601(1767323045678LL, iso);
    is_str(iso, "2026-01-02T03:04:05.678Z", "ISO-8601 with millis in UTC");
    int64_t ms = 0;
    ok(pc_iso_parse(iso, &ms) == 0 && ms == 1767323045678LL, "ISO round trip");
    ok(pc_iso_parse("2026-13-01T00:00:00Z", &ms) < 0, "bad month rejected");
    char h[65];
    pc_sha256_hex("abc", 3, h);
    is_str(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256");
    char *u = pc_utf8_sanitize("a\xff" "b\0c\xc3\xa9", 7);
    is_str(u, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xc3\xa9", "invalid bytes and NUL replaced");
    free(u);
}

static void test_config(void)
{
    pc_config cfg;
    pc_error_t err = PC_ERROR_INIT;
    char *dir = strdup("/tmp/pc-cfg-XXXXXX");
    mkdtemp(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"port\": 4000, \"bind\": \"127.0.0.2\", \"logFormat\": \"json\"}", f);
    fclose(f);
    char *argv1[] = {"serve", "--data-dir", dir, NULL};
    ok(pc_config_load(&cfg, 3, argv1, &err) == 0, "config.json loads");
    is_int(cfg.port, 4000, "config.json sets the port");
    is_str(cfg.bind, "127.0.0.2", "config.json sets the bind");
    setenv("PAPERCLIP_PORT", "4100", 1);
    ok(pc_config_load(&cfg, 3, argv1, &err) == 0 && cfg.port == 4100, "environment beats file");
    char *argv2[] = {"serve", "--data-dir", dir, "--port", "4200", NULL};
    ok(pc_config_load(&cfg, 5, argv2, &err) == 0 && cfg.port == 4200, "flag beats environment");
    unsetenv("PAPERCLIP_PORT");
    char *argv3[] = {"serve", "--data-dir", dir, "--port", "70000", NULL};
    ok(pc_config_load(&cfg, 5, argv3, &err) < 0 && err.status == 400, "bad port rejected");
    pc_error_clear(&err);
    char *argv4[] = {"serve", "--data-dir", dir, "--bind", "0.0.0.0", NULL};
    ok(pc_config_load(&cfg, 5, argv4, &err) < 0 && strstr(err.msg, "local_trusted"),
       "local_trusted refused on a non-loopback bind");
    pc_error_clear(&err);
    char *argv5[] = {"serve", "--data-dir", dir, "--bind", "0.0.0.0", "--allow-insecure-bind", NULL};
    ok(pc_config_load(&cfg, 6, argv5, &err) == 0, "forced insecure bind accepted");
    /* The cap on executing runs: file < environment < flag, bounded, and a
     * default derived from the CPU count when nothing sets it. */
    ok(pc_config_load(&cfg, 3, argv1, &err) == 0 && cfg.max_concurrent_runs >= 8,
       "maxConcurrentRuns defaults to at least 8 (%d)", cfg.max_concurrent_runs);
    f = fopen(path, "w");
    fputs("{\"maxConcurrentRuns\": 3}", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv1, &err) == 0 && cfg.max_concurrent_runs == 3,
       "config.json sets maxConcurrentRuns");
    setenv("PAPERCLIP_MAX_CONCURRENT_RUNS", "5", 1);
    ok(pc_config_load(&cfg, 3, argv1, &err) == 0 && cfg.max_concurrent_runs == 5,
       "PAPERCLIP_MAX_CONCURRENT_RUNS beats the file");
    char *argv6[] = {"serve", "--data-dir", dir, "--max-concurrent-runs", "7", NULL};
    ok(pc_config_load(&cfg, 5, argv6, &err) == 0 && cfg.max_concurrent_runs == 7,
       "--max-concurrent-runs beats the environment");
    unsetenv("PAPERCLIP_MAX_CONCURRENT_RUNS");
    char *argv7[] = {"serve", "--data-dir", dir, "--max-concurrent-runs", "0", NULL};
    ok(pc_config_load(&cfg, 5, argv7, &err) < 0 && err.status == 400,
       "--max-concurrent-runs 0 rejected");
    pc_error_clear(&err);
    f = fopen(path, "w");
    fputs("{\"maxConcurrentRuns\": \"many\"}", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv1, &err) < 0 && strstr(err.msg, "maxConcurrentRuns"),
       "a non-integer maxConcurrentRuns is a clear error");
    pc_error_clear(&err);
    /* agentBind as a list: the first address names the ingress, the rest
     * are further listeners; a JSON array is the same list. */
    f = fopen(path, "w");
    fputs("{}", f);
    fclose(f);
    char *argv8[] = {"serve", "--data-dir", dir, "--agent-bind", " 127.0.0.1, 10.200.0.1 ,::1", NULL};
    ok(pc_config_load(&cfg, 5, argv8, &err) == 0, "--agent-bind takes a list");
    is_str(cfg.agent_bind, "127.0.0.1", "the first agentBind address names the ingress");
    is_str(cfg.agent_bind_extra, "10.200.0.1,::1", "the others are further ingress addresses");
    f = fopen(path, "w");
    fputs("{\"agentBind\": [\"127.0.0.1\", \"10.200.0.5\"]}", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv1, &err) == 0 && !strcmp(cfg.agent_bind, "127.0.0.1") &&
           !strcmp(cfg.agent_bind_extra, "10.200.0.5"),
       "agentBind as a JSON array in config.json");
    f = fopen(path, "w");
    fputs("{\"agentBind\": [\"127.0.0.1\", 5]}", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv1, &err) < 0 && strstr(err.msg, "agentBind"),
       "a non-string agentBind entry is a clear error");
    pc_error_clear(&err);
    f = fopen(path, "w");
    fputs("{}", f);
    fclose(f);
    char *argv9[] = {"serve", "--data-dir", dir, "--agent-bind", "127.0.0.1,a,b,c,d,e", NULL};
    ok(pc_config_load(&cfg, 5, argv9, &err) < 0 && strstr(err.msg, "at most 5"),
       "more than five agentBind addresses refused");
    pc_error_clear(&err);
    f = fopen(path, "w");
    fputs("{not json", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv1, &err) < 0 && strstr(err.msg, "config.json"),
       "broken config.json is a clear error");
    pc_error_clear(&err);
    unlink(path);
    rmdir(dir);
    free(dir);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_buf();
    test_error();
    test_json();
    test_ids_and_time();
    test_config();
    return tap_done();
}
