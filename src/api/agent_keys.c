/*
 * Agent API keys: POST/GET /api/agents/:agentId/keys and
 * DELETE /api/agents/:agentId/keys/:keyId.
 *
 * A key is "pcp_" + 48 hex characters (24 random bytes). Only its sha256 is
 * stored; the token is shown once, in the create response
 * {id, name, token, createdAt}. Only the board mints and revokes keys: a
 * key outlives every run, so an agent minting one would turn a run token
 * into a permanent credential. An agent may list its own keys.
 */
#include <string.h>

#include "api/api.h"
#include "lib/json.h"
#include "lib/util.h"

static json_t *pc_keys_agent(pc_req *req, pc_error_t *err)
{
    return pc_agent_load_for(req, "Agents can only manage their own API keys", err);
}

static int pc_keys_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    json_t *a = pc_keys_agent(req, err);
    if (!a)
        return -1;
    static const char *const keys[] = {"name", NULL};
    const char *name = "default";
    json_t *b = req->body ? req->body : NULL;
    if (b && (pc_json_check_is_object(b, err) < 0 || pc_json_check_keys(b, keys, err) < 0 ||
              pc_json_check_string(b, "name", 0, 1, 200, &name, err) < 0)) {
        json_decref(a);
        return -1;
    }
    char hex[49], token[53], hash[65], id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_random_hex(hex, 24);
    snprintf(token, sizeof token, "pcp_%s", hex);
    pc_sha256_hex(token, strlen(token), hash);
    pc_uuid_v7(id);
    pc_iso_now(ts);
    const char *aid = pc_json_str(a, "id"), *cid = pc_json_str(a, "companyId");
    int rc = pc_db_exec_s(req->app->db,
                          "INSERT INTO agent_api_keys(id,agent_id,company_id,name,key_hash,"
                          "created_at) VALUES(?,?,?,?,?,?)",
                          json_pack("[s,s,s,s,s,s]", id, aid, cid, name, hash, ts), NULL, err);
    if (rc == 0) {
        json_t *details = json_pack("{s:s,s:s}", "keyId", id, "name", name);
        pc_activity_log(req->app, &req->actor, cid, "agent.key_created", "agent", aid, details,
                        err);
        json_decref(details);
        pc_error_clear(err);
    }
    json_decref(a);
    if (rc < 0)
        return -1;
    return pc_resp_json(resp, 201,
                        json_pack("{s:s,s:s,s:s,s:s}", "id", id, "name", name, "token", token,
                                  "createdAt", ts));
}

static int pc_keys_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *a = pc_keys_agent(req, err);
    if (!a)
        return -1;
    json_t *rows = NULL;
    int rc = pc_db_query_s(req->app->db,
                           "SELECT id,name,created_at,last_used_at,revoked_at FROM agent_api_keys "
                           "WHERE agent_id=? ORDER BY created_at",
                           json_pack("[s]", pc_json_str(a, "id")), &rows, err);
    json_decref(a);
    if (rc < 0)
        return -1;
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_agent_key_from_row));
}

static int pc_keys_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    json_t *a = pc_keys_agent(req, err);
    if (!a)
        return -1;
    const char *kid = pc_param_uuid(req, "keyId", "API key not found", err);
    int64_t changes = 0;
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    int rc = kid ? pc_db_exec_s(req->app->db,
                                "UPDATE agent_api_keys SET revoked_at=COALESCE(revoked_at,?) "
                                "WHERE id=? AND agent_id=?",
                                json_pack("[s,s,s]", ts, kid, pc_json_str(a, "id")), &changes, err)
                 : -1;
    json_decref(a);
    if (rc < 0)
        return -1;
    if (changes == 0)
        return pc_error_set(err, 404, "API key not found");
    return pc_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

const pc_route pc_routes_agent_keys[] = {
    {"POST", "/api/agents/:agentId/keys", pc_keys_create, 0},
    {"GET", "/api/agents/:agentId/keys", pc_keys_list, 0},
    {"DELETE", "/api/agents/:agentId/keys/:keyId", pc_keys_delete, 0},
    {NULL, NULL, NULL, 0},
};
