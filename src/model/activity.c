#include "model/activity.h"

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

int pc_activity_log_steal(pc_app *app, const pc_actor *actor, const char *company_id,
                          const char *action, const char *entity_type, const char *entity_id,
                          json_t *details, pc_error_t *err)
{
    int rc = pc_activity_log(app, actor, company_id, action, entity_type, entity_id, details, err);
    json_decref(details);
    return rc;
}

json_t *pc_changed_fields(json_t *body)
{
    json_t *changed = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) json_array_append_new(changed, json_string(k));
    return changed;
}
