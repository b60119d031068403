#include "lib/utf8.h"

#include <stdint.h>
#include <string.h>

size_t pc_utf8_valid_len(const unsigned char *s, size_t left)
{
    if (left == 0)
        return 0;
    unsigned c = s[0];
    if (c >= 0x01 && c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xD800 && cp <= 0xDFFF) ||
        cp > 0x10FFFF)
        return 0;
    return n;
}

size_t pc_utf8_repaired_len(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t out = n, i = 0;
    while (i < n) {
        size_t l = pc_utf8_valid_len(s + i, n - i);
        if (l) {
            i += l;
        } else {
            out += 2;
            i++;
        }
    }
    return out;
}

size_t pc_utf8_repair(const char *p, size_t n, char *out)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t o = 0, i = 0;
    while (i < n) {
        size_t l = pc_utf8_valid_len(s + i, n - i);
        if (l) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
        } else {
            out[o++] = (char)0xEF;
            out[o++] = (char)0xBF;
            out[o++] = (char)0xBD;
            i++;
        }
    }
    return o;
}
