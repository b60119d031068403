#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "lib/common.h"
#include "lib/util.h"

static int log_json;
static pc_log_level log_min = PC_LOG_INFO;

void pc_log_setup(int json_format, pc_log_level min_level)
{
    log_json = json_format;
    log_min = min_level;
}

int pc_log_parse_format(const char *s)
{
    if (!strcmp(s, "text"))
        return 0;
    if (!strcmp(s, "json"))
        return 1;
    return -1;
}

const char *pc_log_level_name(pc_log_level l)
{
    switch (l) {
    case PC_LOG_DEBUG: return "debug";
    case PC_LOG_INFO: return "info";
    case PC_LOG_WARN: return "warn";
    default: return "error";
    }
}

static void pc_log_emit(pc_log_level level, json_t *fields, const char *fmt, va_list ap)
{
    char msg[4096], ts[PC_ISO_LEN + 1];
    if (level < log_min)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    pc_iso_now(ts);
    char *line;
    if (log_json) {
        json_t *rec = json_pack("{s:s,s:s,s:s}", "time", ts, "level", pc_log_level_name(level),
                                "msg", msg);
        if (!rec) /* invalid UTF-8 in msg: keep the record, drop the text */
            rec = json_pack("{s:s,s:s,s:s}", "time", ts, "level", pc_log_level_name(level),
                            "msg", "(unprintable message)");
        if (fields)
            json_object_update_missing(rec, fields);
        char *s = json_dumps(rec, JSON_COMPACT);
        json_decref(rec);
        line = pc_xasprintf("%s\n", s ? s : "{}");
        free(s);
    } else {
        char extra[1024] = "";
        if (fields) {
            const char *k;
            json_t *v;
            size_t off = 0;
            json_object_foreach(fields, k, v) {
                char *vs = json_is_string(v) ? pc_xstrdup(json_string_value(v))
                                             : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                int n = snprintf(extra + off, sizeof extra - off, " %s=%s", k, vs ? vs : "");
                free(vs);
                if (n < 0 || (size_t)n >= sizeof extra - off)
                    break;
                off += (size_t)n;
            }
        }
        char lv[8];
        snprintf(lv, sizeof lv, "%s", pc_log_level_name(level));
        for (char *p = lv; *p; p++)
            *p = (char)(*p - 32);
        line = pc_xasprintf("%s %-5s %s%s\n", ts, lv, msg, extra);
    }
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t w = write(2, line + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    free(line);
}

void pc_log(pc_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_log_emit(level, NULL, fmt, ap);
    va_end(ap);
}

void pc_log_fields(pc_log_level level, json_t *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_log_emit(level, fields, fmt, ap);
    va_end(ap);
}
