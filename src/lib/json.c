#include "lib/json.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/common.h"
#include "lib/utf8.h"

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

/*
 * A serialiser that writes exactly what json_dumps(j, JSON_COMPACT |
 * JSON_ENCODE_ANY) writes (insertion order, no sorting, "\u%04X" escapes,
 * UTF-8 passed through), without jansson's per-container loop-detection
 * hashtable and per-call snprintf: on the hot response path that was a third
 * of the instructions of a typical GET. Reals are rare and delegated to
 * jansson for byte-identical formatting. Anything it does not handle the
 * same way (invalid UTF-8 in a string, absurd nesting that may be a cycle)
 * makes it give up, and the caller falls back to json_dumps().
 */
typedef struct jw {
    char *buf;
    size_t len, cap;
    bool failed;
} jw;

static void jw_reserve(jw *w, size_t n)
{
    if (w->len + n <= w->cap)
        return;
    size_t cap = w->cap ? w->cap : 1024;
    while (cap < w->len + n)
        cap *= 2;
    w->buf = pc_xrealloc(w->buf, cap);
    w->cap = cap;
}

static void jw_put(jw *w, const char *s, size_t n)
{
    jw_reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void jw_ch(jw *w, char c)
{
    jw_reserve(w, 1);
    w->buf[w->len++] = c;
}

static void jw_string(jw *w, const char *str, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str, *end = s + len, *run = s;
    jw_reserve(w, len + 2);
    w->buf[w->len++] = '"';
    while (s < end) {
        /* Plain printable ASCII, the bulk of every document, in one pass. */
        while (s < end && *s >= 0x20 && *s < 0x80 && *s != '"' && *s != '\\')
            s++;
        if (s == end)
            break;
        unsigned c = *s;
        if (c >= 0x80) {
            size_t n = pc_utf8_valid_len(s, (size_t)(end - s));
            if (!n) {
                w->failed = true;
                return;
            }
            s += n;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            s++;
            continue;
        }
        jw_put(w, (const char *)run, (size_t)(s - run));
        char esc[6] = {'\\', 0};
        size_t en = 2;
        switch (c) {
        case '\\': esc[1] = '\\'; break;
        case '"': esc[1] = '"'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            en = 6;
        }
        jw_put(w, esc, en);
        run = ++s;
    }
    jw_put(w, (const char *)run, (size_t)(s - run));
    jw_ch(w, '"');
}

static void jw_value(jw *w, const json_t *j, int depth)
{
    if (w->failed)
        return;
    if (depth > 1000) { /* maybe a cycle: let jansson detect and refuse it */
        w->failed = true;
        return;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jw_ch(w, '{');
        bool first = true;
        for (void *it = json_object_iter((json_t *)j); it && !w->failed;
             it = json_object_iter_next((json_t *)j, it)) {
            if (!first)
                jw_ch(w, ',');
            first = false;
            jw_string(w, json_object_iter_key(it), json_object_iter_key_len(it));
            jw_ch(w, ':');
            jw_value(w, json_object_iter_value(it), depth + 1);
        }
        jw_ch(w, '}');
        break;
    }
    case JSON_ARRAY: {
        jw_ch(w, '[');
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n && !w->failed; i++) {
            if (i)
                jw_ch(w, ',');
            jw_value(w, json_array_get(j, i), depth + 1);
        }
        jw_ch(w, ']');
        break;
    }
    case JSON_STRING:
        jw_string(w, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER: { /* what "%" JSON_INTEGER_FORMAT prints */
        char num[24];
        char *e = num + sizeof num, *p = e;
        json_int_t v = json_integer_value(j);
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do
            *--p = (char)('0' + u % 10);
        while ((u /= 10) != 0);
        if (v < 0)
            *--p = '-';
        jw_put(w, p, (size_t)(e - p));
        break;
    }
    case JSON_REAL: {
        char *r = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!r) {
            w->failed = true;
            return;
        }
        jw_put(w, r, strlen(r));
        free(r);
        break;
    }
    case JSON_TRUE: jw_put(w, "true", 4); break;
    case JSON_FALSE: jw_put(w, "false", 5); break;
    case JSON_NULL: jw_put(w, "null", 4); break;
    default: w->failed = true;
    }
}

char *pc_json_dumps_len(const json_t *j, size_t *len)
{
    char *s = NULL;
    if (j) {
        jw w = {0};
        jw_value(&w, j, 0);
        if (!w.failed) {
            jw_ch(&w, '\0');
            *len = w.len - 1;
            return w.buf;
        }
        free(w.buf);
        s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    if (!s)
        s = pc_xstrdup("null");
    *len = strlen(s);
    return s;
}

char *pc_json_dumps(const json_t *j)
{
    size_t len;
    return pc_json_dumps_len(j, &len);
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
    if (json_is_real(v)) {
        /* Casting a double outside int64's range is undefined: treat such a
         * number (1e300) as absent rather than as some wrapped integer. */
        double d = json_real_value(v);
        return d > -0x1p63 && d < 0x1p63 ? (int64_t)d : dflt;
    }
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

/*
 * JSON text columns repeat (every agent has the same runtimeConfig): each
 * thread keeps the last few texts it parsed and answers a repeat with a deep
 * copy, which is what a fresh parse returns (new values, same order) at a
 * fraction of the cost. Per thread, so no locks; freed when the thread ends.
 */
#define TEXT_CACHE_SLOTS 8
#define TEXT_CACHE_MAX 2048

typedef struct text_cache {
    char *text[TEXT_CACHE_SLOTS];
    size_t len[TEXT_CACHE_SLOTS];
    json_t *value[TEXT_CACHE_SLOTS];
    unsigned next;
} text_cache;

static pthread_key_t text_cache_key;
static pthread_once_t text_cache_once = PTHREAD_ONCE_INIT;

static void text_cache_free(void *p)
{
    text_cache *c = p;
    for (int i = 0; i < TEXT_CACHE_SLOTS; i++) {
        free(c->text[i]);
        json_decref(c->value[i]);
    }
    free(c);
}

static void text_cache_init(void) { pthread_key_create(&text_cache_key, text_cache_free); }

static json_t *text_cache_parse(const char *text, size_t len)
{
    pthread_once(&text_cache_once, text_cache_init);
    text_cache *c = pthread_getspecific(text_cache_key);
    if (!c) {
        c = pc_xcalloc(1, sizeof *c);
        if (pthread_setspecific(text_cache_key, c) != 0) {
            free(c);
            return json_loads(text, JSON_DECODE_ANY, NULL);
        }
    }
    for (int i = 0; i < TEXT_CACHE_SLOTS; i++)
        if (c->value[i] && c->len[i] == len && !memcmp(c->text[i], text, len))
            return json_deep_copy(c->value[i]);
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    if (j) {
        unsigned slot = c->next++ % TEXT_CACHE_SLOTS;
        free(c->text[slot]);
        json_decref(c->value[slot]);
        c->text[slot] = pc_xstrdup(text);
        c->len[slot] = len;
        c->value[slot] = json_deep_copy(j);
    }
    return j;
}

json_t *pc_json_from_text(const char *text)
{
    if (!text)
        return json_null();
    /* The common column values, without a parser. */
    if (text[0] == '{' && text[1] == '}' && !text[2])
        return json_object();
    if (text[0] == '[' && text[1] == ']' && !text[2])
        return json_array();
    if (!strcmp(text, "null"))
        return json_null();
    size_t len = strlen(text);
    json_t *j = len <= TEXT_CACHE_MAX ? text_cache_parse(text, len)
                                      : json_loads(text, JSON_DECODE_ANY, NULL);
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
        if (!(d > -0x1p63 && d < 0x1p63) || d != (double)(int64_t)d)
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
