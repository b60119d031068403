/*
 * The api layer's route tables, one per resource file, each ending with an
 * entry whose method is NULL. The daemon hands them to the HTTP layer in
 * match order (daemon/routes.c).
 */
#ifndef PC_API_ROUTES_H
#define PC_API_ROUTES_H

#include "http/http.h"

extern const pc_route pc_routes_health[];
extern const pc_route pc_routes_companies[];
extern const pc_route pc_routes_agents[];
extern const pc_route pc_routes_activity[];
extern const pc_route pc_routes_plugins[];
extern const pc_route pc_routes_environments[];
extern const pc_route pc_routes_agent_keys[];
extern const pc_route pc_routes_issues[];
extern const pc_route pc_routes_runs[];
extern const pc_route pc_routes_secrets[];
extern const pc_route pc_routes_costs[];
extern const pc_route pc_routes_goals[];
extern const pc_route pc_routes_projects[];
extern const pc_route pc_routes_execution_workspaces[];
extern const pc_route pc_routes_agent_runtime[]; /* before agents: /api/agents/me */
extern const pc_route pc_routes_agent_lifecycle[];
extern const pc_route pc_routes_live_runs[];
extern const pc_route pc_routes_instance[];

#endif
