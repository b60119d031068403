/*
 * A plugin worker that misbehaves on request, written on raw stdin/stdout so
 * it can send what no SDK would: garbage lines, oversized lines, duplicate
 * answers. The host tests drive it; see tests/integration/plugin_host.c.
 *
 * The initialize config's "mode" picks start-up behaviour:
 *   slow_init    never answers initialize
 *   crash_init   exits with status 3 on initialize
 *   init_not_ok  answers {ok:false}
 *   ignore_term  ignores SIGTERM and shutdown (the host must SIGKILL it)
 * Methods pick per-call behaviour (see dispatch()).
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int ignore_term;

static void send_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
    json_decref(j);
}

static void reply(json_t *id, json_t *result)
{
    send_json(json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void reply_err(json_t *id, int code, const char *msg)
{
    send_json(json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code", code,
                        "message", msg));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static json_t *env_object(void)
{
    json_t *o = json_object();
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char *k = strndup(*e, (size_t)(eq - *e));
        json_object_set_new(o, k, json_string(eq + 1));
        free(k);
    }
    return o;
}

static char *read_line(void)
{
    char *line = NULL;
    size_t cap = 0;
    if (getline(&line, &cap, stdin) < 0) {
        free(line);
        return NULL;
    }
    return line;
}

/* One execute.log notification; rid NULL leaves requestId out. */
static void chunk(json_t *rid, const char *stream, const char *text)
{
    json_t *p = json_pack("{s:s,s:s}", "stream", stream, "chunk", text);
    if (rid)
        json_object_set(p, "requestId", rid);
    send_json(json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", "execute.log", "params", p));
}

/* environmentExecute that streams, for the host's execute.log routing:
 *   {hold:true}  streams "held-1" and does not answer (yet)
 *   {cross:true} streams "mine-1" for itself, "held-2" for the held call,
 *                one chunk without requestId (ambiguous: two in flight),
 *                then answers the held call and itself
 *   {flood:N}    N chunks "f" without requestId, answers, then one more
 *                chunk for its (now answered) id */
static json_t *held_id;

static void stream_execute(json_t *id, json_t *params)
{
    if (json_is_true(json_object_get(params, "hold"))) {
        json_decref(held_id);
        held_id = json_incref(id);
        chunk(id, "stdout", "held-1");
        return;
    }
    if (json_is_true(json_object_get(params, "cross"))) {
        chunk(id, "stderr", "mine-1");
        if (held_id)
            chunk(held_id, "stdout", "held-2");
        chunk(NULL, "stdout", "ambiguous");
        send_json(json_pack("{s:s,s:s,s:{}}", "jsonrpc", "2.0", "method", "execute.log",
                            "params"));
        if (held_id)
            reply(held_id, json_pack("{s:s}", "stdout", "held-final"));
        json_decref(held_id);
        held_id = NULL;
        reply(id, json_pack("{s:s}", "stdout", "cross-final"));
        return;
    }
    json_int_t n = json_integer_value(json_object_get(params, "flood"));
    for (json_int_t i = 0; i < n; i++)
        chunk(NULL, "stdout", "f");
    reply(id, json_pack("{s:I}", "flooded", n));
    chunk(id, "stdout", "late");
}

static void dispatch(json_t *id, const char *method, json_t *params)
{
    if (!strcmp(method, "initialize")) {
        const char *mode = json_string_value(json_object_get(json_object_get(params, "config"), "mode"));
        mode = mode ? mode : "";
        if (!strcmp(mode, "slow_init"))
            return;
        if (!strcmp(mode, "crash_init")) {
            fputs("misbehave: crashing on initialize as asked\n", stderr);
            exit(3);
        }
        if (!strcmp(mode, "init_not_ok")) {
            reply(id, json_pack("{s:b}", "ok", 0));
            return;
        }
        if (!strcmp(mode, "ignore_term")) {
            ignore_term = 1;
            signal(SIGTERM, SIG_IGN);
        }
        reply(id, json_pack("{s:b,s:[s,s]}", "ok", 1, "supportedMethods", "environmentProbe",
                            "environmentExecute"));
    } else if (!strcmp(method, "health")) {
        reply(id, json_pack("{s:s}", "status", "ok"));
    } else if (!strcmp(method, "shutdown")) {
        if (ignore_term)
            return;
        reply(id, json_null());
        exit(0);
    } else if (!strcmp(method, "echo")) {
        reply(id, params);
    } else if (!strcmp(method, "envdump")) {
        reply(id, json_pack("{s:o}", "env", env_object()));
    } else if (!strcmp(method, "garbage")) {
        fputs("this is not json\n", stdout);
        fputs("{\"truncated\": \n", stdout);
        fputs("[1,2,3]\n", stdout);
        fputs("{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":1}\n", stdout);
        fputs("{\"jsonrpc\":\"2.0\",\"id\":987654,\"result\":\"nobody asked\"}\n", stdout);
        fputs("{\"jsonrpc\":\"2.0\",\"id\":\"str\",\"result\":1}\n", stdout);
        fputs("\xff\xfe\x00\x01 binary\n\n   \n", stdout);
        fputs("{\"jsonrpc\":\"2.0\",\"method\":\"someNotification\",\"params\":{}}\n", stdout);
        fflush(stdout);
        reply(id, json_pack("{s:b}", "survived", 1));
    } else if (!strcmp(method, "oversized")) {
        long n = (long)json_integer_value(json_object_get(params, "bytes"));
        if (n <= 0)
            n = 17L << 20;
        char buf[65536];
        memset(buf, 'x', sizeof buf);
        fputs("{\"jsonrpc\":\"2.0\",\"id\":", stdout);
        json_dumpf(id, stdout, JSON_ENCODE_ANY);
        fputs(",\"result\":\"", stdout);
        for (long left = n; left > 0; left -= (long)sizeof buf)
            fwrite(buf, 1, left < (long)sizeof buf ? (size_t)left : sizeof buf, stdout);
        fputs("\"}\n", stdout);
        fflush(stdout);
    } else if (!strcmp(method, "crash")) {
        fputs("misbehave: crashing mid-call as asked\n", stderr);
        exit(7);
    } else if (!strcmp(method, "hang")) {
        return;
    } else if (!strcmp(method, "twice")) {
        reply(id, json_pack("{s:i}", "answer", 1));
        reply(id, json_pack("{s:i}", "answer", 2));
    } else if (!strcmp(method, "sleep")) {
        sleep_ms((long)json_integer_value(json_object_get(params, "ms")));
        reply(id, json_pack("{s:b}", "slept", 1));
    } else if (!strcmp(method, "callhost")) {
        send_json(json_pack("{s:s,s:s,s:s,s:{}}", "jsonrpc", "2.0", "id", "w-1", "method",
                            "state.get", "params"));
        char *line = read_line();
        json_t *ans = line ? json_loads(line, 0, NULL) : NULL;
        free(line);
        reply(id, ans ? ans : json_null()); /* reply() takes the reference */
    } else if (!strcmp(method, "log")) {
        send_json(json_pack("{s:s,s:s,s:{s:s,s:s}}", "jsonrpc", "2.0", "method", "log", "params",
                            "level", "warn", "message", "misbehave log notification"));
        fputs("misbehave stderr line\n", stderr);
        fflush(stderr);
        reply(id, json_pack("{s:b}", "logged", 1));
    } else if (!strcmp(method, "environmentExecute")) {
        stream_execute(id, params);
    } else if (!strcmp(method, "fail")) {
        reply_err(id, -32002, "misbehave failed as asked");
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "Unknown method: %s", method);
        reply_err(id, -32601, msg);
    }
}

int main(void)
{
    char *line;
    while ((line = read_line())) {
        json_t *msg = json_loads(line, 0, NULL);
        free(line);
        if (!msg)
            continue;
        const char *method = json_string_value(json_object_get(msg, "method"));
        json_t *id = json_object_get(msg, "id");
        if (method && id)
            dispatch(id, method, json_object_get(msg, "params"));
        json_decref(msg);
    }
    return 0;
}
