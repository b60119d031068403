/* Unit tests for src/lib/utf8.c, the one UTF-8 decoder, and the two repairs
 * built on it: the daemon's pc_utf8_sanitize() and the SDK's lossy JSON
 * strings must agree byte for byte. */
#include <paperclip/plugin.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/tap.h"
#include "lib/utf8.h"
#include "lib/util.h"

#define S(lit) (const unsigned char *)(lit), sizeof(lit) - 1

static void test_valid_len(void)
{
    is_int(pc_utf8_valid_len(S("a")), 1, "ASCII is one byte");
    is_int(pc_utf8_valid_len(S("\0")), 0, "NUL is invalid");
    is_int(pc_utf8_valid_len((const unsigned char *)"a", 0), 0, "nothing readable is invalid");
    is_int(pc_utf8_valid_len(S("\xc3\xa9")), 2, "two-byte sequence");
    is_int(pc_utf8_valid_len(S("\xe2\x82\xac")), 3, "three-byte sequence");
    is_int(pc_utf8_valid_len(S("\xf0\x9f\x98\x80")), 4, "four-byte sequence");
    is_int(pc_utf8_valid_len(S("\xf4\x8f\xbf\xbf")), 4, "U+10FFFF is valid");
    is_int(pc_utf8_valid_len(S("\xc0\xaf")), 0, "overlong two-byte form");
    is_int(pc_utf8_valid_len(S("\xe0\x80\xaf")), 0, "overlong three-byte form");
    is_int(pc_utf8_valid_len(S("\xf0\x80\x80\xaf")), 0, "overlong four-byte form");
    is_int(pc_utf8_valid_len(S("\xed\xa0\x80")), 0, "surrogate");
    is_int(pc_utf8_valid_len(S("\xf4\x90\x80\x80")), 0, "above U+10FFFF");
    is_int(pc_utf8_valid_len(S("\xe2\x82")), 0, "truncated sequence");
    is_int(pc_utf8_valid_len(S("\xe2\x28\xac")), 0, "bad continuation byte");
    is_int(pc_utf8_valid_len(S("\x80")), 0, "lone continuation byte");
}

/* pc_utf8_sanitize() and pc_plugin_json_string_lossy() on (p, n) both give
 * want (NUL-terminated here; inputs with NUL are checked by length). */
static void agree(const char *p, size_t n, const char *want, const char *what)
{
    is_int(pc_utf8_repaired_len(p, n), strlen(want), "%s: repaired length", what);
    char *s = pc_utf8_sanitize(p, n);
    is_str(s, want, "%s: daemon repair", what);
    free(s);
    json_t *j = pc_plugin_json_string_lossy(p, n);
    ok(j && json_string_length(j) == strlen(want) &&
           memcmp(json_string_value(j), want, strlen(want)) == 0,
       "%s: SDK repair", what);
    json_decref(j);
}

static void test_repair(void)
{
    agree("", 0, "", "empty");
    agree("plain", 5, "plain", "valid ASCII");
    agree("caf\xc3\xa9", 5, "caf\xc3\xa9", "valid multibyte");
    agree("a\xff" "b", 3, "a\xef\xbf\xbd" "b", "one bad byte");
    agree("a\0b", 3, "a\xef\xbf\xbd" "b", "NUL");
    agree("\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd", "truncated tail: every byte replaced");
    agree("\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", "surrogate");
    char out[16];
    size_t n = pc_utf8_repair("x\xc0y", 3, out);
    ok(n == 5 && memcmp(out, "x\xef\xbf\xbdy", 5) == 0, "repair writes into the caller's buffer");
}

int main(void)
{
    test_valid_len();
    test_repair();
    return tap_done();
}
