#include "lib/json.h"

#include <string.h>

#include "lib/common.h"

json_t *pc_json_parse(const char *text, size_t len, pc_error_t *err)
{
    json_error_t jerr;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        pc_error_set(err, 400, "Malformed JSON");
        pc_error_details(err, json_pack("{s:s,s:i,s:i}", "message", jerr.text, "line", jerr.line,
                                        "column", jerr.column));
        if (err && !err->details) /* jansson's text was not valid UTF-8 */
            pc_error_details(err, json_pack("{s:i,s:i}", "line", jerr.line, "column", jerr.column));
    }
    return j;
}

char *pc_json_dumps(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : pc_xstrdup("null");
}

const char *pc_json_str(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t pc_json_int(const json_t *obj, const char *key, int64_t dflt)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return dflt;
}

bool pc_json_bool(const json_t *obj, const char *key, bool dflt)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

json_t *pc_json_obj(const json_t *obj, const char *key)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_object(v) ? v : NULL;
}

json_t *pc_json_from_text(const char *text)
{
    if (!text)
        return json_null();
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    return j ? j : json_null();
}

static json_t *pc_json_field(const json_t *obj, const char *field, int flags, bool *absent,
                             pc_error_t *err)
{
    json_t *v = json_object_get(obj, field);
    *absent = false;
    if (!v || (json_is_null(v) && !(flags & PC_J_NULLABLE))) {
        if (flags & PC_J_REQUIRED) {
            pc_error_validation(err, field, v ? "Expected a value, received null" : "Required");
            return NULL;
        }
        if (v && json_is_null(v)) {
            pc_error_validation(err, field, "Expected a value, received null");
            return NULL;
        }
        *absent = true;
        return NULL;
    }
    return v;
}

int pc_json_check_string(const json_t *obj, const char *field, int flags, size_t min_len,
                         size_t max_len, const char **out, pc_error_t *err)
{
    bool absent;
    json_t *v = pc_json_field(obj, field, flags, &absent, err);
    if (!v)
        return absent ? 0 : -1;
    if (json_is_null(v)) {
        if (out)
            *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return pc_error_validation(err, field, "Expected string, received %s",
                                   json_is_integer(v) || json_is_real(v) ? "number"
                                   : json_is_boolean(v)                  ? "boolean"
                                   : json_is_array(v)                    ? "array"
                                                                         : "object");
    size_t len = json_string_length(v);
    if (len < min_len)
        return pc_error_validation(err, field, "String must contain at least %zu character(s)",
                                   min_len);
    if (len > max_len)
        return pc_error_validation(err, field, "String must contain at most %zu character(s)",
                                   max_len);
    if (memchr(json_string_value(v), '\0', len))
        return pc_error_validation(err, field, "String must not contain NUL bytes");
    if (out)
        *out = json_string_value(v);
    return 0;
}

int pc_json_check_int(const json_t *obj, const char *field, int flags, int64_t min, int64_t max,
                      int64_t *out, bool *present, pc_error_t *err)
{
    bool absent;
    if (present)
        *present = false;
    json_t *v = pc_json_field(obj, field, flags, &absent, err);
    if (!v)
        return absent ? 0 : -1;
    if (json_is_null(v)) {
        if (present)
            *present = true;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != (double)(int64_t)d)
            return pc_error_validation(err, field, "Expected integer, received float");
        v = NULL;
        if (d < (double)min || d > (double)max)
            return pc_error_validation(err, field, "Number must be between %lld and %lld",
                                       (long long)min, (long long)max);
        if (out)
            *out = (int64_t)d;
        if (present)
            *present = true;
        return 0;
    }
    if (!json_is_integer(v))
        return pc_error_validation(err, field, "Expected number");
    int64_t i = json_integer_value(v);
    if (i < min || i > max)
        return pc_error_validation(err, field, "Number must be between %lld and %lld",
                                   (long long)min, (long long)max);
    if (out)
        *out = i;
    if (present)
        *present = true;
    return 0;
}

int pc_json_check_bool(const json_t *obj, const char *field, int flags, bool *out, bool *present,
                       pc_error_t *err)
{
    bool absent;
    if (present)
        *present = false;
    json_t *v = pc_json_field(obj, field, flags, &absent, err);
    if (!v)
        return absent ? 0 : -1;
    if (!json_is_boolean(v))
        return pc_error_validation(err, field, "Expected boolean");
    if (out)
        *out = json_is_true(v);
    if (present)
        *present = true;
    return 0;
}

int pc_json_check_object(const json_t *obj, const char *field, int flags, json_t **out,
                         pc_error_t *err)
{
    bool absent;
    json_t *v = pc_json_field(obj, field, flags, &absent, err);
    if (!v)
        return absent ? 0 : -1;
    if (json_is_null(v)) {
        if (out)
            *out = v;
        return 0;
    }
    if (!json_is_object(v))
        return pc_error_validation(err, field, "Expected object");
    if (out)
        *out = v;
    return 0;
}

int pc_json_check_enum(const json_t *obj, const char *field, int flags, const char *const *allowed,
                       const char **out, pc_error_t *err)
{
    const char *s = NULL;
    if (pc_json_check_string(obj, field, flags, 0, 256, &s, err) < 0)
        return -1;
    if (!s)
        return 0;
    for (size_t i = 0; allowed[i]; i++) {
        if (!strcmp(allowed[i], s)) {
            if (out)
                *out = allowed[i];
            return 0;
        }
    }
    char list[512] = "";
    size_t off = 0;
    for (size_t i = 0; allowed[i] && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s'%s'", i ? " | " : "", allowed[i]);
    return pc_error_validation(err, field, "Invalid enum value. Expected %s", list);
}

int pc_json_check_keys(const json_t *obj, const char *const *allowed, pc_error_t *err)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool found = false;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(allowed[i], k)) {
                found = true;
                break;
            }
        if (!found)
            return pc_error_validation(err, NULL, "Unrecognized key(s) in object: '%s'", k);
    }
    return 0;
}

int pc_json_check_is_object(const json_t *body, pc_error_t *err)
{
    if (!json_is_object(body))
        return pc_error_validation(err, NULL, "Expected object");
    return 0;
}
