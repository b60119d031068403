/*
 * Small shared macros: scope-bound cleanup and explicit ownership transfer.
 *
 * `_cleanup_free_ char *s = ...;` frees s when it leaves scope.
 * `return steal_pointer(&s);` hands ownership to the caller and leaves s NULL,
 * so the cleanup handler does nothing. Both follow crun and bubblewrap.
 */
#ifndef PC_LIB_COMMON_H
#define PC_LIB_COMMON_H

#include <stdlib.h>
#include <unistd.h>

#define PC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PC_UNUSED __attribute__((unused))

static inline void pc_freep(void *p) { free(*(void **)p); }
static inline void pc_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

#define _cleanup_free_ __attribute__((cleanup(pc_freep)))
#define _cleanup_close_ __attribute__((cleanup(pc_closep)))
/* jansson values: `_cleanup_json_ json_t *j = ...;` */
#define _cleanup_json_ __attribute__((cleanup(pc_json_decrefp)))

static inline void *pc_steal_pointer(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) pc_steal_pointer(pp)

/* Aborts on allocation failure: a daemon that cannot allocate a few bytes has
 * no meaningful way to continue, and checking every small allocation hides the
 * real error paths. Untrusted sizes never reach these (buffers are bounded). */
void *pc_xmalloc(size_t n);
void *pc_xcalloc(size_t n, size_t m);
void *pc_xrealloc(void *p, size_t n);
char *pc_xstrdup(const char *s);
char *pc_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
