/*
 * Workspace sync for runs on another machine (ssh, sandbox, plugin
 * drivers): the agent's host workspace is copied into the realized remote
 * cwd before the command, and what the run changed comes back after it.
 *
 * Both directions move a ustar archive (written and read here, no library).
 * A sandbox provider that serves environmentSyncIn and environmentSyncOut
 * moves the archive file itself (one `file` mapping between a private host
 * directory under <data-dir>/tmp and /tmp on the target). Otherwise it goes
 * through the lease's own execute path, base64-encoded in chunks of
 * PC_SYNC_CHUNK bytes so every transport (an ssh pipe, a provider's JSON
 * stdin/stdout with its output limit) carries it unchanged. Either way the
 * target unpacks and packs with its own tar: it needs sh, tar, wc, and for
 * the chunked path base64 and dd.
 *
 * The archive that comes back is hostile input. pc_sync_apply() validates
 * every entry before anything in the workspace changes and extracts into a
 * temporary tree inside the workspace first; only then are the changed
 * entries renamed into place. See docs/environments.md, "Workspace sync",
 * for the rules (what counts as changed, how deletions are applied).
 */
#ifndef PC_ENV_SYNC_H
#define PC_ENV_SYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "env/env.h"
#include "lib/error.h"

/* Raw bytes per execute call; base64 makes it about 1.4 MiB on the wire,
 * well under the providers' default 4 MiB output limit. */
#define PC_SYNC_CHUNK ((size_t)1 << 20)

/* Names starting with this in the workspace root are the sync's own
 * temporary trees: never sent, never taken back. */
#define PC_SYNC_TMP_PREFIX ".paperclip-sync-"

typedef struct pc_sync_stats {
    int64_t sent_entries;   /* entries in the archive sent */
    int64_t sent_bytes;     /* its size */
    int64_t recv_bytes;     /* size of the archive that came back */
    int64_t written;        /* entries written into the workspace */
    int64_t deleted;        /* entries removed from the workspace */
    int64_t stale;          /* entries left out as older than the run */
    bool native;            /* moved by the provider's environmentSyncIn/Out */
} pc_sync_stats;

/* Writes a ustar archive of the directory host_dir to out: regular files,
 * directories and symlinks (anything else is skipped), never following a
 * symlink. *manifest (new object) maps every archived path to what the host
 * had: {"t": "f"|"d"|"l", "s": size, "m": mtime}. Fails when the archive
 * would exceed max_bytes. */
int pc_sync_write_archive(const char *host_dir, FILE *out, size_t max_bytes, json_t **manifest,
                          int64_t *entries, pc_error_t *err);

/* Validates and applies the archive in `in` (read from its current offset)
 * to host_dir: entries that differ from the host's copy are written,
 * manifest paths the archive no longer has are deleted. With since >= 0,
 * entries not in the manifest whose mtime is older than since (leftovers in
 * a kept remote cwd) are left out. Any unsafe entry
 * (absolute path, `..`, symlink leaving the workspace, hard link, device,
 * fifo, a path through a symlink) or more than max_bytes of content fails
 * the whole sync with nothing in the workspace changed. manifest may be
 * NULL (nothing is deleted then). */
int pc_sync_apply(const char *host_dir, FILE *in, size_t max_bytes, json_t *manifest,
                  int64_t since, pc_sync_stats *st, pc_error_t *err);

/* The two steps of a run. env is the run's environment (the remote tar and
 * base64 are found through its PATH). sync_in's *manifest (new object,
 * opaque to callers) is what sync_out needs: {"paths": what was sent,
 * "since": the target's clock when it was unpacked, minus 1 s}. Errors name
 * the step ("workspace sync in: ..."); a cancelled execute is an error with
 * status 409. */
int pc_env_sync_in(pc_lease *lease, const char *host_dir, const char *remote_cwd, json_t *env,
                   size_t max_bytes, json_t **manifest, pc_sync_stats *st, pc_error_t *err);
int pc_env_sync_out(pc_lease *lease, const char *host_dir, const char *remote_cwd, json_t *env,
                    size_t max_bytes, json_t *manifest, pc_sync_stats *st, pc_error_t *err);

#endif
