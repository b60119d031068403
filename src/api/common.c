#include <string.h>

#include "api/api.h"
#include "lib/json.h"
#include "lib/util.h"

int pc_activity_log(pc_app *app, const pc_actor *actor, const char *company_id, const char *action,
                    const char *entity_type, const char *entity_id, json_t *details,
                    pc_error_t *err)
{
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    const char *actor_type = "system", *actor_id = "system", *agent_id = NULL, *run_id = NULL;
    if (actor && actor->type == PC_ACTOR_BOARD) {
        actor_type = "user";
        actor_id = actor->user_id;
    } else if (actor && actor->type == PC_ACTOR_AGENT) {
        actor_type = "agent";
        actor_id = actor->agent_id;
        agent_id = actor->agent_id;
        run_id = actor->run_id[0] ? actor->run_id : NULL;
    }
    return pc_db_exec_s(app->db,
                        "INSERT INTO activity_log(id,company_id,actor_type,actor_id,action,"
                        "entity_type,entity_id,agent_id,run_id,details,created_at) "
                        "VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                        json_pack("[s,s,s,s,s,s,s,s?,s?,O?,s]", id, company_id, actor_type, actor_id,
                                  action, entity_type, entity_id, agent_id, run_id, details, ts),
                        NULL, err);
}

const char *pc_param_uuid(const pc_req *req, const char *name, const char *not_found,
                          pc_error_t *err)
{
    const char *v = pc_req_param(req, name);
    if (!v || !pc_uuid_valid(v)) {
        pc_error_set(err, 404, "%s", not_found);
        return NULL;
    }
    return v;
}

void pc_json_set_from_text(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_object_set_new(obj, key, pc_json_from_text(pc_json_str(row, column)));
}

void pc_json_copy(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    /* Keys are string literals (ASCII field names): skip the UTF-8 check. */
    json_object_set_nocheck(obj, key, v ? v : json_null());
}

void pc_json_copy_bool(json_t *obj, const char *key, json_t *row, const char *column)
{
    json_t *v = json_object_get(row, column);
    json_object_set_new(obj, key, json_boolean(json_is_integer(v) && json_integer_value(v) != 0));
}
