/*
 * Per-run agent tokens: HS256 JWTs with upstream's claims
 * {sub, company_id, adapter_type, run_id, iat, exp, iss "paperclip",
 *  aud "paperclip-api", instance_id}, valid 48 hours; the HTTP verifier
 *  also refuses a token, on every request, once its run is no longer
 *  queued or running.
 *
 * The signing secret is 32 random bytes created on first start and kept in
 * <data-dir>/agent-jwt-secret (mode 0600, hex); $PAPERCLIP_AGENT_JWT_SECRET
 * overrides it, as upstream. The secret lives in process memory only after
 * pc_jwt_init(); it is never logged.
 */
#ifndef PC_RUN_JWT_H
#define PC_RUN_JWT_H

#include <jansson.h>
#include <stdint.h>

#include "app.h"
#include "lib/error.h"
#include "model/actor.h"

#define PC_JWT_TTL_SEC (48 * 3600)
#define PC_JWT_MAX 2048

/* Loads or creates the secret. */
int pc_jwt_init(pc_app *app, pc_error_t *err);

/* Mints a run token into out (NUL-terminated). */
int pc_jwt_mint(const char *agent_id, const char *company_id, const char *adapter_type,
                const char *run_id, const char *instance_id, char out[PC_JWT_MAX],
                pc_error_t *err);

/* Verifies signature, alg, exp, iss and aud; returns the claims (new ref) or
 * NULL with a 401. now_sec is the current time (seconds). */
json_t *pc_jwt_verify(const char *token, int64_t now_sec, pc_error_t *err);

/* A request presenting a run token as its credential: what the check needs
 * (the store, the X-Paperclip-Run-Id header or NULL) and what it fills in. */
typedef struct pc_jwt_req {
    pc_app *app;
    const char *run_id_header;
    pc_actor actor; /* set on success: the token's agent, bound to its run */
} pc_jwt_req;

/* Checks token as req's credential: signature and claims, the agent (it must
 * exist in the token's company and be active), the run id header and the
 * run (it must still be queued or running; 401 otherwise). 0 with
 * req->actor set, or -1 with a 401 (422 when the header names another run). */
int pc_jwt_auth(pc_jwt_req *req, const char *token, pc_error_t *err);

#endif
