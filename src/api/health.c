#include "app.h"
#include "http/http.h"

static int pc_health(pc_req *req, pc_resp *resp, pc_error_t *err)
{
    (void)err;
    return pc_resp_json(resp, 200,
                        json_pack("{s:s,s:s,s:s,s:s}", "status", "ok", "version", PC_VERSION,
                                  "deploymentMode",
                                  req->app->cfg.auth_mode == PC_AUTH_LOCAL_TRUSTED
                                      ? "local_trusted"
                                      : "authenticated",
                                  "instanceId", req->app->instance_id));
}

const pc_route pc_routes_health[] = {
    {"GET", "/api/health", pc_health, PC_ROUTE_PUBLIC},
    {NULL, NULL, NULL, 0},
};
