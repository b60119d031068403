/*
 * Mapping store rows (snake_case columns) to API objects (camelCase keys).
 *
 * Ownership: every json_t * returned is a new reference the caller owns;
 * row arguments are borrowed unless a comment says they are stolen.
 */
#ifndef PC_MODEL_ROWS_H
#define PC_MODEL_ROWS_H

#include <jansson.h>

#include "app.h"
#include "lib/error.h"

/* Runs sql, which binds one "?" to id, and maps its first row with from_row:
 * a new reference, or NULL with the store's error or 404 `not_found` when
 * there is no row. */
json_t *pc_row_load(pc_app *app, const char *sql, const char *id, json_t *(*from_row)(json_t *),
                    const char *not_found, pc_error_t *err);
/* Maps every row of rows (stolen) with from_row into a new array. */
json_t *pc_rows_map(json_t *rows, json_t *(*from_row)(json_t *));

/* Sets key in obj to the JSON parsed from a stored text column (or null). */
void pc_json_set_from_text(json_t *obj, const char *key, json_t *row, const char *column);
/* Copies a column to obj[key] as-is (string/int/null). */
/* key must be an ASCII literal (it is not UTF-8 checked). */
void pc_json_copy(json_t *obj, const char *key, json_t *row, const char *column);
/* Copies an INTEGER 0/1 column as a JSON boolean. */
void pc_json_copy_bool(json_t *obj, const char *key, json_t *row, const char *column);

/* How a field of a row becomes a key of an API object. */
typedef enum {
    PC_FIELD_COPY,        /* the column as-is (string, integer or null) */
    PC_FIELD_JSON_TEXT,   /* a column of JSON text, parsed (null when empty) */
    PC_FIELD_BOOL,        /* an INTEGER 0/1 column as a JSON boolean */
    PC_FIELD_JSON_OBJECT, /* JSON text that must be an object: anything else is {} */
} pc_field_kind;

/* One key of an API object; tables end with an entry whose key is NULL.
 * key must be an ASCII literal (it is not UTF-8 checked). */
typedef struct pc_field {
    const char *key;
    const char *column;
    pc_field_kind kind;
} pc_field;

/* The API object (new ref) for row (borrowed), keys in table order. */
json_t *pc_row_map(const pc_field *fields, json_t *row);

#endif
