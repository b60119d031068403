/*
 * Heartbeat runs: GET /api/companies/:companyId/heartbeat-runs,
 * GET /api/heartbeat-runs/:runId, POST /api/heartbeat-runs/:runId/cancel,
 * GET /api/heartbeat-runs/:runId/{events,log}, GET /api/issues/:issueId/runs.
 *
 * The log answers upstream's {runId, store, logRef, content} (content is the
 * ndjson text, read in bounded pages); with ?follow=1 it becomes a
 * server-sent event stream: one `data:` event per log line as it is written,
 * then `event: end` with the run's final status.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "api/issues.h"
#include "lib/buf.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "run/runlog.h"
#include "run/runtime.h"

#define LOG_PAGE_MAX (8 * 1024 * 1024)
static const char *const run_statuses[] = {"queued",      "scheduled_retry", "running",
                                           "succeeded",   "interrupted",     "failed",
                                           "cancelled",   "timed_out",       NULL};

static int runs_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *cid = pc_company_param(req, err);
    if (!cid)
        return -1;
    const char *agent = pc_req_query(req, "agentId");
    const char *status = pc_req_query(req, "status");
    if (status) {
        bool known = false;
        for (int k = 0; run_statuses[k]; k++)
            known |= !strcmp(run_statuses[k], status);
        if (!known)
            return pc_error_validation(err, "status", "Invalid status");
    }
    int64_t limit;
    pc_query_limit(req, 200, 5000, PC_LIMIT_CLAMP, &limit, err);
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM heartbeat_runs WHERE company_id=? AND (? IS NULL OR "
                      "agent_id=?) AND (? IS NULL OR status=?) ORDER BY created_at DESC, id DESC "
                      "LIMIT ?",
                      json_pack("[s,s?,s?,s?,s?,I]", cid, agent, agent, status, status,
                                (json_int_t)limit),
                      &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_run_from_row));
}

static json_t *run_load_for(pc_req *req, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "runId", "Heartbeat run not found", err);
    return id ? pc_access_checked(req, pc_run_get(req->app, id, err), err) : NULL;
}

static int runs_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *r = run_load_for(req, err);
    return r ? pc_resp_json(resp, 200, r) : -1;
}

static int runs_cancel(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *r = run_load_for(req, err);
    if (!r)
        return -1;
    const char *id = pc_json_str(r, "id");
    if (req->actor.type == PC_ACTOR_AGENT &&
        strcmp(req->actor.agent_id, pc_json_str(r, "agentId") ? pc_json_str(r, "agentId") : "") != 0)
        return pc_error_set(err, 403, "Agents can only cancel their own runs");
    if (pc_run_cancel(req->app, id, &req->actor, err) < 0)
        return -1;
    json_t *out = pc_run_get(req->app, id, err);
    return out ? pc_resp_json(resp, 200, out) : -1;
}

static int runs_events(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *r = run_load_for(req, err);
    if (!r)
        return -1;
    const char *after = pc_req_query(req, "afterSeq");
    int64_t after_seq = after ? strtoll(after, NULL, 10) : 0;
    int64_t limit;
    pc_query_limit(req, 1000, 10000, PC_LIMIT_CLAMP, &limit, err);
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM heartbeat_run_events WHERE run_id=? AND seq>? ORDER BY seq "
                      "LIMIT ?",
                      json_pack("[s,I,I]", pc_json_str(r, "id"), (json_int_t)after_seq,
                                (json_int_t)limit),
                      &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_run_event_from_row));
}

/* The run's log path, or "" when the run has not opened one yet. */
static void run_log_path(pc_app *app, json_t *run, char *out, size_t cap)
{
    const char *ref = pc_json_str(run, "logRef");
    char fallback[200];
    if (!ref) {
        snprintf(fallback, sizeof fallback, "%s/%s/%s.ndjson", pc_json_str(run, "companyId"),
                 pc_json_str(run, "agentId"), pc_json_str(run, "id"));
        ref = fallback;
    }
    _cleanup_free_ char *p = pc_runlog_path(app->cfg.data_dir, ref);
    snprintf(out, cap, "%s", p ? p : "");
}

/* ---- follow (SSE) ---- */

typedef struct follow_ctx {
    pc_app *app;
    char run_id[40];
    char path[1400];
    int fd;
    off_t offset;
    pc_buf line;      /* partial line read so far */
    pc_buf out;       /* formatted bytes not yet sent */
    size_t out_pos;
    bool ended;       /* end event queued */
    int64_t last_send_ms;
    pc_runlog_watch *watch; /* wakes us when the log or the run changes */
} follow_ctx;

/* A comment line this often lets a vanished client be noticed. */
#define FOLLOW_KEEPALIVE_MS 5000

static void follow_free(void *p)
{
    follow_ctx *f = p;
    if (f->fd >= 0)
        close(f->fd);
    pc_runlog_watch_close(f->watch);
    pc_buf_release(&f->line);
    pc_buf_release(&f->out);
    free(f);
}

/* Reads what the file gained; queues one SSE event per complete line.
 * Returns the number of bytes read. */
static size_t follow_read(follow_ctx *f)
{
    if (f->fd < 0) {
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0)
            return 0;
    }
    char buf[16384];
    ssize_t n = pread(f->fd, buf, sizeof buf, f->offset);
    if (n <= 0)
        return 0;
    f->offset += n;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            pc_error_t e = PC_ERROR_INIT;
            pc_buf_puts(&f->out, "event: log\ndata: ", &e);
            pc_buf_append(&f->out, f->line.data ? f->line.data : "", f->line.len, &e);
            pc_buf_puts(&f->out, "\n\n", &e);
            pc_error_clear(&e);
            pc_buf_reset(&f->line);
        } else {
            pc_buf_append_trunc(&f->line, buf + i, 1);
        }
    }
    return (size_t)n;
}

/* Runs on the connection's own thread, so it may block: it sleeps on the
 * run's log watch until a line is written or the run changes, and returns
 * only with bytes to send (a line, the end event, or a keepalive). */
static long follow_stream(void *p, char *buf, size_t max)
{
    follow_ctx *f = p;
    while (f->out_pos >= f->out.len) {
        pc_buf_reset(&f->out);
        f->out_pos = 0;
        if (f->ended)
            return -1;
        /* The version is taken before looking, so a change made while we
         * look ends the wait below at once. */
        uint64_t seen = pc_runlog_watch_version(f->watch);
        if (follow_read(f) > 0)
            continue;
        pc_error_t e = PC_ERROR_INIT;
        _cleanup_json_ json_t *r = pc_db_query_one_s(
            f->app->db, "SELECT status FROM heartbeat_runs WHERE id=?",
            json_pack("[s]", f->run_id), &e);
        pc_error_clear(&e);
        const char *st = r ? pc_json_str(r, "status") : NULL;
        if (!st || pc_run_status_final(st)) {
            /* The worker writes its last line before the final status,
             * so one more read after seeing it gets everything. */
            while (follow_read(f) > 0)
                ;
            char end[160];
            snprintf(end, sizeof end, "event: end\ndata: {\"status\":\"%s\"}\n\n",
                     st ? st : "unknown");
            pc_buf_puts(&f->out, end, &e);
            pc_error_clear(&e);
            f->ended = true;
            continue;
        }
        int64_t idle = pc_mono_ms() - f->last_send_ms;
        if (idle >= FOLLOW_KEEPALIVE_MS) {
            pc_buf_puts(&f->out, ": keepalive\n\n", &e);
            pc_error_clear(&e);
            continue;
        }
        pc_runlog_watch_wait(f->watch, seen, FOLLOW_KEEPALIVE_MS - idle);
    }
    size_t n = f->out.len - f->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, f->out.data + f->out_pos, n);
    f->out_pos += n;
    f->last_send_ms = pc_mono_ms();
    return (long)n;
}

static int runs_log(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *r = run_load_for(req, err);
    if (!r)
        return -1;
    char path[1400];
    run_log_path(req->app, r, path, sizeof path);
    const char *follow = pc_req_query(req, "follow");
    if (follow && (!strcmp(follow, "1") || !strcmp(follow, "true"))) {
        follow_ctx *f = pc_xcalloc(1, sizeof *f);
        f->app = req->app;
        snprintf(f->run_id, sizeof f->run_id, "%s", pc_json_str(r, "id"));
        snprintf(f->path, sizeof f->path, "%s", path);
        f->fd = -1;
        f->watch = pc_runlog_watch_open(f->run_id);
        pc_buf_init(&f->line, 1024 * 1024);
        pc_buf_init(&f->out, PC_BUF_UNBOUNDED);
        f->last_send_ms = pc_mono_ms();
        resp->status = 200;
        resp->content_type = "text/event-stream";
        resp->stream = follow_stream;
        resp->stream_ctx = f;
        resp->stream_free = follow_free;
        return 0;
    }
    const char *off_s = pc_req_query(req, "offset");
    const char *lim_s = pc_req_query(req, "limitBytes");
    int64_t offset = off_s ? strtoll(off_s, NULL, 10) : 0;
    int64_t limit = lim_s ? strtoll(lim_s, NULL, 10) : LOG_PAGE_MAX;
    if (offset < 0)
        offset = 0;
    if (limit <= 0 || limit > LOG_PAGE_MAX)
        limit = LOG_PAGE_MAX;
    pc_buf content;
    pc_buf_init(&content, (size_t)limit);
    int fd = path[0] ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    int64_t size = 0;
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0)
            size = st.st_size;
        char buf[65536];
        int64_t pos = offset;
        while (content.len < (size_t)limit) {
            size_t want = sizeof buf;
            if (want > (size_t)limit - content.len)
                want = (size_t)limit - content.len;
            ssize_t n = pread(fd, buf, want, pos);
            if (n <= 0)
                break;
            pc_buf_append_trunc(&content, buf, (size_t)n);
            pos += n;
        }
        close(fd);
    }
    _cleanup_free_ char *text = pc_utf8_sanitize(content.data ? content.data : "", content.len);
    int64_t next = offset + (int64_t)content.len;
    pc_buf_release(&content);
    json_t *out = json_pack("{s:O,s:s,s:O,s:s,s:I,s:b}", "runId", json_object_get(r, "id"),
                            "store", "local_file", "logRef", json_object_get(r, "logRef"),
                            "content", text, "nextOffset", (json_int_t)next, "endOfLog",
                            next >= size);
    return pc_resp_json(resp, 200, out);
}

static int issue_runs(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *i = pc_issue_load_for(req, err);
    if (!i)
        return -1;
    json_t *rows = NULL;
    if (pc_db_query_s(req->app->db,
                      "SELECT * FROM heartbeat_runs WHERE company_id=? AND (task_key=? OR id=? OR "
                      "id=?) ORDER BY created_at DESC LIMIT 500",
                      json_pack("[O,O,s,s]", json_object_get(i, "companyId"),
                                json_object_get(i, "id"),
                                pc_json_str(i, "checkoutRunId") ? pc_json_str(i, "checkoutRunId")
                                                                : "",
                                pc_json_str(i, "executionRunId") ? pc_json_str(i, "executionRunId")
                                                                 : ""),
                      &rows, err) < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_run_from_row));
}

const pc_route pc_routes_runs[] = {
    {"GET", "/api/companies/:companyId/heartbeat-runs", runs_list, 0},
    {"GET", "/api/heartbeat-runs/:runId", runs_get, 0},
    {"POST", "/api/heartbeat-runs/:runId/cancel", runs_cancel, 0},
    {"GET", "/api/heartbeat-runs/:runId/events", runs_events, 0},
    {"GET", "/api/heartbeat-runs/:runId/log", runs_log, 0},
    {"GET", "/api/issues/:issueId/runs", issue_runs, 0},
    {NULL, NULL, NULL, 0},
};
