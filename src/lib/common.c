#include "lib/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void pc_oom(void)
{
    static const char msg[] = "paperclip: out of memory\n";
    ssize_t rc = write(2, msg, sizeof msg - 1);
    (void)rc;
    abort();
}

void *pc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        pc_oom();
    return p;
}

void *pc_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        pc_oom();
    return p;
}

void *pc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        pc_oom();
    return q;
}

char *pc_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        pc_oom();
    return p;
}

char *pc_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int rc = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (rc < 0)
        pc_oom();
    return out;
}
