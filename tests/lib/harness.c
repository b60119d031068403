#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

const char *pc_test_root(void)
{
    const char *r = getenv("PC_ROOT");
    return r && *r ? r : ".";
}

const char *pc_test_bin(void)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/paperclip", pc_test_root());
    return path;
}

char *pc_test_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/pc-test-%s-XXXXXX", tag ? tag : "x");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void pc_test_rmrf(const char *path)
{
    if (!path || strlen(path) < 8 || strncmp(path, "/tmp/", 5) != 0)
        return; /* never remove anything outside /tmp */
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid > 0)
        waitpid(pid, &st, 0);
}

static void pc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int pc_read_port(const char *dir, int *agent_port)
{
    char path[700], buf[512];
    snprintf(path, sizeof path, "%s/daemon.json", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    json_t *j = json_loads(buf, 0, NULL);
    int port = j ? (int)json_integer_value(json_object_get(j, "port")) : -1;
    *agent_port = j ? (int)json_integer_value(json_object_get(j, "agentPort")) : 0;
    json_decref(j);
    return port > 0 ? port : -1;
}

int pc_daemon_start(pc_daemon *d, const pc_daemon_opts *opts)
{
    memset(d, 0, sizeof *d);
    if (opts && opts->data_dir) {
        snprintf(d->data_dir, sizeof d->data_dir, "%s", opts->data_dir);
    } else {
        char *t = pc_test_tmpdir("daemon");
        if (!t)
            return -1;
        snprintf(d->data_dir, sizeof d->data_dir, "%s", t);
        free(t);
    }
    snprintf(d->log_path, sizeof d->log_path, "%s/daemon.log", d->data_dir);
    char djson[700];
    snprintf(djson, sizeof djson, "%s/daemon.json", d->data_dir);
    unlink(djson);

    const char *argv[64];
    int a = 0;
    argv[a++] = pc_test_bin();
    argv[a++] = "serve";
    argv[a++] = "--data-dir";
    argv[a++] = d->data_dir;
    argv[a++] = "--port";
    argv[a++] = "0";
    for (int i = 0; opts && opts->args && opts->args[i] && a < 60; i++)
        argv[a++] = opts->args[i];
    argv[a] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        for (int i = 0; opts && opts->env && opts->env[i]; i++)
            putenv((char *)opts->env[i]);
        unsetenv("PAPERCLIP_HOME");
        unsetenv("PAPERCLIP_PORT");
        unsetenv("PAPERCLIP_BIND");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    d->pid = pid;
    for (int i = 0; i < 1000; i++) { /* up to 20 s, generous for ASan */
        int agent_port = 0;
        int port = pc_read_port(d->data_dir, &agent_port);
        if (port > 0) {
            d->port = port;
            snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", port);
            d->agent_port = agent_port;
            snprintf(d->agent_url, sizeof d->agent_url, "http://127.0.0.1:%d", agent_port);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            tap_diag("daemon exited during start-up");
            pc_daemon_dump_log(d);
            return -1;
        }
        pc_sleep_ms(20);
    }
    tap_diag("daemon did not start");
    pc_daemon_dump_log(d);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    d->pid = 0;
    return -1;
}

void pc_daemon_dump_log(const pc_daemon *d)
{
    FILE *f = fopen(d->log_path, "r");
    if (!f)
        return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 400) {
        line[strcspn(line, "\n")] = '\0';
        tap_diag("daemon: %s", line);
    }
    fclose(f);
}

int pc_daemon_stop(pc_daemon *d)
{
    int status = -1;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        int st = 0;
        for (int i = 0; i < 1500; i++) { /* 30 s */
            pid_t r = waitpid(d->pid, &st, WNOHANG);
            if (r == d->pid) {
                status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                break;
            }
            pc_sleep_ms(20);
        }
        if (status < 0) {
            tap_diag("daemon did not stop on SIGTERM; killing");
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
        }
        d->pid = 0;
    }
    if (tap_failures() > 0 || (status != 0 && status != -1))
        pc_daemon_dump_log(d);
    if (!d->keep_dir)
        pc_test_rmrf(d->data_dir);
    return status;
}

void pc_daemon_kill9(pc_daemon *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

typedef struct {
    char *data;
    size_t len;
} pc_sink;

static size_t pc_sink_write(char *p, size_t sz, size_t n, void *ud)
{
    pc_sink *s = ud;
    size_t add = sz * n;
    if (s->len + add > (64u << 20))
        return 0;
    char *nd = realloc(s->data, s->len + add + 1);
    if (!nd)
        return 0;
    s->data = nd;
    memcpy(s->data + s->len, p, add);
    s->len += add;
    s->data[s->len] = '\0';
    return add;
}

pc_http_res pc_http_ex(const char *url, const char *method, const char *body, size_t body_len,
                       const char *const *headers)
{
    pc_http_res r = {0};
    CURL *c = curl_easy_init();
    pc_sink sink = {0};
    struct curl_slist *h = NULL;
    for (int i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pc_sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r.body = sink.data ? sink.data : strdup("");
    r.len = sink.len;
    if (r.len)
        r.json = json_loadb(r.body, r.len, JSON_DECODE_ANY, NULL);
    return r;
}

pc_http_res pc_http_auth(const pc_daemon *d, const char *token, const char *method,
                         const char *path, const char *body)
{
    char url[2048], auth[4200];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdrs[1] = auth;
    }
    return pc_http_ex(url, method, body, body ? strlen(body) : 0, hdrs);
}

pc_http_res pc_http(const pc_daemon *d, const char *method, const char *path, const char *body)
{
    return pc_http_auth(d, NULL, method, path, body);
}

void pc_http_res_free(pc_http_res *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof *r);
}

const char *pc_res_str(const pc_http_res *r, const char *key)
{
    json_t *v = json_is_object(r->json) ? json_object_get(r->json, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : "";
}

int pc_run_capture(char *const argv[], char **out)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(p[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            if (cap >= (1u << 20))
                break;
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
