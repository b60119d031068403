/*
 * Credentials: board API keys and the hook for per-run agent JWTs.
 * Keys are shown once at creation and stored only as sha256 hashes.
 */
#ifndef PC_HTTP_AUTH_H
#define PC_HTTP_AUTH_H

#include "http/http.h"

#define PC_BOARD_KEY_LEN 52 /* "pcb_" + 48 hex */

/* Verifies a JWT bearer token and fills req->actor; -1 with 401 on failure. */
typedef int (*pc_jwt_verifier)(pc_req *req, const char *token, pc_error_t *err);
void pc_auth_set_jwt_verifier(pc_jwt_verifier fn);

int pc_board_key_create(pc_db *db, const char *name, char token_out[PC_BOARD_KEY_LEN + 1],
                        pc_error_t *err);

#endif
