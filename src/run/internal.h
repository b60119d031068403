/* Shared between the files of src/run; not for other modules. */
#ifndef PC_RUN_INTERNAL_H
#define PC_RUN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "app.h"
#include <jansson.h>

#include "env/env.h"

#define PC_RUN_LOG_CAP_DEFAULT (16 * 1024 * 1024)

/* Why a run is being stopped. The first reason wins: a shutdown never turns a
 * requested cancel into an interruption, nor the other way round. */
typedef enum {
    PC_RUN_CANCEL_NONE = 0,
    PC_RUN_CANCEL_REQUESTED, /* POST /api/heartbeat-runs/:id/cancel */
    PC_RUN_CANCEL_SHUTDOWN,  /* the daemon is stopping and the grace ran out */
    PC_RUN_CANCEL_AGENT_PAUSED, /* the board paused or terminated the agent */
} pc_run_cancel_kind;

/* A claimed run: registered by the scheduler, executed by a pool worker.
 * `cancel` (a pc_run_cancel_kind) is written once under pc_runtime.mu and read
 * without it by the worker and its adapter; run_id is immutable; every other
 * field is guarded by pc_runtime.mu. */
typedef struct pc_active_run {
    char run_id[40];
    pc_lease *lease;          /* set while a lease is held */
    atomic_int cancel;
    struct pc_active_run *next;     /* pc_runtime.active */
    struct pc_active_run *next_job; /* pc_runtime.jobs, until a worker takes it */
} pc_active_run;

/* Runs execute on a fixed pool of max_running threads. The scheduler claims a
 * queued run only while fewer than max_running runs are registered, so a run
 * never waits in memory for a thread: runs beyond the cap stay `queued` in the
 * store until a worker is free. Everything below `mu` is guarded by it,
 * except `stopping` (atomic, read by the scheduler between claims). */
typedef struct pc_runtime {
    pc_app *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* scheduler wake-up */
    pthread_cond_t idle_cv;   /* signalled when a worker leaves */
    pthread_cond_t work_cv;   /* a job was queued, or the pool stops */
    bool kick;
    atomic_bool stopping;
    bool sched_started;
    bool drained;             /* pc_runtime_drain ran (main thread only) */
    bool pool_stop;           /* workers exit once the job queue is empty */
    pthread_t sched;
    pthread_t *workers;       /* nworkers started threads */
    int nworkers;
    int max_running;          /* pool size: runs executing at once */
    pc_active_run *active;
    int nactive;              /* registered runs, <= max_running */
    pc_active_run *jobs, *jobs_tail;
    int64_t tick_ms;
    int64_t shutdown_grace_ms;
    size_t log_cap;
} pc_runtime;

pc_runtime *pc_runtime_get(void);
/* pc_run_event() that reports failure instead of logging it, for callers
 * inside a transaction; payload is borrowed. */
int pc_rt_event_insert(pc_app *app, const char *company_id, const char *agent_id,
                       const char *run_id, const char *event_type, const char *stream,
                       const char *level, const char *message, json_t *payload, pc_error_t *err);
pc_active_run *pc_rt_find_locked(pc_runtime *rt, const char *run_id);
void pc_rt_request_cancel_locked(pc_active_run *a, pc_run_cancel_kind why);
void pc_rt_run_finished(pc_runtime *rt);

/* A run about to be claimed is registered first, so a cancel that arrives
 * between the claim and the worker's start still finds it; then it is either
 * started (after a successful claim: handed to the pool) or dropped. */
pc_active_run *pc_orchestrator_register(pc_runtime *rt, const char *run_id);
void pc_orchestrator_start(pc_runtime *rt, pc_active_run *ar);
void pc_orchestrator_drop(pc_runtime *rt, pc_active_run *ar);
/* The worker pool: pool_start creates up to rt->max_running threads (fewer if
 * the system refuses; max_running is lowered to match) and returns how many
 * started. pool_stop lets them finish the queued jobs, then joins them; call
 * it only once no run is active. */
int pc_orchestrator_pool_start(pc_runtime *rt);
void pc_orchestrator_pool_stop(pc_runtime *rt);

/* The http adapter (adapter_http.c): POSTs (or `method`s) the run context to
 * adapterConfig.url with libcurl. The response body (bounded) is streamed to
 * on_output as "stdout". *cancel (a pc_run_cancel_kind) is polled while the
 * request is in flight; any non-zero value stops it. Unless allow_private,
 * loopback/private/link-local/metadata targets are refused after DNS
 * resolution (lib/net.h), with the rule in out->error. */
typedef struct pc_http_outcome {
    long status;         /* HTTP status, 0 if none */
    bool timed_out;
    bool cancelled;
    char error[512];     /* transport error ("" if a response arrived) */
} pc_http_outcome;

int pc_adapter_http_invoke(json_t *config, json_t *body, bool allow_private,
                           const atomic_int *cancel, pc_output_fn on_output, void *ud,
                           pc_http_outcome *out);

/* Stream-json output of the local CLI adapters (adapter_cli.c): claude's
 * `--output-format stream-json` and codex's `exec --json` events, parsed line
 * by line as stdout arrives (lines bounded at 1 MiB; longer ones are
 * skipped). What is kept: the session/thread id, the model, token usage,
 * cost and the final summary. Codex usage comes from `turn.completed` or from
 * `token_count` session events (cumulative totals, the newest wins). */
typedef enum { PC_ADAPTER_CLAUDE = 1, PC_ADAPTER_CODEX = 2 } pc_adapter_cli_kind;

typedef struct pc_adapter_stream {
    pc_adapter_cli_kind kind;
    char *line;
    size_t len;
    bool skipping;         /* inside an over-long line */
    char session[129];     /* "" if none seen */
    char model[129];       /* the model the CLI reported ("" if none) */
    json_t *usage;         /* {inputTokens, cachedInputTokens, outputTokens} or NULL */
    double cost_usd;
    bool has_cost;
    bool is_error;
    char *summary;         /* final text (bounded), or NULL */
} pc_adapter_stream;

void pc_adapter_stream_init(pc_adapter_stream *s, pc_adapter_cli_kind kind);
void pc_adapter_stream_feed(pc_adapter_stream *s, const char *p, size_t n);
void pc_adapter_stream_free(pc_adapter_stream *s);
/* A session id safe to pass back as an argument: [A-Za-z0-9._:-], 1..128. */
bool pc_adapter_session_id_valid(const char *id);

/* Callback reachability (callback.c). The URLs a run inside a lease may
 * reach the agent ingress on, in the order they are tried (new ref). */
json_t *pc_callback_candidates(pc_app *app, const char *env_api_url);
/* Tries candidates from inside the lease; url receives the first reachable
 * one. -1 with err naming every candidate when none answers. */
int pc_callback_probe(pc_lease *lease, json_t *candidates, const char *token, char *url,
                      size_t cap, pc_error_t *err);

#endif
