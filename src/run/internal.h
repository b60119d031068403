/* Shared between the files of src/run; not for other modules. */
#ifndef PC_RUN_INTERNAL_H
#define PC_RUN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "app.h"
#include <jansson.h>

#include "env/env.h"

#define PC_RUN_LOG_CAP_DEFAULT (16 * 1024 * 1024)

/* A run with a live worker thread. Fields other than run_id are guarded by
 * pc_runtime.mu. */
typedef struct pc_active_run {
    char run_id[40];
    pc_lease *lease;          /* set while a lease is held */
    volatile bool cancel;     /* cancel or shutdown requested */
    char cancel_reason[16];   /* "cancelled" | "shutdown" */
    struct pc_active_run *next;
} pc_active_run;

typedef struct pc_runtime {
    pc_app *app;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* scheduler wake-up */
    pthread_cond_t idle_cv;   /* signalled when a worker leaves */
    bool kick;
    volatile bool stopping;
    bool sched_started;
    bool drained;             /* pc_runtime_drain ran (main thread only) */
    pthread_t sched;
    pc_active_run *active;
    int nactive;
    int64_t tick_ms;
    int64_t shutdown_grace_ms;
    size_t log_cap;
} pc_runtime;

pc_runtime *pc_runtime_get(void);
pc_active_run *pc_rt_find_locked(pc_runtime *rt, const char *run_id);
void pc_rt_request_cancel_locked(pc_active_run *a, const char *why);
void pc_rt_run_finished(pc_runtime *rt);

/* A run about to be claimed is registered first, so a cancel that arrives
 * between the claim and the worker's start still finds it; then it is either
 * started (after a successful claim) or dropped. */
pc_active_run *pc_orchestrator_register(pc_runtime *rt, const char *run_id);
void pc_orchestrator_start(pc_runtime *rt, pc_active_run *ar);
void pc_orchestrator_drop(pc_runtime *rt, pc_active_run *ar);

#endif

/* The http adapter (adapter_http.c): POSTs (or `method`s) the run context to
 * adapterConfig.url with libcurl. The response body (bounded) is streamed to
 * on_output as "stdout". *cancel is polled while the request is in flight.
 * Unless allow_private, loopback/private/link-local/metadata targets are
 * refused after DNS resolution (lib/net.h), with the rule in out->error. */
typedef struct pc_http_outcome {
    long status;         /* HTTP status, 0 if none */
    bool timed_out;
    bool cancelled;
    char error[512];     /* transport error ("" if a response arrived) */
} pc_http_outcome;

int pc_adapter_http_invoke(json_t *config, json_t *body, bool allow_private,
                           volatile bool *cancel, pc_output_fn on_output, void *ud,
                           pc_http_outcome *out);

/* Stream-json output of the local CLI adapters (adapter_cli.c): claude's
 * `--output-format stream-json` and codex's `exec --json` events, parsed line
 * by line as stdout arrives (lines bounded at 1 MiB; longer ones are
 * skipped). What is kept: the session/thread id, token usage, cost and the
 * final summary. */
typedef enum { PC_ADAPTER_CLAUDE = 1, PC_ADAPTER_CODEX = 2 } pc_adapter_cli_kind;

typedef struct pc_adapter_stream {
    pc_adapter_cli_kind kind;
    char *line;
    size_t len;
    bool skipping;         /* inside an over-long line */
    char session[129];     /* "" if none seen */
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
