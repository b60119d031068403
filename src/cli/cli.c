/*
 * The CLI's HTTP client (libcurl) and output helpers.
 * Responses are read into a bounded buffer (64 MiB) so a misbehaving server
 * cannot exhaust the client's memory.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
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
        if (status == 404 && msg && !strcmp(msg, "API route not found"))
            /* The daemon does not know the route at all: say so rather than
             * suggest that the object is missing. */
            fprintf(stderr,
                    "error: the daemon at %s does not serve %s %s (HTTP 404); it may be older "
                    "than this command\n",
                    cli->api_url, method, path);
        else
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

long long pc_cli_parse_int(const char *flag, const char *v, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max) {
        fprintf(stderr, "paperclip: %s must be an integer from %lld to %lld, not '%s'\n", flag,
                min, max, v);
        exit(2);
    }
    return n;
}

/* Prints text with every line indented by four spaces. */
static void pc_cli_indent(FILE *out, const char *text)
{
    while (*text) {
        size_t n = strcspn(text, "\n");
        /* A line of capitals ("OPTIONS", "OPTIONS (create)") is a section
         * heading and stays at the margin. */
        bool heading = n >= 2 && text[0] >= 'A' && text[0] <= 'Z';
        for (size_t k = 0; k < n && text[k] != '(' && heading; k++)
            heading = (text[k] >= 'A' && text[k] <= 'Z') || text[k] == ' ';
        if (n)
            fprintf(out, "%s%.*s\n", heading ? "" : "    ", (int)n, text);
        else
            fputc('\n', out);
        text += n;
        if (*text)
            text++;
    }
}

void pc_cli_help(const char *cmd, const char *summary, const char *usage, const char *description)
{
    printf("PAPERCLIP-");
    for (const char *p = cmd; *p; p++)
        putchar(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    printf("(1)\n\nNAME\n    paperclip %s - %s\n\nSYNOPSIS\n", cmd, summary);
    /* The usage text's command lines form the synopsis; its other lines
     * (option lists, notes) open the description. */
    const char *p = usage;
    pc_buf rest;
    pc_buf_init(&rest, 1u << 20);
    while (*p) {
        size_t n = strcspn(p, "\n");
        const char *line = p;
        if (!strncmp(line, "usage: ", 7))
            line += 7, n -= 7;
        while (n && *line == ' ')
            line++, n--;
        if (n && !strncmp(line, "paperclip ", 10))
            printf("    %.*s\n", (int)n, line);
        else if (n && p[0] == ' ' && rest.len == 0)
            printf("        %.*s\n", (int)n, line); /* a wrapped synopsis line */
        else {
            pc_buf_append(&rest, p, (size_t)(line + n - p), NULL);
            pc_buf_append(&rest, "\n", 1, NULL);
        }
        p = line + n;
        if (*p)
            p++;
    }
    printf("\nDESCRIPTION\n");
    if (description)
        pc_cli_indent(stdout, description);
    if (rest.len) {
        const char *r = rest.data;
        while (*r == '\n')
            r++;
        if (description && *r)
            putchar('\n');
        pc_cli_indent(stdout, r);
    }
    pc_buf_release(&rest);
    printf("\nGLOBAL OPTIONS\n"
           "    --api-url URL\n"
           "        The daemon's base URL (default $PAPERCLIP_API_URL, else\n"
           "        http://127.0.0.1:3100).\n"
           "    --api-key KEY\n"
           "        Sent as a bearer credential (default $PAPERCLIP_API_KEY).\n"
           "    --json\n"
           "        Print the API's JSON answer instead of a table.\n"
           "    Global options may appear anywhere on the line; \"--\" ends option\n"
           "    parsing, so what follows it is passed on as it is.\n"
           "\nEXIT STATUS\n"
           "    0  success\n"
           "    1  the API answered with an error (its text is printed on stderr)\n"
           "    2  a usage error: an unknown command or option, or a bad value\n"
           "    3  the daemon could not be reached\n");
}

json_t *pc_cli_agent_names(pc_cli *cli, const char *company_id)
{
    json_t *names = json_object();
    if (!company_id)
        return names;
    char *cid = pc_cli_urlencode(company_id);
    char *path = pc_xasprintf("/api/companies/%s/agents", cid);
    json_t *out = NULL;
    long status = 0;
    if (pc_cli_call(cli, "GET", path, NULL, &out, &status) == 0 && status == 200) {
        size_t i;
        json_t *a;
        json_array_foreach(out, i, a) {
            const char *id = pc_json_str(a, "id"), *name = pc_json_str(a, "name");
            if (id && name)
                json_object_set_new(names, id, json_string(name));
        }
    }
    json_decref(out);
    free(path);
    free(cid);
    return names;
}

void pc_cli_add_names(pc_cli *cli, json_t *rows, const char *id_key, const char *name_key)
{
    if (!json_is_array(rows) || json_array_size(rows) == 0)
        return;
    json_t *names = pc_cli_agent_names(cli, pc_json_str(json_array_get(rows, 0), "companyId"));
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *id = pc_json_str(row, id_key);
        if (!id)
            continue;
        json_t *name = json_object_get(names, id);
        if (!name) {
            /* Not among the company's listed agents (a terminated one, or
             * another company's): ask for it once and remember the answer. */
            char *eid = pc_cli_urlencode(id);
            char *path = pc_xasprintf("/api/agents/%s", eid);
            json_t *out = NULL;
            long status = 0;
            if (pc_cli_call(cli, "GET", path, NULL, &out, &status) == 0 && status == 200 &&
                pc_json_str(out, "name"))
                name = json_string(pc_json_str(out, "name"));
            else
                name = json_string("?");
            json_object_set_new(names, id, name);
            json_decref(out);
            free(path);
            free(eid);
        }
        json_object_set(row, name_key, name);
    }
    json_decref(names);
}

void pc_cli_check_enum(const char *flag, const char *v, const char *const *allowed, bool list)
{
    const char *p = v;
    for (;;) {
        size_t n = list ? strcspn(p, ",") : strlen(p);
        bool known = false;
        for (size_t k = 0; allowed[k] && !known; k++)
            known = strlen(allowed[k]) == n && !strncmp(allowed[k], p, n);
        if (!known) {
            fprintf(stderr, "paperclip: %s must be %s", flag, list ? "a list of " : "one of ");
            for (size_t k = 0; allowed[k]; k++)
                fprintf(stderr, "%s%s", k ? ", " : "", allowed[k]);
            fprintf(stderr, ", not '%.*s'\n", (int)n, p);
            exit(2);
        }
        if (!list || !p[n])
            return;
        p += n + 1;
    }
}
