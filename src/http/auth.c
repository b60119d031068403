/*
 * Who is calling. Bearer credentials:
 *   pcb_<hex>  board API key (stored as sha256), acts as its board user;
 *   pcp_<hex>  agent API key (stored as sha256), acts as that agent;
 *   a JWT      per-run agent token, verified by the hook the heartbeat
 *              daemon installs (pc_auth_set_jwt_verifier).
 * Without credentials, local_trusted mode acts as the implicit board user
 * "local-board" on the operator listener only; authenticated mode and the
 * agent ingress leave the actor empty (401).
 */
#include <string.h>

#include "http/auth.h"
#include "http/internal.h"
#include "lib/json.h"
#include "lib/util.h"

static pc_jwt_verifier jwt_verifier;

void pc_auth_set_jwt_verifier(pc_jwt_verifier fn) { jwt_verifier = fn; }

static int pc_auth_agent_key(pc_req *req, const char *token, pc_error_t *err)
{
    char hash[65];
    pc_sha256_hex(token, strlen(token), hash);
    json_t *row = pc_db_query_one_s(
        req->app->db,
        "SELECT k.id, k.agent_id, k.company_id, a.status FROM agent_api_keys k "
        "JOIN agents a ON a.id = k.agent_id WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        json_pack("[s]", hash), err);
    if (!row) {
        if (pc_error_is_set(err))
            return -1;
        return pc_error_set(err, 401, "Invalid API key");
    }
    const char *status = pc_json_str(row, "status");
    if (status && (!strcmp(status, "terminated") || !strcmp(status, "pending_approval"))) {
        json_decref(row);
        return pc_error_set(err, 401, "Agent is not active");
    }
    req->actor.type = PC_ACTOR_AGENT;
    snprintf(req->actor.source, sizeof req->actor.source, "agent_key");
    snprintf(req->actor.agent_id, sizeof req->actor.agent_id, "%s", pc_json_str(row, "agent_id"));
    snprintf(req->actor.company_id, sizeof req->actor.company_id, "%s",
             pc_json_str(row, "company_id"));
    snprintf(req->actor.key_id, sizeof req->actor.key_id, "%s", pc_json_str(row, "id"));
    json_decref(row);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    pc_error_t ignore = PC_ERROR_INIT;
    pc_db_exec_s(req->app->db, "UPDATE agent_api_keys SET last_used_at=? WHERE id=?",
                 json_pack("[s,s]", ts, req->actor.key_id), NULL, &ignore);
    pc_error_clear(&ignore);
    return 0;
}

static int pc_auth_board_key(pc_req *req, const char *token, pc_error_t *err)
{
    char hash[65], ts[PC_ISO_LEN + 1];
    pc_sha256_hex(token, strlen(token), hash);
    pc_iso_now(ts);
    json_t *row = pc_db_query_one_s(req->app->db,
                                    "SELECT id, user_id FROM board_api_keys WHERE key_hash = ? AND "
                                    "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                                    json_pack("[s,s]", hash, ts), err);
    if (!row) {
        if (pc_error_is_set(err))
            return -1;
        return pc_error_set(err, 401, "Invalid API key");
    }
    req->actor.type = PC_ACTOR_BOARD;
    req->actor.instance_admin = true;
    snprintf(req->actor.source, sizeof req->actor.source, "board_key");
    snprintf(req->actor.user_id, sizeof req->actor.user_id, "%s", pc_json_str(row, "user_id"));
    snprintf(req->actor.key_id, sizeof req->actor.key_id, "%s", pc_json_str(row, "id"));
    json_decref(row);
    return 0;
}

int pc_auth_resolve(pc_req *req, const char *authorization, bool implicit_board, pc_error_t *err)
{
    memset(&req->actor, 0, sizeof req->actor);
    if (!authorization || !*authorization) {
        if (implicit_board && req->app->cfg.auth_mode == PC_AUTH_LOCAL_TRUSTED) {
            req->actor.type = PC_ACTOR_BOARD;
            req->actor.instance_admin = true;
            snprintf(req->actor.user_id, sizeof req->actor.user_id, "local-board");
            snprintf(req->actor.source, sizeof req->actor.source, "local_implicit");
        }
        return 0;
    }
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return pc_error_set(err, 401, "Unsupported authorization scheme");
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    if (strlen(token) == 0 || strlen(token) > 4096)
        return pc_error_set(err, 401, "Invalid API key");
    if (pc_str_has_prefix(token, "pcp_"))
        return pc_auth_agent_key(req, token, err);
    if (pc_str_has_prefix(token, "pcb_"))
        return pc_auth_board_key(req, token, err);
    if (jwt_verifier && strchr(token, '.'))
        return jwt_verifier(req, token, err);
    return pc_error_set(err, 401, "Invalid API key");
}

int pc_require_board(const pc_req *req, pc_error_t *err)
{
    if (req->actor.type != PC_ACTOR_BOARD)
        return pc_error_set(err, 403, "Board access required");
    return 0;
}

int pc_require_company_access(const pc_req *req, const char *company_id, pc_error_t *err)
{
    if (req->actor.type == PC_ACTOR_BOARD)
        return 0;
    if (req->actor.type == PC_ACTOR_AGENT) {
        if (company_id && !strcmp(req->actor.company_id, company_id))
            return 0;
        return pc_error_set(err, 403, "Agent key cannot access another company");
    }
    return pc_error_set(err, 401, "Unauthorized");
}
