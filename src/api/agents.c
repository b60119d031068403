/*
 * Agents: GET/POST /api/companies/:companyId/agents, GET/PATCH/DELETE
 * /api/agents/:agentId. runtimeConfig.heartbeat is completed with upstream's
 * defaults on write so readers never have to guess them.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/agents.h"
#include "api/authz.h"
#include "env/env.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "model/secrets.h"

static const char *const agent_roles[] = {"ceo",      "cto",    "cmo",      "cfo",
                                          "security", "engineer", "designer", "pm",
                                          "qa",       "devops", "researcher", "general",
                                          NULL};
static const char *const agent_statuses[] = {"active", "paused",           "idle",       "running",
                                             "error",  "pending_approval", "terminated", NULL};
const char *const pc_adapter_types[] = {"process",       "http",     "claude_local",
                                        "codex_local",   "cursor",   "gemini_local",
                                        "opencode_local", "pi_local", "openclaw_gateway",
                                        "hermes_local",  NULL};

/* "SELECT id AS "id", company_id AS "companyId", ... FROM agents WHERE
 * company_id=? AND status <> 'terminated' ORDER BY created_at": its rows
 * are agents once the JSON text columns are parsed in place. */
static char agents_list_sql[2048];
static pthread_once_t agents_list_once = PTHREAD_ONCE_INIT;

static void agents_list_sql_init(void)
{
    size_t off = 0;
    off += (size_t)snprintf(agents_list_sql + off, sizeof agents_list_sql - off, "SELECT ");
    for (const pc_field *f = pc_agent_fields; f->key; f++)
        off += (size_t)snprintf(agents_list_sql + off, sizeof agents_list_sql - off,
                                "%s%s AS \"%s\"", f > pc_agent_fields ? ", " : "", f->column,
                                f->key);
    snprintf(agents_list_sql + off, sizeof agents_list_sql - off,
             " FROM agents WHERE company_id=? AND status <> 'terminated' ORDER BY created_at");
}

json_t *pc_agent_get(pc_app *app, const char *agent_id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM agents WHERE id=?", agent_id, pc_agent_from_row,
                       "Agent not found", err);
}

/* Validates runtimeConfig and returns a new object with heartbeat defaults
 * filled in: enabled false, intervalSec 0, wakeOnDemand true,
 * maxConcurrentRuns 20 (clamped to 1..50 as upstream does). */
static json_t *pc_runtime_config_normalize(json_t *rc, pc_error_t *err)
{
    json_t *out = rc ? json_deep_copy(rc) : json_object();
    json_t *hb = json_object_get(out, "heartbeat");
    if (hb && !json_is_object(hb)) {
        json_decref(out);
        pc_error_validation(err, "runtimeConfig.heartbeat", "Expected object");
        return NULL;
    }
    if (!hb) {
        hb = json_object();
        json_object_set_new(out, "heartbeat", hb);
    }
    int64_t interval = 0, maxc = 20;
    bool enabled = false, wake = true;
    if (pc_json_check_bool(hb, "enabled", 0, &enabled, NULL, err) < 0 ||
        pc_json_check_int(hb, "intervalSec", 0, 0, 31536000, &interval, NULL, err) < 0 ||
        pc_json_check_bool(hb, "wakeOnDemand", 0, &wake, NULL, err) < 0 ||
        pc_json_check_int(hb, "maxConcurrentRuns", 0, INT64_MIN, INT64_MAX, &maxc, NULL, err) < 0) {
        pc_error_prefix(err, "runtimeConfig.heartbeat");
        json_decref(out);
        return NULL;
    }
    if (maxc < 1)
        maxc = 1;
    if (maxc > 50)
        maxc = 50;
    json_object_set_new(hb, "enabled", json_boolean(enabled));
    json_object_set_new(hb, "intervalSec", json_integer(interval));
    json_object_set_new(hb, "wakeOnDemand", json_boolean(wake));
    json_object_set_new(hb, "maxConcurrentRuns", json_integer(maxc));
    return out;
}

static int pc_agent_check_reports_to(pc_app *app, const char *company_id, const char *self_id,
                                     const char *reports_to, pc_error_t *err)
{
    if (!reports_to)
        return 0;
    if (!pc_uuid_valid(reports_to))
        return pc_error_validation(err, "reportsTo", "Invalid uuid");
    if (self_id && !strcmp(self_id, reports_to))
        return pc_error_set(err, 422, "An agent cannot report to itself");
    json_t *row = pc_db_query_one_s(app->db, "SELECT company_id FROM agents WHERE id=?",
                                    json_pack("[s]", reports_to), err);
    if (!row)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 422, "Manager agent not found");
    bool same = !strcmp(pc_json_str(row, "company_id"), company_id);
    json_decref(row);
    if (!same)
        return pc_error_set(err, 422, "Manager agent belongs to another company");
    return 0;
}

static int pc_agent_check_env(pc_app *app, const char *company_id, const char *env_id,
                              const char *adapter, pc_error_t *err)
{
    if (!env_id)
        return 0;
    if (!pc_uuid_valid(env_id))
        return pc_error_validation(err, "defaultEnvironmentId", "Invalid uuid");
    if (pc_env_validate_selection(app, company_id, env_id, adapter, err) < 0)
        return -1;
    return 0;
}

/* Whether an adapterConfig.env entry holds a secret: marked so
 * ({"type":"secret"|..., "value"} or {"secret":true}), or named like one. */
static bool env_entry_secret(const char *k, json_t *v)
{
    static const char *const words[] = {"KEY",        "TOKEN", "SECRET", "PASSWORD", "PASSWD",
                                        "CREDENTIAL", "AUTH",  NULL};
    if (json_is_object(v)) {
        const char *type = pc_json_str(v, "type");
        if ((type && strcmp(type, "plain") != 0) || pc_json_bool(v, "secret", false))
            return true;
    }
    for (int i = 0; words[i]; i++)
        if (strcasestr(k, words[i]))
            return true;
    return false;
}

/* Seals the secret values of aconf.env (edited in place) as company
 * secrets, leaving {"type":"secret_ref","secretId"} in their place, so the
 * agents table never holds a credential and no response can echo one. The
 * run resolves the references when it builds its environment. */
static int seal_adapter_env(pc_app *app, const char *cid, const char *agent_name, json_t *aconf,
                            pc_error_t *err)
{
    json_t *env = json_object_get(aconf, "env");
    if (!json_is_object(env))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        const char *type = pc_json_str(v, "type");
        if (type && !strcmp(type, "secret_ref"))
            continue;
        const char *val = json_is_string(v) ? json_string_value(v) : pc_json_str(v, "value");
        if (!val || !env_entry_secret(k, v))
            continue;
        if (!pc_secrets_ready() && pc_secrets_init(app->cfg.data_dir, err) < 0)
            return -1;
        char id[PC_SECRET_ID_LEN + 1], rnd[9];
        pc_random_hex(rnd, 4);
        _cleanup_free_ char *name = pc_xasprintf("agent-%s-%s", k, rnd);
        _cleanup_free_ char *desc = pc_xasprintf("adapterConfig.env.%s of %s", k, agent_name);
        if (pc_secret_create(app->db, cid, name, desc, val, false, id, err) < 0)
            return -1;
        json_object_set_new(env, k, json_pack("{s:s,s:s}", "type", "secret_ref", "secretId", id));
    }
    return 0;
}

static int pc_agents_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    /* The rows come back keyed and ordered as agents (what
     * pc_agent_from_row() builds), so only the JSON text columns need work:
     * replacing a value keeps its key's position. */
    pthread_once(&agents_list_once, agents_list_sql_init);
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db, agents_list_sql, json_pack("[s]", cid), &rows, err) < 0)
        return -1;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        for (const pc_field *f = pc_agent_fields; f->key; f++)
            if (f->kind == PC_FIELD_JSON_TEXT)
                pc_json_set_from_text(row, f->key, row, f->key);
        if (req->actor.type == PC_ACTOR_AGENT) {
            /* The view edits the row in place; the extra reference is the
             * one it hands back. */
            json_t *v = pc_agent_view(req, json_incref(row), err);
            if (!v) {
                json_decref(rows);
                return -1;
            }
            json_decref(v);
        }
    }
    return pc_resp_json(resp, 200, rows);
}

static const char *const agent_create_keys[] = {
    "name",          "role",          "title",         "icon",
    "reportsTo",     "capabilities",  "adapterType",   "adapterConfig",
    "runtimeConfig", "budgetMonthlyCents", "permissions", "metadata",
    "defaultEnvironmentId", "status", NULL};

/* The fields of a create or patch body. Strings are borrowed from the body;
 * a field left out keeps the value set before the check (the create
 * defaults, or NULL for a patch). */
typedef struct agent_body {
    const char *name, *role, *title, *icon, *reports, *caps, *adapter, *env, *status;
    json_t *aconf, *rconf, *perms, *meta;
    int64_t budget;
    bool budget_set;
} agent_body;

/* Validates b field by field in the order upstream reports errors; name is
 * required on create only. */
static int agent_body_check(json_t *b, unsigned name_flags, agent_body *ab, pc_error_t *err)
{
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, agent_create_keys, err) < 0 ||
        pc_json_check_string(b, "name", name_flags, 1, 200, &ab->name, err) < 0 ||
        pc_json_check_enum(b, "role", 0, agent_roles, &ab->role, err) < 0 ||
        pc_json_check_string(b, "title", PC_J_NULLABLE, 0, 200, &ab->title, err) < 0 ||
        pc_json_check_string(b, "icon", PC_J_NULLABLE, 0, 200, &ab->icon, err) < 0 ||
        pc_json_check_string(b, "reportsTo", PC_J_NULLABLE, 0, 64, &ab->reports, err) < 0 ||
        pc_json_check_string(b, "capabilities", PC_J_NULLABLE, 0, 10000, &ab->caps, err) < 0 ||
        pc_json_check_enum(b, "adapterType", 0, pc_adapter_types, &ab->adapter, err) < 0 ||
        pc_json_check_object(b, "adapterConfig", 0, &ab->aconf, err) < 0 ||
        pc_json_check_object(b, "runtimeConfig", 0, &ab->rconf, err) < 0 ||
        pc_json_check_object(b, "permissions", 0, &ab->perms, err) < 0 ||
        pc_json_check_object(b, "metadata", PC_J_NULLABLE, &ab->meta, err) < 0 ||
        pc_json_check_int(b, "budgetMonthlyCents", 0, 0, INT64_MAX / 2, &ab->budget,
                          &ab->budget_set, err) < 0 ||
        pc_json_check_string(b, "defaultEnvironmentId", PC_J_NULLABLE, 0, 64, &ab->env, err) < 0 ||
        pc_json_check_enum(b, "status", 0, agent_statuses, &ab->status, err) < 0)
        return -1;
    return 0;
}

/* What an agent caller may put into a new agent: no permissions (only the
 * board grants them), no status (the daemon decides it), an environment
 * only with environments:manage and within its containment. *pending is
 * set when the caller is confined. */
static int agent_create_guard(pc_req *req, const char *cid, agent_body *ab, bool *pending,
                              pc_error_t *err)
{
    if (ab->perms)
        return pc_error_set(err, 403, "Board access required");
    if (json_object_get(req->body, "status"))
        return pc_error_set(err, 403, "Agents cannot set the status of a new agent");
    if (ab->env && (pc_actor_require(req, cid, PC_PERM_ENVIRONMENTS_MANAGE, NULL, err) < 0 ||
                    pc_actor_may_select_env(req, ab->env, err) < 0))
        return -1;
    int confined = pc_actor_confined(req, err);
    if (confined < 0)
        return -1;
    /* A confined agent's hire runs wherever the board later decides; until
     * then it is not runnable. */
    *pending = confined == 1;
    return 0;
}

static int pc_agents_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!cid)
        return -1;
    bool by_agent = req->actor.type == PC_ACTOR_AGENT;
    if (by_agent) {
        if (pc_require_company_access(req, cid, err) < 0 ||
            pc_actor_require(req, cid, PC_PERM_AGENTS_CREATE, "can create agents", err) < 0)
            return -1;
    }
    agent_body ab = {.role = "general", .adapter = "process", .status = "idle"};
    if (agent_body_check(req->body, PC_J_REQUIRED, &ab, err) < 0)
        return -1;
    bool pending = false;
    if (by_agent && agent_create_guard(req, cid, &ab, &pending, err) < 0)
        return -1;
    const char *name = ab.name, *role = ab.role, *title = ab.title, *icon = ab.icon,
               *reports = ab.reports, *caps = ab.caps, *adapter = ab.adapter, *env = ab.env,
               *status = ab.status;
    json_t *aconf = ab.aconf, *rconf = ab.rconf, *perms = ab.perms, *meta = ab.meta;
    int64_t budget = ab.budget;
    json_t *c = pc_company_get(req->app, cid, err);
    if (!c)
        return -1;
    /* An agent's hire waits for the board when the company asks for that or
     * when the hiring agent is itself confined: the new agent's first run
     * must not escape the confinement of the one that made it. */
    if (by_agent && (pending || pc_json_bool(c, "requireBoardApprovalForNewAgents", false)))
        status = "pending_approval";
    json_decref(c);
    if (pc_agent_check_reports_to(req->app, cid, NULL, reports, err) < 0 ||
        pc_agent_check_env(req->app, cid, env, adapter, err) < 0)
        return -1;
    _cleanup_json_ json_t *aconf_sealed = aconf ? json_deep_copy(aconf) : NULL;
    if (aconf_sealed && seal_adapter_env(req->app, cid, name, aconf_sealed, err) < 0)
        return -1;
    aconf = aconf_sealed;
    json_t *rc_norm = pc_runtime_config_normalize(rconf, err);
    if (!rc_norm)
        return -1;
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    json_t *empty = json_object();
    int rc = pc_db_exec_s(
        req->app->db,
        "INSERT INTO agents(id,company_id,name,role,title,icon,status,reports_to,capabilities,"
        "adapter_type,adapter_config,runtime_config,default_environment_id,budget_monthly_cents,"
        "permissions,metadata,created_at,updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        json_pack("[s,s,s,s,s?,s?,s,s?,s?,s,O,O,s?,I,O,O?,s,s]", id, cid, name, role, title, icon,
                  status, reports, caps, adapter, aconf ? aconf : empty, rc_norm, env,
                  (json_int_t)budget, perms ? perms : empty, meta && !json_is_null(meta) ? meta : NULL,
                  ts, ts),
        NULL, err);
    json_decref(rc_norm);
    json_decref(empty);
    if (rc < 0)
        return -1;
    /* Activity details name the agent and adapter, never adapterConfig (it
     * may carry credentials in env). */
    _cleanup_json_ json_t *details =
        json_pack("{s:s,s:s,s:s}", "name", name, "role", role, "adapterType", adapter);
    pc_activity_log(req->app, &req->actor, cid, "agent.created", "agent", id, details, err);
    pc_error_clear(err);
    json_t *a = pc_agent_view(req, pc_agent_get(req->app, id, err), err);
    return a ? pc_resp_json(resp, 201, a) : -1;
}

json_t *pc_agent_load_for(pc_req *req, const char *self_only, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "agentId", "Agent not found", err);
    if (!id)
        return NULL;
    json_t *a = pc_agent_get(req->app, id, err);
    if (!a)
        return NULL;
    if (self_only && req->actor.type == PC_ACTOR_AGENT && strcmp(req->actor.agent_id, id) != 0) {
        json_decref(a);
        pc_error_set(err, 403, "%s", self_only);
        return NULL;
    }
    return pc_access_checked(req, a, err);
}

static int pc_agents_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *a = pc_agent_view(req, pc_agent_load_for(req, NULL, err), err);
    return a ? pc_resp_json(resp, 200, a) : -1;
}

/* Fields that decide what an agent executes, and fields the board uses to
 * govern it. An agent caller changes either only with agents:create. */
static const char *const exec_fields[] = {"adapterType", "adapterConfig", "runtimeConfig", NULL};
static const char *const govern_fields[] = {"status", "role", "budgetMonthlyCents", "reportsTo",
                                            NULL};

static bool body_has_any(json_t *b, const char *const *keys)
{
    for (int i = 0; keys[i]; i++)
        if (json_object_get(b, keys[i]))
            return true;
    return false;
}

static bool status_board_only(const char *s)
{
    return s && (!strcmp(s, "pending_approval") || !strcmp(s, "terminated"));
}

/* What an agent caller may change on target (docs/security.md, "Agent
 * configuration"). Upstream lets an agent rewrite its own configuration;
 * here that needs a permission, because the next run executes it. */
static int agent_patch_guard(pc_req *req, json_t *target, json_t *b, pc_error_t *err)
{
    if (req->actor.type != PC_ACTOR_AGENT)
        return 0;
    const char *id = pc_json_str(target, "id"), *cid = pc_json_str(target, "companyId");
    bool self = !strcmp(req->actor.agent_id, id);
    if (json_object_get(b, "permissions"))
        return pc_error_set(err, 403, "Board access required");
    int can = pc_actor_can(req, cid, PC_PERM_AGENTS_CREATE, err);
    if (can < 0)
        return -1;
    if (!self && !can)
        return pc_error_set(err, 403, "Only agent creators can modify other agents");
    bool exec = body_has_any(b, exec_fields);
    if ((exec || body_has_any(b, govern_fields)) && !can)
        return pc_error_set(err, 403, "Missing permission: can create agents");
    if (self && (json_object_get(b, "status") || json_object_get(b, "budgetMonthlyCents")))
        return pc_error_set(err, 403, "Agents cannot change their own status or budget");
    const char *st = pc_json_str(b, "status");
    if (st && (status_board_only(st) || status_board_only(pc_json_str(target, "status"))))
        return pc_error_set(err, 403, "Board access required");
    if (exec && pc_actor_may_select_env(req, pc_json_str(target, "defaultEnvironmentId"), err) < 0)
        return -1;
    if (json_object_get(b, "defaultEnvironmentId") &&
        (pc_actor_require(req, cid, PC_PERM_ENVIRONMENTS_MANAGE, NULL, err) < 0 ||
         pc_actor_may_select_env(req, pc_json_str(b, "defaultEnvironmentId"), err) < 0))
        return -1;
    return 0;
}

static int pc_agents_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *a = pc_agent_load_for(req, NULL, err);
    if (!a)
        return -1;
    const char *id = pc_json_str(a, "id"), *cid = pc_json_str(a, "companyId");
    json_t *b = req->body;
    agent_body ab = {0};
    if (agent_body_check(b, 0, &ab, err) < 0 || agent_patch_guard(req, a, b, err) < 0) {
        json_decref(a);
        return -1;
    }
    /* A new adapter is checked against the kept default environment too. */
    const char *sel_env = ab.env;
    if (!sel_env && ab.adapter && !json_object_get(b, "defaultEnvironmentId"))
        sel_env = pc_json_str(a, "defaultEnvironmentId");
    if (pc_agent_check_reports_to(req->app, cid, id, ab.reports, err) < 0 ||
        pc_agent_check_env(req->app, cid, sel_env,
                           ab.adapter ? ab.adapter : pc_json_str(a, "adapterType"), err) < 0) {
        json_decref(a);
        return -1;
    }
    const char *name = ab.name, *role = ab.role, *title = ab.title, *icon = ab.icon,
               *reports = ab.reports, *caps = ab.caps, *adapter = ab.adapter, *env = ab.env,
               *status = ab.status;
    json_t *aconf = ab.aconf, *rconf = ab.rconf, *perms = ab.perms, *meta = ab.meta;
    int64_t budget = ab.budget;
    bool budget_set = ab.budget_set;
    _cleanup_json_ json_t *aconf_sealed = aconf ? json_deep_copy(aconf) : NULL;
    if (aconf_sealed && seal_adapter_env(req->app, cid, pc_json_str(a, "name"), aconf_sealed, err) < 0) {
        json_decref(a);
        return -1;
    }
    aconf = aconf_sealed;
    /* A terminated agent stays terminated, whoever asks: resuming it is a
     * new hire, not a status change. Which agents may set a status at all is
     * agent_patch_guard's decision above. */
    if (status && !strcmp(pc_json_str(a, "status"), "terminated") &&
        strcmp(status, "terminated") != 0) {
        json_decref(a);
        return pc_error_set(err, 409, "Cannot resume terminated agent");
    }
    json_t *rc_norm = NULL;
    if (rconf) {
        rc_norm = pc_runtime_config_normalize(rconf, err);
        if (!rc_norm) {
            json_decref(a);
            return -1;
        }
    }
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
#define HAS(k) (json_object_get(b, k) != NULL)
    int rc = pc_db_exec_s(
        req->app->db,
        "UPDATE agents SET name=CASE WHEN ? THEN ? ELSE name END,"
        "role=CASE WHEN ? THEN ? ELSE role END, title=CASE WHEN ? THEN ? ELSE title END,"
        "icon=CASE WHEN ? THEN ? ELSE icon END, reports_to=CASE WHEN ? THEN ? ELSE reports_to END,"
        "capabilities=CASE WHEN ? THEN ? ELSE capabilities END,"
        "adapter_type=CASE WHEN ? THEN ? ELSE adapter_type END,"
        "adapter_config=CASE WHEN ? THEN ? ELSE adapter_config END,"
        "runtime_config=CASE WHEN ? THEN ? ELSE runtime_config END,"
        "permissions=CASE WHEN ? THEN ? ELSE permissions END,"
        "metadata=CASE WHEN ? THEN ? ELSE metadata END,"
        "budget_monthly_cents=CASE WHEN ? THEN ? ELSE budget_monthly_cents END,"
        "default_environment_id=CASE WHEN ? THEN ? ELSE default_environment_id END,"
        "status=CASE WHEN ? THEN ? ELSE status END, updated_at=? WHERE id=?",
        json_pack("[b,s?,b,s?,b,s?,b,s?,b,s?,b,s?,b,s?,b,O?,b,O?,b,O?,b,O?,b,I,b,s?,b,s?,s,s]",
                  name != NULL, name, role != NULL, role, HAS("title"), title, HAS("icon"), icon,
                  HAS("reportsTo"), reports, HAS("capabilities"), caps, adapter != NULL, adapter,
                  aconf != NULL, aconf, rc_norm != NULL, rc_norm, perms != NULL, perms,
                  HAS("metadata"), meta && !json_is_null(meta) ? meta : NULL, budget_set,
                  (json_int_t)budget, HAS("defaultEnvironmentId"), env, status != NULL, status, ts,
                  id),
        NULL, err);
    json_decref(rc_norm);
    if (rc < 0) {
        json_decref(a);
        return -1;
    }
    _cleanup_json_ json_t *details = json_pack("{s:o}", "changedFields", pc_changed_fields(b));
    pc_activity_log(req->app, &req->actor, cid, "agent.updated", "agent", id, details, err);
    pc_error_clear(err);
    json_t *out = pc_agent_view(req, pc_agent_get(req->app, id, err), err);
    json_decref(a);
    return out ? pc_resp_json(resp, 200, out) : -1;
#undef HAS
}

static int pc_agents_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    json_t *a = pc_agent_load_for(req, NULL, err);
    if (!a)
        return -1;
    int rc = pc_db_exec_s(req->app->db, "DELETE FROM agents WHERE id=?",
                          json_pack("[s]", pc_json_str(a, "id")), NULL, err);
    _cleanup_json_ json_t *details = json_pack("{s:O}", "name", json_object_get(a, "name"));
    if (rc == 0)
        pc_activity_log(req->app, &req->actor, pc_json_str(a, "companyId"), "agent.deleted", "agent",
                        pc_json_str(a, "id"), details, err);
    pc_error_clear(err);
    json_decref(a);
    return rc < 0 ? -1 : pc_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

static const char *const grantable[] = {PC_PERM_AGENTS_CREATE, PC_PERM_ENVIRONMENTS_MANAGE,
                                        PC_PERM_TASKS_ASSIGN, NULL};

/* PATCH /api/agents/:agentId/permissions {canCreateAgents?, canAssignTasks?,
 * grants?}: the board's way to grant an agent a named permission. Upstream
 * also lets a CEO agent do this; here only the board can, since an agent's
 * role is not a credential. */
static int pc_agents_permissions(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *a = pc_agent_load_for(req, NULL, err);
    if (!a)
        return -1;
    static const char *const keys[] = {"canCreateAgents", "canAssignTasks", "grants", NULL};
    json_t *b = req->body;
    bool create = false, assign = false, create_set = false, assign_set = false;
    json_t *grants = NULL;
    if (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, keys, err) < 0 ||
        pc_json_check_bool(b, "canCreateAgents", 0, &create, &create_set, err) < 0 ||
        pc_json_check_bool(b, "canAssignTasks", 0, &assign, &assign_set, err) < 0)
        return -1;
    grants = json_object_get(b, "grants");
    if (grants && !json_is_array(grants))
        return pc_error_validation(err, "grants", "Expected array");
    size_t i;
    json_t *g;
    json_array_foreach(grants, i, g)
    {
        bool known = false;
        for (int k = 0; grantable[k] && json_is_string(g); k++)
            known |= !strcmp(grantable[k], json_string_value(g));
        if (!known)
            return pc_error_validation(err, "grants", "Unknown permission");
    }
    json_t *perms = json_deep_copy(pc_json_obj(a, "permissions"));
    if (!perms)
        perms = json_object();
    if (create_set)
        json_object_set_new(perms, "canCreateAgents", json_boolean(create));
    if (assign_set)
        json_object_set_new(perms, "canAssignTasks", json_boolean(assign));
    if (grants)
        json_object_set(perms, "grants", grants);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    const char *id = pc_json_str(a, "id");
    int rc = pc_db_exec_s(req->app->db, "UPDATE agents SET permissions=?, updated_at=? WHERE id=?",
                          json_pack("[o,s,s]", perms, ts, id), NULL, err);
    if (rc < 0)
        return -1;
    return pc_agent_answer_logged(req, resp, a, "agent.permissions_updated",
                                  json_pack("{s:o}", "changedFields", pc_changed_fields(b)), err);
}

/* POST /api/agents/:agentId/approve: the board lets a pending hire run. */
static int pc_agents_approve(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *a = pc_agent_load_for(req, NULL, err);
    if (!a)
        return -1;
    int64_t changes = 0;
    if (pc_agent_update_now(req->app, pc_json_str(a, "id"),
                            "UPDATE agents SET status='idle', updated_at=?1 WHERE id=?2 AND "
                            "status='pending_approval'",
                            &changes, err) < 0)
        return -1;
    if (changes == 0)
        return pc_error_set(err, 409, "Only pending approval agents can be approved");
    return pc_agent_answer_logged(req, resp, a, "agent.approved", NULL, err);
}

int pc_agent_update_now(pc_app *app, const char *agent_id, const char *sql, int64_t *changes,
                        pc_error_t *err)
{
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    return pc_db_exec_s(app->db, sql, json_pack("[s,s]", ts, agent_id), changes, err);
}

int pc_agent_answer_logged(pc_req *req, pc_resp *resp, json_t *a, const char *action,
                           json_t *details, pc_error_t *err)
{
    const char *id = pc_json_str(a, "id");
    pc_activity_log_steal(req->app, &req->actor, pc_json_str(a, "companyId"), action, "agent", id,
                          details, err);
    pc_error_clear(err);
    json_t *out = pc_agent_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

const pc_route pc_routes_agents[] = {
    {"PATCH", "/api/agents/:agentId/permissions", pc_agents_permissions, 0},
    {"POST", "/api/agents/:agentId/approve", pc_agents_approve, 0},
    {"GET", "/api/companies/:companyId/agents", pc_agents_list, 0},
    {"POST", "/api/companies/:companyId/agents", pc_agents_create, 0},
    {"GET", "/api/agents/:agentId", pc_agents_get, 0},
    {"PATCH", "/api/agents/:agentId", pc_agents_patch, 0},
    {"DELETE", "/api/agents/:agentId", pc_agents_delete, 0},
    {NULL, NULL, NULL, 0},
};
