/*
 * paperclip project list|show|create|update and paperclip workspace
 * list|show: projects and the execution workspaces runs work in. The field
 * names are upstream's (projects: name, description, status, leadAgentId,
 * goalId, targetDate, color, executionWorkspacePolicy; execution workspaces:
 * name, status, mode, projectId, cwd, branchName, ...).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"

static const char *const project_statuses[] = {"backlog", "planned", "in_progress", "completed",
                                               "cancelled", NULL};

static const char project_usage[] =
    "usage: paperclip project list COMPANY_ID\n"
    "       paperclip project show PROJECT_ID\n"
    "       paperclip project create COMPANY_ID --name NAME [options]\n"
    "       paperclip project update PROJECT_ID [options]\n";

static const char project_description[] =
    "Projects group a company's issues and say where their runs work\n"
    "(executionWorkspacePolicy). 'list' shows the lead agent's name beside each\n"
    "project; 'show' prints one project's fields.\n"
    "\n"
    "OPTIONS (create and update)\n"
    "    --name NAME             the project's name (required for create)\n"
    "    --description TEXT      free text; 'none' clears it\n"
    "    --status STATUS         backlog, planned, in_progress, completed or cancelled\n"
    "    --lead AGENT_ID|none    the agent leading the project\n"
    "    --goal GOAL_ID|none     the goal the project serves\n"
    "    --target-date DATE      ISO-8601 date; 'none' clears it\n"
    "    --color COLOR           display colour such as #6366f1\n"
    "    --workspace-policy JSON the whole executionWorkspacePolicy object, e.g.\n"
    "                            '{\"enabled\":true,\"environmentId\":\"...\"}'; board only\n"
    "                            when it names an environment\n";

static const char workspace_usage[] =
    "usage: paperclip workspace list COMPANY_ID [--project PROJECT_ID] [--status S]\n"
    "       paperclip workspace show WORKSPACE_ID\n";

static const char workspace_description[] =
    "Execution workspaces are the directories (a project's checkout, a git\n"
    "worktree, an adapter-managed place) that heartbeat runs work in. 'list'\n"
    "shows the project's name beside each workspace; 'show' prints one\n"
    "workspace's fields.\n"
    "\n"
    "OPTIONS (list)\n"
    "    --project PROJECT_ID  only the workspaces of this project\n"
    "    --status S            only workspaces in this status (e.g. active, archived)\n";

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

static int usage_error(const char *cmd, const char *usage, const char *what, const char *arg)
{
    if (what)
        fprintf(stderr, "paperclip: %s%s%s%s\n", what, arg ? " '" : "", arg ? arg : "",
                arg ? "'" : "");
    fprintf(stderr, "%sTry 'paperclip %s --help' for details.\n", usage, cmd);
    return 2;
}

static void print_obj(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

static void print_projects(pc_cli *cli, json_t *r)
{
    static const char *const keys[] = {"id", "name", "status", "leadAgentName", "leadAgentId",
                                       "targetDate", NULL};
    static const char *const heads[] = {"ID", "NAME", "STATUS", "LEAD", "LEAD ID", "TARGET",
                                        NULL};
    pc_cli_add_names(cli, r, "leadAgentId", "leadAgentName");
    pc_cli_table(r, keys, heads);
}

/* Parses the create/update flags into body; -1 after printing on bad input. */
static int project_flags(int argc, char **argv, int start, json_t *body)
{
    static const struct {
        const char *flag, *key;
        int kind; /* 0 string, 1 string or none -> null, 2 JSON object or none */
    } map[] = {
        {"--name", "name", 0},
        {"--description", "description", 1},
        {"--status", "status", 0},
        {"--lead", "leadAgentId", 1},
        {"--goal", "goalId", 1},
        {"--target-date", "targetDate", 1},
        {"--color", "color", 1},
        {"--workspace-policy", "executionWorkspacePolicy", 2},
    };
    for (int i = start; i < argc; i++) {
        const char *v = NULL;
        size_t m = 0;
        for (; m < PC_ARRAY_LEN(map); m++)
            if ((v = pc_cli_flag_value(argc, argv, &i, map[m].flag)))
                break;
        if (!v) {
            usage_error("project", project_usage, "unexpected argument", argv[i]);
            return -1;
        }
        if (!strcmp(map[m].flag, "--status"))
            pc_cli_check_enum("--status", v, project_statuses, false);
        if (map[m].kind && !strcmp(v, "none")) {
            json_object_set_new(body, map[m].key, json_null());
        } else if (map[m].kind == 2) {
            json_error_t je;
            json_t *j = json_loads(v, 0, &je);
            if (!json_is_object(j)) {
                fprintf(stderr, "paperclip: %s must be a JSON object (%s)\n", map[m].flag,
                        j ? "not an object" : je.text);
                json_decref(j);
                return -1;
            }
            json_object_set_new(body, map[m].key, j);
        } else {
            json_object_set_new(body, map[m].key, json_string(v));
        }
    }
    return 0;
}

int pc_cli_project(pc_cli *cli, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        pc_cli_help("project", "list, show, create and update projects", project_usage,
                    project_description);
        return 0;
    }
    if (argc < 3)
        return usage_error("project", project_usage, argc < 2 ? NULL : "missing an id", NULL);
    const char *sub = argv[1];
    _cleanup_free_ char *id = pc_cli_urlencode(argv[2]);
    _cleanup_free_ char *path = NULL;
    _cleanup_json_ json_t *body = json_object();
    if (!strcmp(sub, "list") && argc == 3) {
        path = pc_xasprintf("/api/companies/%s/projects", id);
        return pc_cli_run(cli, "GET", path, NULL, print_projects);
    }
    if ((!strcmp(sub, "show") || !strcmp(sub, "get")) && argc == 3) {
        path = pc_xasprintf("/api/projects/%s", id);
        return pc_cli_run(cli, "GET", path, NULL, print_obj);
    }
    if (!strcmp(sub, "create") || !strcmp(sub, "update")) {
        if (project_flags(argc, argv, 3, body) < 0)
            return 2;
        if (!strcmp(sub, "create")) {
            if (!json_object_get(body, "name"))
                return usage_error("project", project_usage, "create needs --name", NULL);
            path = pc_xasprintf("/api/companies/%s/projects", id);
            return pc_cli_run(cli, "POST", path, body, print_obj);
        }
        if (json_object_size(body) == 0)
            return usage_error("project", project_usage, "update needs at least one option",
                               NULL);
        path = pc_xasprintf("/api/projects/%s", id);
        return pc_cli_run(cli, "PATCH", path, body, print_obj);
    }
    return usage_error("project", project_usage, "bad project command", sub);
}

/* Adds projectName to each workspace row from the company's project list. */
static void add_project_names(pc_cli *cli, json_t *rows)
{
    const char *cid = pc_json_str(json_array_get(rows, 0), "companyId");
    if (!cid)
        return;
    _cleanup_free_ char *ecid = pc_cli_urlencode(cid);
    _cleanup_free_ char *path = pc_xasprintf("/api/companies/%s/projects", ecid);
    _cleanup_json_ json_t *projects = NULL;
    long status = 0;
    if (pc_cli_call(cli, "GET", path, NULL, &projects, &status) < 0 || status != 200)
        return;
    size_t i, j;
    json_t *row, *p;
    json_array_foreach(rows, i, row) {
        const char *pid = pc_json_str(row, "projectId");
        if (!pid)
            continue;
        json_array_foreach(projects, j, p) {
            const char *id = pc_json_str(p, "id"), *name = pc_json_str(p, "name");
            if (id && name && !strcmp(id, pid)) {
                json_object_set_new(row, "projectName", json_string(name));
                break;
            }
        }
    }
}

static void print_workspaces(pc_cli *cli, json_t *r)
{
    static const char *const keys[] = {"id", "name", "status", "mode", "projectName",
                                       "projectId", "branchName", "cwd", NULL};
    static const char *const heads[] = {"ID", "NAME", "STATUS", "MODE", "PROJECT", "PROJECT ID",
                                        "BRANCH", "CWD", NULL};
    add_project_names(cli, r);
    pc_cli_table(r, keys, heads);
}

int pc_cli_workspace(pc_cli *cli, int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        pc_cli_help("workspace", "list and show execution workspaces", workspace_usage,
                    workspace_description);
        return 0;
    }
    if (argc < 3)
        return usage_error("workspace", workspace_usage, argc < 2 ? NULL : "missing an id",
                           NULL);
    const char *sub = argv[1];
    _cleanup_free_ char *id = pc_cli_urlencode(argv[2]);
    _cleanup_free_ char *path = NULL;
    if (!strcmp(sub, "list")) {
        const char *project = NULL, *status = NULL, *v;
        for (int i = 3; i < argc; i++) {
            if ((v = pc_cli_flag_value(argc, argv, &i, "--project")))
                project = v;
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--status")))
                status = v;
            else
                return usage_error("workspace", workspace_usage, "unexpected argument", argv[i]);
        }
        _cleanup_free_ char *p = project ? pc_cli_urlencode(project) : NULL;
        _cleanup_free_ char *s = status ? pc_cli_urlencode(status) : NULL;
        path = pc_xasprintf("/api/companies/%s/execution-workspaces%s%s%s%s%s", id,
                            p || s ? "?" : "", p ? "projectId=" : "", p ? p : "",
                            s ? (p ? "&status=" : "status=") : "", s ? s : "");
        return pc_cli_run(cli, "GET", path, NULL, print_workspaces);
    }
    if ((!strcmp(sub, "show") || !strcmp(sub, "get")) && argc == 3) {
        path = pc_xasprintf("/api/execution-workspaces/%s", id);
        return pc_cli_run(cli, "GET", path, NULL, print_obj);
    }
    return usage_error("workspace", workspace_usage, "bad workspace command", sub);
}
