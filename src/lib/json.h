/*
 * JSON helpers on jansson.
 *
 * Parsing untrusted text: pc_json_parse() returns a new reference or NULL
 * with a 400 whose message carries line and column. Accessors return borrowed
 * references or defaults and never fail on a wrong type; validation of request
 * bodies goes through pc_json_check_*(), which fill a 400 "Validation error"
 * whose details name the field (upstream's zod-issue shape:
 * [{"path": ["field"], "message": "..."}]).
 */
#ifndef PC_LIB_JSON_H
#define PC_LIB_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/error.h"

static inline void pc_json_decrefp(json_t **j)
{
    if (*j)
        json_decref(*j);
}

json_t *pc_json_parse(const char *text, size_t len, pc_error_t *err);
/* Compact serialisation; caller frees. Never NULL (aborts on OOM). */
char *pc_json_dumps(const json_t *j);
/* The same, with the length of the text. */
char *pc_json_dumps_len(const json_t *j, size_t *len);

const char *pc_json_str(const json_t *obj, const char *key); /* NULL if absent or not a string */
int64_t pc_json_int(const json_t *obj, const char *key, int64_t dflt);
bool pc_json_bool(const json_t *obj, const char *key, bool dflt);
/* Object value or NULL if absent/not an object. */
json_t *pc_json_obj(const json_t *obj, const char *key);

/* Parses a stored JSON text column; NULL text or bad JSON -> json_null(). */
json_t *pc_json_from_text(const char *text);

/* Validation. Each returns 0 or -1 with a 400 Validation error naming field. */
typedef enum { PC_J_OPTIONAL = 0, PC_J_REQUIRED = 1, PC_J_NULLABLE = 2 } pc_json_flags;
int pc_json_check_string(const json_t *obj, const char *field, int flags, size_t min_len,
                         size_t max_len, const char **out, pc_error_t *err);
int pc_json_check_int(const json_t *obj, const char *field, int flags, int64_t min, int64_t max,
                      int64_t *out, bool *present, pc_error_t *err);
int pc_json_check_bool(const json_t *obj, const char *field, int flags, bool *out, bool *present,
                       pc_error_t *err);
int pc_json_check_object(const json_t *obj, const char *field, int flags, json_t **out,
                         pc_error_t *err);
int pc_json_check_enum(const json_t *obj, const char *field, int flags, const char *const *allowed,
                       const char **out, pc_error_t *err);
/* Rejects keys not in allowed (NULL-terminated): zod .strict() behaviour. */
int pc_json_check_keys(const json_t *obj, const char *const *allowed, pc_error_t *err);
/* Body must be an object. */
int pc_json_check_is_object(const json_t *body, pc_error_t *err);

#endif
