/*
 * Plugin packages and manifests.
 *
 * A plugin package is a directory whose package.json carries
 *   "paperclipPlugin": {"manifest": "./manifest.json", "worker": "./worker"}
 * exactly as upstream. A native plugin ships a JSON manifest; a JS plugin may
 * ship a .js/.mjs module whose default export is the manifest, in which case
 * node is asked once (scrubbed environment, 15 s, bounded output) to print it.
 *
 * Every path is canonicalised with realpath(3) and must stay inside the
 * canonical package directory, so neither "../" nor a symlink can point the
 * host at a binary outside the package. The manifest is then validated with
 * upstream's rules (PaperclipPluginManifestV1); each failure has its own
 * message and the 422 status the install route answers with.
 */
#ifndef PC_PLUGIN_MANIFEST_H
#define PC_PLUGIN_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"

/* Upper bound on package.json, a JSON manifest and node's printed manifest. */
#define PC_PLUGIN_MANIFEST_MAX (1024 * 1024)
/* How long node may take to print a JS manifest. */
#define PC_PLUGIN_MANIFEST_NODE_TIMEOUT_MS 15000

typedef struct pc_plugin_package {
    char *dir;          /* canonical package directory */
    char *package_name; /* package.json "name" (the directory name if absent) */
    char *manifest_path;/* canonical */
    char *worker_path;  /* canonical; inside dir */
    bool worker_is_js;  /* run as `node <worker_path>` */
    json_t *manifest;   /* validated manifest (owned) */
} pc_plugin_package;

/* Loads and validates the package at dir. On failure fills err (status 422
 * for an invalid package or manifest, 400 for an unusable path) and leaves
 * pkg cleared. pkg must be released with pc_plugin_package_clear(). */
int pc_plugin_package_load(const char *dir, pc_plugin_package *pkg, pc_error_t *err);
void pc_plugin_package_clear(pc_plugin_package *pkg);

/* Validates a manifest object with upstream's rules. Returns 0 or -1 with a
 * 422 whose message names the field, e.g. "manifest.version must be a
 * semantic version (got \"1.0\")". */
int pc_plugin_manifest_validate(const json_t *manifest, pc_error_t *err);

/* true if s matches ^[a-z0-9][a-z0-9._-]*$ (plugin ids and driver keys). */
bool pc_plugin_key_valid(const char *s);
/* true if s is a semantic version (semver.org 2.0.0). */
bool pc_plugin_semver_valid(const char *s);

/* Resolves the node binary: $PAPERCLIP_NODE if set, else "node" on PATH.
 * Writes an absolute path into out; -1 if none is found. */
int pc_plugin_find_node(char *out, size_t cap);

#endif
