/*
 * Helpers shared by the resource modules: the activity log, row mapping,
 * query parameters and entity look-ups with upstream's 404 texts.
 *
 * Ownership: every json_t * returned is a new reference the caller owns;
 * every const char * returned points into the request (path or query) and
 * lives as long as it. Functions that fail return NULL or -1 with err set.
 */
#ifndef PC_API_API_H
#define PC_API_API_H

#include <jansson.h>
#include <stdint.h>

#include "http/http.h"

/* Appends an activity row. details (borrowed, may be NULL) must never carry
 * secrets. actor comes from the request; pass NULL for system actions. */
int pc_activity_log(pc_app *app, const pc_actor *actor, const char *company_id, const char *action,
                    const char *entity_type, const char *entity_id, json_t *details,
                    pc_error_t *err);
/* pc_activity_log() taking ownership of details, so call sites can build
 * them inline. */
int pc_activity_log_steal(pc_app *app, const pc_actor *actor, const char *company_id,
                          const char *action, const char *entity_type, const char *entity_id,
                          json_t *details, pc_error_t *err);
/* The names of body's keys as a JSON array (activity "changedFields"). */
json_t *pc_changed_fields(json_t *body);

/* Loads a company row as its API object (new ref) or NULL with 404
 * "Company not found". */
json_t *pc_company_get(pc_app *app, const char *company_id, pc_error_t *err);
/* The :companyId path parameter once the caller's access is checked and the
 * company exists: NULL with 404 "Company not found" (malformed or missing)
 * or 403/401, in that order of checks (parameter, access, existence). */
const char *pc_company_param(pc_req *req, pc_error_t *err);
/* Loads an agent as its API object or NULL with 404 "Agent not found". */
json_t *pc_agent_get(pc_app *app, const char *agent_id, pc_error_t *err);
json_t *pc_agent_from_row(json_t *row);
/* Loads the agent named by the :agentId path parameter, checking the
 * caller's company access: NULL with 404 "Agent not found" (malformed or
 * missing) or 403/401. When self_only is non-NULL, an agent caller asking
 * for another agent is refused with 403 self_only, after the 404 and before
 * the company check. */
json_t *pc_agent_load_for(pc_req *req, const char *self_only, pc_error_t *err);

/* Takes ownership of obj (an API object with "companyId"; NULL passes
 * through) and returns it when the caller may access its company; otherwise
 * drops it and returns NULL with 403/401. */
json_t *pc_access_checked(const pc_req *req, json_t *obj, pc_error_t *err);

/* Parses a uuid path parameter; 404 with `not_found` text when malformed
 * (upstream answers a bad id the same as a missing one). */
const char *pc_param_uuid(const pc_req *req, const char *name, const char *not_found,
                          pc_error_t *err);

/* How pc_query_limit() treats a value that is not an integer in 1..max. */
typedef enum {
    PC_LIMIT_CLAMP,  /* malformed or < 1: the default; > max: max */
    PC_LIMIT_STRICT, /* 400 Validation error on "limit": "limit must be an integer from 1 to
                        <max>" */
} pc_limit_mode;
/* Reads the ?limit= query parameter into *out (dflt when absent); 0, or -1
 * with err set (PC_LIMIT_STRICT only). */
int pc_query_limit(const pc_req *req, int64_t dflt, int64_t max, pc_limit_mode mode, int64_t *out,
                   pc_error_t *err);

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

#endif
