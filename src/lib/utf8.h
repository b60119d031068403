/*
 * UTF-8 validation and repair, the one decoder of the daemon and the plugin
 * SDK. Valid means what jansson accepts: shortest forms only, no surrogates,
 * nothing above U+10FFFF. A NUL byte counts as invalid, since the strings
 * repaired here end up in C strings and JSON text.
 *
 * This file uses only libc, so the SDK's static library can carry its object
 * (see SDK_SRCS in the Makefile). Nothing here allocates.
 */
#ifndef PC_LIB_UTF8_H
#define PC_LIB_UTF8_H

#include <stddef.h>

/* Length (1..4) of the valid sequence starting at s, of which left bytes are
 * readable; 0 when s starts no valid sequence (left == 0 included). */
size_t pc_utf8_valid_len(const unsigned char *s, size_t left);

/* How many bytes pc_utf8_repair() writes for (p, n): n plus two for every
 * byte it replaces. Equal to n exactly when (p, n) is valid UTF-8. */
size_t pc_utf8_repaired_len(const char *p, size_t n);

/* Copies (p, n) to out, replacing every byte that starts no valid sequence
 * with U+FFFD (EF BF BD) and going on at the next byte. out must hold
 * pc_utf8_repaired_len(p, n) bytes (3 * n always suffices); no NUL is
 * appended. Returns the number of bytes written. */
size_t pc_utf8_repair(const char *p, size_t n, char *out);

#endif
