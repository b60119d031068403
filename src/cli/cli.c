/*
 * The CLI's HTTP client (libcurl) and output helpers.
 * Responses are read into a bounded buffer (64 MiB) so a misbehaving server
 * cannot exhaust the client's memory.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/buf.h"
#include "lib/common.h"
#include "lib/json.h"

#define PC_CLI_MAX_RESPONSE (64u * 1024 * 1024)

static size_t pc_cli_write(char *p, size_t sz, size_t n, void *ud)
{
    pc_buf *b = ud;
    if (pc_buf_append(b, p, sz * n, NULL) < 0)
        return 0;
    return sz * n;
}

int pc_cli_call(pc_cli *cli, const char *method, const char *path, json_t *body, json_t **out,
                long *status)
{
    *out = NULL;
    *status = 0;
    CURL *c = curl_easy_init();
    if (!c) {
        fprintf(stderr, "error: cannot initialise the HTTP client\n");
        return -1;
    }
    char *url = pc_xasprintf("%s%s", cli->api_url, path);
    size_t ul = strlen(cli->api_url);
    if (ul && cli->api_url[ul - 1] == '/' && path[0] == '/') {
        free(url);
        url = pc_xasprintf("%.*s%s", (int)ul - 1, cli->api_url, path);
    }
    pc_buf resp;
    pc_buf_init(&resp, PC_CLI_MAX_RESPONSE);
    struct curl_slist *h = NULL;
    char *payload = NULL;
    h = curl_slist_append(h, "Accept: application/json");
    if (cli->api_key && *cli->api_key) {
        char *auth = pc_xasprintf("Authorization: Bearer %s", cli->api_key);
        h = curl_slist_append(h, auth);
        free(auth);
    }
    if (body) {
        payload = pc_json_dumps(body);
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pc_cli_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    int ret = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "error: cannot reach the paperclip daemon at %s: %s\n", cli->api_url,
                curl_easy_strerror(rc));
        ret = -1;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (resp.len)
            *out = json_loadb(resp.data, resp.len, JSON_DECODE_ANY, NULL);
        if (resp.len && !*out)
            *out = json_stringn(resp.data, resp.len);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(payload);
    free(url);
    pc_buf_release(&resp);
    return ret;
}

static void pc_cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY);
    printf("%s\n", s ? s : "null");
    free(s);
}

int pc_cli_run(pc_cli *cli, const char *method, const char *path, json_t *body,
               void (*print_fn)(pc_cli *cli, json_t *result))
{
    json_t *out = NULL;
    long status = 0;
    if (pc_cli_call(cli, method, path, body, &out, &status) < 0)
        return 3;
    int code = 0;
    if (status >= 200 && status < 300) {
        if (cli->json || !print_fn)
            pc_cli_print_json(out ? out : json_null());
        else
            print_fn(cli, out);
    } else {
        const char *msg = out ? pc_json_str(out, "error") : NULL;
        fprintf(stderr, "error: %s (HTTP %ld)\n", msg ? msg : "request failed", status);
        json_t *d = out ? json_object_get(out, "details") : NULL;
        if (d) {
            char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
            fprintf(stderr, "details: %s\n", s ? s : "");
            free(s);
        }
        code = 1;
    }
    json_decref(out);
    return code;
}

static char *pc_cli_cell(json_t *v)
{
    char *s;
    if (!v || json_is_null(v))
        s = pc_xstrdup("-");
    else if (json_is_string(v))
        s = pc_xstrdup(json_string_value(v));
    else
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        s = pc_xstrdup("?");
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    if (strlen(s) > 60)
        strcpy(s + 57, "...");
    return s;
}

void pc_cli_table(json_t *rows, const char *const *keys, const char *const *headers)
{
    size_t ncol = 0;
    while (keys[ncol])
        ncol++;
    size_t nrow = json_array_size(rows);
    size_t *w = pc_xcalloc(ncol, sizeof *w);
    char **cells = pc_xcalloc(ncol * (nrow ? nrow : 1), sizeof *cells);
    for (size_t c = 0; c < ncol; c++)
        w[c] = strlen(headers[c]);
    for (size_t r = 0; r < nrow; r++) {
        for (size_t c = 0; c < ncol; c++) {
            char *s = pc_cli_cell(json_object_get(json_array_get(rows, r), keys[c]));
            cells[r * ncol + c] = s;
            if (strlen(s) > w[c])
                w[c] = strlen(s);
        }
    }
    for (size_t c = 0; c < ncol; c++)
        printf("%-*s%s", (int)w[c], headers[c], c + 1 < ncol ? "  " : "\n");
    for (size_t r = 0; r < nrow; r++)
        for (size_t c = 0; c < ncol; c++) {
            printf("%-*s%s", (int)w[c], cells[r * ncol + c], c + 1 < ncol ? "  " : "\n");
            free(cells[r * ncol + c]);
        }
    if (nrow == 0)
        printf("(none)\n");
    free(cells);
    free(w);
}

void pc_cli_kv(json_t *obj)
{
    const char *k;
    json_t *v;
    if (!json_is_object(obj)) {
        pc_cli_print_json(obj);
        return;
    }
    json_object_foreach(obj, k, v) {
        char *s;
        if (json_is_string(v))
            s = pc_xstrdup(json_string_value(v));
        else
            s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%s: %s\n", k, s ? s : "null");
        free(s);
    }
}

const char *pc_cli_flag_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "paperclip: %s needs a value\n", name);
        exit(2);
    }
    (*i)++;
    return argv[*i];
}

char *pc_cli_urlencode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = pc_xmalloc(strlen(s) * 3 + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}
