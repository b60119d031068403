/*
 * The plugin host's routing of `execute.log` notifications, in-process
 * against tests/plugins/misbehave: each chunk reaches the call whose
 * requestId it names even with two executes in flight on one worker; a
 * chunk without requestId goes to the only execute in flight and is dropped
 * when there are several; malformed and late chunks are dropped; a flood of
 * notifications is handed over one by one (nothing piles up in the host)
 * and the worker stays usable.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/util.h"
#include "plugin/host.h"
#include "plugin/manifest.h"
#include "../lib/tap.h"

static pc_plugin_package pkg;
static pc_plugin_host *host;

/* One async call: its chunks and its outcome. */
typedef struct acall {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char text[256]; /* "stream:chunk|" per chunk, while it fits */
    long chunks;
    bool done;
    json_t *result;
} acall;

static void on_chunk(void *ud, const char *stream, const char *chunk, size_t len)
{
    acall *c = ud;
    pthread_mutex_lock(&c->mu);
    c->chunks++;
    size_t have = strlen(c->text);
    if (have + strlen(stream) + len + 3 < sizeof c->text)
        snprintf(c->text + have, sizeof c->text - have, "%s:%.*s|", stream, (int)len, chunk);
    pthread_mutex_unlock(&c->mu);
}

static void on_done(void *ud, json_t *result, const pc_error_t *err)
{
    (void)err;
    acall *c = ud;
    pthread_mutex_lock(&c->mu);
    c->result = result;
    c->done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void start(acall *c, const char *params)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    json_t *p = json_loads(params, 0, NULL);
    pc_plugin_call_async_stream(host, "mb", "environmentExecute", p, 20000, on_done, on_chunk, c);
    json_decref(p);
}

static bool wait_done(acall *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&c->mu);
    while (!c->done)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0)
            break;
    bool d = c->done;
    pthread_mutex_unlock(&c->mu);
    return d;
}

/* Waits until c has received n chunks. */
static bool wait_chunks(acall *c, long n)
{
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&c->mu);
        long have = c->chunks;
        pthread_mutex_unlock(&c->mu);
        if (have >= n)
            return true;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

int main(void)
{
    pc_log_setup(0, PC_LOG_ERROR);
    const char *root = getenv("PC_ROOT");
    _cleanup_free_ char *dir = pc_xasprintf("%s/tests/plugins/misbehave", root ? root : ".");
    pc_error_t err = PC_ERROR_INIT;
    if (pc_plugin_package_load(dir, &pkg, &err) < 0) {
        ok(0, "load misbehave package: %s", err.msg);
        return tap_done();
    }
    pc_loop *loop = pc_loop_new(&err);
    pc_loop_start(loop, &err);
    host = pc_plugin_host_new(loop, NULL, &err);
    json_t *config = json_pack("{s:s}", "mode", "");
    pc_plugin_spec s = {.plugin_key = "mb", .plugin_id = "00000000-0000-7000-8000-000000000002",
                        .package_dir = pkg.dir, .worker_path = pkg.worker_path,
                        .manifest = pkg.manifest, .config = config};
    ok(pc_plugin_host_add(host, &s, 5000, &err) == 0, "worker starts (%s)", err.msg);
    json_decref(config);

    acall a, b;
    start(&a, "{\"hold\":true}");
    ok(wait_chunks(&a, 1), "a chunk reaches its call while the call is in flight");
    start(&b, "{\"cross\":true}");
    ok(wait_done(&b) && wait_done(&a), "both executes answered");
    is_str(a.text, "stdout:held-1|stdout:held-2|", "the held call got exactly its own chunks");
    is_str(b.text, "stderr:mine-1|", "the other call got only its own chunk");
    is_str(pc_json_str(a.result, "stdout"), "held-final", "held call's result");
    is_str(pc_json_str(b.result, "stdout"), "cross-final", "other call's result");
    json_decref(a.result);
    json_decref(b.result);

    /* A flood of upstream-shaped chunks (no requestId) to the one execute
     * in flight; the late chunk after the answer is dropped. */
    acall c;
    start(&c, "{\"flood\":20000}");
    ok(wait_done(&c), "flooding execute answered");
    is_int(c.chunks, 20000, "each of 20000 chunks handed over once, none after the answer");
    is_int(pc_json_int(c.result, "flooded", 0), 20000, "flood result");
    json_decref(c.result);

    /* Without a streaming callback the chunks are simply dropped. */
    json_t *p = json_pack("{s:i}", "flood", 100), *r = NULL;
    is_int(pc_plugin_call(host, "mb", "environmentExecute", p, 0, &r, &err), 0,
           "a plain call to a streaming worker works");
    json_decref(p);
    json_decref(r);
    r = NULL;
    is_int(pc_plugin_call(host, "mb", "health", NULL, 0, &r, &err), 0, "the worker stays usable");
    json_decref(r);

    pc_plugin_host_free(host);
    pc_loop_stop(loop, NULL, NULL);
    pc_loop_join(loop);
    pc_loop_free(loop);
    pc_plugin_package_clear(&pkg);
    pc_error_clear(&err);
    return tap_done();
}
