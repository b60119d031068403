/*
 * Permissions, containment and the restricted agent view (see authz.h and
 * docs/security.md for the rules and why they are shaped like this).
 */
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/authz.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

#define REDACTED "***REDACTED***"

bool pc_perms_grant(const json_t *perms, const char *perm)
{
    if (!json_is_object(perms) || !perm)
        return false;
    if (json_is_true(json_object_get(perms, perm)))
        return true;
    /* canCreateAgents is upstream's agent-configuration authority; upstream
     * lets it assign tasks and manage environments too. */
    if (json_is_true(json_object_get(perms, "canCreateAgents")))
        return true;
    if (!strcmp(perm, PC_PERM_TASKS_ASSIGN) &&
        json_is_true(json_object_get(perms, "canAssignTasks")))
        return true;
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(perms, "grants"), i, g)
    {
        const char *k = json_is_string(g) ? json_string_value(g) : pc_json_str(g, "permissionKey");
        if (k && !strcmp(k, perm))
            return true;
    }
    return false;
}

int pc_actor_can(pc_req *req, const char *company_id, const char *perm, pc_error_t *err)
{
    if (req->actor.type == PC_ACTOR_BOARD)
        return 1;
    if (req->actor.type != PC_ACTOR_AGENT || !company_id ||
        strcmp(req->actor.company_id, company_id) != 0)
        return 0;
    _cleanup_json_ json_t *row =
        pc_db_query_one_s(req->app->db, "SELECT permissions FROM agents WHERE id=?",
                          json_pack("[s]", req->actor.agent_id), err);
    if (!row)
        return pc_error_is_set(err) ? -1 : 0;
    _cleanup_json_ json_t *perms = pc_json_from_text(pc_json_str(row, "permissions"));
    return pc_perms_grant(perms, perm) ? 1 : 0;
}

int pc_actor_require(pc_req *req, const char *company_id, const char *perm, const char *text,
                     pc_error_t *err)
{
    int can = pc_actor_can(req, company_id, perm, err);
    if (can < 0)
        return -1;
    if (!can)
        return pc_error_set(err, 403, "Missing permission: %s", text ? text : perm);
    return 0;
}

/* Sandboxed drivers: the code runs in a provider's isolation, not on a host
 * the daemon trusts. */
static bool driver_sandboxed(const char *driver)
{
    return driver && (!strcmp(driver, "sandbox") || !strcmp(driver, "plugin"));
}

typedef struct exec_place {
    char env_id[40]; /* "" = the host (no environment, or the Local one) */
    char driver[16]; /* "local" for the host; "" when the environment vanished */
} exec_place;

/* The issue's parsed executionWorkspaceSettings; NULL when it has none or
 * the issue is gone, and NULL with err set on a store error. */
static json_t *issue_settings(pc_req *req, const char *issue_id, pc_error_t *err)
{
    _cleanup_json_ json_t *issue = pc_db_query_one_s(
        req->app->db, "SELECT execution_workspace_settings FROM issues WHERE id=?",
        json_pack("[s]", issue_id), err);
    return issue ? pc_json_from_text(pc_json_str(issue, "execution_workspace_settings")) : NULL;
}

/* Where the calling agent's own code runs: for a run token, the run's
 * issue environment when it has one, else the agent's default environment;
 * for an agent key, the default environment. */
static int actor_place(pc_req *req, exec_place *p, pc_error_t *err)
{
    memset(p, 0, sizeof *p);
    snprintf(p->driver, sizeof p->driver, "local");
    const char *env_id = NULL;
    _cleanup_json_ json_t *agent =
        pc_db_query_one_s(req->app->db, "SELECT default_environment_id FROM agents WHERE id=?",
                          json_pack("[s]", req->actor.agent_id), err);
    if (!agent && pc_error_is_set(err))
        return -1;
    env_id = pc_json_str(agent, "default_environment_id");
    _cleanup_json_ json_t *run = NULL, *ctx = NULL, *ews = NULL;
    if (req->actor.run_id[0]) {
        run = pc_db_query_one_s(req->app->db,
                                "SELECT context_snapshot FROM heartbeat_runs WHERE id=?",
                                json_pack("[s]", req->actor.run_id), err);
        if (!run && pc_error_is_set(err))
            return -1;
        ctx = pc_json_from_text(pc_json_str(run, "context_snapshot"));
        const char *issue_id = pc_json_str(ctx, "issueId");
        if (issue_id) {
            ews = issue_settings(req, issue_id, err);
            if (!ews && pc_error_is_set(err))
                return -1;
            if (pc_json_str(ews, "environmentId"))
                env_id = pc_json_str(ews, "environmentId");
        }
    }
    if (!env_id)
        return 0;
    _cleanup_json_ json_t *env = pc_db_query_one_s(
        req->app->db, "SELECT driver FROM environments WHERE id=?", json_pack("[s]", env_id), err);
    if (!env && pc_error_is_set(err))
        return -1;
    const char *driver = pc_json_str(env, "driver");
    if (driver && !strcmp(driver, "local"))
        return 0;
    snprintf(p->env_id, sizeof p->env_id, "%s", env_id);
    snprintf(p->driver, sizeof p->driver, "%s", driver ? driver : "");
    return 0;
}

int pc_actor_confined(pc_req *req, pc_error_t *err)
{
    if (req->actor.type != PC_ACTOR_AGENT)
        return 0;
    exec_place p;
    if (actor_place(req, &p, err) < 0)
        return -1;
    return strcmp(p.driver, "local") != 0 ? 1 : 0;
}

int pc_actor_may_select_env(pc_req *req, const char *env_id, pc_error_t *err)
{
    if (req->actor.type != PC_ACTOR_AGENT)
        return 0;
    exec_place p;
    if (actor_place(req, &p, err) < 0)
        return -1;
    if (!strcmp(p.driver, "local"))
        return 0;
    if (!env_id)
        return pc_error_set(err, 403,
                            "A confined agent cannot move execution out of its environment");
    if (!strcmp(env_id, p.env_id))
        return 0;
    _cleanup_json_ json_t *env =
        pc_db_query_one_s(req->app->db, "SELECT driver, company_id FROM environments WHERE id=?",
                          json_pack("[s]", env_id), err);
    if (!env && pc_error_is_set(err))
        return -1;
    if (env && driver_sandboxed(p.driver) && driver_sandboxed(pc_json_str(env, "driver")) &&
        !strcmp(pc_json_str(env, "company_id"), req->actor.company_id))
        return 0;
    return pc_error_set(err, 403, "A confined agent cannot move execution out of its environment");
}

int pc_actor_may_cause_run(pc_req *req, const char *agent_id, const char *issue_id,
                           json_t *issue_env_override, pc_error_t *err)
{
    int confined = pc_actor_confined(req, err);
    if (confined <= 0)
        return confined;
    const char *env_id = NULL;
    _cleanup_json_ json_t *ews = NULL, *agent = NULL;
    if (issue_env_override) {
        env_id = json_string_value(issue_env_override);
    } else if (issue_id) {
        ews = issue_settings(req, issue_id, err);
        if (!ews && pc_error_is_set(err))
            return -1;
        env_id = pc_json_str(ews, "environmentId");
    }
    if (!env_id && agent_id) {
        agent =
            pc_db_query_one_s(req->app->db, "SELECT default_environment_id FROM agents WHERE id=?",
                              json_pack("[s]", agent_id), err);
        if (!agent && pc_error_is_set(err))
            return -1;
        env_id = pc_json_str(agent, "default_environment_id");
    }
    return pc_actor_may_select_env(req, env_id, err);
}

/* Key names that conventionally hold credentials. */
static bool key_secretish(const char *k)
{
    static const char *const words[] = {"key",        "token", "secret", "password", "passwd",
                                        "credential", "auth",  "cookie", "bearer",   NULL};
    for (int i = 0; words[i]; i++)
        if (strcasestr(k, words[i]))
            return true;
    return false;
}

static void redact_walk(json_t *v, bool in_env)
{
    const char *k;
    json_t *child;
    void *tmp;
    if (json_is_object(v)) {
        json_object_foreach_safe(v, tmp, k, child)
        {
            bool is_ref = json_is_object(child) && pc_json_str(child, "type") &&
                          !strcmp(pc_json_str(child, "type"), "secret_ref");
            if (is_ref)
                continue; /* a reference names a sealed secret; it carries no value */
            if ((in_env || key_secretish(k)) && (json_is_string(child) || json_is_number(child)))
                json_object_set_new(v, k, json_string(REDACTED));
            else if (in_env && json_is_object(child) && json_object_get(child, "value"))
                json_object_set_new(child, "value", json_string(REDACTED));
            else
                redact_walk(child,
                            !strcmp(k, "env") || (key_secretish(k) && json_is_object(child)));
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_array_foreach(v, i, child) redact_walk(child, in_env);
    }
}

void pc_redact_config(json_t *config)
{
    redact_walk(config, false);
}

json_t *pc_agent_view(pc_req *req, json_t *agent, pc_error_t *err)
{
    if (!agent || req->actor.type != PC_ACTOR_AGENT)
        return agent;
    const char *id = pc_json_str(agent, "id");
    bool self = id && !strcmp(id, req->actor.agent_id);
    int can =
        self ? 1 : pc_actor_can(req, pc_json_str(agent, "companyId"), PC_PERM_AGENTS_CREATE, err);
    if (can < 0) {
        json_decref(agent);
        return NULL;
    }
    if (!can) {
        json_object_set_new(agent, "adapterConfig", json_object());
        json_object_set_new(agent, "runtimeConfig", json_object());
        return agent;
    }
    pc_redact_config(json_object_get(agent, "adapterConfig"));
    pc_redact_config(json_object_get(agent, "runtimeConfig"));
    return agent;
}
