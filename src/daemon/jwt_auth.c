/* Run tokens as HTTP credentials: the daemon hands the heartbeat layer's
 * check to the HTTP layer, which knows nothing about runs. */
#include "daemon/services.h"
#include "http/http.h"
#include "run/jwt.h"

int pc_daemon_jwt_auth(pc_req *req, const char *token, pc_error_t *err)
{
    pc_jwt_req jr = {.app = req->app, .run_id_header = req->run_id_header};
    if (pc_jwt_auth(&jr, token, err) < 0)
        return -1;
    req->actor = jr.actor;
    return 0;
}
