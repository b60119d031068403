/*
 * Helpers shared by the resource modules: query parameters, access checks
 * and entity look-ups with upstream's 404 texts. The activity log and row
 * mapping live in the model (model/activity.h, model/rows.h).
 *
 * Ownership: every json_t * returned is a new reference the caller owns;
 * every const char * returned points into the request (path or query) and
 * lives as long as it. Functions that fail return NULL or -1 with err set.
 */
#ifndef PC_API_API_H
#define PC_API_API_H

#include <jansson.h>
#include <stdint.h>

#include "api/routes.h"
#include "http/http.h"
#include "model/activity.h"
#include "model/entities.h"
#include "model/rows.h"

/* Loads a company row as its API object (new ref) or NULL with 404
 * "Company not found". */
json_t *pc_company_get(pc_app *app, const char *company_id, pc_error_t *err);
/* The :companyId path parameter once the caller's access is checked and the
 * company exists: NULL with 404 "Company not found" (malformed or missing)
 * or 403/401, in that order of checks (parameter, access, existence). */
const char *pc_company_param(pc_req *req, pc_error_t *err);
/* Loads an agent as its API object or NULL with 404 "Agent not found". */
json_t *pc_agent_get(pc_app *app, const char *agent_id, pc_error_t *err);
/* Loads the agent named by the :agentId path parameter, checking the
 * caller's company access: NULL with 404 "Agent not found" (malformed or
 * missing) or 403/401. When self_only is non-NULL, an agent caller asking
 * for another agent is refused with 403 self_only, after the 404 and before
 * the company check. */
json_t *pc_agent_load_for(pc_req *req, const char *self_only, pc_error_t *err);
/* Runs sql, an UPDATE of one agent with ?1 bound to now and ?2 to agent_id;
 * *changes (may be NULL) gets the number of rows it changed. */
int pc_agent_update_now(pc_app *app, const char *agent_id, const char *sql, int64_t *changes,
                        pc_error_t *err);
/* Logs action on agent a (details stolen, may be NULL) and answers 200 with
 * the agent as it is now; a failed log does not fail the request. */
int pc_agent_answer_logged(pc_req *req, pc_resp *resp, json_t *a, const char *action,
                           json_t *details, pc_error_t *err);

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

/* A reference (field) to a row of table that must belong to company_id: 0
 * when id is NULL or names such a row; 400 Validation error when it is not
 * a uuid; 422 `not_found` when it is missing or another company's (the same
 * answer, so ids of other companies cannot be probed). table is a
 * constant of the caller, never input. */
int pc_company_ref_check(pc_app *app, const char *table, const char *field, const char *id,
                         const char *company_id, const char *not_found, pc_error_t *err);

/* environments:manage for company_id (environments.c): the board, or an
 * agent of that company whose permissions grant it; 403 "Missing
 * permission: environments:manage" otherwise (after the company check). */
int pc_env_require_manage(pc_req *req, const char *company_id, pc_error_t *err);

/* Lease test hooks (env_hooks.c), routed by environments.c; they answer 404
 * unless the daemon runs with PAPERCLIP_ENABLE_TEST_HOOKS=1. */
int pc_env_hook_lease(pc_req *req, pc_resp *resp, pc_error_t *err);
int pc_env_hook_execute(pc_req *req, pc_resp *resp, pc_error_t *err);
int pc_env_hook_release(pc_req *req, pc_resp *resp, pc_error_t *err);
int pc_env_hook_destroy_reusable(pc_req *req, pc_resp *resp, pc_error_t *err);
int pc_env_hook_cancel(pc_req *req, pc_resp *resp, pc_error_t *err);

#endif
