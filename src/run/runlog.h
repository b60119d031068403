/*
 * A run's output log: ndjson lines {"ts","stream","chunk","seq"} appended to
 * <data-dir>/run-logs/<companyId>/<agentId>/<runId>.ndjson as output arrives.
 *
 * Secrets registered with pc_runlog_add_secret() are replaced by
 * "***REDACTED***" before anything is written or kept. A secret can arrive
 * split across two chunks, so each stream holds back its last
 * (longest secret - 1) bytes of an unfinished line until more output or the
 * end of the run shows whether it completes a secret.
 *
 * The file is capped (16 MiB of chunk text by default): past the cap one
 * system line says the output was truncated and the rest is dropped (but
 * still counted). The last few KiB of each stream are kept, redacted, as the
 * excerpts for the run row. Thread-safe: output callbacks may come from any
 * thread.
 */
#ifndef PC_RUN_RUNLOG_H
#define PC_RUN_RUNLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

#define PC_RUNLOG_DEFAULT_CAP (16u * 1024 * 1024)
#define PC_RUNLOG_EXCERPT 8192
#define PC_RUNLOG_REDACTED "***REDACTED***"

typedef struct pc_runlog pc_runlog;

/* Creates the directories and the file. log_ref receives the path relative
 * to the run-logs root ("<cid>/<aid>/<rid>.ndjson"). */
pc_runlog *pc_runlog_open(const char *data_dir, const char *company_id, const char *agent_id,
                          const char *run_id, size_t cap, pc_error_t *err);
/* Secrets shorter than 4 bytes are ignored (they would redact noise). */
void pc_runlog_add_secret(pc_runlog *log, const char *secret);
/* Appends output of a stream ("stdout", "stderr" or "system"). */
void pc_runlog_write(pc_runlog *log, const char *stream, const char *data, size_t len);
/* Flushes held-back bytes; call once the producer is done. */
void pc_runlog_flush(pc_runlog *log);

/* Results (valid until close). Excerpts are redacted, NUL-terminated. */
const char *pc_runlog_ref(const pc_runlog *log);
int64_t pc_runlog_bytes(pc_runlog *log);       /* bytes of the file */
void pc_runlog_sha256(pc_runlog *log, char out[65]);
int64_t pc_runlog_seq(pc_runlog *log);
bool pc_runlog_truncated(pc_runlog *log);
char *pc_runlog_excerpt(pc_runlog *log, const char *stream); /* caller frees */
/* Redacts s in place-copy: returns a new string with every secret replaced. */
char *pc_runlog_redact(pc_runlog *log, const char *s, size_t len);
void pc_runlog_close(pc_runlog *log);

/* Followers (the log's SSE stream) wait for a run's log to change instead of
 * polling it. A watch may be opened before the run has a log (a queued run)
 * and outlives it (a finished run): it is keyed by run id. Its version grows
 * when a line is written, the log is opened or closed, or
 * pc_runlog_notify() is called for the run (its status changed without
 * output). A follower reads the version, then the file and the run's status,
 * then waits for the version to move past what it read, so a change between
 * the two is never lost. Thread-safe. */
typedef struct pc_runlog_watch pc_runlog_watch;

pc_runlog_watch *pc_runlog_watch_open(const char *run_id);
void pc_runlog_watch_close(pc_runlog_watch *w);
uint64_t pc_runlog_watch_version(pc_runlog_watch *w);
/* Waits until the version differs from seen, at most timeout_ms; returns the
 * version then (== seen on timeout). */
uint64_t pc_runlog_watch_wait(pc_runlog_watch *w, uint64_t seen, int64_t timeout_ms);
/* Wakes the followers of run_id, if any. */
void pc_runlog_notify(const char *run_id);

/* Absolute path of a run's log from its ref (caller frees); NULL if the ref
 * would escape the run-logs root. */
char *pc_runlog_path(const char *data_dir, const char *log_ref);

#endif
