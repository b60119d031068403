/*
 * The heartbeat runtime: wakeups, the scheduler thread and the run table
 * (see runtime.h for the lifecycle). Execution of one run lives in
 * orchestrator.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "model/activity.h"
#include "model/costs.h"
#include "model/rows.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "run/internal.h"
#include "run/jwt.h"
#include "run/runlog.h"
#include "run/runtime.h"

static pc_runtime *rt_global;

pc_runtime *pc_runtime_get(void) { return rt_global; }

bool pc_run_status_final(const char *s)
{
    return s && (!strcmp(s, "succeeded") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
                 !strcmp(s, "timed_out") || !strcmp(s, "interrupted"));
}

json_t *pc_run_get(pc_app *app, const char *run_id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM heartbeat_runs WHERE id=?", run_id, pc_run_from_row,
                       "Heartbeat run not found", err);
}

int pc_rt_event_insert(pc_app *app, const char *company_id, const char *agent_id,
                       const char *run_id, const char *event_type, const char *stream,
                       const char *level, const char *message, json_t *payload, pc_error_t *err)
{
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    /* seq is computed in the same statement so concurrent writers (the worker
     * and a cancel request) never reuse a number. */
    return pc_db_exec_s(app->db,
                        "INSERT INTO heartbeat_run_events(company_id,run_id,agent_id,seq,event_type,"
                        "stream,level,message,payload,created_at) "
                        "SELECT ?,?,?,COALESCE(MAX(seq),0)+1,?,?,?,?,?,? FROM heartbeat_run_events "
                        "WHERE run_id=?",
                        json_pack("[s,s,s,s,s?,s?,s?,O?,s,s]", company_id, run_id, agent_id,
                                  event_type, stream, level, message, payload, ts, run_id),
                        NULL, err);
}

void pc_run_event(pc_app *app, const char *company_id, const char *agent_id, const char *run_id,
                  const char *event_type, const char *stream, const char *level,
                  const char *message, json_t *payload)
{
    pc_error_t err = PC_ERROR_INIT;
    if (pc_rt_event_insert(app, company_id, agent_id, run_id, event_type, stream, level, message,
                           payload, &err) < 0)
        pc_warn("cannot record run event for %s: %s", run_id, err.msg);
    pc_error_clear(&err);
    json_decref(payload);
}

/* ---- wakeups ---- */

static void rt_kick(pc_runtime *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->mu);
    rt->kick = true;
    pthread_cond_signal(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
}

static json_t *run_by_id(pc_app *app, const char *id, pc_error_t *err)
{
    return pc_run_get(app, id, err);
}

json_t *pc_run_wakeup(pc_app *app, const char *agent_id, const pc_wakeup_opts *o, pc_error_t *err)
{
    _cleanup_json_ json_t *agent = pc_db_query_one_s(
        app->db, "SELECT a.*, c.status AS company_status FROM agents a JOIN companies c "
                 "ON c.id = a.company_id WHERE a.id=?",
        json_pack("[s]", agent_id), err);
    if (!agent) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "Agent not found");
        return NULL;
    }
    const char *status = pc_json_str(agent, "status");
    const char *cid = pc_json_str(agent, "company_id");
    if (!strcmp(status, "terminated") || !strcmp(status, "paused") ||
        !strcmp(status, "pending_approval")) {
        pc_error_set(err, 409, "Agent is not invokable in its current state");
        pc_error_details(err, json_pack("{s:s}", "status", status));
        return NULL;
    }
    const char *source = o->source ? o->source : "on_demand";
    _cleanup_json_ json_t *rc = pc_json_from_text(pc_json_str(agent, "runtime_config"));
    json_t *hb = pc_json_obj(rc, "heartbeat");
    if (strcmp(source, "timer") != 0 && !pc_json_bool(hb, "wakeOnDemand", true)) {
        return json_pack("{s:s,s:s}", "status", "skipped", "reason", "wake_on_demand_disabled");
    }
    char now[PC_ISO_LEN + 1], wid[PC_UUID_LEN + 1], rid[PC_UUID_LEN + 1];
    pc_iso_now(now);
    pc_uuid_v7(wid);
    const char *actor_type = "system", *actor_id = NULL;
    if (o->actor && o->actor->type == PC_ACTOR_BOARD)
        actor_type = "user", actor_id = o->actor->user_id;
    else if (o->actor && o->actor->type == PC_ACTOR_AGENT)
        actor_type = "agent", actor_id = o->actor->agent_id;

    _cleanup_json_ json_t *same = NULL;
    if (pc_db_begin(app->db, err) < 0)
        return NULL;
    /* An idempotency key that was seen before returns what it led to. */
    if (o->idempotency_key) {
        _cleanup_json_ json_t *prev = pc_db_query_one_s(
            app->db, "SELECT run_id FROM agent_wakeup_requests WHERE agent_id=? AND "
                     "idempotency_key=?",
            json_pack("[s,s]", agent_id, o->idempotency_key), err);
        if (pc_error_is_set(err))
            goto fail;
        if (prev) {
            pc_db_rollback(app->db);
            const char *prun = pc_json_str(prev, "run_id");
            if (prun)
                return run_by_id(app, prun, err);
            return json_pack("{s:s,s:s}", "status", "skipped", "reason", "duplicate");
        }
    }
    /* Coalesce into a queued run of the same task (or of no task). */
    same = pc_db_query_one_s(
        app->db,
        "SELECT id, wakeup_request_id FROM heartbeat_runs WHERE agent_id=? AND status='queued' "
        "AND ((? IS NULL AND task_key IS NULL) OR task_key=?) ORDER BY created_at LIMIT 1",
        json_pack("[s,s?,s?]", agent_id, o->issue_id, o->issue_id), err);
    if (pc_error_is_set(err))
        goto fail;
    if (same) {
        const char *srun = pc_json_str(same, "id");
        if (pc_db_exec_s(app->db,
                         "INSERT INTO agent_wakeup_requests(id,company_id,agent_id,source,"
                         "trigger_detail,reason,payload,status,requested_by_actor_type,"
                         "requested_by_actor_id,idempotency_key,run_id,requested_at,created_at,"
                         "updated_at) VALUES(?,?,?,?,?,?,?,'coalesced',?,?,?,?,?,?,?)",
                         json_pack("[s,s,s,s,s?,s?,O?,s,s?,s?,s,s,s,s]", wid, cid, agent_id, source,
                                   o->trigger_detail, o->reason, o->payload, actor_type, actor_id,
                                   o->idempotency_key, srun, now, now, now),
                         NULL, err) < 0 ||
            pc_db_exec_s(app->db,
                         "UPDATE agent_wakeup_requests SET coalesced_count=coalesced_count+1, "
                         "updated_at=? WHERE id=?",
                         json_pack("[s,s?]", now, pc_json_str(same, "wakeup_request_id")), NULL,
                         err) < 0 ||
            pc_db_commit(app->db, err) < 0)
            goto fail;
        return run_by_id(app, srun, err);
    }
    pc_uuid_v7(rid);
    json_t *ctx = json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:s}", "source", source, "triggerDetail",
                            o->trigger_detail, "wakeReason", o->reason, "taskId", o->issue_id,
                            "issueId", o->issue_id, "wakeupRequestId", wid);
    if (o->payload)
        json_object_set(ctx, "payload", o->payload);
    if (o->force_fresh_session)
        json_object_set_new(ctx, "forceFreshSession", json_true());
    int rc1 = pc_db_exec_s(
        app->db,
        "INSERT INTO agent_wakeup_requests(id,company_id,agent_id,source,trigger_detail,reason,"
        "payload,status,requested_by_actor_type,requested_by_actor_id,idempotency_key,run_id,"
        "requested_at,created_at,updated_at) VALUES(?,?,?,?,?,?,?,'queued',?,?,?,?,?,?,?)",
        json_pack("[s,s,s,s,s?,s?,O?,s,s?,s?,s,s,s,s]", wid, cid, agent_id, source,
                  o->trigger_detail, o->reason, o->payload, actor_type, actor_id,
                  o->idempotency_key, rid, now, now, now),
        NULL, err);
    int rc2 = rc1 < 0 ? -1
                      : pc_db_exec_s(app->db,
                                     "INSERT INTO heartbeat_runs(id,company_id,agent_id,"
                                     "invocation_source,trigger_detail,status,wakeup_request_id,"
                                     "task_key,context_snapshot,created_at,updated_at) "
                                     "VALUES(?,?,?,?,?,'queued',?,?,?,?,?)",
                                     json_pack("[s,s,s,s,s?,s,s?,o,s,s]", rid, cid, agent_id,
                                               source, o->trigger_detail, wid, o->issue_id, ctx,
                                               now, now),
                                     NULL, err);
    if (rc1 < 0)
        json_decref(ctx);
    if (rc2 < 0 || pc_db_commit(app->db, err) < 0)
        goto fail;
    rt_kick(rt_global);
    return run_by_id(app, rid, err);
fail:
    pc_db_rollback(app->db);
    return NULL;
}

/* ---- active runs ---- */

pc_active_run *pc_rt_find_locked(pc_runtime *rt, const char *run_id)
{
    for (pc_active_run *a = rt->active; a; a = a->next)
        if (!strcmp(a->run_id, run_id))
            return a;
    return NULL;
}

void pc_rt_request_cancel_locked(pc_active_run *a, pc_run_cancel_kind why)
{
    int none = PC_RUN_CANCEL_NONE;
    atomic_compare_exchange_strong(&a->cancel, &none, (int)why);
    if (a->lease)
        pc_lease_cancel(a->lease);
}

int pc_run_cancel(pc_app *app, const char *run_id, const pc_actor *actor, pc_error_t *err)
{
    _cleanup_json_ json_t *run = pc_db_query_one_s(
        app->db, "SELECT id, company_id, agent_id, status FROM heartbeat_runs WHERE id=?",
        json_pack("[s]", run_id), err);
    if (!run)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 404, "Heartbeat run not found");
    const char *cid = pc_json_str(run, "company_id"), *aid = pc_json_str(run, "agent_id");
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    int64_t changes = 0;
    /* A queued run has no worker: cancel it in place. */
    if (pc_db_exec_s(app->db,
                     "UPDATE heartbeat_runs SET status='cancelled', finished_at=?, updated_at=?, "
                     "error='Cancelled by request', error_code='cancelled' WHERE id=? AND "
                     "status='queued'",
                     json_pack("[s,s,s]", now, now, run_id), &changes, err) < 0)
        return -1;
    if (changes) {
        pc_db_exec_s(app->db,
                     "UPDATE agent_wakeup_requests SET status='skipped', finished_at=?, "
                     "updated_at=? WHERE run_id=? AND status='queued'",
                     json_pack("[s,s,s]", now, now, run_id), NULL, err);
        pc_error_clear(err);
        pc_run_event(app, cid, aid, run_id, "lifecycle", "system", "warn", "run cancelled", NULL);
        pc_runlog_notify(run_id); /* a follower of the queued run ends now */
    } else {
        pc_runtime *rt = rt_global;
        if (rt) {
            pthread_mutex_lock(&rt->mu);
            pc_active_run *a = pc_rt_find_locked(rt, run_id);
            if (a)
                pc_rt_request_cancel_locked(a, PC_RUN_CANCEL_REQUESTED);
            pthread_mutex_unlock(&rt->mu);
        }
    }
    pc_activity_log(app, actor, cid, "heartbeat.cancelled", "heartbeat_run", run_id, NULL, err);
    pc_error_clear(err);
    return 0;
}

int pc_run_cancel_for_agent(pc_app *app, const char *agent_id, pc_error_t *err)
{
    _cleanup_json_ json_t *rows = NULL;
    if (pc_db_query_s(app->db,
                      "SELECT id, company_id FROM heartbeat_runs WHERE agent_id=? AND status IN "
                      "('queued','running')",
                      json_pack("[s]", agent_id), &rows, err) < 0)
        return -1;
    int n = 0;
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *rid = pc_json_str(row, "id");
        char now[PC_ISO_LEN + 1];
        pc_iso_now(now);
        int64_t changes = 0;
        if (pc_db_exec_s(app->db,
                         "UPDATE heartbeat_runs SET status='cancelled', finished_at=?, "
                         "updated_at=?, error=?, error_code='cancelled' WHERE id=? AND "
                         "status='queued'",
                         json_pack("[s,s,s,s]", now, now, PC_RUN_PAUSE_CANCEL_REASON, rid),
                         &changes, err) < 0)
            return -1;
        if (changes) {
            pc_db_exec_s(app->db,
                         "UPDATE agent_wakeup_requests SET status='cancelled', finished_at=?, "
                         "updated_at=?, error=? WHERE run_id=? AND status='queued'",
                         json_pack("[s,s,s,s]", now, now, PC_RUN_PAUSE_CANCEL_REASON, rid), NULL,
                         err);
            pc_error_clear(err);
            pc_run_event(app, pc_json_str(row, "company_id"), agent_id, rid, "lifecycle",
                         "system", "warn", "run cancelled", NULL);
            pc_runlog_notify(rid);
            n++;
            continue;
        }
        /* Running (or claimed between the query and the update): the run
         * was registered before its claim, so its worker is found here. */
        pc_runtime *rt = rt_global;
        if (rt) {
            pthread_mutex_lock(&rt->mu);
            pc_active_run *a = pc_rt_find_locked(rt, rid);
            if (a) {
                pc_rt_request_cancel_locked(a, PC_RUN_CANCEL_AGENT_PAUSED);
                n++;
            }
            pthread_mutex_unlock(&rt->mu);
        }
    }
    return n;
}

/* ---- scheduler ---- */

static int64_t env_int(const char *name, int64_t dflt, int64_t min, int64_t max)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end || n < min || n > max)
        return dflt;
    return n;
}

/* Timer wakeups: an agent whose interval has passed is claimed with a
 * compare-and-set on last_heartbeat_at, so a tick never fires twice even if
 * two schedulers (or a slow tick) overlap. */
static void rt_tick_timers(pc_runtime *rt)
{
    pc_app *app = rt->app;
    pc_error_t err = PC_ERROR_INIT;
    json_t *rows = NULL;
    if (pc_db_query_s(app->db,
                      "SELECT a.id, a.runtime_config, a.last_heartbeat_at, a.created_at FROM agents "
                      "a JOIN companies c ON c.id=a.company_id WHERE c.status='active' AND "
                      "a.status NOT IN ('paused','terminated','pending_approval')",
                      json_array(), &rows, &err) < 0) {
        pc_warn("heartbeat timer: %s", err.msg);
        pc_error_clear(&err);
        return;
    }
    int64_t now = pc_now_ms();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        _cleanup_json_ json_t *rc = pc_json_from_text(pc_json_str(row, "runtime_config"));
        json_t *hb = pc_json_obj(rc, "heartbeat");
        int64_t interval = pc_json_int(hb, "intervalSec", 0);
        if (!pc_json_bool(hb, "enabled", false) || interval <= 0)
            continue;
        const char *last = pc_json_str(row, "last_heartbeat_at");
        int64_t last_ms = 0;
        if (pc_iso_parse(last ? last : pc_json_str(row, "created_at"), &last_ms) < 0)
            continue;
        if (now - last_ms < interval * 1000)
            continue;
        char threshold[PC_ISO_LEN + 1], nowiso[PC_ISO_LEN + 1];
        pc_iso8601(now - interval * 1000, threshold);
        pc_iso8601(now, nowiso);
        int64_t changes = 0;
        const char *aid = pc_json_str(row, "id");
        if (pc_db_exec_s(app->db,
                         "UPDATE agents SET last_heartbeat_at=? WHERE id=? AND "
                         "((last_heartbeat_at IS NULL AND created_at <= ?) OR "
                         "last_heartbeat_at <= ?)",
                         json_pack("[s,s,s,s]", nowiso, aid, threshold, threshold), &changes,
                         &err) < 0 ||
            changes != 1) {
            pc_error_clear(&err);
            continue;
        }
        pc_wakeup_opts o = {.source = "timer", .trigger_detail = "system",
                            .reason = "heartbeat_timer"};
        json_t *r = pc_run_wakeup(app, aid, &o, &err);
        if (!r)
            pc_warn("heartbeat timer wakeup for agent %s: %s", aid, err.msg);
        json_decref(r);
        pc_error_clear(&err);
    }
    json_decref(rows);
}

static int64_t agent_max_concurrency(json_t *agents, const char *aid)
{
    json_t *a = json_object_get(agents, aid);
    if (!a)
        return 0;
    return json_integer_value(json_object_get(a, "max"));
}

/* The budget gate before a claim: an agent (or company) whose month spend
 * has reached its budget starts nothing and is paused by the check. It runs
 * outside a transaction, since it usually only reads and the scheduler
 * should not hold the store's write lock for it. A store error lets the run
 * start rather than wedging the queue. */
static bool agent_over_budget(pc_app *app, const char *agent_id)
{
    pc_error_t err = PC_ERROR_INIT;
    bool blocked = false;
    if (pc_budget_evaluate_agent(app, agent_id, &blocked, &err) < 0) {
        pc_warn("budget check for agent %s: %s", agent_id, err.msg);
        pc_error_clear(&err);
        return false;
    }
    return blocked;
}

/* Claims queued runs within each agent's free slots and starts a worker for
 * each. A queued run whose task already has a running run waits: issue
 * execution is serialised. */
static void rt_dispatch(pc_runtime *rt)
{
    pc_app *app = rt->app;
    pc_error_t err = PC_ERROR_INIT;
    json_t *queued = NULL, *running = NULL, *arows = NULL;
    /* agent id -> {max, n}; "agent\ttask" -> true for running tasks. */
    _cleanup_json_ json_t *agents = json_object();
    _cleanup_json_ json_t *busy = json_object();
    if (pc_db_query_s(app->db,
                      "SELECT id, agent_id, task_key FROM heartbeat_runs WHERE status='queued' "
                      "ORDER BY created_at, id LIMIT 1000",
                      json_array(), &queued, &err) < 0 ||
        json_array_size(queued) == 0)
        goto out;
    if (pc_db_query_s(app->db,
                      "SELECT agent_id, task_key FROM heartbeat_runs WHERE status='running'",
                      json_array(), &running, &err) < 0 ||
        pc_db_query_s(app->db,
                      "SELECT a.id, a.status, a.runtime_config FROM agents a WHERE a.id IN "
                      "(SELECT DISTINCT agent_id FROM heartbeat_runs WHERE status='queued')",
                      json_array(), &arows, &err) < 0)
        goto out;
    size_t i;
    json_t *row;
    json_array_foreach(arows, i, row)
    {
        _cleanup_json_ json_t *rc = pc_json_from_text(pc_json_str(row, "runtime_config"));
        int64_t maxc = pc_json_int(pc_json_obj(rc, "heartbeat"), "maxConcurrentRuns", 20);
        maxc = maxc < 1 ? 1 : maxc > 50 ? 50 : maxc;
        const char *st = pc_json_str(row, "status");
        if (!strcmp(st, "paused") || !strcmp(st, "terminated") || !strcmp(st, "pending_approval"))
            maxc = 0;
        else if (agent_over_budget(app, pc_json_str(row, "id")))
            maxc = 0; /* paused by the check; its runs wait for a resume */
        json_object_set_new(agents, pc_json_str(row, "id"),
                            json_pack("{s:I,s:i}", "max", (json_int_t)maxc, "n", 0));
    }
    json_array_foreach(running, i, row)
    {
        json_t *a = json_object_get(agents, pc_json_str(row, "agent_id"));
        if (a)
            json_object_set_new(a, "n",
                                json_integer(json_integer_value(json_object_get(a, "n")) + 1));
        const char *tk = pc_json_str(row, "task_key");
        if (tk) {
            char key[100];
            snprintf(key, sizeof key, "%s\t%s", pc_json_str(row, "agent_id"), tk);
            json_object_set_new(busy, key, json_true());
        }
    }
    json_array_foreach(queued, i, row)
    {
        /* app->stopping is set as soon as SIGTERM arrives, before the HTTP
         * server and then this service are stopped: claim nothing new. */
        if (atomic_load(&rt->stopping) || atomic_load(&app->stopping))
            break;
        /* Every pool worker is busy (or about to be): the rest stay queued
         * until a finishing run kicks the scheduler. */
        pthread_mutex_lock(&rt->mu);
        bool full = rt->nactive >= rt->max_running;
        pthread_mutex_unlock(&rt->mu);
        if (full)
            break;
        const char *aid = pc_json_str(row, "agent_id"), *rid = pc_json_str(row, "id");
        json_t *a = json_object_get(agents, aid);
        if (!a)
            continue;
        int64_t n = json_integer_value(json_object_get(a, "n"));
        if (n >= agent_max_concurrency(agents, aid))
            continue;
        const char *tk = pc_json_str(row, "task_key");
        char key[100] = "";
        if (tk) {
            snprintf(key, sizeof key, "%s\t%s", aid, tk);
            if (json_object_get(busy, key))
                continue;
        }
        char now[PC_ISO_LEN + 1];
        pc_iso_now(now);
        int64_t changes = 0;
        pc_active_run *ar = pc_orchestrator_register(rt, rid);
        if (pc_db_exec_s(app->db,
                         "UPDATE heartbeat_runs SET status='running', started_at=?, updated_at=? "
                         "WHERE id=? AND status='queued' AND (SELECT status FROM agents WHERE "
                         "agents.id=heartbeat_runs.agent_id) NOT IN "
                         "('paused','terminated','pending_approval')",
                         json_pack("[s,s,s]", now, now, rid), &changes, &err) < 0) {
            pc_warn("cannot claim run %s: %s", rid, err.msg);
            pc_error_clear(&err);
            pc_orchestrator_drop(rt, ar);
            continue;
        }
        if (changes != 1) {
            /* cancelled meanwhile, or its agent was paused after the
             * agents were read */
            pc_orchestrator_drop(rt, ar);
            continue;
        }
        json_object_set_new(a, "n", json_integer(n + 1));
        if (tk)
            json_object_set_new(busy, key, json_true());
        pc_orchestrator_start(rt, ar);
    }
out:
    if (pc_error_is_set(&err))
        pc_warn("heartbeat scheduler: %s", err.msg);
    pc_error_clear(&err);
    json_decref(queued);
    json_decref(running);
    json_decref(arows);
}

static void *rt_sched_main(void *arg)
{
    pc_runtime *rt = arg;
    int64_t next_tick = pc_mono_ms() + rt->tick_ms;
    for (;;) {
        pthread_mutex_lock(&rt->mu);
        while (!rt->kick && !atomic_load(&rt->stopping)) {
            int64_t wait = next_tick - pc_mono_ms();
            if (wait <= 0)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t w = wait > 1000 ? 1000 : wait;
            ts.tv_sec += w / 1000;
            ts.tv_nsec += (w % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000)
                ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&rt->cv, &rt->mu, &ts);
        }
        rt->kick = false;
        bool stop = atomic_load(&rt->stopping);
        pthread_mutex_unlock(&rt->mu);
        if (stop)
            break;
        if (pc_mono_ms() >= next_tick) {
            rt_tick_timers(rt);
            next_tick = pc_mono_ms() + rt->tick_ms;
        }
        rt_dispatch(rt);
    }
    return NULL;
}

void pc_rt_run_finished(pc_runtime *rt)
{
    rt_kick(rt); /* a slot or a task became free */
}

/* ---- service ---- */

/* Runs a previous process left `running` have no worker any more. */
static void rt_reap_orphans(pc_app *app)
{
    pc_error_t err = PC_ERROR_INIT;
    char now[PC_ISO_LEN + 1];
    pc_iso_now(now);
    json_t *rows = NULL;
    if (pc_db_query_s(app->db,
                      "SELECT id, company_id, agent_id FROM heartbeat_runs WHERE status='running'",
                      json_array(), &rows, &err) < 0) {
        pc_warn("cannot reap orphaned runs: %s", err.msg);
        pc_error_clear(&err);
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *rid = pc_json_str(row, "id");
        int64_t changes = 0;
        pc_db_exec_s(app->db,
                     "UPDATE heartbeat_runs SET status='interrupted', finished_at=?, updated_at=?,"
                     " error='Process lost: the daemon stopped while the run was running', "
                     "error_code='process_lost' WHERE id=? AND status='running'",
                     json_pack("[s,s,s]", now, now, rid), &changes, &err);
        pc_db_exec_s(app->db,
                     "UPDATE agent_wakeup_requests SET status='failed', finished_at=?, "
                     "updated_at=?, error='process_lost' WHERE run_id=? AND status IN "
                     "('queued','claimed')",
                     json_pack("[s,s,s]", now, now, rid), NULL, &err);
        pc_db_exec_s(app->db,
                     "UPDATE issues SET execution_run_id=NULL, execution_locked_at=NULL WHERE "
                     "execution_run_id=?",
                     json_pack("[s]", rid), NULL, &err);
        pc_error_clear(&err);
        if (changes) {
            pc_run_event(app, pc_json_str(row, "company_id"), pc_json_str(row, "agent_id"), rid,
                         "lifecycle", "system", "error", "run interrupted: process lost", NULL);
            pc_info("run %s interrupted: left running by a previous daemon", rid);
        }
    }
    pc_db_exec_s(app->db,
                 "UPDATE agents SET status='idle' WHERE status='running' AND id NOT IN "
                 "(SELECT agent_id FROM heartbeat_runs WHERE status='running')",
                 json_array(), NULL, &err);
    pc_error_clear(&err);
    json_decref(rows);
}

int pc_runtime_start(pc_app *app, pc_error_t *err)
{
    if (pc_jwt_init(app, err) < 0)
        return -1;
    rt_reap_orphans(app);
    pc_runtime *rt = pc_xcalloc(1, sizeof *rt);
    rt->app = app;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->cv, NULL);
    pthread_cond_init(&rt->idle_cv, NULL);
    pthread_cond_init(&rt->work_cv, NULL);
    rt->max_running = app->cfg.max_concurrent_runs > 0 ? app->cfg.max_concurrent_runs : 2;
    rt->tick_ms = env_int("PAPERCLIP_HEARTBEAT_TICK_MS", 1000, 10, 3600000);
    rt->shutdown_grace_ms = env_int("PAPERCLIP_RUN_SHUTDOWN_GRACE_MS", 10000, 0, 3600000);
    rt->log_cap = (size_t)env_int("PAPERCLIP_RUN_LOG_MAX_BYTES", PC_RUN_LOG_CAP_DEFAULT, 1024,
                                  (int64_t)1 << 34);
    rt_global = rt;
    app->runtime = rt;
    return 0;
}

void pc_runtime_ready(pc_app *app)
{
    pc_runtime *rt = rt_global;
    pc_runtime_url_compute(app);
    if (!rt)
        return;
    /* Scheduling starts once the API listens: runs call back into it. */
    if (pc_orchestrator_pool_start(rt) == 0) {
        pc_err("cannot start any heartbeat worker; runs stay queued");
        return;
    }
    pc_info("heartbeat runs: at most %d at once", rt->max_running);
    if (pthread_create(&rt->sched, NULL, rt_sched_main, rt) == 0)
        rt->sched_started = true;
    else
        pc_err("cannot start the heartbeat scheduler");
    rt_kick(rt);
}

static bool rt_wait_idle(pc_runtime *rt, int64_t ms)
{
    int64_t deadline = pc_mono_ms() + ms;
    pthread_mutex_lock(&rt->mu);
    while (rt->nactive > 0) {
        int64_t left = deadline - pc_mono_ms();
        if (left <= 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t w = left > 200 ? 200 : left;
        ts.tv_nsec += w * 1000000;
        while (ts.tv_nsec >= 1000000000)
            ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&rt->idle_cv, &rt->mu, &ts);
    }
    bool idle = rt->nactive == 0;
    pthread_mutex_unlock(&rt->mu);
    return idle;
}

void pc_runtime_drain(pc_app *app)
{
    (void)app;
    pc_runtime *rt = rt_global;
    if (!rt || rt->drained)
        return;
    rt->drained = true;
    pthread_mutex_lock(&rt->mu);
    atomic_store(&rt->stopping, true);
    pthread_cond_broadcast(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    if (rt->sched_started)
        pthread_join(rt->sched, NULL);
    rt->sched_started = false;
    /* Running runs get the grace period to finish on their own — the API is
     * still up, so they can still check out, comment and close issues — then
     * are stopped and recorded as interrupted; their leases are still
     * released by their workers. Queued runs stay queued for the next start. */
    if (rt_wait_idle(rt, rt->shutdown_grace_ms)) {
        pc_orchestrator_pool_stop(rt);
        return;
    }
    pthread_mutex_lock(&rt->mu);
    pc_info("stopping %d running heartbeat run(s)", rt->nactive);
    for (pc_active_run *a = rt->active; a; a = a->next)
        pc_rt_request_cancel_locked(a, PC_RUN_CANCEL_SHUTDOWN);
    pthread_mutex_unlock(&rt->mu);
    if (!rt_wait_idle(rt, 60000)) {
        /* Workers still hold the store; the runtime is never freed (see
         * pc_runtime_stop), which is what keeps this safe. Their threads are
         * not joined: the process exits around them. */
        pc_err("heartbeat runs did not stop; leaving them to the next start");
        return;
    }
    pc_orchestrator_pool_stop(rt);
}

void pc_runtime_stop(pc_app *app)
{
    pc_runtime *rt = rt_global;
    if (!rt)
        return;
    pc_runtime_drain(app);
    /* rt stays allocated (and reachable through rt_global): a worker that
     * just signalled idle may still be leaving its last unlock, and a stuck
     * worker still uses it. */
    app->runtime = NULL;
}
