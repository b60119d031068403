/*
 * The API shape of every entity read from the store: one field table per
 * entity (key, column, kind, in output order) mapped by pc_row_map(), and a
 * pc_<entity>_from_row() for callers that take a mapping function
 * (pc_row_load(), pc_rows_map()). The tables are the single source of the
 * JSON shapes the API returns; a new column needs one line here.
 *
 * Ownership: each *_from_row() borrows row and returns a new object.
 */
#ifndef PC_MODEL_ENTITIES_H
#define PC_MODEL_ENTITIES_H

#include <jansson.h>

#include "model/rows.h"

/* companies */
extern const pc_field pc_company_fields[];
json_t *pc_company_from_row(json_t *row);
/* agents; also the column list of the agents list query (api/agents.c) */
extern const pc_field pc_agent_fields[];
json_t *pc_agent_from_row(json_t *row);
/* agent_api_keys (the key itself and its hash never leave the store) */
extern const pc_field pc_agent_key_fields[];
json_t *pc_agent_key_from_row(json_t *row);
/* issues */
extern const pc_field pc_issue_fields[];
json_t *pc_issue_from_row(json_t *row);
/* issue_comments */
extern const pc_field pc_issue_comment_fields[];
json_t *pc_issue_comment_from_row(json_t *row);
/* activity_log */
extern const pc_field pc_activity_fields[];
json_t *pc_activity_from_row(json_t *row);
/* heartbeat_runs */
extern const pc_field pc_run_fields[];
json_t *pc_run_from_row(json_t *row);
/* heartbeat_run_events */
extern const pc_field pc_run_event_fields[];
json_t *pc_run_event_from_row(json_t *row);
/* environments (config is always an object; secret refs only) */
extern const pc_field pc_env_fields[];
json_t *pc_env_from_row(json_t *row);
/* environment_leases */
extern const pc_field pc_lease_fields[];
json_t *pc_lease_from_row(json_t *row);
/* goals */
extern const pc_field pc_goal_fields[];
json_t *pc_goal_from_row(json_t *row);
/* projects (goalIds is derived from goal_id: one goal per project here) */
extern const pc_field pc_project_fields[];
json_t *pc_project_from_row(json_t *row);
/* project_workspaces */
extern const pc_field pc_project_workspace_fields[];
json_t *pc_project_workspace_from_row(json_t *row);
/* execution_workspaces */
extern const pc_field pc_exec_workspace_fields[];
json_t *pc_exec_workspace_from_row(json_t *row);
/* workspace_operations (the log itself only through its own route) */
extern const pc_field pc_workspace_op_fields[];
json_t *pc_workspace_op_from_row(json_t *row);

#endif
