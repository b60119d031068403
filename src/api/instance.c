/*
 * Instance settings: GET/PATCH /api/instance/settings/experimental.
 *
 * The experimental flags are upstream's (packages/shared instance
 * validators): booleans with their defaults, one bounded integer and two
 * read-only activation fields. Reading needs the board (the web UI reads them
 * to decide what to show); changing them needs an instance admin, which every
 * board user is here. A PATCH names only the keys it changes; a key of the
 * wrong type is a 400 Validation error and changes nothing, unknown keys are
 * dropped as upstream's schema strips them. Every change writes an activity
 * row in every company, as upstream does.
 */
#include <string.h>

#include "api/api.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

#define LOOKBACK_KEY "issueGraphLivenessAutoRecoveryLookbackHours"
#define LOOKBACK_DEFAULT 24
#define LOOKBACK_MIN 1
#define LOOKBACK_MAX (24 * 30)

typedef struct flag {
    const char *key;
    bool dflt;
} flag;

static const flag flags[] = {
    {"enableEnvironments", false},
    {"enableIsolatedWorkspaces", false},
    {"enableStreamlinedLeftNavigation", true},
    {"enableApps", false},
    {"enablePipelines", false},
    {"enableCases", false},
    {"enableConferenceRoomChat", false},
    {"enableTaskChatRedesign", false},
    {"enableTaskWatchdogs", false},
    {"enableIssuePlanDecompositions", false},
    {"enableExperimentalFileViewer", false},
    {"enableExternalObjects", false},
    {"enableSmokeLab", false},
    {"enableSkillUsageAnalytics", false},
    {"enableBuiltInAgents", false},
    {"enableBetaSkills", false},
    {"enableSummaries", false},
    {"enableStatusCards", false},
    {"enableDecisions", false},
    {"enableGoalsSidebarLink", false},
    {"enableServerInfoDebugView", false},
    {"enableSimplifiedEnglishInteractions", false},
    {"autoRestartDevServerWhenIdle", false},
    {"enableIssueGraphLivenessAutoRecovery", false},
    {"enableWorkspaceBranchReconcileForward", true},
    {"enableWorkspaceDirtyQuarantineRepair", true},
    {"enableOwnerInstanceAdmin", false},
    {"enableWorktreeRunExecution", false},
    {NULL, false},
};

/* Read-only: set by the daemon when a feature is activated, never by PATCH. */
static const char *const readonly_keys[] = {"worktreeRunExecutionActivatedAt",
                                            "worktreeRunExecutionActivationInstanceId", NULL};

/* The stored row, created on first use. */
static json_t *settings_row(pc_app *app, pc_error_t *err)
{
    char ts[PC_ISO_LEN + 1], id[PC_UUID_LEN + 1];
    pc_iso_now(ts);
    pc_uuid_v4(id);
    if (pc_db_exec_s(app->db,
                     "INSERT INTO instance_settings(id,singleton_key,general,experimental,"
                     "created_at,updated_at) VALUES(?,'default','{}','{}',?,?) "
                     "ON CONFLICT(singleton_key) DO NOTHING",
                     json_pack("[s,s,s]", id, ts, ts), NULL, err) < 0)
        return NULL;
    json_t *row = pc_db_query_one_s(
        app->db, "SELECT * FROM instance_settings WHERE singleton_key='default'", json_array(),
        err);
    if (!row && !pc_error_is_set(err))
        pc_error_set(err, 500, "instance settings row missing");
    return row;
}

/* Every flag with the stored value or its default (new ref). */
static json_t *experimental_view(json_t *stored)
{
    json_t *out = json_object();
    for (const flag *f = flags; f->key; f++) {
        json_t *v = json_object_get(stored, f->key);
        json_object_set_new(out, f->key, json_boolean(json_is_boolean(v) ? json_is_true(v)
                                                                         : f->dflt));
    }
    for (int k = 0; readonly_keys[k]; k++) {
        json_t *v = json_object_get(stored, readonly_keys[k]);
        json_object_set_new(out, readonly_keys[k], json_is_string(v) ? json_copy(v) : json_null());
    }
    json_t *lb = json_object_get(stored, LOOKBACK_KEY);
    json_object_set_new(out, LOOKBACK_KEY,
                        json_is_integer(lb) ? json_copy(lb) : json_integer(LOOKBACK_DEFAULT));
    return out;
}

static int experimental_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    _cleanup_json_ json_t *row = settings_row(req->app, err);
    if (!row)
        return -1;
    _cleanup_json_ json_t *stored = pc_json_from_text(pc_json_str(row, "experimental"));
    return pc_resp_json(resp, 200, experimental_view(stored));
}

static int experimental_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    if (pc_require_board(req, err) < 0)
        return -1;
    if (!req->actor.instance_admin)
        return pc_error_set(err, 403, "Instance admin access required");
    json_t *b = req->body;
    if (pc_json_check_is_object(b, err) < 0)
        return -1;
    /* Validate everything before storing anything. */
    _cleanup_json_ json_t *changes = json_object();
    for (const flag *f = flags; f->key; f++) {
        bool v, present = false;
        if (pc_json_check_bool(b, f->key, PC_J_OPTIONAL, &v, &present, err) < 0)
            return -1;
        if (present)
            json_object_set_new(changes, f->key, json_boolean(v));
    }
    int64_t lb;
    bool lb_present = false;
    if (pc_json_check_int(b, LOOKBACK_KEY, PC_J_OPTIONAL, LOOKBACK_MIN, LOOKBACK_MAX, &lb,
                          &lb_present, err) < 0)
        return -1;
    if (lb_present)
        json_object_set_new(changes, LOOKBACK_KEY, json_integer(lb));

    if (pc_db_begin(req->app->db, err) < 0)
        return -1;
    json_t *row = settings_row(req->app, err);
    if (!row) {
        pc_db_rollback(req->app->db);
        return -1;
    }
    _cleanup_json_ json_t *stored = pc_json_from_text(pc_json_str(row, "experimental"));
    if (!json_is_object(stored)) {
        json_decref(stored);
        stored = json_object();
    }
    json_object_update(stored, changes);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    char *text = pc_json_dumps(stored);
    const char *sid = pc_json_str(row, "id");
    char settings_id[PC_UUID_LEN + 1];
    snprintf(settings_id, sizeof settings_id, "%s", sid ? sid : "");
    json_decref(row);
    int rc = pc_db_exec_s(req->app->db,
                          "UPDATE instance_settings SET experimental=?, updated_at=? WHERE "
                          "singleton_key='default'",
                          json_pack("[s,s]", text, ts), NULL, err);
    free(text);
    if (rc < 0 || pc_db_commit(req->app->db, err) < 0) {
        pc_db_rollback(req->app->db);
        return -1;
    }
    json_t *view = experimental_view(stored);
    /* The changed keys, as upstream records them. */
    json_t *keys = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(changes, k, v) json_array_append_new(keys, json_string(k));
    json_t *companies = NULL;
    if (pc_db_query_s(req->app->db, "SELECT id FROM companies ORDER BY created_at", json_array(),
                      &companies, err) == 0) {
        size_t i;
        json_t *c;
        json_array_foreach(companies, i, c)
        {
            pc_activity_log_steal(req->app, &req->actor, pc_json_str(c, "id"),
                                  "instance.settings.experimental_updated", "instance_settings",
                                  settings_id,
                                  json_pack("{s:O,s:O}", "experimental", view, "changedKeys",
                                            keys),
                                  err);
            pc_error_clear(err);
        }
    }
    pc_error_clear(err);
    json_decref(companies);
    json_decref(keys);
    return pc_resp_json(resp, 200, view);
}

const pc_route pc_routes_instance[] = {
    {"GET", "/api/instance/settings/experimental", experimental_get, 0},
    {"PATCH", "/api/instance/settings/experimental", experimental_patch, 0},
    {NULL, NULL, NULL, 0},
};
