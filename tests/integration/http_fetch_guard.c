/*
 * The http adapter's guard against server-side request forgery, black-box:
 * with the default config, URLs naming loopback (by address, by the name
 * localhost, as an IPv4-mapped IPv6 literal), an RFC 1918 address and the
 * cloud metadata address fail the run with an error naming the rule, and a
 * listener on loopback sees no connection; a second daemon started with
 * PAPERCLIP_ALLOW_PRIVATE_FETCH=1 reaches the same listener by address and
 * by name. Refused targets are never contacted, so nothing leaves loopback.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "heartbeat_common.h"

#define REPLY "hello-from-the-private-listener"

static atomic_int hits;
static int lfd = -1;

/* Answers every connection with a 200 carrying REPLY and counts it. */
static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            return NULL;
        atomic_fetch_add(&hits, 1);
        char buf[4096];
        (void)!read(c, buf, sizeof buf);
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                           "31\r\nConnection: close\r\n\r\n" REPLY;
        (void)!write(c, resp, strlen(resp));
        close(c);
    }
}

static int listen_loopback(void)
{
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    return ntohs(a.sin_port);
}

static json_t *run_url(const char *cid, const char *name, const char *url)
{
    char conf[512];
    snprintf(conf, sizeof conf, "{\"url\":\"%s\",\"method\":\"GET\"}", url);
    char *agent = hb_agent(cid, name, "http", conf, NULL);
    char *run = hb_wake(agent, NULL);
    json_t *j = hb_wait_run(run, NULL, 30000);
    free(run);
    free(agent);
    return j;
}

static void expect_refused(const char *cid, const char *name, const char *url, const char *want)
{
    int before = atomic_load(&hits);
    json_t *j = run_url(cid, name, url);
    is_str(js(j, "status"), "failed", "%s: the run fails", url);
    const char *e = js(j, "error");
    ok(e && strstr(e, want) && strstr(e, "allowPrivateFetchTargets"),
       "%s: the error names the rule and the switch", url);
    if (e && !strstr(e, want))
        tap_diag("  error: %s (want %s)", e, want);
    is_int(atomic_load(&hits), before, "%s: no connection reached the listener", url);
    char *log = hb_log(js(j, "id"));
    ok(log && !strstr(log, REPLY), "%s: nothing of the target is in the run log", url);
    free(log);
    json_decref(j);
}

int main(void)
{
    int port = listen_loopback();
    pthread_t th;
    if (port < 0 || pthread_create(&th, NULL, serve, NULL) != 0) {
        ok(0, "loopback listener");
        return tap_done();
    }
    char url[256];

    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    char *cid = hb_company("Guard Co");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    expect_refused(cid, "loop", url, "refusing to fetch 127.0.0.1: loopback address");
    snprintf(url, sizeof url, "http://localhost:%d/hook", port);
    expect_refused(cid, "name", url, "refusing to fetch localhost");
    snprintf(url, sizeof url, "http://[::ffff:127.0.0.1]:%d/hook", port);
    expect_refused(cid, "mapped", url, "loopback address");
    snprintf(url, sizeof url, "http://2130706433:%d/hook", port);
    expect_refused(cid, "decimal", url, "loopback address");
    expect_refused(cid, "lan", "http://10.1.2.3/hook", "refusing to fetch 10.1.2.3: private");
    expect_refused(cid, "meta", "http://169.254.169.254/latest/meta-data/",
                   "cloud metadata address");
    /* The daemon's own API is on loopback too. */
    snprintf(url, sizeof url, "%s/api/health", d.url);
    expect_refused(cid, "self", url, "loopback address");
    free(cid);
    pc_daemon_stop(&d);

    const char *env[] = {"PAPERCLIP_ALLOW_PRIVATE_FETCH=1", NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts with private fetches allowed");
        return tap_done();
    }
    cid = hb_company("Open Co");
    const char *names[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        int before = atomic_load(&hits);
        snprintf(url, sizeof url, "http://%s:%d/hook", names[i], port);
        json_t *j = run_url(cid, names[i][0] == 'l' ? "n2" : "a2", url);
        is_str(js(j, "status"), "succeeded", "allowed: %s succeeds", url);
        ok(atomic_load(&hits) > before, "allowed: the listener saw the request (%s)", names[i]);
        char *log = hb_log(js(j, "id"));
        ok(log && strstr(log, REPLY), "allowed: the response is in the run log (%s)", names[i]);
        free(log);
        json_decref(j);
    }
    free(cid);
    pc_daemon_stop(&d);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(th, NULL);
    return tap_done();
}
