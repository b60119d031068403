#include "lib/error.h"

#include <stdio.h>
#include <string.h>

static void pc_error_vset(pc_error_t *err, int status, const char *fmt, va_list ap)
{
    if (!err)
        return;
    if (err->details) {
        json_decref(err->details);
        err->details = NULL;
    }
    err->status = status ? status : 500;
    err->sys_errno = 0;
    err->rpc_code = 0;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

int pc_error_set(pc_error_t *err, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_error_vset(err, status, fmt, ap);
    va_end(ap);
    return -1;
}

int pc_error_errno(pc_error_t *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    if (!err)
        return -1;
    va_start(ap, fmt);
    pc_error_vset(err, 500, fmt, ap);
    va_end(ap);
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(errnum));
    err->sys_errno = errnum;
    return -1;
}

void pc_error_details(pc_error_t *err, json_t *details)
{
    if (!err) {
        json_decref(details);
        return;
    }
    if (err->details)
        json_decref(err->details);
    err->details = details;
}

void pc_error_prefix(pc_error_t *err, const char *fmt, ...)
{
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    if (!err)
        return;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is acceptable: the message is for humans. */
    size_t pl = strnlen(prefix, sizeof err->msg - 3);
    memcpy(err->msg, prefix, pl);
    memcpy(err->msg + pl, ": ", 2);
    size_t room = sizeof err->msg - pl - 3;
    size_t ol = strnlen(old, room);
    memcpy(err->msg + pl + 2, old, ol);
    err->msg[pl + 2 + ol] = '\0';
}

void pc_error_clear(pc_error_t *err)
{
    if (!err)
        return;
    if (err->details)
        json_decref(err->details);
    memset(err, 0, sizeof *err);
}

void pc_error_move(pc_error_t *dst, pc_error_t *src)
{
    if (!dst) {
        pc_error_clear(src);
        return;
    }
    pc_error_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

int pc_error_validation(pc_error_t *err, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pc_error_set(err, 400, "Validation error");
    json_t *issue = json_pack("{s:[s],s:s}", "path", field ? field : "", "message", msg);
    if (field == NULL || !*field)
        json_object_set_new(issue, "path", json_array());
    pc_error_details(err, json_pack("[o]", issue));
    return -1;
}
