#include "model/costs.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/common.h"
#include "lib/json.h"
#include "model/activity.h"
#include "model/rows.h"

const char *const pc_billing_types[] = {
    "metered_api", "subscription_included", "subscription_overage", "credits", "fixed", "unknown",
    NULL};

static const pc_field cost_event_fields[] = {
    {"id", "id", PC_FIELD_COPY},
    {"companyId", "company_id", PC_FIELD_COPY},
    {"agentId", "agent_id", PC_FIELD_COPY},
    {"issueId", "issue_id", PC_FIELD_COPY},
    {"projectId", "project_id", PC_FIELD_COPY},
    {"goalId", "goal_id", PC_FIELD_COPY},
    {"heartbeatRunId", "heartbeat_run_id", PC_FIELD_COPY},
    {"billingCode", "billing_code", PC_FIELD_COPY},
    {"provider", "provider", PC_FIELD_COPY},
    {"biller", "biller", PC_FIELD_COPY},
    {"billingType", "billing_type", PC_FIELD_COPY},
    {"model", "model", PC_FIELD_COPY},
    {"inputTokens", "input_tokens", PC_FIELD_COPY},
    {"cachedInputTokens", "cached_input_tokens", PC_FIELD_COPY},
    {"outputTokens", "output_tokens", PC_FIELD_COPY},
    {"costCents", "cost_cents", PC_FIELD_COPY},
    {"occurredAt", "occurred_at", PC_FIELD_COPY},
    {"createdAt", "created_at", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

static json_t *cost_event_from_row(json_t *row)
{
    return pc_row_map(cost_event_fields, row);
}

json_t *pc_cost_event_get(pc_app *app, const char *id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM cost_events WHERE id=?", id, cost_event_from_row,
                       "Cost event not found", err);
}

void pc_cost_month_window(char start[PC_ISO_LEN + 1], char end[PC_ISO_LEN + 1])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    struct tm s = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = 1};
    struct tm e = {.tm_year = tm.tm_mon == 11 ? tm.tm_year + 1 : tm.tm_year,
                   .tm_mon = (tm.tm_mon + 1) % 12,
                   .tm_mday = 1};
    pc_iso8601((int64_t)timegm(&s) * 1000, start);
    pc_iso8601((int64_t)timegm(&e) * 1000, end);
}

/* The month's spend of the company (agent_id NULL) or of one agent. */
static int month_spend(pc_app *app, const char *company_id, const char *agent_id, int64_t *out,
                       pc_error_t *err)
{
    char start[PC_ISO_LEN + 1], end[PC_ISO_LEN + 1];
    pc_cost_month_window(start, end);
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        app->db,
        "SELECT COALESCE(SUM(cost_cents),0) AS total FROM cost_events WHERE company_id=? AND "
        "(? IS NULL OR agent_id=?) AND occurred_at >= ? AND occurred_at < ?",
        json_pack("[s,s?,s?,s,s]", company_id, agent_id, agent_id, start, end), err);
    if (!row)
        return pc_error_is_set(err) ? -1 : (*out = 0, 0);
    *out = pc_json_int(row, "total", 0);
    return 0;
}

static int log_hard_stop(pc_app *app, const char *company_id, const char *scope_type,
                         const char *scope_id, int64_t observed, int64_t limit, pc_error_t *err)
{
    return pc_activity_log_steal(
        app, NULL, company_id, "budget.hard_threshold_crossed", scope_type, scope_id,
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "scopeType", scope_type, "scopeId", scope_id,
                  "metric", "billed_cents", "amountObserved", (json_int_t)observed, "amountLimit",
                  (json_int_t)limit, "windowKind", "calendar_month_utc"),
        err);
}

int pc_budget_evaluate_agent(pc_app *app, const char *agent_id, bool *blocked, pc_error_t *err)
{
    *blocked = false;
    _cleanup_json_ json_t *a = pc_db_query_one_s(
        app->db,
        "SELECT a.company_id, a.status, a.budget_monthly_cents, a.spent_monthly_cents, "
        "c.status AS company_status, c.budget_monthly_cents AS company_budget, "
        "c.spent_monthly_cents AS company_spent FROM agents a JOIN companies c ON "
        "c.id=a.company_id WHERE a.id=?",
        json_pack("[s]", agent_id), err);
    if (!a)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Agent not found");
    const char *cid = pc_json_str(a, "company_id");
    int64_t agent_spend = 0, company_spend = 0;
    if (month_spend(app, cid, agent_id, &agent_spend, err) < 0 ||
        month_spend(app, cid, NULL, &company_spend, err) < 0)
        return -1;
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    /* Stored only when it changed, so a check before every claim does not
     * write (and a new month resets the figure on the first check). */
    if (agent_spend != pc_json_int(a, "spent_monthly_cents", 0) &&
        pc_db_exec_s(app->db, "UPDATE agents SET spent_monthly_cents=?, updated_at=? WHERE id=?",
                     json_pack("[I,s,s]", (json_int_t)agent_spend, now, agent_id), NULL, err) < 0)
        return -1;
    if (company_spend != pc_json_int(a, "company_spent", 0) &&
        pc_db_exec_s(app->db, "UPDATE companies SET spent_monthly_cents=?, updated_at=? WHERE id=?",
                     json_pack("[I,s,s]", (json_int_t)company_spend, now, cid), NULL, err) < 0)
        return -1;

    int64_t budget = pc_json_int(a, "budget_monthly_cents", 0);
    if (budget > 0 && agent_spend >= budget) {
        *blocked = true;
        int64_t changes = 0;
        if (pc_db_exec_s(
                app->db,
                "UPDATE agents SET status='paused', pause_reason='budget', paused_at=?, "
                "updated_at=? WHERE id=? AND status IN ('active','idle','running','error')",
                json_pack("[s,s,s]", now, now, agent_id), &changes, err) < 0)
            return -1;
        if (changes && log_hard_stop(app, cid, "agent", agent_id, agent_spend, budget, err) < 0)
            return -1;
    }
    int64_t cbudget = pc_json_int(a, "company_budget", 0);
    if (cbudget > 0 && company_spend >= cbudget) {
        *blocked = true;
        int64_t changes = 0;
        if (pc_db_exec_s(
                app->db,
                "UPDATE companies SET status='paused', pause_reason='budget', paused_at=?, "
                "updated_at=? WHERE id=? AND status='active'",
                json_pack("[s,s,s]", now, now, cid), &changes, err) < 0)
            return -1;
        if (changes && log_hard_stop(app, cid, "company", cid, company_spend, cbudget, err) < 0)
            return -1;
    }
    return 0;
}

int pc_budget_resume(pc_app *app, const pc_actor *actor, const char *scope_type, const char *id,
                     pc_error_t *err)
{
    bool agent = !strcmp(scope_type, "agent");
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        app->db,
        agent ? "SELECT company_id, budget_monthly_cents FROM agents WHERE id=?"
              : "SELECT id AS company_id, budget_monthly_cents FROM companies WHERE id=?",
        json_pack("[s]", id), err);
    if (!row)
        return pc_error_is_set(err)
                   ? -1
                   : pc_error_set(err, 404, agent ? "Agent not found" : "Company not found");
    const char *cid = pc_json_str(row, "company_id");
    int64_t spend = 0, budget = pc_json_int(row, "budget_monthly_cents", 0);
    if (month_spend(app, cid, agent ? id : NULL, &spend, err) < 0)
        return -1;
    if (budget > 0 && spend >= budget)
        return 0;
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    int64_t changes = 0;
    if (pc_db_exec_s(app->db,
                     agent ? "UPDATE agents SET status='idle', pause_reason=NULL, paused_at=NULL, "
                             "spent_monthly_cents=?, updated_at=? WHERE id=? AND "
                             "status='paused' AND pause_reason='budget'"
                           : "UPDATE companies SET status='active', pause_reason=NULL, "
                             "paused_at=NULL, spent_monthly_cents=?, updated_at=? WHERE id=? "
                             "AND status='paused' AND pause_reason='budget'",
                     json_pack("[I,s,s]", (json_int_t)spend, now, id), &changes, err) < 0)
        return -1;
    if (changes && pc_activity_log_steal(
                       app, actor, cid, agent ? "agent.resumed" : "company.resumed", scope_type, id,
                       json_pack("{s:s}", "reason", "budget_raised"), err) < 0)
        return -1;
    return 0;
}

int pc_cost_event_record(pc_app *app, const pc_cost_input *in, char id_out[PC_UUID_LEN + 1],
                         pc_error_t *err)
{
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    pc_uuid_v7(id_out);
    const char *biller = in->biller && *in->biller ? in->biller : in->provider;
    const char *btype = in->billing_type ? in->billing_type : "unknown";
    if (pc_db_exec_s(
            app->db,
            "INSERT INTO cost_events(id,company_id,agent_id,issue_id,project_id,goal_id,"
            "heartbeat_run_id,billing_code,provider,biller,billing_type,model,input_tokens,"
            "cached_input_tokens,output_tokens,cost_cents,occurred_at,created_at) "
            "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            json_pack("[s,s,s,s?,s?,s?,s?,s?,s,s,s,s,I,I,I,I,s,s]", id_out, in->company_id,
                      in->agent_id, in->issue_id, in->project_id, in->goal_id, in->run_id,
                      in->billing_code, in->provider, biller, btype, in->model,
                      (json_int_t)in->input_tokens, (json_int_t)in->cached_input_tokens,
                      (json_int_t)in->output_tokens, (json_int_t)in->cost_cents,
                      in->occurred_at ? in->occurred_at : now, now),
            NULL, err) < 0)
        return -1;
    if (pc_activity_log_steal(app, NULL, in->company_id, "cost_event.created", "cost_event", id_out,
                              json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s?,s:s}", "costCents",
                                        (json_int_t)in->cost_cents, "model", in->model, "provider",
                                        in->provider, "biller", biller, "billingType", btype,
                                        "inputTokens", (json_int_t)in->input_tokens,
                                        "cachedInputTokens", (json_int_t)in->cached_input_tokens,
                                        "outputTokens", (json_int_t)in->output_tokens,
                                        "heartbeatRunId", in->run_id, "agentId", in->agent_id),
                              err) < 0)
        return -1;
    bool blocked = false;
    return pc_budget_evaluate_agent(app, in->agent_id, &blocked, err);
}

#define RANGE_SQL "(? IS NULL OR ce.occurred_at >= ?) AND (? IS NULL OR ce.occurred_at <= ?)"

json_t *pc_costs_summary(pc_app *app, const char *company_id, const char *from, const char *to,
                         pc_error_t *err)
{
    _cleanup_json_ json_t *c =
        pc_db_query_one_s(app->db, "SELECT budget_monthly_cents FROM companies WHERE id=?",
                          json_pack("[s]", company_id), err);
    if (!c) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "Company not found");
        return NULL;
    }
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        app->db,
        "SELECT COALESCE(SUM(ce.cost_cents),0) AS total FROM cost_events ce WHERE "
        "ce.company_id=? AND " RANGE_SQL,
        json_pack("[s,s?,s?,s?,s?]", company_id, from, from, to, to), err);
    if (!row)
        return NULL;
    int64_t spend = pc_json_int(row, "total", 0);
    int64_t budget = pc_json_int(c, "budget_monthly_cents", 0);
    /* Percent with two decimals, as upstream rounds it. */
    double util = budget > 0 ? (double)((spend * 10000 + budget / 2) / budget) / 100.0 : 0.0;
    return json_pack("{s:s,s:I,s:I,s:f}", "companyId", company_id, "spendCents", (json_int_t)spend,
                     "budgetCents", (json_int_t)budget, "utilizationPercent", util);
}

#define TOKEN_SUMS                                                                                 \
    "COALESCE(SUM(ce.cost_cents),0) AS cost_cents, "                                               \
    "COALESCE(SUM(ce.input_tokens),0) AS input_tokens, "                                           \
    "COALESCE(SUM(ce.cached_input_tokens),0) AS cached_input_tokens, "                             \
    "COALESCE(SUM(ce.output_tokens),0) AS output_tokens"
#define SUBSCRIPTION "('subscription_included','subscription_overage')"

static const pc_field by_agent_fields[] = {
    {"agentId", "agent_id", PC_FIELD_COPY},
    {"agentName", "agent_name", PC_FIELD_COPY},
    {"agentStatus", "agent_status", PC_FIELD_COPY},
    {"costCents", "cost_cents", PC_FIELD_COPY},
    {"inputTokens", "input_tokens", PC_FIELD_COPY},
    {"cachedInputTokens", "cached_input_tokens", PC_FIELD_COPY},
    {"outputTokens", "output_tokens", PC_FIELD_COPY},
    {"apiRunCount", "api_run_count", PC_FIELD_COPY},
    {"subscriptionRunCount", "subscription_run_count", PC_FIELD_COPY},
    {"subscriptionCachedInputTokens", "subscription_cached_input_tokens", PC_FIELD_COPY},
    {"subscriptionInputTokens", "subscription_input_tokens", PC_FIELD_COPY},
    {"subscriptionOutputTokens", "subscription_output_tokens", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

static json_t *by_agent_from_row(json_t *row)
{
    return pc_row_map(by_agent_fields, row);
}

json_t *pc_costs_by_agent(pc_app *app, const char *company_id, const char *from, const char *to,
                          pc_error_t *err)
{
    json_t *rows = NULL;
    if (pc_db_query_s(
            app->db,
            "SELECT ce.agent_id, a.name AS agent_name, a.status AS agent_status, " TOKEN_SUMS ", "
            "COUNT(DISTINCT CASE WHEN ce.billing_type='metered_api' THEN ce.heartbeat_run_id END) "
            "AS api_run_count, "
            "COUNT(DISTINCT CASE WHEN ce.billing_type IN " SUBSCRIPTION " THEN "
            "ce.heartbeat_run_id END) AS subscription_run_count, "
            "COALESCE(SUM(CASE WHEN ce.billing_type IN " SUBSCRIPTION " THEN "
            "ce.cached_input_tokens ELSE 0 END),0) AS subscription_cached_input_tokens, "
            "COALESCE(SUM(CASE WHEN ce.billing_type IN " SUBSCRIPTION " THEN ce.input_tokens "
            "ELSE 0 END),0) AS subscription_input_tokens, "
            "COALESCE(SUM(CASE WHEN ce.billing_type IN " SUBSCRIPTION " THEN ce.output_tokens "
            "ELSE 0 END),0) AS subscription_output_tokens "
            "FROM cost_events ce LEFT JOIN agents a ON a.id=ce.agent_id WHERE ce.company_id=? "
            "AND " RANGE_SQL " GROUP BY ce.agent_id, a.name, a.status "
            "ORDER BY cost_cents DESC, ce.agent_id",
            json_pack("[s,s?,s?,s?,s?]", company_id, from, from, to, to), &rows, err) < 0)
        return NULL;
    return pc_rows_map(rows, by_agent_from_row);
}

static const pc_field by_project_fields[] = {
    {"projectId", "project_id", PC_FIELD_COPY},
    {"projectName", "project_name", PC_FIELD_COPY},
    {"costCents", "cost_cents", PC_FIELD_COPY},
    {"inputTokens", "input_tokens", PC_FIELD_COPY},
    {"cachedInputTokens", "cached_input_tokens", PC_FIELD_COPY},
    {"outputTokens", "output_tokens", PC_FIELD_COPY},
    {NULL, NULL, 0},
};

static json_t *by_project_from_row(json_t *row)
{
    return pc_row_map(by_project_fields, row);
}

json_t *pc_costs_by_project(pc_app *app, const char *company_id, const char *from, const char *to,
                            pc_error_t *err)
{
    json_t *rows = NULL;
    if (pc_db_query_s(app->db,
                      "SELECT ce.project_id, p.name AS project_name, " TOKEN_SUMS
                      " FROM cost_events ce JOIN projects p ON p.id=ce.project_id AND "
                      "p.company_id=ce.company_id WHERE ce.company_id=? AND " RANGE_SQL
                      " GROUP BY ce.project_id, p.name ORDER BY cost_cents DESC, ce.project_id",
                      json_pack("[s,s?,s?,s?,s?]", company_id, from, from, to, to), &rows, err) < 0)
        return NULL;
    return pc_rows_map(rows, by_project_from_row);
}
