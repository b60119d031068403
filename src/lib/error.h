/*
 * The one error type. Every fallible function takes `pc_error_t *err` as its
 * last argument, returns -1 (or NULL) on failure and fills err; callers add
 * context with pc_error_prefix() on the way up. Exactly one place maps an error
 * to the wire: pc_http_send_error() for HTTP, the plugin host for JSON-RPC.
 *
 * `status` is the HTTP status the failure deserves (400 for bad input, 404 for
 * a missing entity, 500 for internal faults). A 500's message is logged, never
 * sent: the client sees "Internal server error".
 * `details` (optional, owned by the error) is sent as the body's "details".
 * Messages are git-style: lower case, the failure first, then the object.
 * Upstream-compatible texts (e.g. "Validation error", "Environment not found")
 * keep upstream's capitalisation because clients match on them.
 */
#ifndef PC_LIB_ERROR_H
#define PC_LIB_ERROR_H

#include <jansson.h>
#include <stdarg.h>

typedef struct pc_error {
    int status;       /* HTTP status hint; 0 = no error */
    int sys_errno;    /* errno at the failure, 0 if none */
    int rpc_code;     /* JSON-RPC code when the failure came from a plugin, else 0 */
    char msg[1024];
    json_t *details;  /* owned; NULL if none */
} pc_error_t;

#define PC_ERROR_INIT {0, 0, 0, {0}, NULL}

/* Sets err (if non-NULL) and returns -1, so `return pc_error_set(...)` works. */
int pc_error_set(pc_error_t *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like pc_error_set with status 500, appending ": strerror(errno)". */
int pc_error_errno(pc_error_t *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Attaches details (steals the reference). */
void pc_error_details(pc_error_t *err, json_t *details);
/* Prepends "context: " to the message. */
void pc_error_prefix(pc_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pc_error_clear(pc_error_t *err);
static inline int pc_error_is_set(const pc_error_t *err) { return err && err->status != 0; }
/* Moves src into dst (dst cleared first). */
void pc_error_move(pc_error_t *dst, pc_error_t *src);

/* Common shapes. */
int pc_error_validation(pc_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
