/*
 * Leveled logging to stderr, as text ("2026-01-01T00:00:00.000Z INFO msg") or
 * one JSON object per line. Thread-safe: each record is written with a single
 * write(2). Callers must never pass secrets; pc_log_json_fields() lets a
 * module attach structured fields (e.g. the plugin id).
 */
#ifndef PC_LIB_LOG_H
#define PC_LIB_LOG_H

#include <jansson.h>

typedef enum { PC_LOG_DEBUG, PC_LOG_INFO, PC_LOG_WARN, PC_LOG_ERROR } pc_log_level;

void pc_log_setup(int json_format, pc_log_level min_level);
int pc_log_parse_format(const char *s); /* "text" -> 0, "json" -> 1, else -1 */
void pc_log(pc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs msg with extra fields (borrowed); in text mode fields render as k=v. */
void pc_log_fields(pc_log_level level, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *pc_log_level_name(pc_log_level l);

#define pc_debug(...) pc_log(PC_LOG_DEBUG, __VA_ARGS__)
#define pc_info(...) pc_log(PC_LOG_INFO, __VA_ARGS__)
#define pc_warn(...) pc_log(PC_LOG_WARN, __VA_ARGS__)
#define pc_err(...) pc_log(PC_LOG_ERROR, __VA_ARGS__)

#endif
