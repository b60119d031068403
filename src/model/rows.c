#include "model/rows.h"

#include "lib/json.h"

json_t *pc_row_load(pc_app *app, const char *sql, const char *id, json_t *(*from_row)(json_t *),
                    const char *not_found, pc_error_t *err)
{
    json_t *row = pc_db_query_one_s(app->db, sql, json_pack("[s]", id), err);
    if (!row) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "%s", not_found);
        return NULL;
    }
    json_t *obj = from_row(row);
    json_decref(row);
    return obj;
}

json_t *pc_rows_map(json_t *rows, json_t *(*from_row)(json_t *))
{
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(out, from_row(row));
    json_decref(rows);
    return out;
}

void pc_json_set_from_text(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_object_set_new(obj, key, pc_json_from_text(pc_json_str(row, column)));
}

void pc_json_copy(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    /* Keys are string literals (ASCII field names): skip the UTF-8 check. */
    json_object_set_nocheck(obj, key, v ? v : json_null());
}

void pc_json_copy_bool(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    json_object_set_new(obj, key, json_boolean(json_is_integer(v) && json_integer_value(v) != 0));
}

json_t *pc_row_map(const pc_field *fields, json_t *row)
{
    json_t *obj = json_object();
    for (const pc_field *f = fields; f->key; f++) {
        switch (f->kind) {
        case PC_FIELD_COPY:
            pc_json_copy(obj, f->key, row, f->column);
            break;
        case PC_FIELD_JSON_TEXT:
            pc_json_set_from_text(obj, f->key, row, f->column);
            break;
        case PC_FIELD_BOOL:
            pc_json_copy_bool(obj, f->key, row, f->column);
            break;
        case PC_FIELD_JSON_OBJECT: {
            json_t *v = pc_json_from_text(pc_json_str(row, f->column));
            if (!json_is_object(v)) {
                json_decref(v);
                v = json_object();
            }
            json_object_set_new_nocheck(obj, f->key, v);
            break;
        }
        }
    }
    return obj;
}
