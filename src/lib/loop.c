#include "lib/loop.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "lib/common.h"

typedef struct pc_task {
    pc_loop_fn fn;
    void *arg;
    struct pc_task *next;
} pc_task;

struct pc_loop {
    uv_loop_t uv;
    uv_async_t wake;
    pthread_t thread;
    /* Written by the loop thread as it starts and read by any thread asking
     * pc_loop_on_thread(); 0 until then, which equals no live thread. */
    _Atomic(pthread_t) thread_id;
    atomic_bool started;
    bool stopping;
    bool closed;
    bool stop_ran;
    pthread_mutex_t mu;
    pc_task *head, *tail;
    pc_loop_fn on_stop;
    void *on_stop_arg;
};

static void pc_loop_drain(uv_async_t *h)
{
    pc_loop *loop = h->data;
    for (;;) {
        pthread_mutex_lock(&loop->mu);
        pc_task *t = loop->head;
        loop->head = loop->tail = NULL;
        bool stop = loop->stopping;
        pthread_mutex_unlock(&loop->mu);
        if (!t) {
            if (stop && !uv_is_closing((uv_handle_t *)&loop->wake)) {
                if (loop->on_stop && !loop->stop_ran) {
                    loop->stop_ran = true;
                    loop->on_stop(loop, loop->on_stop_arg);
                }
                /* Tasks posted by on_stop still run before the handle closes. */
                pthread_mutex_lock(&loop->mu);
                bool more = loop->head != NULL;
                if (!more)
                    loop->closed = true;
                pthread_mutex_unlock(&loop->mu);
                if (more)
                    continue;
                uv_close((uv_handle_t *)&loop->wake, NULL);
            }
            return;
        }
        while (t) {
            pc_task *next = t->next;
            t->fn(loop, t->arg);
            free(t);
            t = next;
        }
    }
}

pc_loop *pc_loop_new(pc_error_t *err)
{
    pc_loop *loop = pc_xcalloc(1, sizeof *loop);
    int rc = uv_loop_init(&loop->uv);
    if (rc < 0) {
        free(loop);
        pc_error_set(err, 500, "cannot create event loop: %s", uv_strerror(rc));
        return NULL;
    }
    uv_async_init(&loop->uv, &loop->wake, pc_loop_drain);
    loop->wake.data = loop;
    pthread_mutex_init(&loop->mu, NULL);
    return loop;
}

static void *pc_loop_main(void *arg)
{
    pc_loop *loop = arg;
    atomic_store(&loop->thread_id, pthread_self());
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    return NULL;
}

int pc_loop_start(pc_loop *loop, pc_error_t *err)
{
    int rc = pthread_create(&loop->thread, NULL, pc_loop_main, loop);
    if (rc)
        return pc_error_errno(err, rc, "cannot start the runtime thread");
    loop->started = true;
    return 0;
}

int pc_loop_post(pc_loop *loop, pc_loop_fn fn, void *arg)
{
    pc_task *t = pc_xcalloc(1, sizeof *t);
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_lock(&loop->mu);
    if (loop->closed) {
        pthread_mutex_unlock(&loop->mu);
        free(t);
        return -1;
    }
    if (loop->tail)
        loop->tail->next = t;
    else
        loop->head = t;
    loop->tail = t;
    pthread_mutex_unlock(&loop->mu);
    uv_async_send(&loop->wake);
    return 0;
}

void pc_loop_stop(pc_loop *loop, pc_loop_fn on_stop, void *arg)
{
    pthread_mutex_lock(&loop->mu);
    loop->stopping = true;
    loop->on_stop = on_stop;
    loop->on_stop_arg = arg;
    pthread_mutex_unlock(&loop->mu);
    uv_async_send(&loop->wake);
}

void pc_loop_join(pc_loop *loop)
{
    if (loop->started)
        pthread_join(loop->thread, NULL);
    loop->started = false;
}

void pc_loop_free(pc_loop *loop)
{
    if (!loop)
        return;
    /* Run close callbacks of handles closed during shutdown. */
    uv_run(&loop->uv, UV_RUN_NOWAIT);
    uv_loop_close(&loop->uv);
    pthread_mutex_destroy(&loop->mu);
    pc_task *t = loop->head;
    while (t) {
        pc_task *n = t->next;
        free(t);
        t = n;
    }
    free(loop);
}

uv_loop_t *pc_loop_uv(pc_loop *loop) { return &loop->uv; }

bool pc_loop_on_thread(pc_loop *loop)
{
    return atomic_load(&loop->started) &&
           pthread_equal(pthread_self(), atomic_load(&loop->thread_id));
}

void pc_waiter_init(pc_waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    w->done = false;
}

void pc_waiter_signal(pc_waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int pc_waiter_wait(pc_waiter *w, int64_t timeout_ms)
{
    struct timespec dl;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&w->cv, &w->mu);
        } else if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) == ETIMEDOUT) {
            rc = w->done ? 0 : -1;
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void pc_waiter_destroy(pc_waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}
