/*
 * paperclip: the daemon (`serve`) and the CLI, one binary.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cli/cli.h"
#include "daemon/offline.h"
#include "daemon/services.h"

static const pc_cli_command commands[] = {
    {"health", pc_cli_health, "show the daemon's health"},
    {"company", pc_cli_company, "list, create, get and delete companies"},
    {"agent", pc_cli_agent_main, "list, create, get, update, delete and wake agents"},
    {"env", pc_cli_env, "manage environments (local, ssh, sandbox) and their leases"},
    {"secret", pc_cli_secret, "list, create and delete company secrets (values are write-only)"},
    {"cost", pc_cli_cost, "show a company's spend: summary, by agent, by project"},
    {"issue", pc_cli_issue, "list, create, get, update and comment on issues"},
    {"run", pc_cli_run_cmd, "list, get, cancel and read the log of heartbeat runs"},
    {"plugin", pc_cli_plugin, "install, list, inspect, enable/disable, uninstall and check plugins"},
    {"project", pc_cli_project, "list, show, create and update projects"},
    {"workspace", pc_cli_workspace, "list and show execution workspaces"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: paperclip [--api-url URL] [--api-key KEY] [--json] <command> [args]\n"
            "\n"
            "Paperclip control plane: runs AI agents as a company.\n"
            "\n"
            "commands:\n"
            "  serve        run the daemon (see paperclip serve --help)\n"
            "  auth         create board API keys (offline: opens the data dir's store)\n");
    for (const pc_cli_command *c = commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out,
            "\n"
            "global options:\n"
            "  --api-url URL   daemon URL (default $PAPERCLIP_API_URL or http://127.0.0.1:3100)\n"
            "  --api-key KEY   bearer credential (default $PAPERCLIP_API_KEY)\n"
            "  --json          print the API's JSON instead of tables\n"
            "\n"
            "Run 'paperclip <command> --help' for a command's usage.\n");
}

/* Reads one global option at argv[*i] into cli. Returns 1 when it was one
 * (and *i is past its value), 0 when argv[*i] is something else, -1 (after
 * printing) on a missing or bad value. */
static int global_option(pc_cli *cli, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    bool url = false;
    if (!strcmp(a, "--json")) {
        cli->json = true;
        return 1;
    }
    if (!strcmp(a, "--api-url") || !strcmp(a, "--api-key")) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "paperclip: %s needs a value\n", a);
            return -1;
        }
        url = !strcmp(a, "--api-url");
        v = argv[++*i];
    } else if (!strncmp(a, "--api-url=", 10)) {
        url = true;
        v = a + 10;
    } else if (!strncmp(a, "--api-key=", 10)) {
        v = a + 10;
    } else {
        return 0;
    }
    if (url) {
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
            fprintf(stderr, "paperclip: --api-url must be an http:// or https:// URL, not '%s'\n",
                    v);
            return -1;
        }
        cli->api_url = v;
    } else {
        cli->api_key = v;
    }
    return 1;
}

int main(int argc, char **argv)
{
    pc_cli cli = {0};
    cli.api_url = getenv("PAPERCLIP_API_URL");
    cli.api_key = getenv("PAPERCLIP_API_KEY");
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        int g = global_option(&cli, argc, argv, &i);
        if (g < 0)
            return 2;
        if (g > 0)
            continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("paperclip %s\n", PC_VERSION);
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "paperclip: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (!cli.api_url || !*cli.api_url)
        cli.api_url = "http://127.0.0.1:3100";
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    if (!strcmp(cmd, "serve"))
        return pc_daemon_serve(argc - i, argv + i);
    /* Offline commands work on local files, not through the API. */
    if (!strcmp(cmd, "auth"))
        return pc_daemon_auth(argc - i, argv + i);
    /* Global options may also follow the command (`company list --json`):
     * they are taken out here so commands only see their own arguments. A
     * lone "--" ends option parsing, so a literal "--json" can still be
     * passed as a value after it. */
    int n = 0;
    char **args = calloc((size_t)(argc - i) + 1, sizeof *args);
    if (!args)
        return 3;
    bool literal = false;
    for (int k = i; k < argc; k++) {
        if (!literal && !strcmp(argv[k], "--")) {
            literal = true;
            continue;
        }
        if (!literal) {
            int g = global_option(&cli, argc, argv, &k);
            if (g < 0) {
                free(args);
                return 2;
            }
            if (g > 0)
                continue;
        }
        args[n++] = argv[k];
    }
    int rc = -1;
    if (!strcmp(cmd, "plugin") && n == 3 && !strcmp(args[1], "check") &&
        strcmp(args[2], "--help") != 0 && strcmp(args[2], "-h") != 0) {
        rc = pc_daemon_plugin_check(n, args);
        free(args);
        return rc;
    }
    for (const pc_cli_command *c = commands; c->name; c++)
        if (!strcmp(c->name, cmd))
            rc = c->fn(&cli, n, args);
    free(args);
    if (rc >= 0)
        return rc;
    fprintf(stderr, "paperclip: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
