/* paperclip health | company ... | agent ... */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"

static bool pc_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

static void pc_print_health(pc_cli *cli, json_t *r)
{
    (void)cli;
    printf("status: %s\nversion: %s\nmode: %s\n", pc_json_str(r, "status") ?: "?",
           pc_json_str(r, "version") ?: "?", pc_json_str(r, "deploymentMode") ?: "?");
}

int pc_cli_health(pc_cli *cli, int argc, char **argv)
{
    if (pc_cli_wants_help(argc, argv)) {
        pc_cli_help("health", "show the daemon's health", "usage: paperclip health\n",
                    "Asks the daemon at --api-url for GET /api/health and prints its status,\n"
                    "version and deployment mode. Needs no credentials.");
        return 0;
    }
    return pc_cli_run(cli, "GET", "/api/health", NULL, pc_print_health);
}

static void pc_print_companies(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"id", "name", "issuePrefix", "status", NULL};
    static const char *const heads[] = {"ID", "NAME", "PREFIX", "STATUS", NULL};
    pc_cli_table(r, keys, heads);
}

static void pc_print_object(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

static const char company_description[] =
    "A company owns agents, issues, projects, environments and secrets. Each gets\n"
    "a short issue prefix from its name (\"Loadtest\" -> LOA, then LOA2, LOA3, ...\n"
    "for more companies of the same name); its issues are PREFIX-1, PREFIX-2, ...\n"
    "\n"
    "OPTIONS (create)\n"
    "    --description TEXT  free text\n"
    "    --budget CENTS      monthly budget in cents (a whole number, 0 for none)";

static const char company_usage[] =
    "usage: paperclip company list\n"
    "       paperclip company create NAME [--description TEXT] [--budget CENTS]\n"
    "       paperclip company get ID\n"
    "       paperclip company delete ID\n";

int pc_cli_company(pc_cli *cli, int argc, char **argv)
{
    if (pc_cli_wants_help(argc, argv)) {
        pc_cli_help("company", "list, create, get and delete companies", company_usage,
                    company_description);
        return 0;
    }
    if (argc < 2) {
        fputs(company_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "list"))
        return pc_cli_run(cli, "GET", "/api/companies", NULL, pc_print_companies);
    if (!strcmp(sub, "create")) {
        json_t *body = json_object();
        const char *name = NULL, *v;
        for (int i = 2; i < argc; i++) {
            if ((v = pc_cli_flag_value(argc, argv, &i, "--description")))
                json_object_set_new(body, "description", json_string(v));
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--budget")))
                json_object_set_new(body, "budgetMonthlyCents", json_integer(pc_cli_parse_int("--budget", v, 0, INT64_MAX / 2)));
            else if (argv[i][0] != '-' && !name)
                name = argv[i];
            else {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], company_usage);
                json_decref(body);
                return 2;
            }
        }
        if (!name) {
            fputs(company_usage, stderr);
            json_decref(body);
            return 2;
        }
        json_object_set_new(body, "name", json_string(name));
        int rc = pc_cli_run(cli, "POST", "/api/companies", body, pc_print_object);
        json_decref(body);
        return rc;
    }
    if ((!strcmp(sub, "get") || !strcmp(sub, "delete")) && argc == 3) {
        char *id = pc_cli_urlencode(argv[2]);
        char *path = pc_xasprintf("/api/companies/%s", id);
        int rc = pc_cli_run(cli, !strcmp(sub, "get") ? "GET" : "DELETE", path, NULL,
                            pc_print_object);
        free(path);
        free(id);
        return rc;
    }
    fprintf(stderr, "paperclip: bad company command\n%s", company_usage);
    return 2;
}

static void pc_print_agents(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"id", "name", "role", "status", "adapterType", NULL};
    static const char *const heads[] = {"ID", "NAME", "ROLE", "STATUS", "ADAPTER", NULL};
    pc_cli_table(r, keys, heads);
}

static const char agent_usage[] =
    "usage: paperclip agent list COMPANY_ID\n"
    "       paperclip agent create COMPANY_ID --name NAME [options]\n"
    "       paperclip agent get AGENT_ID\n"
    "       paperclip agent update AGENT_ID [options]\n"
    "       paperclip agent delete AGENT_ID\n"
    "       paperclip agent pause|resume|terminate AGENT_ID\n"
    "options: --name NAME --role ROLE --title TITLE --adapter-type TYPE\n"
    "         --adapter-config JSON --runtime-config JSON --permissions JSON\n"
    "         --default-environment ID|none --reports-to ID|none --status STATUS\n";

/* Parses agent flags into body; returns -1 (after printing) on bad input. */
static int pc_agent_flags(int argc, char **argv, int start, json_t *body)
{
    static const struct {
        const char *flag, *key;
        int kind; /* 0 string, 1 json object, 2 string or none -> null */
    } map[] = {
        {"--name", "name", 0},
        {"--role", "role", 0},
        {"--title", "title", 0},
        {"--status", "status", 0},
        {"--adapter-type", "adapterType", 0},
        {"--adapter-config", "adapterConfig", 1},
        {"--runtime-config", "runtimeConfig", 1},
        {"--permissions", "permissions", 1},
        {"--default-environment", "defaultEnvironmentId", 2},
        {"--reports-to", "reportsTo", 2},
    };
    for (int i = start; i < argc; i++) {
        const char *v = NULL;
        size_t m = 0;
        for (; m < PC_ARRAY_LEN(map); m++)
            if ((v = pc_cli_flag_value(argc, argv, &i, map[m].flag)))
                break;
        if (!v) {
            fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], agent_usage);
            return -1;
        }
        if (map[m].kind == 1) {
            json_error_t je;
            json_t *j = json_loads(v, 0, &je);
            if (!json_is_object(j)) {
                fprintf(stderr, "paperclip: %s must be a JSON object (%s)\n", map[m].flag,
                        j ? "not an object" : je.text);
                json_decref(j);
                return -1;
            }
            json_object_set_new(body, map[m].key, j);
        } else if (map[m].kind == 2 && !strcmp(v, "none")) {
            json_object_set_new(body, map[m].key, json_null());
        } else {
            json_object_set_new(body, map[m].key, json_string(v));
        }
    }
    return 0;
}

int pc_cli_agent(pc_cli *cli, int argc, char **argv)
{
    if (pc_cli_wants_help(argc, argv)) {
        pc_cli_help("agent", "list, create, get, update, delete and wake agents", agent_usage,
                    "Agents are a company's workers; a heartbeat run wakes one to work on its\n"
                    "issues. See 'paperclip agent wake --help' for waking an agent by hand.");
        return 0;
    }
    if (argc < 3) {
        fputs(agent_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    char *id = pc_cli_urlencode(argv[2]);
    char *path = NULL;
    int rc = 2;
    json_t *body = NULL;
    if (!strcmp(sub, "list") && argc == 3) {
        path = pc_xasprintf("/api/companies/%s/agents", id);
        rc = pc_cli_run(cli, "GET", path, NULL, pc_print_agents);
    } else if (!strcmp(sub, "create") || !strcmp(sub, "update")) {
        body = json_object();
        if (pc_agent_flags(argc, argv, 3, body) == 0) {
            if (!strcmp(sub, "create")) {
                path = pc_xasprintf("/api/companies/%s/agents", id);
                rc = pc_cli_run(cli, "POST", path, body, pc_print_object);
            } else {
                path = pc_xasprintf("/api/agents/%s", id);
                rc = pc_cli_run(cli, "PATCH", path, body, pc_print_object);
            }
        }
    } else if ((!strcmp(sub, "get") || !strcmp(sub, "delete")) && argc == 3) {
        path = pc_xasprintf("/api/agents/%s", id);
        rc = pc_cli_run(cli, !strcmp(sub, "get") ? "GET" : "DELETE", path, NULL, pc_print_object);
    } else if ((!strcmp(sub, "pause") || !strcmp(sub, "resume") || !strcmp(sub, "terminate")) &&
               argc == 3) {
        /* Board only; terminate is final (docs/heartbeats.md). */
        body = json_object();
        path = pc_xasprintf("/api/agents/%s/%s", id, sub);
        rc = pc_cli_run(cli, "POST", path, body, pc_print_object);
    } else {
        fprintf(stderr, "paperclip: bad agent command\n%s", agent_usage);
    }
    json_decref(body);
    free(path);
    free(id);
    return rc;
}
