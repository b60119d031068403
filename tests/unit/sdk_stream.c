/*
 * Streamed execute output on the worker side: pc_plugin_execute_log() over
 * a real pc_plugin_serve() loop (requestId, stream names, a UTF-8 character
 * cut between two chunks, the held-back tail sent when the hook returns,
 * refusal outside environmentExecute) and pc_plugin_exec()'s on_output,
 * whose pieces add up to the captured output.
 *
 * Unit test programs are linked with the core library only, so this one
 * compiles the SDK sources it needs into itself.
 */
#include "../../sdk/exec.c"
#include "../../sdk/rpc.c"
#include "../../sdk/util.c"

#include "../lib/helpers.h"
#include "../lib/tap.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static char out_seen[2][256];
static size_t out_len[2];
/* Written by the worker's hook thread, read by the test's main thread. */
static atomic_int health_rc = 0;

static void collect(void *arg, int stream, const char *data, size_t len)
{
    pc_plugin_ctx *ctx = arg;
    int k = stream == 2 ? 1 : 0;
    if (out_len[k] + len < sizeof out_seen[k]) {
        memcpy(out_seen[k] + out_len[k], data, len);
        out_len[k] += len;
    }
    pc_plugin_execute_log(ctx, stream == 2 ? "stderr" : "stdout", data, len);
}

static int health(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)params, (void)err;
    atomic_store(&health_rc, pc_plugin_execute_log(ctx, "stdout", "x", 1));
    *result = json_pack("{s:s}", "status", "ok");
    return 0;
}

static int execute(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)params;
    int bad = pc_plugin_execute_log(ctx, "system", "x", 1) == -1 &&
              pc_plugin_execute_log(NULL, "stdout", "x", 1) == -1;
    /* "café ok\n" with the é (c3 a9) cut between two chunks. */
    pc_plugin_execute_log(ctx, "stderr", "caf\xc3", 4);
    pc_plugin_execute_log(ctx, "stderr", "\xa9 ok\n", 5);
    char *argv[] = {"sh", "-c", "printf one; printf two >&2; printf three", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    pc_plugin_exec_opts o = {.argv = argv, .envp = envp, .on_output = collect, .on_output_arg = ctx};
    pc_plugin_exec_result r;
    if (pc_plugin_exec(&o, &r, err) < 0)
        return -1;
    bool same = r.out_len == out_len[0] && !memcmp(r.out, out_seen[0], r.out_len) &&
                r.err_len == out_len[1] && !memcmp(r.err, out_seen[1], r.err_len);
    pc_plugin_exec_result_free(&r);
    /* A cut character at the very end: sent when the hook returns. */
    pc_plugin_execute_log(ctx, "stdout", "\xe2\x82", 2);
    *result = json_pack("{s:b,s:b}", "refused", bad, "sameAsCaptured", same);
    return 0;
}

static const pc_plugin_hooks hooks = {.health = health, .environment_execute = execute};

static int to_worker[2], from_worker[2];

static void *serve_main(void *arg)
{
    (void)arg;
    pc_plugin_serve(&hooks, NULL, to_worker[0], from_worker[1]);
    close(from_worker[1]);
    return NULL;
}

static void send_req(const char *line)
{
    size_t n = strlen(line);
    ok(write(to_worker[1], line, n) == (ssize_t)n, "sent %.40s", line);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (pipe(to_worker) < 0 || pipe(from_worker) < 0)
        return 1;
    pthread_t th;
    pthread_create(&th, NULL, serve_main, NULL);
    send_req("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}\n");
    send_req("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"health\"}\n");
    send_req("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"environmentExecute\",\"params\":{}}\n");
    FILE *in = fdopen(from_worker[0], "r");
    char *line = NULL;
    size_t cap = 0;
    char got[2][256] = {{0}};
    int notes = 0, bad_id = 0;
    json_t *result = NULL;
    while (!result && getline(&line, &cap, in) > 0) {
        json_t *m = json_loads(line, 0, NULL);
        json_t *id = json_object_get(m, "id");
        if (json_integer_value(id) == 5) {
            result = json_incref(json_object_get(m, "result"));
        } else if (!id && !strcmp(json_string_value(json_object_get(m, "method")) ?: "",
                                   "execute.log")) {
            json_t *p = json_object_get(m, "params");
            notes++;
            if (json_integer_value(json_object_get(p, "requestId")) != 5)
                bad_id++;
            const char *st = json_string_value(json_object_get(p, "stream"));
            const char *ch = json_string_value(json_object_get(p, "chunk"));
            int k = st && !strcmp(st, "stderr") ? 1 : 0;
            if (ch && strlen(got[k]) + strlen(ch) < sizeof got[k])
                strcat(got[k], ch);
        }
        json_decref(m);
    }
    ok(notes >= 4, "execute.log notifications sent (%d)", notes);
    is_int(bad_id, 0, "each names the request (requestId 5)");
    is_str(got[1], "caf\xc3\xa9 ok\ntwo", "stderr chunks join to the text, the cut é whole");
    is_str(got[0], "onethree\xef\xbf\xbd\xef\xbf\xbd", "stdout chunks, then the held-back tail (lossy)");
    ok(json_is_true(json_object_get(result, "refused")),
       "a NULL ctx and an unknown stream name are refused");
    ok(json_is_true(json_object_get(result, "sameAsCaptured")),
       "on_output pieces add up to the captured output");
    is_int(atomic_load(&health_rc), -1, "refused outside environmentExecute");
    json_decref(result);
    free(line);
    close(to_worker[1]);
    pthread_join(th, NULL);
    fclose(in);
    close(to_worker[0]);
    return tap_done();
}
