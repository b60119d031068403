/*
 * The plugin registry: the `plugins` table and its API record shape.
 *
 * Rows are keyed by id (uuid) and by plugin_key (the manifest id, unique).
 * The API record merges the stored row with the live worker state from the
 * plugin host, mapping our supervision states onto upstream's plugin status
 * values: disabled when the plugin is disabled, ready while its worker runs,
 * error once supervision gave up, installed otherwise (starting, restarting
 * after a crash). Config and env values are never part of a record: they may
 * hold secrets.
 *
 * At rest every env value, and each config field the manifest's
 * instanceConfigSchema marks as a secret (format "secret-ref" or "secret",
 * or secret: true), is sealed with the secrets module (model/secrets.h);
 * pc_plugin_row_start opens them for the worker and nothing else does.
 */
#ifndef PC_PLUGIN_REGISTRY_H
#define PC_PLUGIN_REGISTRY_H

#include <jansson.h>

#include "app.h"
#include "lib/error.h"
#include "plugin/host.h"
#include "plugin/manifest.h"

/* Finds a row by uuid or plugin key (upstream's resolvePlugin). NULL with a
 * 404 "Plugin not found" when absent. */
json_t *pc_plugin_row_get(pc_db *db, const char *id_or_key, pc_error_t *err);
/* All rows in install order (new array). */
json_t *pc_plugin_rows(pc_db *db, pc_error_t *err);
/* Inserts a row for a loaded package; 409 when the key is installed. config
 * and env (borrowed, may be NULL) are stored with their secret values
 * sealed (secrets must be initialised). Returns the row. */
json_t *pc_plugin_row_insert(pc_db *db, const pc_plugin_package *pkg, json_t *config, json_t *env,
                             pc_error_t *err);
int pc_plugin_row_update_status(pc_db *db, const char *id, int enabled /* -1 = keep */,
                                const char *status, const char *last_error, pc_error_t *err);
int pc_plugin_row_delete(pc_db *db, const char *id, pc_error_t *err);

/* Seals env and secret config values stored in plaintext (rows written
 * before sealing existed); the old bytes are overwritten and the WAL
 * checkpointed. Idempotent. */
int pc_plugin_seal_rows(pc_db *db, pc_error_t *err);

/* Starts the row's worker on host (wait_ms as for pc_plugin_host_add),
 * with the sealed values opened. */
int pc_plugin_row_start(pc_plugin_host *host, json_t *row, int64_t wait_ms, pc_error_t *err);

/* The API record for a row (new object). host may be NULL. */
json_t *pc_plugin_record(json_t *row, pc_plugin_host *host);

#endif
