/*
 * paperclip cost ...: a company's spend through the HTTP API
 * (GET /api/companies/:id/costs/{summary,by-agent,by-project}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"

static const char cost_usage[] =
    "usage: paperclip cost summary COMPANY [--from DATE] [--to DATE]\n"
    "       paperclip cost by-agent COMPANY [--from DATE] [--to DATE]\n"
    "       paperclip cost by-project COMPANY [--from DATE] [--to DATE]\n"
    "\n"
    "DATE is YYYY-MM-DD or an ISO-8601 instant (UTC); both ends are inclusive.\n"
    "Amounts are in cents. --json prints the API's JSON.\n";

static void print_summary(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

static void print_by_agent(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"agentId",     "agentName",         "costCents",
                                       "inputTokens", "cachedInputTokens", "outputTokens",
                                       NULL};
    static const char *const heads[] = {"AGENT",  "NAME",   "CENTS", "INPUT",
                                        "CACHED", "OUTPUT", NULL};
    pc_cli_table(r, keys, heads);
}

static void print_by_project(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"projectId",   "projectName",       "costCents",
                                       "inputTokens", "cachedInputTokens", "outputTokens",
                                       NULL};
    static const char *const heads[] = {"PROJECT", "NAME",   "CENTS", "INPUT",
                                        "CACHED",  "OUTPUT", NULL};
    pc_cli_table(r, keys, heads);
}

int pc_cli_cost(pc_cli *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pc_cli_help("cost", "show a company's spend by agent, project or in total",
                        cost_usage, NULL);
            return 0;
        }
    if (argc < 3) {
        fputs(cost_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    void (*print_fn)(pc_cli *, json_t *) = NULL;
    if (!strcmp(sub, "summary"))
        print_fn = print_summary;
    else if (!strcmp(sub, "by-agent"))
        print_fn = print_by_agent;
    else if (!strcmp(sub, "by-project"))
        print_fn = print_by_project;
    else {
        fprintf(stderr, "paperclip: unknown cost command '%s'\n%s", sub, cost_usage);
        return 2;
    }
    const char *from = NULL, *to = NULL;
    for (int i = 3; i < argc; i++) {
        const char *v;
        if ((v = pc_cli_flag_value(argc, argv, &i, "--from")))
            from = v;
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--to")))
            to = v;
        else {
            fprintf(stderr, "paperclip: unknown option '%s'\n%s", argv[i], cost_usage);
            return 2;
        }
    }
    char *company = pc_cli_urlencode(argv[2]);
    char *f = from ? pc_cli_urlencode(from) : NULL, *t = to ? pc_cli_urlencode(to) : NULL;
    char *path = pc_xasprintf("/api/companies/%s/costs/%s%s%s%s%s%s", company, sub,
                              f || t ? "?" : "", f ? "from=" : "", f ? f : "",
                              f && t ? "&to="
                              : t    ? "to="
                                     : "",
                              t ? t : "");
    int rc = pc_cli_run(cli, "GET", path, NULL, print_fn);
    free(path), free(company), free(f), free(t);
    return rc;
}
