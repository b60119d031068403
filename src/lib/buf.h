/*
 * pc_buf: a growable byte buffer with a hard maximum fixed at creation.
 *
 * Anything fed by someone else (HTTP bodies, plugin stdout, command output)
 * goes into a pc_buf whose `max` bounds it. pc_buf_append() fails with 413 when
 * the data would pass max; pc_buf_append_trunc() keeps what fits and sets
 * `truncated` instead. `data` is always NUL-terminated (the NUL is not counted
 * in len and not counted against max), so text can be used as a C string.
 * The buffer owns `data`; pc_buf_release() frees it, pc_buf_steal() hands it
 * to the caller.
 */
#ifndef PC_LIB_BUF_H
#define PC_LIB_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

typedef struct pc_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
    bool truncated;
} pc_buf;

#define PC_BUF_UNBOUNDED ((size_t)-1)

void pc_buf_init(pc_buf *b, size_t max);
int pc_buf_append(pc_buf *b, const void *p, size_t n, pc_error_t *err);
/* Appends what fits under max; returns the number of bytes kept. */
size_t pc_buf_append_trunc(pc_buf *b, const void *p, size_t n);
int pc_buf_puts(pc_buf *b, const char *s, pc_error_t *err);
int pc_buf_printf(pc_buf *b, pc_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pc_buf_reset(pc_buf *b);
void pc_buf_release(pc_buf *b);
char *pc_buf_steal(pc_buf *b, size_t *len);

#endif
