/* Environment and lease rows as API objects. */
#include <string.h>

#include "model/rows.h"
#include "env/internal.h"
#include "lib/json.h"
#include "lib/util.h"

json_t *pc_env_load(pc_app *app, const char *env_id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM environments WHERE id=?", env_id, pc_env_from_row,
                       "Environment not found", err);
}

json_t *pc_env_ensure_local(pc_app *app, const char *company_id, pc_error_t *err)
{
    const char *q = "SELECT * FROM environments WHERE company_id=? AND driver='local'";
    json_t *row = pc_db_query_one_s(app->db, q, json_pack("[s]", company_id), err);
    if (!row && !pc_error_is_set(err)) {
        char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
        pc_uuid_v7(id);
        pc_iso_now(ts);
        /* The partial unique index settles a race between two first uses. */
        if (pc_db_exec_s(app->db,
                         "INSERT OR IGNORE INTO environments(id,company_id,name,description,driver,"
                         "status,config,metadata,created_at,updated_at) "
                         "VALUES(?,?,'Local',?,'local','active','{}',NULL,?,?)",
                         json_pack("[s,s,s,s,s]", id, company_id,
                                   "Runs agents on this Paperclip host.", ts, ts),
                         NULL, err) < 0)
            return NULL;
        row = pc_db_query_one_s(app->db, q, json_pack("[s]", company_id), err);
    }
    if (!row) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 500, "cannot create the local environment");
        return NULL;
    }
    json_t *e = pc_env_from_row(row);
    json_decref(row);
    return e;
}

json_t *pc_lease_load(pc_app *app, const char *lease_id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM environment_leases WHERE id=?", lease_id,
                       pc_lease_from_row, "Environment lease not found", err);
}
