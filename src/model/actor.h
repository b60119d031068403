/*
 * Who performs an action: the board, an agent (by API key or run token) or,
 * when no actor is given, the system. The HTTP layer fills one per request
 * from its credentials; the model records it in the activity log. Plain data
 * with fixed-size fields, so it can be copied freely.
 */
#ifndef PC_MODEL_ACTOR_H
#define PC_MODEL_ACTOR_H

#include <stdbool.h>

typedef enum { PC_ACTOR_NONE = 0, PC_ACTOR_BOARD, PC_ACTOR_AGENT } pc_actor_type;

typedef struct pc_actor {
    pc_actor_type type;
    char user_id[64];    /* board: "local-board" or the key's user */
    char source[32];     /* board: "local_implicit" | "board_key"; agent: "agent_key" | "agent_jwt" */
    bool instance_admin; /* board users are instance admins here */
    char agent_id[40];
    char company_id[40];
    char run_id[40];     /* agent JWT's run id ("" if none) */
    char key_id[40];
} pc_actor;

#endif
