/*
 * The heartbeat runtime: wakeups, the scheduler, run orchestration.
 *
 * A wakeup (timer, assignment, on demand, automation) becomes an
 * agent_wakeup_requests row and, unless it coalesces into a queued run for
 * the same task or repeats an idempotency key, a heartbeat_runs row in
 * `queued`. The scheduler thread claims queued runs (per-agent
 * maxConcurrentRuns, one running run per task, and only while one of the
 * daemon's max_concurrent_runs pool workers is free) and hands each to a
 * pool worker, which drives the run through the environment layer. Runs
 * beyond the cap wait in the store, not in memory.
 *
 * Run lifecycle (every transition is a compare-and-set UPDATE on status):
 *
 *   queued --claim--> running --adapter done--> succeeded | failed | timed_out
 *     |                  |--cancel------------> cancelled
 *     |                  |--daemon stop-------> interrupted (after the grace)
 *     |                  `--daemon died-------> interrupted (at next start)
 *     `--cancel--> cancelled
 *
 * Only the scheduler moves queued -> running; only the run's worker moves
 * running -> a final state (the start-up reaper handles runs whose worker
 * died with the previous process).
 */
#ifndef PC_RUN_RUNTIME_H
#define PC_RUN_RUNTIME_H

#include <jansson.h>
#include <stdbool.h>

#include "app.h"
#include "lib/error.h"
#include "model/entities.h"

struct pc_actor; /* http/http.h */

/* Service hooks for src/daemon/services.c. drain() stops scheduling and waits
 * up to PAPERCLIP_RUN_SHUTDOWN_GRACE_MS for running runs (the HTTP API is
 * still up, so they can call it), then cancels the rest and waits for their
 * workers to record them interrupted and release their leases. stop() drains
 * first if that has not happened (failed start-up), then tears down. Both
 * are idempotent. */
int pc_runtime_start(pc_app *app, pc_error_t *err);
void pc_runtime_ready(pc_app *app);
void pc_runtime_drain(pc_app *app);
void pc_runtime_stop(pc_app *app);

typedef struct pc_wakeup_opts {
    const char *source;          /* timer | assignment | on_demand | automation */
    const char *trigger_detail;  /* manual | ping | callback | system (may be NULL) */
    const char *reason;          /* may be NULL */
    json_t *payload;             /* borrowed, may be NULL */
    const char *idempotency_key; /* may be NULL */
    const char *issue_id;        /* the task this wake is about, may be NULL */
    bool force_fresh_session;    /* CLI adapters start a new session */
    const struct pc_actor *actor; /* requester, may be NULL (system) */
} pc_wakeup_opts;

/* Enqueues a wakeup. Returns the run API object it led to (new or
 * coalesced-into, new ref), or — when the wake is skipped (wakeOnDemand off)
 * — {"status":"skipped","reason":...}. NULL with err (404 agent, 409 agent not
 * invokable). */
json_t *pc_run_wakeup(pc_app *app, const char *agent_id, const pc_wakeup_opts *o,
                      pc_error_t *err);

/* Cancels a queued or running run. Returns 0 (also when it already ended). */
int pc_run_cancel(pc_app *app, const char *run_id, const struct pc_actor *actor,
                  pc_error_t *err);
/* The error a run cancelled by pausing or terminating its agent records
 * (upstream's wording). */
#define PC_RUN_PAUSE_CANCEL_REASON "Cancelled due to agent pause"

/* Cancels every queued or running run of an agent the board has just paused
 * or terminated (the caller has already changed the agent's status, so the
 * scheduler claims none of its runs any more). Queued runs are cancelled in
 * place; running ones are stopped by their workers, which record them
 * cancelled with PC_RUN_PAUSE_CANCEL_REASON. Returns the number of runs
 * cancelled or asked to stop, or -1 with err. */
int pc_run_cancel_for_agent(pc_app *app, const char *agent_id, pc_error_t *err);
/* Run API object (new ref) or NULL with 404 "Heartbeat run not found". */
json_t *pc_run_get(pc_app *app, const char *run_id, pc_error_t *err);
bool pc_run_status_final(const char *status);

/* Appends a heartbeat_run_events row (seq = previous max + 1); payload
 * (may be NULL) is stolen. */
void pc_run_event(pc_app *app, const char *company_id, const char *agent_id, const char *run_id,
                  const char *event_type, const char *stream, const char *level,
                  const char *message, json_t *payload);

/* Runtime API URL discovery (runtime_url.c), computed once the server listens. */
void pc_runtime_url_compute(pc_app *app);
/* PAPERCLIP_RUNTIME_API_URL; never NULL once computed ("" before). */
const char *pc_runtime_api_url(void);
/* PAPERCLIP_RUNTIME_API_CANDIDATES_JSON text. */
const char *pc_runtime_api_candidates_json(void);
/* Builds the primary URL and candidates for the given inputs (exposed for
 * unit tests). public_url/api_url/allowed may be "" or NULL. Returns the
 * candidates array (new ref); primary receives the primary URL. */
json_t *pc_runtime_url_build(const char *public_url, const char *api_url, const char *allowed,
                             const char *bind, int port, bool with_interfaces, char *primary,
                             size_t primary_cap);

#endif
