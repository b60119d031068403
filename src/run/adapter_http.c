/*
 * The http adapter: one request per run with libcurl, on the run's worker
 * thread (it executes nothing on a target, so it needs no lease). The body is
 * {...payloadTemplate, agentId, runId, context}; any 2xx is success. Only
 * http and https URLs are accepted, redirects are not followed, and the
 * response kept is bounded.
 *
 * The URL is chosen by whoever configures the agent, and the response lands
 * in the run log, so the daemon must not become a way to read what only its
 * host can reach. Unless the operator allows private targets, the host is
 * resolved here, every address is checked (lib/net.h), and curl is pinned to
 * the checked addresses (CURLOPT_RESOLVE). The socket callback checks the
 * address curl actually connects to as well, so neither a second DNS answer
 * nor a numeric host form curl parses differently can slip past. Proxies
 * from the environment are ignored: through one, the check would judge the
 * proxy, not the target.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/net.h"
#include "run/internal.h"

#define ALLOW_HINT "set allowPrivateFetchTargets to allow"

#define HTTP_RESPONSE_MAX (1024 * 1024)

typedef struct http_state {
    size_t received;
    bool guard;             /* check every socket's address */
    char refused[400];      /* set by the socket callback */
    const atomic_int *cancel;
    pc_output_fn on_output;
    void *ud;
} http_state;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    http_state *st = ud;
    size_t len = size * n;
    size_t keep = len;
    if (st->received >= HTTP_RESPONSE_MAX)
        keep = 0;
    else if (st->received + len > HTTP_RESPONSE_MAX)
        keep = HTTP_RESPONSE_MAX - st->received;
    st->received += len;
    if (keep && st->on_output)
        st->on_output(st->ud, "stdout", p, keep);
    return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    http_state *st = ud;
    return atomic_load(st->cancel) != PC_RUN_CANCEL_NONE ? 1 : 0;
}

static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    http_state *st = ud;
    if (st->guard) {
        const char *rule = pc_net_addr_private_rule(&a->addr);
        if (purpose != CURLSOCKTYPE_IPCXN || rule) {
            char txt[INET6_ADDRSTRLEN] = "?";
            if (a->family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, txt, sizeof txt);
            else if (a->family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, txt,
                          sizeof txt);
            snprintf(st->refused, sizeof st->refused, "refusing to fetch %s: %s; " ALLOW_HINT, txt,
                     rule ? rule : "unexpected socket");
            return CURL_SOCKET_BAD;
        }
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* Resolves host and refuses it when any address is not public; otherwise
 * fills pin with a CURLOPT_RESOLVE entry naming exactly the checked
 * addresses ("" for a numeric host, which curl does not resolve). */
static int guard_host(const char *host, long port, char *pin, size_t pincap, char *msg,
                      size_t msgcap)
{
    pin[0] = '\0';
    const char *rule = pc_net_text_private_rule(host);
    if (strcmp(rule ? rule : "", "not a numeric address") != 0) {
        if (rule) {
            snprintf(msg, msgcap, "refusing to fetch %s: %s; " ALLOW_HINT, host, rule);
            return -1;
        }
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        snprintf(msg, msgcap, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    size_t off = (size_t)snprintf(pin, pincap, "%s:%ld:", host, port);
    int n = 0, rc = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char txt[INET6_ADDRSTRLEN];
        const void *p = ai->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, p, txt, sizeof txt))
            continue;
        if ((rule = pc_net_addr_private_rule(ai->ai_addr))) {
            snprintf(msg, msgcap, "refusing to fetch %s (%s): %s; " ALLOW_HINT, host, txt, rule);
            rc = -1;
            break;
        }
        int w = ai->ai_family == AF_INET6
                    ? snprintf(pin + off, pincap - off, "%s[%s]", n ? "," : "", txt)
                    : snprintf(pin + off, pincap - off, "%s%s", n ? "," : "", txt);
        if (w < 0 || (size_t)w >= pincap - off)
            break; /* enough addresses pinned; the rest were checked too */
        off += (size_t)w;
        n++;
    }
    freeaddrinfo(res);
    if (rc == 0 && n == 0) {
        snprintf(msg, msgcap, "cannot resolve %s: no IP address", host);
        rc = -1;
    }
    return rc;
}

/* The host and port curl will connect to, from its own URL parser. */
static int url_target(const char *url, char *host, size_t hostcap, long *port, char *msg,
                      size_t msgcap)
{
    CURLU *u = curl_url();
    char *h = NULL, *p = NULL;
    int rc = -1;
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(msg, msgcap, "adapterConfig.url is not a valid URL");
        goto out;
    }
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* IPv6 literal */
        h[hl - 1] = '\0';
        memmove(h, h + 1, hl - 1);
    }
    if (!*h || strlen(h) >= hostcap) {
        snprintf(msg, msgcap, "adapterConfig.url has no usable host");
        goto out;
    }
    snprintf(host, hostcap, "%s", h);
    *port = strtol(p, NULL, 10);
    rc = 0;
out:
    curl_free(h);
    curl_free(p);
    curl_url_cleanup(u);
    return rc;
}

int pc_adapter_http_invoke(json_t *config, json_t *body, bool allow_private,
                           const atomic_int *cancel, pc_output_fn on_output, void *ud,
                           pc_http_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *url = pc_json_str(config, "url");
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
        snprintf(out->error, sizeof out->error, "adapterConfig.url must be an http(s) URL");
        return -1;
    }
    char host[256], pin[1024] = "";
    long port = 0;
    if (url_target(url, host, sizeof host, &port, out->error, sizeof out->error) < 0)
        return -1;
    if (!allow_private &&
        guard_host(host, port, pin, sizeof pin, out->error, sizeof out->error) < 0)
        return -1;
    const char *method = pc_json_str(config, "method");
    if (!method || !*method)
        method = "POST";
    int64_t timeout_ms = pc_json_int(config, "timeoutMs", 0);
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(out->error, sizeof out->error, "cannot initialise libcurl");
        return -1;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    json_t *headers = pc_json_obj(config, "headers");
    const char *k;
    json_t *v;
    json_object_foreach(headers, k, v)
    {
        if (!json_is_string(v) || strpbrk(k, "\r\n:") || strpbrk(json_string_value(v), "\r\n"))
            continue;
        char *line = pc_xasprintf("%s: %s", k, json_string_value(v));
        hdrs = curl_slist_append(hdrs, line);
        free(line);
    }
    _cleanup_free_ char *payload = pc_json_dumps(body);
    http_state st = {.cancel = cancel, .on_output = on_output, .ud = ud, .guard = !allow_private};
    struct curl_slist *resolve = pin[0] ? curl_slist_append(NULL, pin) : NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcasecmp(method, "GET") != 0 && strcasecmp(method, "HEAD") != 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &st);
    if (resolve)
        curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &st);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    } else if (rc == CURLE_ABORTED_BY_CALLBACK) {
        out->cancelled = true;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        out->timed_out = true;
    } else if (st.refused[0]) {
        snprintf(out->error, sizeof out->error, "%s", st.refused);
    } else {
        snprintf(out->error, sizeof out->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(resolve);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}
