/*
 * Identifiers, time and small string helpers.
 *
 * UUIDs are v7 (time-ordered) in canonical lower-case 36-char form.
 * Times: wall clock in ms since the epoch; ISO-8601 text is always UTC with
 * milliseconds, "2026-01-02T03:04:05.678Z", the form upstream's API returns.
 */
#ifndef PC_LIB_UTIL_H
#define PC_LIB_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_UUID_LEN 36
#define PC_ISO_LEN 24

void pc_uuid_v7(char out[PC_UUID_LEN + 1]);
void pc_uuid_v4(char out[PC_UUID_LEN + 1]);
bool pc_uuid_valid(const char *s);

int64_t pc_now_ms(void);
/* Monotonic clock in ms, for timeouts and latency. */
int64_t pc_mono_ms(void);
void pc_iso8601(int64_t ms, char out[PC_ISO_LEN + 1]);
/* Current time as ISO text. */
void pc_iso_now(char out[PC_ISO_LEN + 1]);
/* Parses the ISO form above (and without millis); returns -1 on bad input. */
int pc_iso_parse(const char *s, int64_t *ms);

/* Random bytes as lower-case hex (2*n chars + NUL). */
void pc_random_hex(char *out, size_t nbytes);
/* sha256 of s as lower-case hex (64 chars + NUL). */
void pc_sha256_hex(const void *data, size_t len, char out[65]);
/* Constant-time string equality. */
bool pc_streq_ct(const char *a, const char *b);

bool pc_str_has_prefix(const char *s, const char *prefix);
/* A malloc'd NUL-terminated copy of (p, n) repaired by pc_utf8_repair()
 * (lib/utf8.h): bytes of invalid sequences and NULs become U+FFFD. */
char *pc_utf8_sanitize(const char *p, size_t n);

/* mkdir -p with mode; returns 0 or -1 with errno. */
int pc_mkdir_p(const char *path, unsigned mode);
/* Writes data to path atomically (temp file + fsync + rename) with mode. */
int pc_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* Reads a whole file up to max bytes (+NUL); -1 with errno (EFBIG past max). */
int pc_read_file(const char *path, size_t max, char **out, size_t *len);

#endif
