/*
 * The activity log: one row per mutation, written by the API and by the
 * layers below it (leases, runs) alike.
 *
 * Ownership: details is borrowed by pc_activity_log() and stolen by
 * pc_activity_log_steal(); pc_changed_fields() returns a new reference.
 */
#ifndef PC_MODEL_ACTIVITY_H
#define PC_MODEL_ACTIVITY_H

#include <jansson.h>

#include "app.h"
#include "lib/error.h"
#include "model/actor.h"

/* Appends an activity row. details (borrowed, may be NULL) must never carry
 * secrets. actor comes from the request (NULL for system actions). */
int pc_activity_log(pc_app *app, const pc_actor *actor, const char *company_id, const char *action,
                    const char *entity_type, const char *entity_id, json_t *details,
                    pc_error_t *err);
/* pc_activity_log() taking ownership of details, so call sites can build
 * them inline. */
int pc_activity_log_steal(pc_app *app, const pc_actor *actor, const char *company_id,
                          const char *action, const char *entity_type, const char *entity_id,
                          json_t *details, pc_error_t *err);
/* The names of body's keys as a JSON array (activity "changedFields"). */
json_t *pc_changed_fields(json_t *body);

#endif
