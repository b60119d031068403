/*
 * Authorization decisions shared by the resource modules (docs/security.md).
 *
 * Permissions use upstream's names: "agents:create", "environments:manage",
 * "tasks:assign". The board holds every permission. An agent holds one when
 * its `permissions` object (written only by the board) says so:
 *   {"canCreateAgents": true}                   agents:create, and with it
 *                                               environments:manage and
 *                                               tasks:assign (as upstream)
 *   {"canAssignTasks": true}                    tasks:assign
 *   {"<permission>": true}                      that permission
 *   {"grants": ["<permission>" | {"permissionKey": "<permission>"}, ...]}
 *
 * Containment: an agent whose own execution is confined (its run, or its
 * default environment, uses a non-local driver) may only point execution at
 * its own environment, or at a sandboxed (sandbox/plugin driver) environment
 * when it is itself sandboxed; never at the host.
 *
 * Ownership: functions take the request borrowed; every json_t * returned
 * is a new reference the caller owns.
 */
#ifndef PC_API_AUTHZ_H
#define PC_API_AUTHZ_H

#include <jansson.h>
#include <stdbool.h>

#include "http/http.h"

#define PC_PERM_AGENTS_CREATE "agents:create"
#define PC_PERM_ENVIRONMENTS_MANAGE "environments:manage"
#define PC_PERM_TASKS_ASSIGN "tasks:assign"

/* Whether a stored agent permissions object grants perm. */
bool pc_perms_grant(const json_t *perms, const char *perm);

/* 1 when the caller holds perm for company_id, 0 when not, -1 with err set
 * on a store fault. Agents of another company never hold anything. */
int pc_actor_can(pc_req *req, const char *company_id, const char *perm, pc_error_t *err);

/* 0 when the caller holds perm, else -1 with 403 "Missing permission:
 * <text>" (text defaults to perm). */
int pc_actor_require(pc_req *req, const char *company_id, const char *perm, const char *text,
                     pc_error_t *err);

/* 0 when the caller may make code run in environment env_id (NULL means the
 * company's default, the host): always for the board and unconfined agents;
 * for a confined agent only under the containment rule above. Otherwise -1
 * with 403. */
int pc_actor_may_select_env(pc_req *req, const char *env_id, pc_error_t *err);

/* 0 when the caller may cause a run of agent_id for issue_id (NULL: no
 * issue): for a confined agent the run's environment (the issue's, else the
 * agent's default; issue_env_override replaces the issue's when the caller
 * is changing it) must pass pc_actor_may_select_env(). Else -1 with 403. */
int pc_actor_may_cause_run(pc_req *req, const char *agent_id, const char *issue_id,
                           json_t *issue_env_override, pc_error_t *err);

/* 1 when the calling agent's own execution is confined, 0 when it runs on
 * the host (or the caller is the board), -1 on a store fault. */
int pc_actor_confined(pc_req *req, pc_error_t *err);

/* What an agent caller may see of agent (stolen, returned): for another
 * agent without agents:create, adapterConfig and runtimeConfig become {}
 * (upstream's restricted view); otherwise values under credential-like keys
 * and every adapterConfig.env value are replaced by a redaction marker.
 * Board callers get agent unchanged. NULL on a store fault. */
json_t *pc_agent_view(pc_req *req, json_t *agent, pc_error_t *err);

/* Replaces secret values in an adapterConfig-like object in place. */
void pc_redact_config(json_t *config);

#endif
