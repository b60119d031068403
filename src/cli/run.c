/* paperclip run list|get|cancel|log [--follow], paperclip agent wake */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"

static const char run_usage[] =
    "usage: paperclip run list COMPANY_ID [--agent AGENT_ID] [--status S] [--limit N]\n"
    "       paperclip run get RUN_ID\n"
    "       paperclip run cancel RUN_ID\n"
    "       paperclip run log RUN_ID [--follow]\n"
    "\n"
    "Heartbeat runs. 'log' prints the run's output (redacted) as it was captured;\n"
    "with --follow it keeps printing until the run ends.\n";

static void print_runs(pc_cli *cli, json_t *r)
{
    static const char *const keys[] = {"id", "agentName", "agentId", "status",
                                       "invocationSource", "errorCode", "createdAt", NULL};
    static const char *const heads[] = {"ID", "AGENT", "AGENT ID", "STATUS", "SOURCE", "ERROR",
                                        "CREATED", NULL};
    pc_cli_add_names(cli, r, "agentId", "agentName");
    pc_cli_table(r, keys, heads);
}

static void print_obj(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

/* Prints one ndjson log line as its chunk (or raw with --json). */
static void print_log_line(pc_cli *cli, const char *line, size_t len)
{
    if (cli->json) {
        fwrite(line, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }
    pc_error_t err = PC_ERROR_INIT;
    json_t *j = pc_json_parse(line, len, &err);
    pc_error_clear(&err);
    const char *chunk = j ? pc_json_str(j, "chunk") : NULL;
    const char *stream = j ? pc_json_str(j, "stream") : NULL;
    if (chunk)
        fputs(chunk, stream && !strcmp(stream, "stderr") ? stderr : stdout);
    json_decref(j);
}

static void print_log(pc_cli *cli, json_t *r)
{
    const char *content = pc_json_str(r, "content");
    if (!content)
        return;
    const char *p = content;
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (n)
            print_log_line(cli, p, n);
        p += n;
        if (*p)
            p++;
    }
    fflush(stdout);
}

typedef struct sse_state {
    pc_cli *cli;
    char line[1 << 20];
    size_t len;
    bool overflow;
} sse_state;

/* Server-sent events: "event: log" + "data: <ndjson line>" per log line. */
static size_t on_sse(char *p, size_t size, size_t n, void *ud)
{
    sse_state *st = ud;
    size_t total = size * n;
    for (size_t i = 0; i < total; i++) {
        if (p[i] != '\n') {
            if (st->len < sizeof st->line - 1)
                st->line[st->len++] = p[i];
            else
                st->overflow = true;
            continue;
        }
        st->line[st->len] = '\0';
        if (!st->overflow && !strncmp(st->line, "data: {\"ts\"", 11))
            print_log_line(st->cli, st->line + 6, st->len - 6);
        else if (!strncmp(st->line, "data: {\"status\"", 15))
            fprintf(stderr, "run ended: %s\n", st->line + 6);
        st->len = 0;
        st->overflow = false;
    }
    fflush(stdout);
    return total;
}

static int follow_log(pc_cli *cli, const char *id)
{
    CURL *c = curl_easy_init();
    if (!c)
        return 3;
    char *url = pc_xasprintf("%s/api/heartbeat-runs/%s/log?follow=1", cli->api_url, id);
    struct curl_slist *h = NULL;
    char *auth = NULL;
    if (cli->api_key && *cli->api_key) {
        auth = pc_xasprintf("Authorization: Bearer %s", cli->api_key);
        h = curl_slist_append(h, auth);
    }
    sse_state *st = pc_xcalloc(1, sizeof *st);
    st->cli = cli;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    int code = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "error: %s\n",
                status ? "the daemon refused the request" : curl_easy_strerror(rc));
        code = status ? 1 : 3;
    }
    free(st);
    free(auth);
    free(url);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

int pc_cli_run_cmd(pc_cli *cli, int argc, char **argv)
{
    bool help = false;
    for (int i = 1; i < argc; i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (help) {
        pc_cli_help("run", "list, get, cancel and read the log of heartbeat runs", run_usage,
                    NULL);
        return 0;
    }
    if (argc < 3) {
        fputs(run_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    _cleanup_free_ char *id = pc_cli_urlencode(argv[2]);
    _cleanup_free_ char *path = NULL;
    if (!strcmp(sub, "list")) {
        const char *agent = NULL, *status = NULL, *limit = NULL, *v;
        for (int i = 3; i < argc; i++) {
            if ((v = pc_cli_flag_value(argc, argv, &i, "--agent")))
                agent = v;
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--status"))) {
                static const char *const statuses[] = {
                    "queued", "scheduled_retry", "running",   "succeeded",
                    "interrupted", "failed",     "cancelled", "timed_out", NULL};
                pc_cli_check_enum("--status", v, statuses, false);
                status = v;
            }
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--limit"))) {
                pc_cli_parse_int("--limit", v, 1, 5000);
                limit = v;
            }
            else {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], run_usage);
                return 2;
            }
        }
        _cleanup_free_ char *a = agent ? pc_cli_urlencode(agent) : NULL;
        _cleanup_free_ char *s = status ? pc_cli_urlencode(status) : NULL;
        _cleanup_free_ char *l = limit ? pc_cli_urlencode(limit) : NULL;
        path = pc_xasprintf("/api/companies/%s/heartbeat-runs?%s%s%s%s%s%s", id,
                            a ? "&agentId=" : "", a ? a : "", s ? "&status=" : "", s ? s : "",
                            l ? "&limit=" : "", l ? l : "");
        return pc_cli_run(cli, "GET", path, NULL, print_runs);
    }
    if (!strcmp(sub, "get") && argc == 3) {
        path = pc_xasprintf("/api/heartbeat-runs/%s", id);
        return pc_cli_run(cli, "GET", path, NULL, print_obj);
    }
    if (!strcmp(sub, "cancel") && argc == 3) {
        path = pc_xasprintf("/api/heartbeat-runs/%s/cancel", id);
        return pc_cli_run(cli, "POST", path, NULL, print_obj);
    }
    if (!strcmp(sub, "log") && (argc == 3 || argc == 4)) {
        if (argc == 4) {
            if (strcmp(argv[3], "--follow") != 0 && strcmp(argv[3], "-f") != 0) {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[3], run_usage);
                return 2;
            }
            return follow_log(cli, id);
        }
        path = pc_xasprintf("/api/heartbeat-runs/%s/log", id);
        /* --json prints the ndjson lines themselves, not the wrapper. */
        pc_cli cli2 = *cli;
        json_t *out = NULL;
        long status = 0;
        if (pc_cli_call(&cli2, "GET", path, NULL, &out, &status) < 0)
            return 3;
        if (status < 200 || status >= 300) {
            fprintf(stderr, "error: %s\n", pc_json_str(out, "error") ? pc_json_str(out, "error")
                                                                     : "request failed");
            json_decref(out);
            return 1;
        }
        print_log(&cli2, out);
        json_decref(out);
        return 0;
    }
    fprintf(stderr, "paperclip: bad run command\n%s", run_usage);
    return 2;
}

static const char wake_usage[] =
    "usage: paperclip agent wake AGENT_ID [--reason R] [--issue ISSUE_ID] [--idempotency-key K]\n"
    "\n"
    "Queues an on-demand heartbeat for the agent and prints the queued run.\n";

/* `paperclip agent ...`: wake is handled here, the rest by the agents CLI. */
int pc_cli_agent_main(pc_cli *cli, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "wake") != 0)
        return pc_cli_agent(cli, argc, argv);
    bool help = false;
    for (int i = 1; i < argc; i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (help) {
        pc_cli_help("agent wake", "queue an on-demand heartbeat for an agent", wake_usage, NULL);
        return 0;
    }
    if (argc < 3) {
        fputs(wake_usage, stderr);
        return 2;
    }
    _cleanup_json_ json_t *body = json_pack("{s:s,s:s}", "source", "on_demand", "triggerDetail",
                                            "manual");
    for (int i = 3; i < argc; i++) {
        const char *v;
        if ((v = pc_cli_flag_value(argc, argv, &i, "--reason")))
            json_object_set_new(body, "reason", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--issue")))
            json_object_set_new(body, "issueId", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--idempotency-key")))
            json_object_set_new(body, "idempotencyKey", json_string(v));
        else {
            fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], wake_usage);
            return 2;
        }
    }
    _cleanup_free_ char *id = pc_cli_urlencode(argv[2]);
    _cleanup_free_ char *path = pc_xasprintf("/api/agents/%s/wakeup", id);
    return pc_cli_run(cli, "POST", path, body, print_obj);
}
