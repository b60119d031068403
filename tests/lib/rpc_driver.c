/* The JSON-RPC plugin worker driver of rpc_driver.h. */
#include "rpc_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"

#define ENV_MAX 32
#define READ_CHUNK 65536

/* Process-wide, so ids never repeat even across several workers. */
static int next_id = 1;

static void pass_env(char **envp, size_t *n, const char *name)
{
    const char *v = getenv(name);
    if (v && *n < ENV_MAX && asprintf(&envp[*n], "%s=%s", name, v) >= 0)
        (*n)++;
}

void pc_rpc_worker_start(pc_rpc_worker *w, const char *exe, const char *const *env)
{
    memset(w, 0, sizeof(*w));
    w->call_timeout_ms = 60000;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
        abort();
    char *envp[ENV_MAX + 1];
    size_t n = 0;
    for (size_t i = 0; env && env[i] && n < ENV_MAX - 3; i++)
        if ((envp[n] = strdup(env[i])))
            n++;
    pass_env(envp, &n, "ASAN_OPTIONS");
    pass_env(envp, &n, "UBSAN_OPTIONS");
    pass_env(envp, &n, "LSAN_OPTIONS");
    envp[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        char *argv[] = { (char *)exe, NULL };
        execve(exe, argv, envp);
        _exit(127);
    }
    for (size_t i = 0; i < n; i++)
        free(envp[i]);
    close(in[0]);
    close(out[1]);
    w->pid = pid;
    w->in = in[1];
    w->out = out[0];
    w->cap = 1 << 16;
    w->buf = malloc(w->cap);
}

void pc_rpc_worker_release(pc_rpc_worker *w)
{
    close(w->in);
    close(w->out);
    free(w->buf);
    w->buf = NULL;
    for (size_t i = 0; i < w->nstash; i++)
        json_decref(w->stash[i]);
    w->nstash = 0;
}

int pc_rpc_worker_stop(pc_rpc_worker *w)
{
    close(w->in);
    w->in = -1;
    int status = -1;
    for (int i = 0; i < 200; i++) {
        if (waitpid(w->pid, &status, WNOHANG) == w->pid)
            break;
        usleep(50000);
        if (i == 199) {
            kill(w->pid, SIGKILL);
            waitpid(w->pid, &status, 0);
        }
    }
    pc_rpc_worker_release(w);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void pc_rpc_send_raw(pc_rpc_worker *w, const char *text, size_t len)
{
    while (len) {
        ssize_t n = write(w->in, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

void pc_rpc_send_line(pc_rpc_worker *w, const char *text)
{
    pc_rpc_send_raw(w, text, strlen(text));
    pc_rpc_send_raw(w, "\n", 1);
}

json_t *pc_rpc_read(pc_rpc_worker *w, int ms)
{
    for (;;) {
        char *nl = memchr(w->buf, '\n', w->len);
        if (nl) {
            size_t l = (size_t)(nl - w->buf);
            json_error_t je;
            json_t *j = json_loadb(w->buf, l, 0, &je);
            memmove(w->buf, nl + 1, w->len - l - 1);
            w->len -= l + 1;
            if (!j)
                tap_diag("worker wrote a non-JSON line: %s", je.text);
            return j;
        }
        struct pollfd p = { .fd = w->out, .events = POLLIN };
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return NULL;
        if (w->len + READ_CHUNK > w->cap) {
            w->cap *= 2;
            w->buf = realloc(w->buf, w->cap);
        }
        ssize_t n = read(w->out, w->buf + w->len, READ_CHUNK);
        if (n <= 0)
            return NULL;
        w->len += (size_t)n;
    }
}

bool pc_rpc_id_is(json_t *msg, json_t *id)
{
    json_t *mid = json_object_get(msg, "id");
    return mid && id && json_equal(mid, id);
}

json_t *pc_rpc_wait(pc_rpc_worker *w, json_t *id, int ms)
{
    for (size_t i = 0; i < w->nstash; i++) {
        if (pc_rpc_id_is(w->stash[i], id)) {
            json_t *m = w->stash[i];
            w->stash[i] = w->stash[--w->nstash];
            return m;
        }
    }
    for (;;) {
        json_t *m = pc_rpc_read(w, ms);
        if (!m)
            return NULL;
        if (!json_object_get(m, "id")) {
            if (w->on_notify)
                w->on_notify(w, m);
            json_decref(m);
            continue;
        }
        if (pc_rpc_id_is(m, id))
            return m;
        if (w->nstash < PC_RPC_MAX_STASH)
            w->stash[w->nstash++] = m;
        else
            json_decref(m);
    }
}

json_t *pc_rpc_first_of(pc_rpc_worker *w, json_t *a, json_t *b, int ms)
{
    for (int i = 0; i < 20; i++) {
        json_t *m = pc_rpc_read(w, ms);
        if (!m)
            return NULL;
        if (pc_rpc_id_is(m, a) || pc_rpc_id_is(m, b))
            return m;
        json_decref(m);
    }
    return NULL;
}

json_t *pc_rpc_request(pc_rpc_worker *w, const char *method, json_t *params)
{
    json_t *id = json_integer(next_id++);
    json_t *req = json_pack("{s:s, s:O, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method,
                            "params", params ? params : json_object());
    char *text = json_dumps(req, JSON_COMPACT);
    pc_rpc_send_line(w, text);
    free(text);
    json_decref(req);
    return id;
}

json_t *pc_rpc_call(pc_rpc_worker *w, const char *method, json_t *params)
{
    json_t *id = pc_rpc_request(w, method, params);
    json_t *r = pc_rpc_wait(w, id, w->call_timeout_ms);
    json_decref(id);
    if (!r)
        tap_diag("no answer to %s", method);
    return r;
}

json_t *pc_rpc_result(json_t *resp)
{
    return json_object_get(resp, "result");
}

int pc_rpc_error_code(json_t *resp)
{
    return (int)json_integer_value(json_object_get(json_object_get(resp, "error"), "code"));
}

const char *pc_rpc_error_message(json_t *resp)
{
    return json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
}
