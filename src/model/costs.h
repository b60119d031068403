/*
 * Cost events and monthly budgets.
 *
 * A cost event is one reported spend of an agent: a run's usage (recorded by
 * the heartbeat runtime when the adapter reported any) or an external report
 * (POST /api/companies/:cid/cost-events). Recording one recomputes the
 * agent's and the company's spentMonthlyCents from the events of the current
 * UTC calendar month, then evaluates their budgets: an agent (or company)
 * whose budgetMonthlyCents is above zero and whose month spend has reached
 * it is paused with pauseReason "budget" and a `budget.hard_threshold_crossed`
 * activity row. A budget of 0 means no limit.
 *
 * None of these functions opens a transaction: the caller wraps a record and
 * its evaluation in one when it needs them atomic (the run finalizer does).
 *
 * Ownership: strings in pc_cost_input are borrowed; every json_t * returned is
 * a new reference the caller owns. Functions return -1 (or NULL) with err set.
 */
#ifndef PC_MODEL_COSTS_H
#define PC_MODEL_COSTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "app.h"
#include "lib/error.h"
#include "lib/util.h"
#include "model/actor.h"

typedef struct pc_cost_input {
    const char *company_id, *agent_id;                                    /* required */
    const char *issue_id, *project_id, *goal_id;                          /* optional */
    const char *run_id, *billing_code;                                    /* optional */
    const char *provider, *model;                                         /* required, non-empty */
    const char *biller;                                                   /* NULL: the provider */
    const char *billing_type;                                             /* NULL: "unknown" */
    int64_t input_tokens, cached_input_tokens, output_tokens, cost_cents; /* >= 0 */
    const char *occurred_at; /* ISO-8601 UTC; NULL: now */
} pc_cost_input;

/* The billing types upstream accepts, NULL-terminated. */
extern const char *const pc_billing_types[];

/* Inserts the event, refreshes the month spend of its agent and company and
 * evaluates their budgets. id_out receives the new event's id. */
int pc_cost_event_record(pc_app *app, const pc_cost_input *in, char id_out[PC_UUID_LEN + 1],
                         pc_error_t *err);
/* The event as its API object, or NULL with 404 "Cost event not found". */
json_t *pc_cost_event_get(pc_app *app, const char *id, pc_error_t *err);

/* Recomputes the current month's spend of agent_id and of its company,
 * stores it in spentMonthlyCents, and pauses whichever is over its budget.
 * *blocked is set when either is over budget: no run of the agent may start.
 * The runtime calls this before it claims a run. */
int pc_budget_evaluate_agent(pc_app *app, const char *agent_id, bool *blocked, pc_error_t *err);

/* Resumes the agent or company (scope_type "agent" or "company") that its
 * budget paused (pauseReason "budget") when its month spend is now below
 * its budget (or the budget is 0), with an `agent.resumed` /
 * `company.resumed` activity row by actor. A pause for another reason, or a
 * budget still reached, leaves it as it is. */
int pc_budget_resume(pc_app *app, const pc_actor *actor, const char *scope_type, const char *id,
                     pc_error_t *err);

/* [start, end) of the current UTC calendar month as ISO-8601 strings. */
void pc_cost_month_window(char start[PC_ISO_LEN + 1], char end[PC_ISO_LEN + 1]);

/* Summaries over the company's events with occurredAt in [from, to]
 * (either may be NULL: unbounded), upstream's shapes:
 *   summary:    {companyId, spendCents, budgetCents, utilizationPercent}
 *   by agent:   [{agentId, agentName, agentStatus, costCents, inputTokens,
 *                 cachedInputTokens, outputTokens, apiRunCount,
 *                 subscriptionRunCount, subscriptionCachedInputTokens,
 *                 subscriptionInputTokens, subscriptionOutputTokens}]
 *   by project: [{projectId, projectName, costCents, inputTokens,
 *                 cachedInputTokens, outputTokens}] (events naming a
 *                 project of the company)
 * Lists are ordered by costCents, highest first. */
json_t *pc_costs_summary(pc_app *app, const char *company_id, const char *from, const char *to,
                         pc_error_t *err);
json_t *pc_costs_by_agent(pc_app *app, const char *company_id, const char *from, const char *to,
                          pc_error_t *err);
json_t *pc_costs_by_project(pc_app *app, const char *company_id, const char *from, const char *to,
                            pc_error_t *err);

#endif
