/*
 * A test-side driver for a plugin worker: spawns the worker binary with
 * pipes on stdin/stdout and an explicit environment, sends JSON-RPC lines
 * and reads the answers with timeouts, as the host would.
 *
 *   pc_rpc_worker w;
 *   const char *env[] = { "PATH=/usr/bin:/bin", NULL };
 *   pc_rpc_worker_start(&w, exe, env);
 *   json_t *r = pc_rpc_call(&w, "health", NULL);
 *   ...
 *   json_decref(r);
 *   int status = pc_rpc_worker_stop(&w);
 *
 * The worker owns its pipes, its read buffer and the messages it stashed;
 * pc_rpc_worker_stop() (or pc_rpc_worker_release() for a worker the test
 * already reaped) frees them all. Every json_t a function returns is a new
 * reference the caller must json_decref(); params passed to a request are
 * stolen. Request ids are integers unique within the test program.
 * Messages without an "id" are notifications: they are handed to
 * `on_notify` (if set) and then dropped; answers to other requests that
 * arrive while waiting for one id are stashed (up to PC_RPC_MAX_STASH) and
 * returned when their id is waited for.
 */
#ifndef PC_TESTS_RPC_DRIVER_H
#define PC_TESTS_RPC_DRIVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PC_RPC_MAX_STASH 64

typedef struct pc_rpc_worker pc_rpc_worker;

struct pc_rpc_worker {
    pid_t pid;
    int in, out; /* the worker's stdin (we write) and stdout (we read) */
    char *buf;
    size_t len, cap;
    json_t *stash[PC_RPC_MAX_STASH];
    size_t nstash;
    int call_timeout_ms; /* for pc_rpc_call(); 60 s unless the test sets it */
    /* Called for every notification read while waiting (borrowed message). */
    void (*on_notify)(pc_rpc_worker *w, json_t *msg);
    int notes; /* a counter for on_notify's own use */
};

/* Spawns `exe` with exactly `env` (NULL-terminated "K=V"; copied) plus the
 * test's ASAN_OPTIONS, UBSAN_OPTIONS and LSAN_OPTIONS, so sanitizer builds
 * keep their settings. Aborts the test program when pipes cannot be made. */
void pc_rpc_worker_start(pc_rpc_worker *w, const char *exe, const char *const *env);
/* Closes stdin (EOF asks the worker to exit), waits up to 10 s, then
 * SIGKILLs; frees everything. Returns the exit code, or 128+signal. */
int pc_rpc_worker_stop(pc_rpc_worker *w);
/* Frees pipes, buffer and stash without waiting: for a worker the test
 * killed and reaped itself. */
void pc_rpc_worker_release(pc_rpc_worker *w);

/* Writes bytes as they are (no newline added). */
void pc_rpc_send_raw(pc_rpc_worker *w, const char *text, size_t len);
/* Writes text and a newline. */
void pc_rpc_send_line(pc_rpc_worker *w, const char *text);
/* Reads the next message (one line) within `ms`; NULL on timeout, EOF or a
 * line that is not JSON (reported as a TAP diagnostic). */
json_t *pc_rpc_read(pc_rpc_worker *w, int ms);
/* Waits for the answer whose id equals `id`; NULL after `ms` without a message. */
json_t *pc_rpc_wait(pc_rpc_worker *w, json_t *id, int ms);
/* Reads until the answer to `a` or to `b` arrives, whichever is first,
 * dropping anything else (at most 20 messages, `ms` each); NULL if neither came. */
json_t *pc_rpc_first_of(pc_rpc_worker *w, json_t *a, json_t *b, int ms);
/* Sends a request (`params` stolen; NULL means {}) and returns its id. */
json_t *pc_rpc_request(pc_rpc_worker *w, const char *method, json_t *params);
/* Sends a request and waits call_timeout_ms for its answer; NULL (with a
 * diagnostic) when none came. */
json_t *pc_rpc_call(pc_rpc_worker *w, const char *method, json_t *params);

/* True when msg carries an id equal to `id`. */
bool pc_rpc_id_is(json_t *msg, json_t *id);
/* Borrowed views into an answer; NULL or 0 when absent. */
json_t *pc_rpc_result(json_t *resp);
int pc_rpc_error_code(json_t *resp);
const char *pc_rpc_error_message(json_t *resp);

#endif
