#include "lib/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/common.h"

void pc_buf_init(pc_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

static void pc_buf_grow(pc_buf *b, size_t need)
{
    if (need + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1)
        cap = cap > ((size_t)-1) / 2 ? need + 1 : cap * 2;
    b->data = pc_xrealloc(b->data, cap);
    b->cap = cap;
}

int pc_buf_append(pc_buf *b, const void *p, size_t n, pc_error_t *err)
{
    if (n > b->max || b->len > b->max - n) {
        b->truncated = true;
        return pc_error_set(err, 413, "data exceeds the limit of %zu bytes", b->max);
    }
    pc_buf_grow(b, b->len + n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

size_t pc_buf_append_trunc(pc_buf *b, const void *p, size_t n)
{
    size_t room = b->max > b->len ? b->max - b->len : 0;
    size_t take = n < room ? n : room;
    if (take < n)
        b->truncated = true;
    pc_buf_grow(b, b->len + take);
    if (take)
        memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = '\0';
    return take;
}

int pc_buf_puts(pc_buf *b, const char *s, pc_error_t *err)
{
    return pc_buf_append(b, s, strlen(s), err);
}

int pc_buf_printf(pc_buf *b, pc_error_t *err, const char *fmt, ...)
{
    va_list ap;
    char small[512];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return pc_error_set(err, 500, "cannot format text");
    if ((size_t)n < sizeof small)
        return pc_buf_append(b, small, (size_t)n, err);
    char *big = pc_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = pc_buf_append(b, big, (size_t)n, err);
    free(big);
    return rc;
}

void pc_buf_reset(pc_buf *b)
{
    b->len = 0;
    b->truncated = false;
    if (b->data)
        b->data[0] = '\0';
}

void pc_buf_release(pc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->truncated = false;
}

char *pc_buf_steal(pc_buf *b, size_t *len)
{
    if (!b->data)
        pc_buf_grow(b, 0), b->data[0] = '\0';
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}
