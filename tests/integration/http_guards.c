/*
 * The HTTP trust boundary, black-box against a real daemon: the agent
 * ingress takes only agent credentials, the browser guards refuse foreign
 * Host names and cross-site mutations on both listeners, refused bodies are
 * never buffered and accepted ones stay inside the body budget, and slow
 * clients neither starve other clients nor keep their connections past the
 * header timeout. All traffic stays on 127.0.0.0/8.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "heartbeat_common.h"
#include "lib/util.h"

#define BUDGET_MIB 16
#define BIG_DECLARED (8 * 1024 * 1024)
#define BIG_SENT (4 * 1024 * 1024)
#define NBIG 40
#define NSLOW 1000

static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = pc_test_read_file(path, 1 << 16);
    const char *p = strstr(s, "VmRSS:");
    long v = p ? strtol(p + 6, NULL, 10) : -1;
    free(s);
    return v;
}

/* A blocking TCP connection from `src` (or any address) to 127.0.0.1:port;
 * sends give up after 10 s so a peer that stops reading cannot hang us. */
static int tcp_connect(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (src) {
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            close(fd);
            return -1;
        }
    }
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The status of a response already waiting on fd (up to wait_ms), or 0. */
static int read_status(int fd, int wait_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0)
        return 0;
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    return status;
}

/* Starts a POST of BIG_DECLARED bytes and sends only BIG_SENT of them. */
static int half_sent_post(int port, const char *path)
{
    int fd = tcp_connect(NULL, port);
    if (fd < 0)
        return -1;
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n",
                     path, port, BIG_DECLARED);
    send_all(fd, head, (size_t)n);
    static char chunk[64 * 1024];
    memset(chunk, ' ', sizeof chunk);
    for (size_t sent = 0; sent < BIG_SENT; sent += sizeof chunk)
        send_all(fd, chunk, sizeof chunk);
    return fd;
}

static pc_http_res hreq(const char *base, const char *method, const char *path, const char *body,
                        const char *h1, const char *h2)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    const char *hdrs[4] = {0};
    int n = 0;
    if (body)
        hdrs[n++] = "Content-Type: application/json";
    if (h1)
        hdrs[n++] = h1;
    if (h2)
        hdrs[n++] = h2;
    return pc_http_ex(url, method, body, body ? strlen(body) : 0, hdrs);
}

static long status_of(pc_http_res r)
{
    long s = r.status;
    pc_http_res_free(&r);
    return s;
}

static void test_ingress_auth(const char *cid, const char *agent, char *agent_key, size_t cap)
{
    /* An agent key, made by the board on the operator listener. */
    pc_http_res r = req("POST", "{\"name\":\"guards\"}", "/api/agents/%s/keys", agent);
    is_int(r.status, 201, "board creates an agent key");
    snprintf(agent_key, cap, "%s", pc_res_str(&r, "token"));
    if (!agent_key[0])
        snprintf(agent_key, cap, "%s", pc_res_str(&r, "key"));
    ok(pc_str_has_prefix(agent_key, "pcp_"), "the key is a pcp_ key");
    pc_http_res_free(&r);

    /* A board key, written into the store the way the offline command does. */
    const char *board_key = "pcb_0123456789abcdef0123456789abcdef0123456789abcdef";
    char hash[65], sql[512];
    pc_sha256_hex(board_key, strlen(board_key), hash);
    snprintf(sql, sizeof sql,
             "INSERT INTO board_api_keys(id,user_id,name,key_hash,created_at) VALUES("
             "'0190a000-0000-7000-8000-000000000001','board','t','%s','2026-01-01T00:00:00.000Z')",
             hash);
    is_int(pc_test_db_exec(&d, sql), 0, "board key stored");
    char board_auth[128], agent_auth[320];
    snprintf(board_auth, sizeof board_auth, "Authorization: Bearer %s", board_key);
    snprintf(agent_auth, sizeof agent_auth, "Authorization: Bearer %s", agent_key);

    long before = db_count("SELECT count(*) FROM companies");
    is_int(status_of(hreq(d.agent_url, "POST", "/api/companies", "{\"name\":\"x\"}", NULL, NULL)),
           401, "ingress: POST without credentials is 401, not the implicit board");
    is_int(status_of(hreq(d.agent_url, "GET", "/api/companies", NULL, NULL, NULL)), 401,
           "ingress: GET without credentials is 401");
    is_int(status_of(hreq(d.agent_url, "GET", "/api/health", NULL, NULL, NULL)), 401,
           "ingress: even public routes need agent credentials");
    is_int(status_of(hreq(d.agent_url, "POST", "/api/companies", "{\"name\":\"x\"}", board_auth,
                          NULL)),
           401, "ingress: a board key is refused");
    is_int(status_of(hreq(d.agent_url, "GET", "/api/companies", NULL, board_auth, NULL)), 401,
           "ingress: a board key cannot read either");
    is_int(db_count("SELECT count(*) FROM companies"), before, "no company was created");
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, board_auth, NULL)), 200,
           "operator: the same board key works");
    r = hreq(d.agent_url, "GET", "/api/agents/me", NULL, agent_auth, NULL);
    is_int(r.status, 200, "ingress: an agent key is accepted");
    is_str(pc_res_str(&r, "id"), agent, "as its agent");
    pc_http_res_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/api/companies/%s/issues", cid);
    is_int(status_of(hreq(d.agent_url, "GET", path, NULL, agent_auth, NULL)), 200,
           "ingress: the agent reads its company's issues");
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"y\"}", agent_auth, NULL)),
           403, "operator: an agent credential is the agent, never the board");
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"op\"}", NULL, NULL)), 201,
           "operator: no credentials is still the implicit board in local_trusted");
    is_int(status_of(hreq(d.agent_url, "GET", "/", NULL, agent_auth, NULL)), 404,
           "ingress: no web UI");
}

static void test_host_guard(const char *agent_key)
{
    char agent_auth[320], h[64];
    snprintf(agent_auth, sizeof agent_auth, "Authorization: Bearer %s", agent_key);
    pc_http_res r = hreq(d.url, "GET", "/api/companies", NULL, "Host: evil.example", NULL);
    is_int(r.status, 403, "Host: evil.example is refused");
    ok(strstr(r.body, "This hostname is not allowed") != NULL, "with upstream's message");
    ok(strstr(r.body, "evil.example") == NULL, "the foreign host is not echoed");
    pc_http_res_free(&r);
    is_int(status_of(hreq(d.url, "GET", "/", NULL, "Host: evil.example:80", NULL)), 403,
           "the web UI is guarded too (DNS rebinding)");
    is_int(status_of(hreq(d.agent_url, "GET", "/api/agents/me", NULL, "Host: evil.example",
                          agent_auth)),
           403, "ingress: Host: evil.example is refused");
    snprintf(h, sizeof h, "Host: 127.0.0.1:%d", d.port);
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, h, NULL)), 200,
           "Host: 127.0.0.1:port works");
    snprintf(h, sizeof h, "Host: localhost:%d", d.port);
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, h, NULL)), 200,
           "Host: localhost:port works");
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, "Host: LocalHost", NULL)), 200,
           "Host: localhost without a port, any case, works");
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, "Host: [::1]", NULL)), 200,
           "Host: [::1] works");
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, "Host: 127.evil.example", NULL)),
           403, "a name that merely starts with 127. is refused");
    snprintf(h, sizeof h, "Host: 127.0.0.1:%d", d.agent_port);
    is_int(status_of(hreq(d.agent_url, "GET", "/api/agents/me", NULL, h, agent_auth)), 200,
           "ingress: Host: 127.0.0.1:port works");
}

static void test_origin_guard(const char *agent, const char *agent_key)
{
    char path[128], same[96], agent_auth[320];
    snprintf(path, sizeof path, "/api/agents/%s/wakeup", agent);
    snprintf(agent_auth, sizeof agent_auth, "Authorization: Bearer %s", agent_key);
    long companies = db_count("SELECT count(*) FROM companies");
    long runs = db_count("SELECT count(*) FROM heartbeat_runs");

    is_int(status_of(hreq(d.url, "POST", path, NULL, "Origin: http://evil.example", NULL)), 403,
           "cross-site POST without a body (wakeup) is refused");
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"evil\"}",
                          "Origin: http://evil.example", NULL)),
           403, "cross-site POST with a body is refused");
    is_int(status_of(hreq(d.url, "POST", path, NULL, "Sec-Fetch-Site: cross-site", NULL)), 403,
           "Sec-Fetch-Site: cross-site without Origin is refused");
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"evil\"}",
                          "Sec-Fetch-Site: same-site", NULL)),
           403, "Sec-Fetch-Site: same-site is refused");
    is_int(status_of(hreq(d.url, "POST", path, NULL, "Origin: null", NULL)), 403,
           "Origin: null is refused");
    snprintf(same, sizeof same, "Origin: http://127.0.0.1:%d", d.port + 1 > 65535 ? 1 : d.port + 1);
    is_int(status_of(hreq(d.url, "DELETE", "/api/companies/x", NULL, same, NULL)), 403,
           "DELETE from another port on the same host is refused");
    is_int(status_of(hreq(d.agent_url, "POST", path, NULL, "Origin: http://evil.example",
                          agent_auth)),
           403, "ingress: cross-site POST is refused too");
    is_int(db_count("SELECT count(*) FROM companies"), companies, "no company was created");
    is_int(db_count("SELECT count(*) FROM heartbeat_runs"), runs, "no run was queued");

    snprintf(same, sizeof same, "Origin: http://127.0.0.1:%d", d.port);
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"same\"}", same,
                          "Sec-Fetch-Site: same-origin")),
           201, "same-origin POST works");
    is_int(status_of(hreq(d.url, "GET", "/api/companies", NULL, "Origin: http://evil.example",
                          "Sec-Fetch-Site: cross-site")),
           200, "a cross-site GET is not a mutation (CORS keeps its answer from the page)");
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"cli\"}", NULL, NULL)),
           201, "a POST without Origin or Sec-Fetch-* (CLI, curl) works");
}

static void test_body_memory(void)
{
    long base = rss_kib(d.pid);
    ok(base > 0, "daemon RSS readable (%ld KiB)", base);

    /* Unauthenticated bodies on the ingress: refused on the headers. */
    int fds[NBIG], refused = 0;
    for (int i = 0; i < NBIG; i++)
        fds[i] = half_sent_post(d.agent_port, "/api/companies");
    for (int i = 0; i < NBIG; i++)
        if (fds[i] >= 0 && read_status(fds[i], 10000) == 401)
            refused++;
    is_int(refused, NBIG, "%d half-sent unauthenticated bodies on the ingress: 401 each", NBIG);
    long after_ingress = rss_kib(d.pid);
    for (int i = 0; i < NBIG; i++)
        if (fds[i] >= 0)
            close(fds[i]);

    /* The implicit board on the operator listener: accepted bodies stay
     * inside the budget, the rest are turned away with 503. */
    int busy = 0;
    for (int i = 0; i < NBIG; i++)
        fds[i] = half_sent_post(d.port, "/api/companies");
    for (int i = 0; i < NBIG; i++)
        if (fds[i] >= 0 && read_status(fds[i], 2000) == 503)
            busy++;
    long after_op = rss_kib(d.pid);
    int admitted = NBIG - busy;
    ok(admitted <= BUDGET_MIB * 1024 * 1024 / BIG_DECLARED,
       "at most budget/declared bodies admitted (%d admitted, %d got 503)", admitted, busy);
    ok(busy >= NBIG - BUDGET_MIB * 1024 * 1024 / BIG_DECLARED, "the rest got 503");
    for (int i = 0; i < NBIG; i++)
        if (fds[i] >= 0)
            close(fds[i]);

    /* The documented bound: body budget + 256 KiB per open connection, plus
     * 8 MiB for allocator slack. Buffering what was sent would be 160 MiB. */
    long bound = (long)BUDGET_MIB * 1024 + NBIG * 256 + 8 * 1024;
    tap_diag("RSS KiB: start %ld, after ingress flood %ld, after operator flood %ld", base,
             after_ingress, after_op);
    ok(after_ingress - base <= bound, "ingress flood: RSS growth %ld KiB <= %ld KiB",
       after_ingress - base, bound);
    ok(after_op - base <= bound, "operator flood: RSS growth %ld KiB <= %ld KiB", after_op - base,
       bound);

    /* The budget is given back: a normal body goes through afterwards. */
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) {
        pc_http_res r = hreq(d.url, "POST", "/api/companies", "{\"name\":\"after\"}", NULL, NULL);
        back = r.status == 201;
        pc_http_res_free(&r);
        if (!back)
            pc_test_sleep_ms(100);
    }
    ok(back, "the budget is released when the connections close");
}

static void raise_nofile(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)want) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max : (rlim_t)want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void test_slow_clients(const char *cid, const char *flagdir)
{
    /* A run that calls back on the ingress once the flood is in place. */
    char script[1500];
    snprintf(script, sizeof script,
             "i=0; while [ ! -e '%s/go' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; "
             "code=$(curl -s -o /dev/null -w '%%{http_code}' --max-time 60 "
             "-H \"Authorization: Bearer $PAPERCLIP_API_KEY\" "
             "-H \"X-Paperclip-Run-Id: $PAPERCLIP_RUN_ID\" \"$PAPERCLIP_API_URL/api/agents/me\"); "
             "echo \"callback $code\"",
             flagdir);
    char *cb = hb_sh_agent(cid, "callback", script, NULL, NULL);
    char *run = hb_wake(cb, NULL);
    ok(run[0], "callback run queued");

    raise_nofile(NSLOW + 256);
    static int fds[NSLOW];
    int opened = 0;
    for (int i = 0; i < NSLOW; i++) {
        fds[i] = tcp_connect("127.0.0.2", d.port);
        if (fds[i] < 0)
            continue;
        opened++;
        static const char half[] = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        send(fds[i], half, sizeof half - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    is_int(opened, NSLOW, "%d slow connections opened from 127.0.0.2", NSLOW);

    pc_http_res r = hreq(d.url, "GET", "/api/companies", NULL, NULL, NULL);
    is_int(r.status, 200, "a normal request on the operator listener still succeeds");
    pc_http_res_free(&r);

    char go[700];
    snprintf(go, sizeof go, "%s/go", flagdir);
    int fd = open(go, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
    json_t *fin = hb_wait_run(run, NULL, 120000);
    is_str(js(fin, "status"), "succeeded", "the callback run finished");
    json_decref(fin);
    char *log = hb_log(run);
    ok(strstr(log, "callback 200") != NULL, "its callback on the ingress got 200");
    if (!strstr(log, "callback 200"))
        tap_diag("run log: %.2000s", log);
    free(log);

    /* Every slow connection is closed: those over the per-address limit at
     * once, the rest at the header deadline even though they keep sending
     * a byte now and then (the idle timeout is set far beyond the wait). */
    int closed = 0, held = 0;
    bool done[NSLOW] = {0};
    for (int i = 0; i < NSLOW; i++)
        if (fds[i] < 0)
            done[i] = true;
    for (int round = 0; round < 240 && closed < opened; round++) { /* up to ~120 s */
        for (int i = 0; i < NSLOW; i++) {
            if (done[i])
                continue;
            char b[256];
            ssize_t n = recv(fds[i], b, sizeof b, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                done[i] = true;
                closed++;
                if (round > 0)
                    held++;
                continue;
            }
            send(fds[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        pc_test_sleep_ms(500);
    }
    is_int(closed, opened, "every slow connection was closed by the daemon");
    ok(held > 0, "some were held until the header deadline (%d)", held);
    ok(held <= 64, "no more than the per-address limit were held (%d)", held);
    ok(pc_test_file_contains(d.log_path, "did not send request headers within"),
       "the daemon logged the header timeout");
    for (int i = 0; i < NSLOW; i++)
        if (fds[i] >= 0)
            close(fds[i]);

    r = hreq(d.url, "GET", "/api/companies", NULL, NULL, NULL);
    is_int(r.status, 200, "the operator listener serves normally afterwards");
    pc_http_res_free(&r);
    free(cb);
    free(run);
}

/* A refused request with a small body keeps its header deadline: trickling
 * the body does not hold the connection. */
static void test_refused_trickle(void)
{
    int fd = tcp_connect(NULL, d.agent_port);
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /api/companies HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"na",
                     d.agent_port);
    send_all(fd, head, (size_t)n);
    bool closed = false;
    for (int i = 0; i < 120 && !closed && fd >= 0; i++) { /* up to ~60 s; 1000 bytes need 500 s */
        pc_test_sleep_ms(500);
        char b[512];
        ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed = true;
        else
            send(fd, " ", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    ok(closed, "ingress: an unauthenticated body trickled a byte at a time is cut off");
    if (fd >= 0)
        close(fd);
}

static void test_authenticated_mode(void)
{
    pc_daemon keep = d;
    static const char *const args[] = {"--auth-mode", "authenticated", NULL};
    pc_daemon_opts o = {.args = args};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(false, "authenticated daemon starts");
        d = keep;
        return;
    }
    int fd = half_sent_post(d.port, "/api/companies");
    is_int(read_status(fd, 10000), 401,
           "authenticated mode: a half-sent body without credentials gets 401 on its headers");
    if (fd >= 0)
        close(fd);
    is_int(status_of(hreq(d.url, "POST", "/api/companies", "{\"name\":\"x\"}", NULL, NULL)), 401,
           "authenticated mode: a small body without credentials gets 401");
    is_int(status_of(hreq(d.url, "GET", "/api/health", NULL, NULL, NULL)), 200,
           "authenticated mode: public routes stay public on the operator listener");
    pc_daemon_stop(&d);
    d = keep;
}

int main(void)
{
    static char budget[64];
    snprintf(budget, sizeof budget, "PAPERCLIP_BODY_BUDGET=%d", BUDGET_MIB * 1024 * 1024);
    const char *env[] = {budget, "PAPERCLIP_HEADER_TIMEOUT=3", "PAPERCLIP_IDLE_TIMEOUT=3600",
                         "PAPERCLIP_HEARTBEAT_TICK_MS=100", NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(false, "daemon starts");
        return tap_done();
    }
    ok(d.agent_port > 0 && d.agent_port != d.port, "daemon.json names a separate agent port");
    char *dj_path = NULL;
    if (asprintf(&dj_path, "%s/daemon.json", d.data_dir) > 0) {
        char *dj = pc_test_read_file(dj_path, 4096);
        char want[200];
        snprintf(want, sizeof want, "\"agentApiUrl\":\"%s\"", d.agent_url);
        ok(strstr(dj, want) != NULL, "daemon.json records agentApiUrl");
        free(dj);
        free(dj_path);
    }

    char *cid = hb_company("Guards");
    char *agent = hb_agent(cid, "worker", "process", "{\"command\":\"true\"}", NULL);
    char agent_key[256] = "";
    test_ingress_auth(cid, agent, agent_key, sizeof agent_key);
    test_host_guard(agent_key);
    test_origin_guard(agent, agent_key);
    test_body_memory();
    char *tmp = pc_test_tmpdir("guards");
    test_slow_clients(cid, tmp);
    test_refused_trickle();
    pc_test_rmrf(tmp);
    free(tmp);
    test_authenticated_mode();

    free(cid);
    free(agent);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    return tap_done();
}
