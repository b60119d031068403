/*
 * One heartbeat run, on a worker of the run pool: environment -> lease ->
 * workspace -> adapter -> release -> final state. Every failure on the way
 * ends the run with upstream's error code; the lease, once acquired, is
 * released on every path (cancel and timeout included). The pool itself
 * (a fixed set of threads fed from a FIFO of claimed runs) is at the end.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>
#include <strings.h>
#include <time.h>


#include "env/sync.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "model/costs.h"
#include "model/secrets.h"
#include "run/internal.h"
#include "run/jwt.h"
#include "run/runlog.h"
#include "run/runtime.h"
#include "run/workspace.h"

#define RUN_PATH_DEFAULT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define MAX_ARGS 256

typedef struct run_ctx {
    pc_runtime *rt;
    pc_app *app;
    pc_active_run *ar;
    char run_id[40], company_id[40], agent_id[40];
    json_t *agent;       /* agent row */
    json_t *ctx;         /* context snapshot */
    json_t *aconf;       /* adapterConfig */
    const char *adapter; /* adapter type */
    const char *issue_id;
    pc_runlog *log;
    char jwt[PC_JWT_MAX];
    /* outcome */
    const char *status;
    char error[1024];
    char error_code[64];
    bool has_exit;
    int exit_code;
    char signal[16];
    json_t *result;      /* resultJson extras */
    char env_id[40];
    char lease_id[40];
    pc_adapter_stream *cli;   /* claude_local / codex_local event parser */
    char session_before[129];
} run_ctx;

static void run_fail(run_ctx *c, const char *status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void run_fail(run_ctx *c, const char *status, const char *code, const char *fmt, ...)
{
    c->status = status;
    snprintf(c->error_code, sizeof c->error_code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

static void on_output(void *ud, const char *stream, const char *chunk, size_t len)
{
    run_ctx *c = ud;
    pc_runlog_write(c->log, stream, chunk, len);
    if (c->cli && !strcmp(stream, "stdout"))
        pc_adapter_stream_feed(c->cli, chunk, len);
}

/* The session the last successful run of this agent left for the same task
 * (or for no task), which a CLI adapter resumes unless the wake asked for a
 * fresh session. */
static void previous_session(run_ctx *c)
{
    if (pc_json_bool(c->ctx, "forceFreshSession", false))
        return;
    pc_error_t err = PC_ERROR_INIT;
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        c->app->db,
        "SELECT session_id_after FROM heartbeat_runs WHERE agent_id=? AND id<>? AND "
        "status='succeeded' AND session_id_after IS NOT NULL AND "
        "((? IS NULL AND task_key IS NULL) OR task_key=?) ORDER BY finished_at DESC LIMIT 1",
        json_pack("[s,s,s?,s?]", c->agent_id, c->run_id, c->issue_id, c->issue_id), &err);
    pc_error_clear(&err);
    const char *sid = row ? pc_json_str(row, "session_id_after") : NULL;
    if (sid && pc_adapter_session_id_valid(sid))
        snprintf(c->session_before, sizeof c->session_before, "%s", sid);
}

/* Folds what the CLI reported into the run's result. */
static void apply_cli_result(run_ctx *c)
{
    pc_adapter_stream *s = c->cli;
    if (s->has_cost)
        json_object_set_new(c->result, "costUsd", json_real(s->cost_usd));
    if (s->summary) {
        _cleanup_free_ char *red = pc_runlog_redact(c->log, s->summary, strlen(s->summary));
        json_object_set_new(c->result, "summary", json_string(red));
    }
    if (s->is_error)
        json_object_set_new(c->result, "isError", json_true());
}

static void sys_line(run_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sys_line(run_ctx *c, const char *fmt, ...)
{
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf - 1)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    pc_runlog_write(c->log, "system", buf, (size_t)n);
}

static bool env_key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 255 || !(isalpha((unsigned char)k[0]) || k[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)k[i]) || k[i] == '_'))
            return false;
    return true;
}

/* Names that conventionally hold credentials are redacted even when the
 * config does not mark them secret. */
static bool env_key_secretish(const char *k)
{
    static const char *const words[] = {"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD",
                                        "CREDENTIAL", "AUTH", NULL};
    for (int i = 0; words[i]; i++)
        if (strcasestr(k, words[i]))
            return true;
    return false;
}

/* The run's complete environment: adapterConfig.env, then the runtime's own
 * variables on top (PAPERCLIP_* set here always win). Nothing comes from the
 * daemon's environment. */
static json_t *build_env(run_ctx *c, const char *cwd, const char *api_url)
{
    json_t *env = json_object();
    json_object_set_new(env, "PATH", json_string(RUN_PATH_DEFAULT));
    json_object_set_new(env, "HOME", json_string(cwd));
    json_t *aenv = pc_json_obj(c->aconf, "env");
    const char *k;
    json_t *v;
    json_object_foreach(aenv, k, v)
    {
        if (!env_key_valid(k))
            continue;
        const char *val = NULL;
        bool secret = env_key_secretish(k);
        if (json_is_string(v)) {
            val = json_string_value(v);
        } else if (json_is_object(v) && pc_json_str(v, "type") &&
                   !strcmp(pc_json_str(v, "type"), "secret_ref")) {
            /* A sealed value: opened only here, for this run's environment,
             * and always redacted from its log. */
            pc_error_t serr = PC_ERROR_INIT;
            char *opened = pc_secret_resolve(c->app->db, c->company_id,
                                             pc_json_str(v, "secretId") ? pc_json_str(v, "secretId") : "",
                                             &serr);
            pc_error_clear(&serr);
            if (!opened)
                continue;
            json_object_set_new(env, k, json_string(opened));
            pc_runlog_add_secret(c->log, opened);
            pc_secret_free(opened);
            continue;
        } else if (json_is_object(v)) {
            const char *type = pc_json_str(v, "type");
            val = pc_json_str(v, "value");
            if (type && strcmp(type, "plain") != 0)
                secret = true;
            if (pc_json_bool(v, "secret", false))
                secret = true;
        }
        if (!val)
            continue;
        json_object_set_new(env, k, json_string(val));
        if (secret)
            pc_runlog_add_secret(c->log, val);
    }
    const char *reason = pc_json_str(c->ctx, "wakeReason");
    json_object_set_new(env, "PAPERCLIP_AGENT_ID", json_string(c->agent_id));
    json_object_set_new(env, "PAPERCLIP_COMPANY_ID", json_string(c->company_id));
    json_object_set_new(env, "PAPERCLIP_API_URL", json_string(api_url));
    json_object_set_new(env, "PAPERCLIP_API_KEY", json_string(c->jwt));
    json_object_set_new(env, "PAPERCLIP_RUN_ID", json_string(c->run_id));
    json_object_set_new(env, "PAPERCLIP_WORKSPACE_CWD", json_string(cwd));
    json_object_set_new(env, "PAPERCLIP_RUNTIME_API_URL",
                        json_string(pc_runtime_api_url()[0] ? pc_runtime_api_url() : api_url));
    json_object_set_new(env, "PAPERCLIP_RUNTIME_API_CANDIDATES_JSON",
                        json_string(pc_runtime_api_candidates_json()));
    if (c->issue_id)
        json_object_set_new(env, "PAPERCLIP_TASK_ID", json_string(c->issue_id));
    else
        json_object_del(env, "PAPERCLIP_TASK_ID");
    if (reason)
        json_object_set_new(env, "PAPERCLIP_WAKE_REASON", json_string(reason));
    else
        json_object_del(env, "PAPERCLIP_WAKE_REASON");
    json_t *payload = json_object_get(c->ctx, "payload");
    if (payload && !json_is_null(payload)) {
        char *p = pc_json_dumps(payload);
        json_object_set_new(env, "PAPERCLIP_WAKE_PAYLOAD_JSON", json_string(p));
        free(p);
    }
    return env;
}

/* For a lease whose commands may not reach the daemon like the host does:
 * the callback URL a reusable lease already found (while still offered), or
 * the first candidate reachable from inside the lease, which becomes the
 * lease's API URL. A lease its provider declares without any network is
 * the operator's choice of a run that cannot call back, not a failure. */
static int resolve_callback(run_ctx *c, pc_lease *lease, pc_error_t *err)
{
    if (pc_lease_declares_no_network(lease)) {
        /* Nothing to probe: the run gets the ingress URL as a local run
         * would and works without calling back. */
        sys_line(c, "[paperclip] the sandbox has no network (network \"none\"): callbacks are "
                    "not possible from this run");
        return 0;
    }
    _cleanup_json_ json_t *cands = pc_callback_candidates(c->app, pc_lease_api_url(lease));
    const char *cached = pc_lease_cached_callback_url(lease);
    size_t i;
    json_t *v;
    json_array_foreach(cands, i, v) {
        if (cached && !strcmp(cached, json_string_value(v))) {
            sys_line(c, "[paperclip] callback URL %s (kept by the reused lease)", cached);
            pc_lease_set_callback_url(lease, cached);
            return 0;
        }
    }
    char url[600];
    if (pc_callback_probe(lease, cands, c->jwt, url, sizeof url, err) < 0)
        return -1;
    sys_line(c, "[paperclip] callback URL %s (reachable from inside the environment)", url);
    pc_lease_set_callback_url(lease, url);
    return 0;
}

/* The URL the run calls back on: the environment's own (an SSH tunnel, a
 * provider bridge) first, then an explicit PAPERCLIP_API_URL, then the
 * discovered runtime URL. */
static const char *choose_api_url(run_ctx *c, pc_lease *lease)
{
    const char *u = lease ? pc_lease_api_url(lease) : NULL;
    if (u && *u)
        return u;
    if (c->app->cfg.api_url[0])
        return c->app->cfg.api_url;
    if (pc_runtime_api_url()[0])
        return pc_runtime_api_url();
    return c->app->listen_url;
}

static bool cancel_requested(const run_ctx *c)
{
    return atomic_load(&c->ar->cancel) != PC_RUN_CANCEL_NONE;
}

static void map_exec_result(run_ctx *c, const pc_exec_result *res, int64_t timeout_sec)
{
    c->has_exit = res->has_exit_code;
    c->exit_code = res->exit_code;
    snprintf(c->signal, sizeof c->signal, "%s", res->signal);
    int why = atomic_load(&c->ar->cancel);
    if (res->cancelled || why != PC_RUN_CANCEL_NONE) {
        if (why == PC_RUN_CANCEL_SHUTDOWN)
            run_fail(c, "interrupted", "daemon_shutdown", "Run interrupted: the daemon stopped");
        else if (why == PC_RUN_CANCEL_AGENT_PAUSED)
            run_fail(c, "cancelled", "cancelled", "%s", PC_RUN_PAUSE_CANCEL_REASON);
        else
            run_fail(c, "cancelled", "cancelled", "Cancelled by request");
    } else if (res->timed_out) {
        run_fail(c, "timed_out", "timeout", "Timed out after %llds", (long long)timeout_sec);
    } else if (res->has_exit_code && res->exit_code == 0) {
        c->status = "succeeded";
    } else if (res->has_exit_code) {
        run_fail(c, "failed", "adapter_failed", "Process exited with code %d", res->exit_code);
    } else {
        run_fail(c, "failed", "adapter_failed", "Process terminated by %s",
                 res->signal[0] ? res->signal : "a signal");
    }
    json_object_set_new(c->result, "timeoutFired", json_boolean(res->timed_out));
    json_object_set_new(c->result, "effectiveTimeoutSec", json_integer(timeout_sec));
}

/* Collects args from adapterConfig.args (strings only, bounded). */
static int collect_args(json_t *arr, const char **argv, int start, int max)
{
    int n = start;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (n >= max)
            break;
        if (json_is_string(v))
            argv[n++] = json_string_value(v);
    }
    argv[n] = NULL;
    return n;
}

static char *default_prompt(run_ctx *c)
{
    const char *tmpl = pc_json_str(c->aconf, "promptTemplate");
    if (tmpl)
        return pc_xstrdup(tmpl);
    const char *reason = pc_json_str(c->ctx, "wakeReason");
    return pc_xasprintf(
        "You are agent %s (%s) in Paperclip. Wake reason: %s. %s%s%s\n"
        "Use the Paperclip API at $PAPERCLIP_API_URL with the bearer token in "
        "$PAPERCLIP_API_KEY: check out your task, do the work, comment and update its "
        "status.\n",
        pc_json_str(c->agent, "name") ? pc_json_str(c->agent, "name") : "", c->agent_id,
        reason ? reason : "heartbeat", c->issue_id ? "Task (issue id): " : "",
        c->issue_id ? c->issue_id : "", c->issue_id ? "." : "");
}

/* Runs the adapter's command through the lease. On a remote target an
 * absolute adapterConfig.cwd names the host workspace that was synced into
 * the realized cwd, so the command runs there. */
static void run_command(run_ctx *c, pc_lease *lease, const char *cwd, json_t *env, bool remote)
{
    const char *argv[MAX_ARGS + 8];
    const char *command = NULL;
    _cleanup_free_ char *prompt = NULL;
    int64_t timeout_sec = pc_json_int(c->aconf, "timeoutSec", 0);
    int64_t grace_sec = pc_json_int(c->aconf, "graceSec", 20);
    if (timeout_sec < 0)
        timeout_sec = 0;
    if (grace_sec < 0)
        grace_sec = 0;
    _cleanup_free_ char *run_cwd = NULL;
    const char *ccwd = pc_json_str(c->aconf, "cwd");
    if (ccwd && *ccwd && ccwd[0] == '/' && remote)
        run_cwd = pc_xstrdup(cwd);
    else if (ccwd && *ccwd)
        run_cwd = ccwd[0] == '/' ? pc_xstrdup(ccwd) : pc_xasprintf("%s/%s", cwd, ccwd);
    else
        run_cwd = pc_xstrdup(cwd);

    if (!strcmp(c->adapter, "process")) {
        command = pc_json_str(c->aconf, "command");
        if (!command || !*command) {
            run_fail(c, "failed", "adapter_config_invalid",
                     "Process adapter requires adapterConfig.command");
            return;
        }
        collect_args(json_object_get(c->aconf, "args"), argv, 0, MAX_ARGS);
    } else if (!strcmp(c->adapter, "claude_local") || !strcmp(c->adapter, "codex_local")) {
        bool claude = !strcmp(c->adapter, "claude_local");
        command = pc_json_str(c->aconf, "command");
        if (!command || !*command)
            command = claude ? "claude" : "codex";
        /* Look the CLI up on the target first so a missing one is a clear
         * failure rather than an exec error from wherever the target is. */
        const char *probe_args[] = {"-c", "command -v \"$1\" >/dev/null 2>&1", "sh", command, NULL};
        pc_exec_request pr = {.command = "sh", .args = probe_args, .cwd = run_cwd, .env = env,
                              .timeout_ms = 30000, .grace_ms = 1000, .output_cap = 4096};
        pc_exec_result pres = {0};
        pc_error_t perr = PC_ERROR_INIT;
        int prc = pc_lease_execute(lease, &pr, &pres, &perr);
        bool found = prc == 0 && pres.has_exit_code && pres.exit_code == 0;
        bool cancelled = pres.cancelled;
        pc_exec_result_free(&pres);
        pc_error_clear(&perr);
        if (cancelled || cancel_requested(c)) {
            pc_exec_result none = {0};
            none.cancelled = true;
            map_exec_result(c, &none, timeout_sec);
            return;
        }
        if (!found) {
            sys_line(c, "[paperclip] command not found on the execution target: %s", command);
            run_fail(c, "failed", "adapter_failed", "Command not found in PATH: \"%s\"", command);
            return;
        }
        int n = 0;
        previous_session(c);
        if (claude) {
            if (c->session_before[0]) {
                argv[n++] = "--resume";
                argv[n++] = c->session_before;
            }
            argv[n++] = "--print";
            argv[n++] = "-";
            argv[n++] = "--output-format";
            argv[n++] = "stream-json";
            argv[n++] = "--verbose";
        } else {
            argv[n++] = "exec";
            argv[n++] = "--json";
        }
        const char *model = pc_json_str(c->aconf, "model");
        if (model) {
            argv[n++] = "--model";
            argv[n++] = model;
        }
        n = collect_args(json_object_get(c->aconf, "extraArgs"), argv, n, MAX_ARGS);
        if (!claude)
            argv[n++] = "-", argv[n] = NULL;
        prompt = default_prompt(c);
        c->cli = pc_xcalloc(1, sizeof *c->cli);
        pc_adapter_stream_init(c->cli, claude ? PC_ADAPTER_CLAUDE : PC_ADAPTER_CODEX);
    } else {
        run_fail(c, "failed", "adapter_not_supported", "Adapter \"%s\" is not supported here",
                 c->adapter);
        return;
    }

    pc_run_event(c->app, c->company_id, c->agent_id, c->run_id, "adapter.invoke", "system", "info",
                 "adapter invoked",
                 json_pack("{s:s,s:s,s:s,s:s?}", "adapterType", c->adapter, "command", command,
                           "cwd", run_cwd, "driver", pc_lease_driver(lease)));
    pc_exec_request req = {
        .command = command,
        .args = argv,
        .cwd = run_cwd,
        .env = env,
        .stdin_data = prompt,
        .timeout_ms = timeout_sec * 1000,
        .grace_ms = grace_sec * 1000,
        .output_cap = 64 * 1024,
        .on_output = on_output,
        .ud = c,
    };
    pc_exec_result res = {0};
    pc_error_t err = PC_ERROR_INIT;
    if (pc_lease_execute(lease, &req, &res, &err) < 0) {
        if (res.cancelled || cancel_requested(c)) {
            map_exec_result(c, &res, timeout_sec);
        } else {
            _cleanup_free_ char *msg = pc_runlog_redact(c->log, err.msg, strlen(err.msg));
            sys_line(c, "[paperclip] %s", msg);
            run_fail(c, "failed", "execution_failed", "%s", msg);
        }
    } else {
        map_exec_result(c, &res, timeout_sec);
    }
    if (c->cli)
        apply_cli_result(c);
    pc_error_clear(&err);
    pc_exec_result_free(&res);
}

static void run_http(run_ctx *c)
{
    json_t *body = json_deep_copy(pc_json_obj(c->aconf, "payloadTemplate"));
    if (!body)
        body = json_object();
    json_object_set_new(body, "agentId", json_string(c->agent_id));
    json_object_set_new(body, "runId", json_string(c->run_id));
    json_object_set(body, "context", c->ctx);
    pc_run_event(c->app, c->company_id, c->agent_id, c->run_id, "adapter.invoke", "system", "info",
                 "adapter invoked", json_pack("{s:s}", "adapterType", "http"));
    pc_http_outcome out;
    memset(&out, 0, sizeof out);
    pc_adapter_http_invoke(c->aconf, body, c->app->cfg.allow_private_fetch, &c->ar->cancel,
                           on_output, c, &out);
    json_decref(body);
    json_object_set_new(c->result, "httpStatus", json_integer(out.status));
    if (out.cancelled || cancel_requested(c)) {
        pc_exec_result none = {0};
        none.cancelled = true;
        map_exec_result(c, &none, 0);
    } else if (out.timed_out) {
        run_fail(c, "timed_out", "timeout", "HTTP invoke timed out");
    } else if (out.error[0]) {
        run_fail(c, "failed", "adapter_failed", "HTTP invoke failed: %s", out.error);
    } else if (out.status >= 200 && out.status < 300) {
        c->status = "succeeded";
        c->has_exit = true;
        c->exit_code = 0;
    } else {
        run_fail(c, "failed", "adapter_failed", "HTTP invoke failed with status %ld", out.status);
    }
}

static bool run_interrupted(const run_ctx *c)
{
    return !strcmp(c->status, "cancelled") || !strcmp(c->status, "interrupted") ||
           cancel_requested(c);
}

/* A run on another machine: the host workspace goes to the realized cwd
 * first and what the run changed comes back after it, whatever the
 * command's outcome (a failed run's partial work is worth having), unless
 * the run was cancelled. A failed sync fails the run with
 * workspace_sync_failed and an error that names the step. */
static void run_remote(run_ctx *c, pc_lease *lease, const char *host_ws, const char *cwd,
                       json_t *env)
{
    pc_error_t err = PC_ERROR_INIT;
    size_t max = c->app->cfg.workspace_sync_max_bytes ? c->app->cfg.workspace_sync_max_bytes
                                                      : PC_WORKSPACE_SYNC_DEFAULT_MAX;
    pc_sync_stats st = {0};
    _cleanup_json_ json_t *manifest = NULL;
    if (pc_mkdir_p(host_ws, 0700) < 0) {
        pc_error_errno(&err, errno, "workspace sync in: cannot create %s", host_ws);
    } else if (pc_env_sync_in(lease, host_ws, cwd, env, max, &manifest, &st, &err) == 0) {
        sys_line(c, "[paperclip] workspace synced in: %lld entries, %lld bytes to %s%s",
                 (long long)st.sent_entries, (long long)st.sent_bytes, cwd,
                 st.native ? " (provider sync)" : "");
    }
    if (pc_error_is_set(&err)) {
        if (err.status == 409 || cancel_requested(c)) {
            pc_exec_result none = {0};
            none.cancelled = true;
            map_exec_result(c, &none, 0);
        } else {
            _cleanup_free_ char *msg = pc_runlog_redact(c->log, err.msg, strlen(err.msg));
            sys_line(c, "[paperclip] %s", msg);
            run_fail(c, "failed", "workspace_sync_failed", "%s", msg);
        }
        pc_error_clear(&err);
        return;
    }
    run_command(c, lease, cwd, env, true);
    if (run_interrupted(c))
        return;
    if (pc_env_sync_out(lease, host_ws, cwd, env, max, manifest, &st, &err) < 0) {
        if (err.status == 409 || cancel_requested(c)) {
            /* Cancelled while the changes came back: the run is cancelled
             * (its result keeps what the command reported). */
            if (atomic_load(&c->ar->cancel) == PC_RUN_CANCEL_SHUTDOWN)
                run_fail(c, "interrupted", "daemon_shutdown",
                         "Run interrupted: the daemon stopped");
            else if (atomic_load(&c->ar->cancel) == PC_RUN_CANCEL_AGENT_PAUSED)
                run_fail(c, "cancelled", "cancelled", "%s", PC_RUN_PAUSE_CANCEL_REASON);
            else
                run_fail(c, "cancelled", "cancelled", "Cancelled by request");
            pc_error_clear(&err);
            return;
        }
        _cleanup_free_ char *msg = pc_runlog_redact(c->log, err.msg, strlen(err.msg));
        sys_line(c, "[paperclip] %s", msg);
        if (!strcmp(c->status, "succeeded")) {
            c->has_exit = false;
            run_fail(c, "failed", "workspace_sync_failed", "%s", msg);
        }
        pc_error_clear(&err);
        return;
    }
    sys_line(c,
             "[paperclip] workspace synced out: %lld bytes, %lld written, %lld deleted, %lld "
             "older unsent entries left out, in %s%s",
             (long long)st.recv_bytes, (long long)st.written, (long long)st.deleted,
             (long long)st.stale, host_ws, st.native ? " (provider sync)" : "");
}

static void run_in_environment(run_ctx *c)
{
    pc_error_t err = PC_ERROR_INIT;
    char code[PC_ENV_CODE_LEN] = "";
    pc_run_workspace ws;
    if (pc_run_workspace_prepare(c->app, c->company_id, c->issue_id, &ws, &err) < 0) {
        sys_line(c, "[paperclip] workspace realization failed: %s", err.msg);
        run_fail(c, "failed", "workspace_realization_failed", "%s", err.msg);
        pc_error_clear(&err);
        return;
    }
    if (ws.id[0])
        sys_line(c, "[paperclip] execution workspace %s (%s, %s) at %s", ws.id, ws.mode,
                 ws.strategy, ws.cwd);
    /* The chain: workspace config, issue and project policy (ws.env_id),
     * then the agent's default, then the company's Local environment. */
    const char *agent_env = pc_json_str(c->agent, "default_environment_id");
    _cleanup_json_ json_t *env = pc_env_resolve_for_run(
        c->app, c->company_id, ws.env_id[0] ? ws.env_id : NULL, agent_env, code, &err);
    if (!env) {
        sys_line(c, "[paperclip] %s", err.msg);
        run_fail(c, "failed", code[0] ? code : "environment_not_found", "%s", err.msg);
        pc_error_clear(&err);
        return;
    }
    snprintf(c->env_id, sizeof c->env_id, "%s", pc_json_str(env, "id") ? pc_json_str(env, "id") : "");
    const char *env_driver = pc_json_str(env, "driver");
    if (pc_run_workspace_realize(c->app, c->company_id, c->run_id, &ws,
                                 env_driver && strcmp(env_driver, "local") != 0, &err) < 0) {
        sys_line(c, "[paperclip] workspace realization failed: %s", err.msg);
        run_fail(c, "failed", "workspace_realization_failed", "%s", err.msg);
        pc_error_clear(&err);
        return;
    }
    pc_lease_request lr = {.run_id = c->run_id,
                           .agent_id = c->agent_id,
                           .issue_id = c->issue_id,
                           .execution_workspace_id = ws.id[0] ? ws.id : NULL,
                           .workspace_mode = ws.id[0] ? ws.mode : NULL};
    pc_lease *lease = pc_lease_acquire(c->app, env, &lr, &err);
    if (!lease) {
        sys_line(c, "[paperclip] lease acquisition failed: %s", err.msg);
        run_fail(c, "failed", "lease_acquire_failed", "%s", err.msg);
        pc_error_clear(&err);
        return;
    }
    snprintf(c->lease_id, sizeof c->lease_id, "%s", pc_lease_id(lease) ? pc_lease_id(lease) : "");
    pthread_mutex_lock(&c->rt->mu);
    c->ar->lease = lease;
    bool cancelled = cancel_requested(c);
    pthread_mutex_unlock(&c->rt->mu);
    sys_line(c, "[paperclip] lease %s acquired in environment %s (%s)", c->lease_id, c->env_id,
             pc_lease_driver(lease) ? pc_lease_driver(lease) : "?");

    char local_path[1400], cwd[1400];
    if (ws.cwd[0])
        snprintf(local_path, sizeof local_path, "%s", ws.cwd);
    else
        snprintf(local_path, sizeof local_path, "%s/workspaces/%s", c->app->cfg.data_dir,
                 c->agent_id);
    if (cancelled) {
        pc_exec_result none = {0};
        none.cancelled = true;
        map_exec_result(c, &none, 0);
    } else if (pc_mkdir_p(local_path, 0700) < 0 ||
               pc_lease_realize(lease, local_path, cwd, sizeof cwd, &err) < 0) {
        if (!pc_error_is_set(&err))
            pc_error_errno(&err, errno, "cannot create workspace %s", local_path);
        sys_line(c, "[paperclip] workspace realization failed: %s", err.msg);
        run_fail(c, "failed", "workspace_realization_failed", "%s", err.msg);
        pc_error_clear(&err);
    } else if (pc_lease_needs_callback_probe(lease) && resolve_callback(c, lease, &err) < 0) {
        if (cancel_requested(c)) {
            pc_exec_result none = {0};
            none.cancelled = true;
            map_exec_result(c, &none, 0);
        } else {
            sys_line(c, "[paperclip] %s", err.msg);
            run_fail(c, "failed", "callback_unreachable", "%s", err.msg);
        }
        pc_error_clear(&err);
    } else {
        json_t *envv = build_env(c, cwd, choose_api_url(c, lease));
        pc_run_workspace_env(&ws, cwd, envv);
        const char *drv = pc_lease_driver(lease);
        bool remote = drv && strcmp(drv, "local") != 0;
        if (!remote) {
            run_command(c, lease, cwd, envv, false);
        } else {
            const char *ccwd = pc_json_str(c->aconf, "cwd");
            run_remote(c, lease, ccwd && ccwd[0] == '/' ? ccwd : local_path, cwd, envv);
        }
        json_decref(envv);
        if (pc_run_workspace_finish(c->app, c->company_id, c->run_id, &ws, &err) < 0) {
            sys_line(c, "[paperclip] branch not handed back to the project repository: %s",
                     err.msg);
            pc_error_clear(&err);
        }
    }

    pthread_mutex_lock(&c->rt->mu);
    c->ar->lease = NULL;
    pthread_mutex_unlock(&c->rt->mu);
    if (pc_lease_release(lease, c->status, &err) < 0) {
        /* Never masks the run's own outcome. */
        pc_warn("run %s: lease release failed: %s", c->run_id, err.msg);
        sys_line(c, "[paperclip] lease release failed: %s", err.msg);
        pc_error_clear(&err);
    }
}

/* A CLI adapter that reported usage or a cost leaves a cost event (inside
 * the finalizing transaction), which also updates the month spend and
 * pauses the agent once it reaches its budget. An API key in the adapter's
 * environment means metered billing; without one the CLI runs on the
 * user's subscription. */
static int record_run_cost(run_ctx *c, pc_error_t *err)
{
    pc_adapter_stream *s = c->cli;
    if (!s || (!s->usage && !s->has_cost))
        return 0;
    bool claude = s->kind == PC_ADAPTER_CLAUDE;
    json_t *env = pc_json_obj(c->aconf, "env");
    bool api_key = json_object_get(env, claude ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY") != NULL;
    const char *model = s->model[0] ? s->model : pc_json_str(c->aconf, "model");
    double usd = s->has_cost && s->cost_usd > 0 ? s->cost_usd : 0;
    pc_cost_input in = {
        .company_id = c->company_id,
        .agent_id = c->agent_id,
        .issue_id = c->issue_id,
        .run_id = c->run_id,
        .provider = claude ? "anthropic" : "openai",
        .model = model && *model ? model : "unknown",
        .billing_type = api_key ? "metered_api" : "subscription_included",
        .input_tokens = pc_json_int(s->usage, "inputTokens", 0),
        .cached_input_tokens = pc_json_int(s->usage, "cachedInputTokens", 0),
        .output_tokens = pc_json_int(s->usage, "outputTokens", 0),
        .cost_cents = usd > 1e12 ? (int64_t)1e14 : (int64_t)(usd * 100.0 + 0.5),
    };
    /* The issue's project at the end of the run, for the by-project view. */
    _cleanup_json_ json_t *issue = NULL;
    if (c->issue_id) {
        issue = pc_db_query_one_s(c->app->db, "SELECT project_id FROM issues WHERE id=?",
                                  json_pack("[s]", c->issue_id), err);
        if (pc_error_is_set(err))
            return -1;
        in.project_id = pc_json_str(issue, "project_id");
    }
    char id[PC_UUID_LEN + 1];
    return pc_cost_event_record(c->app, &in, id, err);
}

/* One attempt at recording the end of a run: the run row, its wakeup
 * request, the issue's execution lock, the agent's status and the `run
 * finished` event, in one transaction, so no reader ever sees a finished run
 * whose issue is still locked or whose wakeup is still claimed. On failure
 * nothing is changed and err says why. */
static int run_finalize_tx(run_ctx *c, const char *now, json_t *params, pc_error_t *err)
{
    pc_app *app = c->app;
    bool ok = !strcmp(c->status, "succeeded");
    int64_t changes = 0;
    _cleanup_json_ json_t *ev = json_pack("{s:s,s:s?}", "status", c->status, "errorCode",
                                          c->error_code[0] ? c->error_code : NULL);
    if (pc_db_begin(app->db, err) < 0)
        return -1;
    if (c->cli || c->session_before[0]) {
        const char *after = c->cli && c->cli->session[0] ? c->cli->session : NULL;
        if (pc_db_exec_s(app->db,
                         "UPDATE heartbeat_runs SET session_id_before=?, session_id_after=?, "
                         "usage_json=? WHERE id=?",
                         json_pack("[s?,s?,O?,s]", c->session_before[0] ? c->session_before : NULL,
                                   after, c->cli ? c->cli->usage : NULL, c->run_id),
                         NULL, err) < 0)
            goto fail;
    }
    if (pc_db_exec(app->db,
                   "UPDATE heartbeat_runs SET status=?, finished_at=?, updated_at=?, error=?, "
                   "error_code=?, exit_code=?, signal=?, result_json=?, log_store='local_file', "
                   "log_ref=?, log_bytes=?, log_sha256=?, stdout_excerpt=?, stderr_excerpt=?, "
                   "error_excerpt=?, last_output_seq=?, environment_id=?, lease_id=? "
                   "WHERE id=? AND status='running'",
                   params, &changes, err) < 0)
        goto fail;
    if (changes != 1)
        pc_warn("run %s was no longer running when it ended", c->run_id);
    if (pc_db_exec_s(app->db,
                     "UPDATE agent_wakeup_requests SET status=?, finished_at=?, updated_at=? WHERE "
                     "run_id=? AND status IN ('queued','claimed')",
                     json_pack("[s,s,s,s]",
                               ok                              ? "completed"
                               : !strcmp(c->status, "cancelled") ? "cancelled"
                                                                 : "failed",
                               now, now, c->run_id),
                     NULL, err) < 0 ||
        pc_db_exec_s(app->db,
                     "UPDATE issues SET execution_run_id=NULL, execution_locked_at=NULL WHERE "
                     "execution_run_id=?",
                     json_pack("[s]", c->run_id), NULL, err) < 0 ||
        pc_db_exec_s(app->db,
                     "UPDATE agents SET status=?, updated_at=? WHERE id=? AND status='running' "
                     "AND NOT EXISTS (SELECT 1 FROM heartbeat_runs WHERE agent_id=? AND "
                     "status='running')",
                     json_pack("[s,s,s,s]",
                               ok || !strcmp(c->status, "cancelled") ? "idle" : "error", now,
                               c->agent_id, c->agent_id),
                     NULL, err) < 0 ||
        record_run_cost(c, err) < 0)
        goto fail;
    if (pc_rt_event_insert(app, c->company_id, c->agent_id, c->run_id, "lifecycle", "system",
                           ok ? "info" : "error", "run finished", ev, err) < 0 ||
        pc_db_commit(app->db, err) < 0)
        goto fail;
    return 0;
fail:
    pc_db_rollback(app->db);
    return -1;
}

/* A failed attempt is retried: the usual cause is a store that is briefly
 * unwritable, and a run left `running` blocks its issue until the next
 * start. About half a minute of attempts in all. */
#define FINALIZE_ATTEMPTS 30
#define FINALIZE_BACKOFF_MAX_MS 1000

/* Records the end of the run (see run_finalize_tx). Returns -1 with err when
 * every attempt failed: the run then stays `running` for the next start's
 * reaper, and nothing of its end is half-recorded. */
static int run_finalize(run_ctx *c, pc_error_t *err)
{
    pc_runlog_flush(c->log);
    char now[PC_ISO_LEN + 1], sha[65];
    pc_iso_now(now);
    pc_runlog_sha256(c->log, sha);
    _cleanup_free_ char *out_ex = pc_runlog_excerpt(c->log, "stdout");
    _cleanup_free_ char *err_ex = pc_runlog_excerpt(c->log, "stderr");
    json_object_set_new(c->result, "stdout", json_string(out_ex));
    json_object_set_new(c->result, "stderr", json_string(err_ex));
    json_object_set_new(c->result, "logTruncated", json_boolean(pc_runlog_truncated(c->log)));
    _cleanup_free_ char *error = c->error[0] ? pc_runlog_redact(c->log, c->error, strlen(c->error))
                                             : NULL;
    _cleanup_json_ json_t *params = json_pack(
        "[s,s,s,s?,s?,o,s?,O,s,I,s,s,s,s?,I,s?,s?,s]", c->status, now, now, error,
        c->error_code[0] ? c->error_code : NULL,
        c->has_exit ? json_integer(c->exit_code) : json_null(), c->signal[0] ? c->signal : NULL,
        c->result, pc_runlog_ref(c->log), (json_int_t)pc_runlog_bytes(c->log), sha, out_ex,
        err_ex, error, (json_int_t)pc_runlog_seq(c->log), c->env_id[0] ? c->env_id : NULL,
        c->lease_id[0] ? c->lease_id : NULL, c->run_id);
    if (!params)
        return pc_error_set(err, 500, "cannot build the final state of run %s", c->run_id);
    int64_t backoff = 50;
    for (int attempt = 1;; attempt++) {
        if (run_finalize_tx(c, now, params, err) == 0)
            return 0;
        pc_error_prefix(err, "cannot record the end of run %s (attempt %d of %d)", c->run_id,
                        attempt, FINALIZE_ATTEMPTS);
        if (attempt == FINALIZE_ATTEMPTS)
            return -1;
        pc_err("%s", err->msg);
        pc_error_clear(err);
        struct timespec ts = {.tv_sec = backoff / 1000, .tv_nsec = (backoff % 1000) * 1000000};
        nanosleep(&ts, NULL);
        backoff = backoff * 2 > FINALIZE_BACKOFF_MAX_MS ? FINALIZE_BACKOFF_MAX_MS : backoff * 2;
    }
}

/* Executes one claimed run on the calling pool worker, then unregisters it. */
static void run_one(pc_runtime *rt, pc_active_run *ar)
{
    run_ctx *c = pc_xcalloc(1, sizeof *c);
    snprintf(c->run_id, sizeof c->run_id, "%s", ar->run_id);
    c->rt = rt;
    c->app = rt->app;
    c->ar = ar;
    pc_app *app = c->app;
    pc_error_t err = PC_ERROR_INIT;
    c->result = json_object();
    c->status = "failed";
    _cleanup_json_ json_t *run = pc_db_query_one_s(
        app->db, "SELECT * FROM heartbeat_runs WHERE id=?", json_pack("[s]", c->run_id), &err);
    if (run)
        c->agent = pc_db_query_one_s(app->db, "SELECT * FROM agents WHERE id=?",
                                     json_pack("[s]", pc_json_str(run, "agent_id")), &err);
    if (!run || !c->agent) {
        pc_err("run %s: cannot load run or agent: %s", c->run_id,
               pc_error_is_set(&err) ? err.msg : "missing");
        pc_error_clear(&err);
        char now[PC_ISO_LEN + 1];
        pc_iso_now(now);
        pc_db_exec_s(app->db,
                     "UPDATE heartbeat_runs SET status='failed', error='Agent not found', "
                     "error_code='agent_not_found', finished_at=?, updated_at=? WHERE id=? AND "
                     "status='running'",
                     json_pack("[s,s,s]", now, now, c->run_id), NULL, &err);
        pc_error_clear(&err);
        goto done;
    }
    snprintf(c->company_id, sizeof c->company_id, "%s", pc_json_str(run, "company_id"));
    snprintf(c->agent_id, sizeof c->agent_id, "%s", pc_json_str(run, "agent_id"));
    c->ctx = pc_json_from_text(pc_json_str(run, "context_snapshot"));
    if (!json_is_object(c->ctx)) {
        json_decref(c->ctx);
        c->ctx = json_object();
    }
    c->issue_id = pc_json_str(c->ctx, "issueId");
    c->aconf = pc_json_from_text(pc_json_str(c->agent, "adapter_config"));
    if (!json_is_object(c->aconf)) {
        json_decref(c->aconf);
        c->aconf = json_object();
    }
    c->adapter = pc_json_str(c->agent, "adapter_type") ? pc_json_str(c->agent, "adapter_type")
                                                       : "process";
    c->log = pc_runlog_open(app->cfg.data_dir, c->company_id, c->agent_id, c->run_id,
                            c->rt->log_cap, &err);
    if (!c->log) {
        pc_err("run %s: %s", c->run_id, err.msg);
        pc_error_clear(&err);
        /* Without a log the run still ends in a recorded state. */
        c->log = pc_runlog_open("/dev/null/none", "x", "x", "x", 0, &err);
        pc_error_clear(&err);
    }

    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    pc_db_exec_s(app->db,
                 "UPDATE agent_wakeup_requests SET status='claimed', claimed_at=?, updated_at=? "
                 "WHERE run_id=? AND status='queued'",
                 json_pack("[s,s,s]", now, now, c->run_id), NULL, &err);
    pc_db_exec_s(app->db,
                 "UPDATE agents SET status='running', last_heartbeat_at=?, updated_at=? WHERE id=? "
                 "AND status IN ('idle','active','error','running')",
                 json_pack("[s,s,s]", now, now, c->agent_id), NULL, &err);
    if (c->issue_id)
        pc_db_exec_s(app->db,
                     "UPDATE issues SET execution_run_id=?, execution_locked_at=? WHERE id=? AND "
                     "execution_run_id IS NULL",
                     json_pack("[s,s,s]", c->run_id, now, c->issue_id), NULL, &err);
    pc_error_clear(&err);
    pc_run_event(app, c->company_id, c->agent_id, c->run_id, "lifecycle", "system", "info",
                 "run started", json_pack("{s:s}", "adapterType", c->adapter));

    if (!c->log) {
        run_fail(c, "failed", "run_log_failed", "cannot open the run log");
    } else if (pc_jwt_mint(c->agent_id, c->company_id, c->adapter, c->run_id, app->instance_id,
                           c->jwt, &err) < 0) {
        run_fail(c, "failed", "auth_token_failed", "%s", err.msg);
        pc_error_clear(&err);
    } else {
        pc_runlog_add_secret(c->log, c->jwt);
        if (!strcmp(c->adapter, "http"))
            run_http(c);
        else
            run_in_environment(c);
    }
    if (c->log) {
        if (run_finalize(c, &err) < 0) {
            pc_err("%s; the run stays running until the next start", err.msg);
            pc_error_clear(&err);
        }
    } else {
        pc_iso_now(now);
        pc_db_exec_s(app->db,
                     "UPDATE heartbeat_runs SET status='failed', error=?, error_code=?, "
                     "finished_at=?, updated_at=? WHERE id=? AND status='running'",
                     json_pack("[s,s,s,s,s]", c->error, c->error_code, now, now, c->run_id), NULL,
                     &err);
        pc_error_clear(&err);
    }

done:
    sodium_memzero(c->jwt, sizeof c->jwt);
    pc_runlog_close(c->log);
    /* Followers end on the final status; without a log nothing else wakes
     * them. */
    pc_runlog_notify(c->run_id);
    json_decref(c->agent);
    json_decref(c->ctx);
    json_decref(c->aconf);
    json_decref(c->result);
    if (c->cli) {
        pc_adapter_stream_free(c->cli);
        free(c->cli);
    }
    free(c);
    pthread_mutex_lock(&rt->mu);
    for (pc_active_run **pp = &rt->active; *pp; pp = &(*pp)->next)
        if (*pp == ar) {
            *pp = ar->next;
            break;
        }
    rt->nactive--;
    free(ar);
    pthread_cond_broadcast(&rt->idle_cv);
    rt->kick = true; /* a slot or a task became free */
    pthread_cond_signal(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
}

static void unregister(pc_runtime *rt, pc_active_run *ar)
{
    pthread_mutex_lock(&rt->mu);
    for (pc_active_run **pp = &rt->active; *pp; pp = &(*pp)->next)
        if (*pp == ar) {
            *pp = ar->next;
            break;
        }
    rt->nactive--;
    pthread_cond_broadcast(&rt->idle_cv);
    pthread_mutex_unlock(&rt->mu);
    free(ar);
}

pc_active_run *pc_orchestrator_register(pc_runtime *rt, const char *run_id)
{
    pc_active_run *ar = pc_xcalloc(1, sizeof *ar);
    snprintf(ar->run_id, sizeof ar->run_id, "%s", run_id);
    pthread_mutex_lock(&rt->mu);
    ar->next = rt->active;
    rt->active = ar;
    rt->nactive++;
    pthread_mutex_unlock(&rt->mu);
    return ar;
}

void pc_orchestrator_drop(pc_runtime *rt, pc_active_run *ar) { unregister(rt, ar); }

void pc_orchestrator_start(pc_runtime *rt, pc_active_run *ar)
{
    pthread_mutex_lock(&rt->mu);
    ar->next_job = NULL;
    if (rt->jobs_tail)
        rt->jobs_tail->next_job = ar;
    else
        rt->jobs = ar;
    rt->jobs_tail = ar;
    pthread_cond_signal(&rt->work_cv);
    pthread_mutex_unlock(&rt->mu);
}

static void *pool_worker(void *arg)
{
    pc_runtime *rt = arg;
    pthread_mutex_lock(&rt->mu);
    for (;;) {
        while (!rt->jobs && !rt->pool_stop)
            pthread_cond_wait(&rt->work_cv, &rt->mu);
        pc_active_run *ar = rt->jobs;
        if (!ar)
            break; /* stopping, and nothing left to run */
        rt->jobs = ar->next_job;
        if (!rt->jobs)
            rt->jobs_tail = NULL;
        pthread_mutex_unlock(&rt->mu);
        run_one(rt, ar);
        pthread_mutex_lock(&rt->mu);
    }
    pthread_mutex_unlock(&rt->mu);
    return NULL;
}

int pc_orchestrator_pool_start(pc_runtime *rt)
{
    rt->workers = pc_xcalloc((size_t)rt->max_running, sizeof *rt->workers);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    int n = 0;
    for (; n < rt->max_running; n++) {
        int rc = pthread_create(&rt->workers[n], &attr, pool_worker, rt);
        if (rc != 0) {
            pc_err("cannot start heartbeat worker %d of %d: %s", n + 1, rt->max_running,
                   strerror(rc));
            break;
        }
    }
    pthread_attr_destroy(&attr);
    pthread_mutex_lock(&rt->mu);
    rt->nworkers = n;
    if (n > 0)
        rt->max_running = n;
    pthread_mutex_unlock(&rt->mu);
    return n;
}

void pc_orchestrator_pool_stop(pc_runtime *rt)
{
    pthread_mutex_lock(&rt->mu);
    rt->pool_stop = true;
    pthread_cond_broadcast(&rt->work_cv);
    int n = rt->nworkers;
    rt->nworkers = 0;
    pthread_mutex_unlock(&rt->mu);
    for (int i = 0; i < n; i++)
        pthread_join(rt->workers[i], NULL);
    free(rt->workers);
    rt->workers = NULL;
}
