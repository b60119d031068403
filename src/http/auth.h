/*
 * Credentials: the hook for per-run agent JWTs. Board keys are created by
 * model/board_keys.h; like agent keys they are stored only as sha256 hashes.
 */
#ifndef PC_HTTP_AUTH_H
#define PC_HTTP_AUTH_H

#include "http/http.h"

/* Verifies a JWT bearer token and fills req->actor; -1 with 401 on failure. */
typedef int (*pc_jwt_verifier)(pc_req *req, const char *token, pc_error_t *err);
void pc_auth_set_jwt_verifier(pc_jwt_verifier fn);

#endif
