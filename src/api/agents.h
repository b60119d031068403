/* Agents: hooks other modules install into the agents routes. */
#ifndef PC_API_AGENTS_H
#define PC_API_AGENTS_H

#include "app.h"
#include "lib/error.h"

extern const char *const pc_adapter_types[];

/* Checks that env_id is an active environment of company_id (installed by the
 * environments module); -1 with a 422 otherwise. */
typedef int (*pc_agent_env_validator)(pc_app *app, const char *company_id, const char *env_id,
                                      pc_error_t *err);
void pc_agents_set_env_validator(pc_agent_env_validator fn);

#endif
