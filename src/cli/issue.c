/* paperclip issue list|create|get|update|comment */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"

static const char issue_usage[] =
    "usage: paperclip issue list COMPANY_ID [--status S[,S...]] [--assignee AGENT_ID]\n"
    "       paperclip issue create COMPANY_ID --title T [--description D] [--assignee AGENT_ID]\n"
    "                              [--status S] [--priority P] [--environment ENV_ID]\n"
    "                              [--project PROJECT_ID]\n"
    "       paperclip issue get ISSUE_ID|IDENTIFIER\n"
    "       paperclip issue update ISSUE_ID [--title T] [--description D] [--status S]\n"
    "                              [--priority P] [--assignee AGENT_ID|none]\n"
    "                              [--environment ENV_ID|none] [--project PROJECT_ID|none]\n"
    "       paperclip issue comment ISSUE_ID TEXT\n"
    "\n"
    "Statuses: backlog todo in_progress in_review done blocked cancelled.\n"
    "Priorities: critical high medium low. An issue created or moved to todo with\n"
    "an agent assignee wakes that agent.\n";

static const char *const issue_statuses[] = {"backlog", "todo",    "in_progress", "in_review",
                                             "done",    "blocked", "cancelled",   NULL};
static const char *const issue_priorities[] = {"critical", "high", "medium", "low", NULL};

static void print_issues(pc_cli *cli, json_t *r)
{
    static const char *const keys[] = {"identifier", "id", "status", "priority",
                                       "assigneeAgentName", "assigneeAgentId", "title", NULL};
    static const char *const heads[] = {"KEY", "ID", "STATUS", "PRIORITY", "ASSIGNEE",
                                        "ASSIGNEE ID", "TITLE", NULL};
    pc_cli_add_names(cli, r, "assigneeAgentId", "assigneeAgentName");
    pc_cli_table(r, keys, heads);
}

static void print_obj(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

/* Parses the create/update flags into body; -1 on a usage error. */
static int issue_flags(int argc, char **argv, int start, json_t *body)
{
    for (int i = start; i < argc; i++) {
        const char *v;
        if ((v = pc_cli_flag_value(argc, argv, &i, "--title")))
            json_object_set_new(body, "title", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--description")))
            json_object_set_new(body, "description", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--status"))) {
            pc_cli_check_enum("--status", v, issue_statuses, false);
            json_object_set_new(body, "status", json_string(v));
        } else if ((v = pc_cli_flag_value(argc, argv, &i, "--priority"))) {
            pc_cli_check_enum("--priority", v, issue_priorities, false);
            json_object_set_new(body, "priority", json_string(v));
        }
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--assignee")))
            json_object_set_new(body, "assigneeAgentId",
                                strcmp(v, "none") ? json_string(v) : json_null());
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--project")))
            json_object_set_new(body, "projectId", strcmp(v, "none") ? json_string(v) : json_null());
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--environment")))
            json_object_set_new(body, "executionWorkspaceSettings",
                                strcmp(v, "none")
                                    ? json_pack("{s:s}", "environmentId", v)
                                    : json_pack("{s:n}", "environmentId"));
        else {
            fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], issue_usage);
            return -1;
        }
    }
    return 0;
}

int pc_cli_issue(pc_cli *cli, int argc, char **argv)
{
    bool help = false;
    for (int i = 1; i < argc; i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (help) {
        pc_cli_help("issue", "list, create, get, update and comment on issues", issue_usage,
                    "'list' shows each issue's assignee name beside its id.");
        return 0;
    }
    if (argc < 3) {
        fputs(issue_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    _cleanup_free_ char *id = pc_cli_urlencode(argv[2]);
    _cleanup_free_ char *path = NULL;
    _cleanup_json_ json_t *body = json_object();
    if (!strcmp(sub, "list")) {
        const char *status = NULL, *assignee = NULL, *v;
        for (int i = 3; i < argc; i++) {
            if ((v = pc_cli_flag_value(argc, argv, &i, "--status"))) {
                pc_cli_check_enum("--status", v, issue_statuses, true);
                status = v;
            } else if ((v = pc_cli_flag_value(argc, argv, &i, "--assignee")))
                assignee = v;
            else {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], issue_usage);
                return 2;
            }
        }
        _cleanup_free_ char *s = status ? pc_cli_urlencode(status) : NULL;
        _cleanup_free_ char *a = assignee ? pc_cli_urlencode(assignee) : NULL;
        path = pc_xasprintf("/api/companies/%s/issues?%s%s%s%s", id, s ? "status=" : "",
                            s ? s : "", a ? "&assigneeAgentId=" : "", a ? a : "");
        return pc_cli_run(cli, "GET", path, NULL, print_issues);
    }
    if (!strcmp(sub, "create")) {
        if (issue_flags(argc, argv, 3, body) < 0)
            return 2;
        path = pc_xasprintf("/api/companies/%s/issues", id);
        return pc_cli_run(cli, "POST", path, body, print_obj);
    }
    if (!strcmp(sub, "get") && argc == 3) {
        path = pc_xasprintf("/api/issues/%s", id);
        return pc_cli_run(cli, "GET", path, NULL, print_obj);
    }
    if (!strcmp(sub, "update")) {
        if (issue_flags(argc, argv, 3, body) < 0)
            return 2;
        path = pc_xasprintf("/api/issues/%s", id);
        return pc_cli_run(cli, "PATCH", path, body, print_obj);
    }
    if (!strcmp(sub, "comment") && argc == 4) {
        json_object_set_new(body, "body", json_string(argv[3]));
        path = pc_xasprintf("/api/issues/%s/comments", id);
        return pc_cli_run(cli, "POST", path, body, print_obj);
    }
    fprintf(stderr, "paperclip: bad issue command\n%s", issue_usage);
    return 2;
}
