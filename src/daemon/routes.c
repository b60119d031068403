#include "api/routes.h"
#include "daemon/services.h"

const pc_route *const pc_daemon_routes[] = {
    pc_routes_health,
    pc_routes_companies,
    pc_routes_agent_runtime, /* before agents so "me" is not an agent id */
    pc_routes_agent_lifecycle,
    pc_routes_agents,
    pc_routes_activity,
    pc_routes_plugins,
    pc_routes_environments,
    pc_routes_agent_keys,
    pc_routes_live_runs,
    pc_routes_issues,
    pc_routes_runs,
    pc_routes_secrets,
    pc_routes_goals,
    pc_routes_projects,
    pc_routes_execution_workspaces,
    pc_routes_instance,
    pc_routes_costs,
    NULL,
};
