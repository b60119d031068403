/*
 * The http adapter: one request per run with libcurl, on the run's worker
 * thread (it executes nothing on a target, so it needs no lease). The body is
 * {...payloadTemplate, agentId, runId, context}; any 2xx is success. Only
 * http and https URLs are accepted, redirects are not followed, and the
 * response kept is bounded.
 */
#include <curl/curl.h>
#include <string.h>
#include <strings.h>

#include "lib/common.h"
#include "lib/json.h"
#include "run/internal.h"

#define HTTP_RESPONSE_MAX (1024 * 1024)

typedef struct http_state {
    size_t received;
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

int pc_adapter_http_invoke(json_t *config, json_t *body, const atomic_int *cancel,
                           pc_output_fn on_output, void *ud, pc_http_outcome *out)
{
    memset(out, 0, sizeof *out);
    const char *url = pc_json_str(config, "url");
    if (!url || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
        snprintf(out->error, sizeof out->error, "adapterConfig.url must be an http(s) URL");
        return -1;
    }
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
    http_state st = {.cancel = cancel, .on_output = on_output, .ud = ud};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcasecmp(method, "GET") != 0 && strcasecmp(method, "HEAD") != 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
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
    } else {
        snprintf(out->error, sizeof out->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc == CURLE_OK ? 0 : -1;
}
