/* pc_json_dumps() is a hand-written serialiser on the response path; it must
 * write byte for byte what json_dumps(JSON_COMPACT | JSON_ENCODE_ANY) writes,
 * and fall back to it for what it does not handle (invalid UTF-8, cycles).
 * pc_json_from_text() answers repeated texts from a per-thread cache; the
 * result must be a fresh value equal to a parse. */
#include <stdlib.h>
#include <string.h>

#include "../lib/tap.h"
#include "lib/json.h"

static int same(const json_t *j)
{
    char *a = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = pc_json_dumps(j);
    int r = a ? !strcmp(a, b) : !strcmp(b, "null");
    if (!r)
        tap_diag("jansson %s, ours %s", a ? a : "(NULL)", b);
    free(a);
    free(b);
    return r;
}

int main(void)
{
    static const char *const texts[] = {
        "{}", "[]", "null", "true", "false", "0", "-9223372036854775807", "9223372036854775807",
        "1.5", "1e300", "0.1", "[1.0,2.5e-7,-0.0]", "\"\"",
        "{\"a\":\"x\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\\u007f\",\"b\":[{},[],{\"c\":null}]}",
        "{\"\\u00e9\":\"\\u00fc\\u20ac\\ud834\\udd1e\"}", "{\"z\":1,\"a\":2,\"m\":{\"y\":[1,2,{}]}}",
        "\"\\u0000a\\u0000\"", NULL};
    for (size_t i = 0; texts[i]; i++) {
        json_t *j = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        ok(j && same(j), "dumps like jansson: %s", texts[i]);
        json_decref(j);
    }
    json_t *bad = json_stringn_nocheck("a\xff" "b", 3);
    ok(same(bad), "invalid UTF-8 falls back to jansson");
    json_decref(bad);
    json_t *sur = json_stringn_nocheck("\xed\xa0\x80", 3);
    ok(same(sur), "an encoded surrogate falls back to jansson");
    json_decref(sur);
    json_t *cyc = json_array();
    json_array_append(cyc, cyc);
    ok(same(cyc), "a cycle falls back to jansson (null)");
    json_array_clear(cyc);
    json_decref(cyc);
    ok(same(NULL), "NULL dumps as null");

    srand(7);
    int mismatches = 0;
    for (int k = 0; k < 20000; k++) {
        char s[16];
        int n = rand() % 15;
        for (int i = 0; i < n; i++)
            s[i] = (char)(rand() % 256);
        json_t *j = json_stringn_nocheck(s, (size_t)n);
        mismatches += !same(j);
        json_decref(j);
    }
    ok(mismatches == 0, "20000 random byte strings dump like jansson (%d differ)", mismatches);

    const char *rc = "{\"heartbeat\":{\"enabled\":false,\"intervalSec\":0}}";
    json_t *a = pc_json_from_text(rc), *b = pc_json_from_text(rc);
    ok(a && b && a != b && json_equal(a, b), "a repeated text parses to an equal, distinct value");
    json_object_set_new(json_object_get(a, "heartbeat"), "enabled", json_true());
    json_t *c = pc_json_from_text(rc);
    ok(json_is_false(json_object_get(json_object_get(c, "heartbeat"), "enabled")),
       "changing a parsed value does not change the next parse");
    char *d = pc_json_dumps(c);
    ok(!strcmp(d, rc), "key order is kept (%s)", d);
    free(d);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    ok(json_is_null(pc_json_from_text("{not json")), "invalid text is null");
    json_t *e = pc_json_from_text("{}");
    ok(json_is_object(e) && json_object_size(e) == 0, "{} is an empty object");
    json_decref(e);
    return tap_done();
}
