/*
 * Helpers shared by the libFuzzer targets in fuzz/. Each target defines
 * LLVMFuzzerTestOneInput() and links against the core library (or the SDK)
 * built with clang and -fsanitize=fuzzer-no-link,address,undefined; see
 * fuzz/fuzz.mk.
 *
 * A target checks more than "does not crash": FZ_CHECK() states a property
 * the code under test promises in its header, and abort()s when it does not
 * hold, so libFuzzer saves the input as a crash like any sanitizer report.
 */
#ifndef PC_FUZZ_COMMON_H
#define PC_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: property violated at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            fprintf(stderr, "fuzz: " __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The input as a NUL-terminated string (embedded NULs end it early, as
 * they would for any C-string API). Caller frees. */
static inline char *fz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
 * U+10FFFF. NUL bytes count as invalid here, because every caller that
 * checks with it promises text without them. */
static inline bool fz_utf8_valid(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return false;
        if (i + need >= n)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += need + 1;
    }
    return true;
}

#endif
