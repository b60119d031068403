/*
 * Request bodies: pc_json_parse() and the pc_json_check_*() validators on
 * arbitrary bytes, pc_utf8_sanitize() on the same bytes, and the compact
 * serialiser pc_json_dumps() against jansson's own output.
 *
 * Properties (from src/lib/json.h and src/lib/util.h):
 *  - a parse failure is a 400 with details; a validator failure is a 400
 *    "Validation error" with details;
 *  - pc_json_dumps() writes exactly what json_dumps(JSON_COMPACT |
 *    JSON_ENCODE_ANY) writes, and that text parses back to an equal value;
 *  - pc_utf8_sanitize() returns valid UTF-8 without NULs, at most 3 bytes
 *    per input byte, and leaves text that already was valid UTF-8 unchanged.
 */
#include "fuzz_common.h"

#include <jansson.h>

#include "lib/error.h"
#include "lib/json.h"
#include "lib/util.h"

static void check_sanitize(const uint8_t *data, size_t size)
{
    char *s = pc_utf8_sanitize((const char *)data, size);
    FZ_CHECK(s != NULL, "pc_utf8_sanitize returned NULL");
    size_t n = strlen(s);
    FZ_CHECK(n <= size * 3, "sanitized %zu bytes into %zu", size, n);
    FZ_CHECK(fz_utf8_valid(s, n), "pc_utf8_sanitize produced invalid UTF-8");
    if (fz_utf8_valid((const char *)data, size))
        FZ_CHECK(n == size && memcmp(s, data, size) == 0, "valid UTF-8 was changed");
    free(s);
}

static void expect_validation(int rc, pc_error_t *err)
{
    FZ_CHECK(rc == 0 || rc == -1, "validator returned %d", rc);
    if (rc < 0) {
        FZ_CHECK(err->status == 400, "validation failed with status %d", err->status);
        FZ_CHECK(err->details != NULL, "validation error without details");
    } else {
        FZ_CHECK(err->status == 0, "validator succeeded but set an error");
    }
    pc_error_clear(err);
}

/* Runs every checker on one field name with the given flags. */
static void check_field(const json_t *obj, const char *field, int flags)
{
    static const char *const statuses[] = {"backlog", "todo", "in_progress", "done", NULL};
    pc_error_t err = PC_ERROR_INIT;
    const char *s = NULL;
    int64_t i = 0;
    bool b = false, present = false;
    json_t *o = NULL;

    expect_validation(pc_json_check_string(obj, field, flags, 1, 64, &s, &err), &err);
    expect_validation(pc_json_check_string(obj, field, flags, 0, SIZE_MAX, NULL, &err), &err);
    expect_validation(pc_json_check_int(obj, field, flags, -5, 1000, &i, &present, &err), &err);
    expect_validation(
        pc_json_check_int(obj, field, flags, INT64_MIN, INT64_MAX, NULL, NULL, &err), &err);
    expect_validation(pc_json_check_bool(obj, field, flags, &b, &present, &err), &err);
    expect_validation(pc_json_check_object(obj, field, flags, &o, &err), &err);
    expect_validation(pc_json_check_enum(obj, field, flags, statuses, &s, &err), &err);
    (void)pc_json_str(obj, field);
    (void)pc_json_int(obj, field, 7);
    (void)pc_json_bool(obj, field, true);
    (void)pc_json_obj(obj, field);
}

static void check_validators(const json_t *j)
{
    pc_error_t err = PC_ERROR_INIT;
    int rc = pc_json_check_is_object(j, &err);
    expect_validation(rc, &err);
    if (rc < 0)
        return;
    static const char *const allowed[] = {"name", "title", "status", "count", "flag", "meta",
                                          NULL};
    expect_validation(pc_json_check_keys(j, allowed, &err), &err);
    static const int flag_sets[] = {PC_J_OPTIONAL, PC_J_REQUIRED, PC_J_NULLABLE,
                                    PC_J_REQUIRED | PC_J_NULLABLE};
    for (size_t f = 0; f < sizeof flag_sets / sizeof flag_sets[0]; f++) {
        for (size_t k = 0; allowed[k]; k++)
            check_field(j, allowed[k], flag_sets[f]);
        /* The input's own keys reach the type branches the fixed names
         * above rarely do. */
        const char *key;
        json_t *v;
        size_t seen = 0;
        json_object_foreach((json_t *)j, key, v)
        {
            if (seen++ == 8)
                break;
            check_field(j, key, flag_sets[f]);
        }
    }
}

static void check_dumps(const json_t *j)
{
    char *ours = pc_json_dumps(j);
    char *theirs = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    FZ_CHECK(ours != NULL, "pc_json_dumps returned NULL");
    FZ_CHECK(theirs != NULL, "json_dumps returned NULL");
    FZ_CHECK(strcmp(ours, theirs) == 0, "pc_json_dumps differs from json_dumps:\n%s\n%s", ours,
             theirs);
    pc_error_t err = PC_ERROR_INIT;
    json_t *back = pc_json_parse(ours, strlen(ours), &err);
    FZ_CHECK(back != NULL, "serialised text does not parse back: %s", ours);
    FZ_CHECK(json_equal((json_t *)j, back), "round trip changed the value: %s", ours);
    json_decref(back);
    free(ours);
    free(theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_sanitize(data, size);

    pc_error_t err = PC_ERROR_INIT;
    json_t *j = pc_json_parse((const char *)data, size, &err);
    if (!j) {
        FZ_CHECK(err.status == 400, "parse failure with status %d", err.status);
        FZ_CHECK(err.details != NULL, "parse failure without details");
        pc_error_clear(&err);
        return 0;
    }
    FZ_CHECK(err.status == 0, "parse succeeded but set an error");
    check_validators(j);
    check_dumps(j);

    /* Stored JSON columns go through the same parser without an error. */
    char *text = fz_cstr(data, size);
    json_t *stored = pc_json_from_text(text);
    FZ_CHECK(stored != NULL, "pc_json_from_text returned NULL");
    json_decref(stored);
    free(text);
    json_decref(j);
    return 0;
}
