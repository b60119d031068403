/*
 * Helpers shared by the resource modules: the activity log, row mapping and
 * entity look-ups with upstream's 404 texts.
 */
#ifndef PC_API_API_H
#define PC_API_API_H

#include <jansson.h>

#include "http/http.h"

/* Appends an activity row. details (borrowed, may be NULL) must never carry
 * secrets. actor comes from the request; pass NULL for system actions. */
int pc_activity_log(pc_app *app, const pc_actor *actor, const char *company_id, const char *action,
                    const char *entity_type, const char *entity_id, json_t *details,
                    pc_error_t *err);

/* Loads a company row as its API object (new ref) or NULL with 404
 * "Company not found". */
json_t *pc_company_get(pc_app *app, const char *company_id, pc_error_t *err);
/* Loads an agent as its API object or NULL with 404 "Agent not found". */
json_t *pc_agent_get(pc_app *app, const char *agent_id, pc_error_t *err);
json_t *pc_agent_from_row(json_t *row);

/* Parses a uuid path parameter; 404 with `not_found` text when malformed
 * (upstream answers a bad id the same as a missing one). */
const char *pc_param_uuid(const pc_req *req, const char *name, const char *not_found,
                          pc_error_t *err);

/* Sets key in obj to the JSON parsed from a stored text column (or null). */
void pc_json_set_from_text(json_t *obj, const char *key, json_t *row, const char *column);
/* Copies a column to obj[key] as-is (string/int/null). */
/* key must be an ASCII literal (it is not UTF-8 checked). */
void pc_json_copy(json_t *obj, const char *key, json_t *row, const char *column);
/* Copies an INTEGER 0/1 column as a JSON boolean. */
void pc_json_copy_bool(json_t *obj, const char *key, json_t *row, const char *column);

#endif
