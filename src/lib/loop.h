/*
 * The runtime loop: one libuv loop on one thread owns every child process,
 * plugin worker, timer and lease operation. Other threads (HTTP handlers, run
 * workers) never touch loop state directly; they post a task with
 * pc_loop_post() and, when they need the outcome, wait on a pc_waiter that the
 * loop side completes — possibly much later, from an I/O callback.
 *
 *   pc_waiter w; pc_waiter_init(&w);
 *   pc_loop_post(loop, start_rpc, ctx_with_&w);   // runs on the loop thread
 *   pc_waiter_wait(&w, -1);                        // blocks this thread
 *   ... read ctx result, pc_waiter_destroy(&w);
 *
 * pc_loop_post() from the loop thread itself runs the task on the next
 * iteration (never inline), so callers need not care which thread they are on.
 */
#ifndef PC_LIB_LOOP_H
#define PC_LIB_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lib/error.h"

typedef struct pc_loop pc_loop;
typedef void (*pc_loop_fn)(pc_loop *loop, void *arg);

pc_loop *pc_loop_new(pc_error_t *err);
/* Starts the loop thread. */
int pc_loop_start(pc_loop *loop, pc_error_t *err);
/* Queues fn(arg) to run on the loop thread. Safe from any thread. Returns -1
 * only when the loop is stopping (fn is then not run). */
int pc_loop_post(pc_loop *loop, pc_loop_fn fn, void *arg);
/* Asks the loop thread to finish: runs `on_stop` (if set) on the loop thread,
 * which must close its handles; the thread exits when no handle is left. */
void pc_loop_stop(pc_loop *loop, pc_loop_fn on_stop, void *arg);
void pc_loop_join(pc_loop *loop);
void pc_loop_free(pc_loop *loop);
uv_loop_t *pc_loop_uv(pc_loop *loop);
bool pc_loop_on_thread(pc_loop *loop);

typedef struct pc_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} pc_waiter;

void pc_waiter_init(pc_waiter *w);
void pc_waiter_signal(pc_waiter *w);
/* Waits until signalled; timeout_ms < 0 waits forever. Returns 0, or -1 on
 * timeout. */
int pc_waiter_wait(pc_waiter *w, int64_t timeout_ms);
void pc_waiter_destroy(pc_waiter *w);

#endif
