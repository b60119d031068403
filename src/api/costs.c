/*
 * Costs and budgets (upstream's routes and shapes):
 *
 *   POST  /api/companies/:companyId/cost-events      report a spend (201, the event)
 *   GET   /api/companies/:companyId/costs/summary    {companyId, spendCents, budgetCents,
 *                                                    utilizationPercent}
 *   GET   /api/companies/:companyId/costs/by-agent   per-agent sums
 *   GET   /api/companies/:companyId/costs/by-project per-project sums
 *   PATCH /api/companies/:companyId/budgets          {budgetMonthlyCents} -> the company
 *   PATCH /api/agents/:agentId/budgets               {budgetMonthlyCents} -> the agent
 *
 * The GETs take ?from= and ?to= (ISO-8601 instants or YYYY-MM-DD dates, both
 * inclusive, on occurredAt); a bad one is 400 "invalid 'from' date".
 *
 * Who may do what: reading needs company access (the board, or an agent of
 * the company). A cost event may be reported by the board, or by an agent
 * for itself only (403 "Agent can only report its own costs"). Budgets are
 * board-only: a budget decides whether an agent runs at all, which agents
 * may not change (docs/security.md).
 *
 * Raising a budget above the month's spend resumes what the budget paused
 * (pauseReason "budget"); a pause for any other reason stays.
 */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "model/costs.h"

#define COST_NAME_MAX 200
#define TOKENS_MAX ((int64_t)1 << 50)

/* Reads ?name= into out: absent -> NULL; an ISO-8601 instant or a
 * YYYY-MM-DD date (midnight UTC) -> normalised ISO-8601; else 400. */
static int query_date(const pc_req *req, const char *name, char out[PC_ISO_LEN + 1],
                      const char **res, pc_error_t *err)
{
    const char *v = pc_req_query(req, name);
    *res = NULL;
    if (!v || !*v)
        return 0;
    int64_t ms = 0;
    char tmp[40];
    if (pc_iso_parse(v, &ms) < 0) {
        int y, m, d, n = 0;
        if (strlen(v) != 10 || sscanf(v, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10)
            return pc_error_set(err, 400, "invalid '%s' date", name);
        snprintf(tmp, sizeof tmp, "%sT00:00:00Z", v);
        if (pc_iso_parse(tmp, &ms) < 0)
            return pc_error_set(err, 400, "invalid '%s' date", name);
    }
    pc_iso8601(ms, out);
    *res = out;
    return 0;
}

typedef json_t *(*costs_query_fn)(pc_app *, const char *, const char *, const char *, pc_error_t *);

static int costs_get(pc_req *req, pc_resp *resp, costs_query_fn fn, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    char fbuf[PC_ISO_LEN + 1], tbuf[PC_ISO_LEN + 1];
    const char *from = NULL, *to = NULL;
    if (!cid || query_date(req, "from", fbuf, &from, err) < 0 ||
        query_date(req, "to", tbuf, &to, err) < 0)
        return -1;
    json_t *out = fn(req->app, cid, from, to, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int pc_costs_summary_h(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    return costs_get(req, resp, pc_costs_summary, err);
}

static int pc_costs_by_agent_h(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    return costs_get(req, resp, pc_costs_by_agent, err);
}

static int pc_costs_by_project_h(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    return costs_get(req, resp, pc_costs_by_project, err);
}

static int check_uuid(const json_t *b, const char *field, const char **out, pc_error_t *err)
{
    if (pc_json_check_string(b, field, PC_J_NULLABLE, 0, PC_UUID_LEN, out, err) < 0)
        return -1;
    if (*out && !pc_uuid_valid(*out))
        return pc_error_validation(err, field, "Invalid uuid");
    return 0;
}

static int pc_cost_events_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    json_t *b = req->body;
    pc_cost_input in = {.company_id = cid};
    const char *occurred = NULL;
    if (pc_json_check_is_object(b, err) < 0 ||
        pc_json_check_string(b, "agentId", PC_J_REQUIRED, 1, PC_UUID_LEN, &in.agent_id, err) < 0 ||
        check_uuid(b, "agentId", &in.agent_id, err) < 0 ||
        check_uuid(b, "issueId", &in.issue_id, err) < 0 ||
        check_uuid(b, "projectId", &in.project_id, err) < 0 ||
        check_uuid(b, "goalId", &in.goal_id, err) < 0 ||
        check_uuid(b, "heartbeatRunId", &in.run_id, err) < 0 ||
        pc_json_check_string(b, "billingCode", PC_J_NULLABLE, 0, COST_NAME_MAX, &in.billing_code,
                             err) < 0 ||
        pc_json_check_string(b, "provider", PC_J_REQUIRED, 1, COST_NAME_MAX, &in.provider, err) <
            0 ||
        pc_json_check_string(b, "biller", 0, 1, COST_NAME_MAX, &in.biller, err) < 0 ||
        pc_json_check_enum(b, "billingType", 0, pc_billing_types, &in.billing_type, err) < 0 ||
        pc_json_check_string(b, "model", PC_J_REQUIRED, 1, COST_NAME_MAX, &in.model, err) < 0 ||
        pc_json_check_int(b, "inputTokens", 0, 0, TOKENS_MAX, &in.input_tokens, NULL, err) < 0 ||
        pc_json_check_int(b, "cachedInputTokens", 0, 0, TOKENS_MAX, &in.cached_input_tokens, NULL,
                          err) < 0 ||
        pc_json_check_int(b, "outputTokens", 0, 0, TOKENS_MAX, &in.output_tokens, NULL, err) < 0 ||
        pc_json_check_int(b, "costCents", PC_J_REQUIRED, 0, TOKENS_MAX, &in.cost_cents, NULL, err) <
            0 ||
        pc_json_check_string(b, "occurredAt", PC_J_REQUIRED, 1, 64, &occurred, err) < 0)
        return -1;
    int64_t ms = 0;
    char occ[PC_ISO_LEN + 1];
    if (pc_iso_parse(occurred, &ms) < 0)
        return pc_error_validation(err, "occurredAt", "Invalid datetime");
    pc_iso8601(ms, occ);
    in.occurred_at = occ;
    if (req->actor.type == PC_ACTOR_AGENT && strcmp(req->actor.agent_id, in.agent_id) != 0)
        return pc_error_set(err, 403, "Agent can only report its own costs");
    _cleanup_json_ json_t *agent =
        pc_db_query_one_s(req->app->db, "SELECT company_id FROM agents WHERE id=?",
                          json_pack("[s]", in.agent_id), err);
    if (!agent)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Agent not found");
    if (strcmp(pc_json_str(agent, "company_id"), cid) != 0)
        return pc_error_set(err, 422, "Agent does not belong to company");
    char id[PC_UUID_LEN + 1];
    if (pc_db_begin(req->app->db, err) < 0)
        return -1;
    if (pc_cost_event_record(req->app, &in, id, err) < 0 || pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        return -1;
    }
    json_t *ev = pc_cost_event_get(req->app, id, err);
    return ev ? pc_resp_json(resp, 201, ev) : -1;
}

static const char *const budget_keys[] = {"budgetMonthlyCents", NULL};

static int budget_body(pc_req *req, int64_t *budget, pc_error_t *err)
{
    return pc_json_check_is_object(req->body, err) < 0 ||
                   pc_json_check_keys(req->body, budget_keys, err) < 0 ||
                   pc_json_check_int(req->body, "budgetMonthlyCents", PC_J_REQUIRED, 0,
                                     INT64_MAX / 2, budget, NULL, err) < 0
               ? -1
               : 0;
}

/* The new budget and, when the month's spend is now below it, the resume
 * of what the old one paused: one transaction. */
static int set_budget(pc_req *req, const char *scope, const char *id, const char *company_id,
                      int64_t budget, pc_error_t *err)
{
    pc_app *app = req->app;
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    bool agent = !strcmp(scope, "agent");
    if (pc_db_begin(app->db, err) < 0)
        return -1;
    if (pc_db_exec_s(app->db,
                     agent ? "UPDATE agents SET budget_monthly_cents=?, updated_at=? WHERE id=?"
                           : "UPDATE companies SET budget_monthly_cents=?, updated_at=? WHERE id=?",
                     json_pack("[I,s,s]", (json_int_t)budget, now, id), NULL, err) < 0 ||
        pc_activity_log_steal(
            app, &req->actor, company_id, agent ? "agent.budget_updated" : "company.budget_updated",
            scope, id, json_pack("{s:I}", "budgetMonthlyCents", (json_int_t)budget), err) < 0 ||
        pc_budget_resume(app, &req->actor, scope, id, err) < 0 || pc_db_commit(app->db, err) < 0) {
        pc_db_rollback(app->db);
        return -1;
    }
    return 0;
}

static int pc_agent_budget_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *a = pc_agent_load_for(req, NULL, err);
    int64_t budget = 0;
    if (!a || pc_require_board(req, err) < 0 || budget_body(req, &budget, err) < 0)
        return -1;
    const char *id = pc_json_str(a, "id");
    if (set_budget(req, "agent", id, pc_json_str(a, "companyId"), budget, err) < 0)
        return -1;
    json_t *out = pc_agent_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int pc_company_budget_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    int64_t budget = 0;
    if (!cid || pc_require_board(req, err) < 0 || budget_body(req, &budget, err) < 0)
        return -1;
    if (set_budget(req, "company", cid, cid, budget, err) < 0)
        return -1;
    json_t *out = pc_company_get(req->app, cid, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

const pc_route pc_routes_costs[] = {
    {"POST", "/api/companies/:companyId/cost-events", pc_cost_events_create, 0},
    {"GET", "/api/companies/:companyId/costs/summary", pc_costs_summary_h, 0},
    {"GET", "/api/companies/:companyId/costs/by-agent", pc_costs_by_agent_h, 0},
    {"GET", "/api/companies/:companyId/costs/by-project", pc_costs_by_project_h, 0},
    {"PATCH", "/api/companies/:companyId/budgets", pc_company_budget_patch, 0},
    {"PATCH", "/api/agents/:agentId/budgets", pc_agent_budget_patch, 0},
    {NULL, NULL, NULL, 0},
};
