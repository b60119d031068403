/*
 * Agent lifecycle: POST /api/agents/:agentId/{pause,resume,terminate}.
 *
 * All three are board-only: an agent cannot change whether it runs, so a
 * run paused by the board cannot resume itself (docs/security.md). Pausing
 * and terminating first change the agent's status — from then on the
 * scheduler claims none of its runs and wakeups answer 409 — and then
 * cancel its queued and running runs, recorded as upstream records them
 * ("Cancelled due to agent pause"). Terminating is final: its API keys are
 * revoked, run tokens stop verifying, and resume answers 409.
 */
#include <string.h>

#include "api/api.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"
#include "run/runtime.h"

/* The agent named by :agentId once the caller is known to be the board. */
static json_t *lifecycle_agent(pc_req *req, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return NULL;
    return pc_agent_load_for(req, NULL, err);
}

static int agents_pause(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *a = lifecycle_agent(req, err);
    if (!a)
        return -1;
    const char *id = pc_json_str(a, "id");
    int64_t changes = 0;
    /* The status test is part of the update so a concurrent terminate is
     * never turned back into a pause. */
    if (pc_agent_update_now(req->app, id,
                            "UPDATE agents SET status='paused', pause_reason='manual', "
                            "paused_at=?1, error_reason=NULL, updated_at=?1 WHERE id=?2 AND "
                            "status <> 'terminated'",
                            &changes, err) < 0)
        return -1;
    if (changes != 1)
        return pc_error_set(err, 409, "Cannot pause terminated agent");
    int n = pc_run_cancel_for_agent(req->app, id, err);
    if (n < 0)
        return -1;
    return pc_agent_answer_logged(
        req, resp, a, "agent.paused",
        json_pack("{s:s,s:i}", "pauseReason", "manual", "cancelledRuns", n), err);
}

static int agents_resume(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *a = lifecycle_agent(req, err);
    if (!a)
        return -1;
    const char *id = pc_json_str(a, "id");
    int64_t changes = 0;
    if (pc_agent_update_now(req->app, id,
                            "UPDATE agents SET status='idle', pause_reason=NULL, paused_at=NULL, "
                            "error_reason=NULL, updated_at=?1 WHERE id=?2 AND status NOT IN "
                            "('terminated','pending_approval')",
                            &changes, err) < 0)
        return -1;
    if (changes != 1) {
        _cleanup_json_ json_t *now = pc_agent_get(req->app, id, err);
        if (!now)
            return -1;
        if (!strcmp(pc_json_str(now, "status"), "pending_approval"))
            return pc_error_set(err, 409, "Pending approval agents cannot be resumed");
        return pc_error_set(err, 409, "Cannot resume terminated agent");
    }
    return pc_agent_answer_logged(req, resp, a, "agent.resumed", NULL, err);
}

static int agents_terminate(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    _cleanup_json_ json_t *a = lifecycle_agent(req, err);
    if (!a)
        return -1;
    const char *id = pc_json_str(a, "id");
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    if (pc_db_begin(req->app->db, err) < 0)
        return -1;
    if (pc_db_exec_s(req->app->db,
                     "UPDATE agents SET status='terminated', pause_reason=NULL, paused_at=NULL, "
                     "updated_at=? WHERE id=?",
                     json_pack("[s,s]", ts, id), NULL, err) < 0 ||
        pc_db_exec_s(req->app->db,
                     "UPDATE agent_api_keys SET revoked_at=? WHERE agent_id=? AND revoked_at IS "
                     "NULL",
                     json_pack("[s,s]", ts, id), NULL, err) < 0 ||
        pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        return -1;
    }
    int n = pc_run_cancel_for_agent(req->app, id, err);
    if (n < 0)
        return -1;
    return pc_agent_answer_logged(req, resp, a, "agent.terminated",
                                  json_pack("{s:i}", "cancelledRuns", n), err);
}

const pc_route pc_routes_agent_lifecycle[] = {
    {"POST", "/api/agents/:agentId/pause", agents_pause, 0},
    {"POST", "/api/agents/:agentId/resume", agents_resume, 0},
    {"POST", "/api/agents/:agentId/terminate", agents_terminate, 0},
    {NULL, NULL, NULL, 0},
};
