/*
 * Companies: GET/POST /api/companies, GET/PATCH/DELETE /api/companies/:id.
 * The issue prefix starts from the name as upstream does — the first three
 * letters, upper-cased ("Peer Co" -> "PEE", no letters -> "CMP"). When that
 * is taken the smallest free number from 2 up is appended (PEE2, PEE3, ...):
 * prefixes stay short and deterministic however many companies share a name,
 * where upstream's growing "A" suffixes get long and stop after a fixed count.
 * The unique index on issue_prefix is the arbiter: an insert that loses a race
 * (another writer took the candidate first) is retried with a fresh look.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static const char *const company_statuses[] = {"active", "paused", "archived", NULL};

json_t *pc_company_get(pc_app *app, const char *company_id, pc_error_t *err)
{
    return pc_row_load(app, "SELECT * FROM companies WHERE id=?", company_id, pc_company_from_row,
                       "Company not found", err);
}

static void pc_issue_prefix_base(const char *name, char out[4])
{
    int n = 0;
    for (const char *p = name; *p && n < 3; p++) {
        if (isalpha((unsigned char)*p) && ((unsigned char)*p < 0x80))
            out[n++] = (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
    if (n == 0)
        strcpy(out, "CMP");
}

/* Retries of an insert that lost the race for its prefix. Each retry sees the
 * winner's row, so this only bounds pathological contention. */
#define PC_PREFIX_RETRIES 64

/* Writes the first free prefix of the sequence base, base2, base3, ... into
 * out. Reads every taken prefix that starts with base once, so the cost is one
 * query however long the sequence already is. */
static int pc_issue_prefix_pick(pc_db *db, const char *base, char *out, size_t outsz,
                                pc_error_t *err)
{
    _cleanup_json_ json_t *rows = NULL;
    /* base is only A-Z, so it needs no LIKE escaping. */
    char pattern[8];
    snprintf(pattern, sizeof pattern, "%s%%", base);
    if (pc_db_query_s(db, "SELECT issue_prefix FROM companies WHERE issue_prefix LIKE ?",
                      json_pack("[s]", pattern), &rows, err) < 0)
        return -1;
    size_t blen = strlen(base), n = json_array_size(rows);
    /* taken[k] marks the number k as used (1 stands for the bare base); a
     * number beyond the row count cannot be the smallest free one. */
    _cleanup_free_ bool *taken = pc_xcalloc(n + 2, sizeof *taken);
    for (size_t r = 0; r < n; r++) {
        const char *p = pc_json_str(json_array_get(rows, r), "issue_prefix");
        if (!p || strncasecmp(p, base, blen) != 0)
            continue;
        const char *tail = p + blen;
        if (!*tail) {
            taken[1] = true;
            continue;
        }
        if (*tail < '1' || *tail > '9' || strlen(tail) > 9)
            continue;
        char *end = NULL;
        long k = strtol(tail, &end, 10);
        if (*end == '\0' && k >= 2 && (size_t)k <= n + 1)
            taken[k] = true;
    }
    size_t k = 1;
    while (k <= n && taken[k])
        k++;
    if (k == 1)
        snprintf(out, outsz, "%s", base);
    else
        snprintf(out, outsz, "%s%zu", base, k);
    return 0;
}

static int pc_companies_list(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    json_t *rows = NULL;
    if (req->actor.type == PC_ACTOR_AGENT) {
        if (pc_db_query_s(req->app->db, "SELECT * FROM companies WHERE id=? ORDER BY created_at",
                          json_pack("[s]", req->actor.company_id), &rows, err) < 0)
            return -1;
    } else if (pc_db_query(req->app->db, "SELECT * FROM companies ORDER BY created_at", NULL, &rows,
                           err) < 0) {
        return -1;
    }
    return pc_resp_json(resp, 200, pc_rows_map(rows, pc_company_from_row));
}

static int pc_companies_create(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    static const char *const keys[] = {"name", "description", "budgetMonthlyCents",
                                       "requireBoardApprovalForNewAgents", "brandColor", NULL};
    const char *name = NULL, *description = NULL, *brand = NULL;
    int64_t budget = 0;
    bool approval = false;
    if (pc_require_board(req, err) < 0 || pc_json_check_is_object(req->body, err) < 0 ||
        pc_json_check_keys(req->body, keys, err) < 0 ||
        pc_json_check_string(req->body, "name", PC_J_REQUIRED, 1, 200, &name, err) < 0 ||
        pc_json_check_string(req->body, "description", PC_J_NULLABLE, 0, 10000, &description,
                             err) < 0 ||
        pc_json_check_int(req->body, "budgetMonthlyCents", 0, 0, INT64_MAX / 2, &budget, NULL,
                          err) < 0 ||
        pc_json_check_bool(req->body, "requireBoardApprovalForNewAgents", 0, &approval, NULL,
                           err) < 0 ||
        pc_json_check_string(req->body, "brandColor", PC_J_NULLABLE, 0, 32, &brand, err) < 0)
        return -1;

    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1], base[4], prefix[32];
    pc_uuid_v7(id);
    pc_iso_now(ts);
    pc_issue_prefix_base(name, base);
    pc_db *db = req->app->db;
    for (int attempt = 0;; attempt++) {
        if (pc_db_begin(db, err) < 0)
            return -1;
        if (pc_issue_prefix_pick(db, base, prefix, sizeof prefix, err) < 0) {
            pc_db_rollback(db);
            return -1;
        }
        _cleanup_json_ json_t *created =
            json_pack("{s:s,s:s}", "name", name, "issuePrefix", prefix);
        if (pc_db_exec_s(db,
                         "INSERT INTO companies(id,name,description,issue_prefix,"
                         "budget_monthly_cents,require_board_approval_for_new_agents,brand_color,"
                         "created_at,updated_at) VALUES(?,?,?,?,?,?,?,?,?)",
                         json_pack("[s,s,s?,s,I,b,s?,s,s]", id, name, description, prefix,
                                   (json_int_t)budget, approval, brand, ts, ts),
                         NULL, err) < 0) {
            pc_db_rollback(db);
            /* Only a lost race for the prefix is retried; the bound is on
             * retries under contention, not on how many prefixes exist. */
            if (err->status == 409 && strstr(err->msg, "issue_prefix") &&
                attempt < PC_PREFIX_RETRIES) {
                pc_error_clear(err);
                continue;
            }
            if (err->status == 409 && strstr(err->msg, "issue_prefix")) {
                pc_error_clear(err);
                return pc_error_set(err, 409, "Unable to allocate unique issue prefix");
            }
            return -1;
        }
        if (pc_activity_log(req->app, &req->actor, id, "company.created", "company", id, created,
                            err) < 0 ||
            pc_db_commit(db, err) < 0) {
            pc_db_rollback(db);
            return -1;
        }
        break;
    }
    json_t *c = pc_company_get(req->app, id, err);
    if (!c)
        return -1;
    return pc_resp_json(resp, 201, c);
}

static int pc_companies_get(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!id || pc_require_company_access(req, id, err) < 0)
        return -1;
    json_t *c = pc_company_get(req->app, id, err);
    return c ? pc_resp_json(resp, 200, c) : -1;
}

static int pc_companies_patch(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    static const char *const keys[] = {"name", "description", "status", "budgetMonthlyCents",
                                       "requireBoardApprovalForNewAgents", "brandColor",
                                       "pauseReason", NULL};
    const char *id = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!id || pc_require_board(req, err) < 0 || pc_json_check_is_object(req->body, err) < 0 ||
        pc_json_check_keys(req->body, keys, err) < 0)
        return -1;
    const char *name = NULL, *description = NULL, *status = NULL, *brand = NULL, *reason = NULL;
    int64_t budget = 0;
    bool budget_set = false, approval = false, approval_set = false;
    if (pc_json_check_string(req->body, "name", 0, 1, 200, &name, err) < 0 ||
        pc_json_check_string(req->body, "description", PC_J_NULLABLE, 0, 10000, &description,
                             err) < 0 ||
        pc_json_check_enum(req->body, "status", 0, company_statuses, &status, err) < 0 ||
        pc_json_check_int(req->body, "budgetMonthlyCents", 0, 0, INT64_MAX / 2, &budget,
                          &budget_set, err) < 0 ||
        pc_json_check_bool(req->body, "requireBoardApprovalForNewAgents", 0, &approval,
                           &approval_set, err) < 0 ||
        pc_json_check_string(req->body, "brandColor", PC_J_NULLABLE, 0, 32, &brand, err) < 0 ||
        pc_json_check_string(req->body, "pauseReason", PC_J_NULLABLE, 0, 2000, &reason, err) < 0)
        return -1;
    json_t *cur = pc_company_get(req->app, id, err);
    if (!cur)
        return -1;
    json_decref(cur);
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    json_t *b = req->body;
    pc_db *db = req->app->db;
    json_t *changed = pc_changed_fields(b);
    int rc = pc_db_begin(db, err);
    if (rc == 0)
        rc = pc_db_exec_s(
            db,
            "UPDATE companies SET "
            "name=CASE WHEN ? THEN ? ELSE name END,"
            "description=CASE WHEN ? THEN ? ELSE description END,"
            "status=CASE WHEN ? THEN ? ELSE status END,"
            "paused_at=CASE WHEN ? THEN (CASE WHEN ?='paused' THEN ? ELSE NULL END) ELSE paused_at END,"
            "budget_monthly_cents=CASE WHEN ? THEN ? ELSE budget_monthly_cents END,"
            "require_board_approval_for_new_agents=CASE WHEN ? THEN ? ELSE "
            "require_board_approval_for_new_agents END,"
            "brand_color=CASE WHEN ? THEN ? ELSE brand_color END,"
            "pause_reason=CASE WHEN ? THEN ? ELSE pause_reason END,"
            "updated_at=? WHERE id=?",
            json_pack("[b,s?,b,s?,b,s?,b,s?,s,b,I,b,b,b,s?,b,s?,s,s]", name != NULL, name,
                      json_object_get(b, "description") != NULL, description, status != NULL,
                      status, status != NULL, status, ts, budget_set, (json_int_t)budget,
                      approval_set, approval, json_object_get(b, "brandColor") != NULL, brand,
                      json_object_get(b, "pauseReason") != NULL, reason, ts, id),
            NULL, err);
    _cleanup_json_ json_t *details = json_pack("{s:O}", "changedFields", changed);
    if (rc == 0)
        rc = pc_activity_log(req->app, &req->actor, id, "company.updated", "company", id, details,
                             err);
    if (rc == 0)
        rc = pc_db_commit(db, err);
    json_decref(changed);
    if (rc < 0) {
        pc_db_rollback(db);
        return -1;
    }
    json_t *c = pc_company_get(req->app, id, err);
    return c ? pc_resp_json(resp, 200, c) : -1;
}

static int pc_companies_delete(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    const char *id = pc_param_uuid(req, "companyId", "Company not found", err);
    if (!id || pc_require_board(req, err) < 0)
        return -1;
    int64_t changes = 0;
    /* Activity rows cascade with the company, so the deletion is logged. */
    pc_info("company %s deleted by %s", id, req->actor.user_id);
    if (pc_db_exec_s(req->app->db, "DELETE FROM companies WHERE id=?", json_pack("[s]", id),
                     &changes, err) < 0)
        return -1;
    if (changes == 0)
        return pc_error_set(err, 404, "Company not found");
    return pc_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
}

const pc_route pc_routes_companies[] = {
    {"GET", "/api/companies", pc_companies_list, 0},
    {"POST", "/api/companies", pc_companies_create, 0},
    {"GET", "/api/companies/:companyId", pc_companies_get, 0},
    {"PATCH", "/api/companies/:companyId", pc_companies_patch, 0},
    {"DELETE", "/api/companies/:companyId", pc_companies_delete, 0},
    {NULL, NULL, NULL, 0},
};
