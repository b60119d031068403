/*
 * paperclip: the daemon (`serve`) and the CLI, one binary.
 */
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

int main(int argc, char **argv)
{
    pc_cli cli = {0};
    cli.api_url = getenv("PAPERCLIP_API_URL");
    cli.api_key = getenv("PAPERCLIP_API_KEY");
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            cli.json = true;
        } else if (!strcmp(a, "--api-url") || !strcmp(a, "--api-key")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "paperclip: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--api-url"))
                cli.api_url = argv[++i];
            else
                cli.api_key = argv[++i];
        } else if (!strncmp(a, "--api-url=", 10)) {
            cli.api_url = a + 10;
        } else if (!strncmp(a, "--api-key=", 10)) {
            cli.api_key = a + 10;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
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
    if (!strcmp(cmd, "plugin") && argc - i == 3 && !strcmp(argv[i + 1], "check") &&
        strcmp(argv[i + 2], "--help") != 0 && strcmp(argv[i + 2], "-h") != 0)
        return pc_daemon_plugin_check(argc - i, argv + i);
    for (const pc_cli_command *c = commands; c->name; c++)
        if (!strcmp(c->name, cmd))
            return c->fn(&cli, argc - i, argv + i);
    fprintf(stderr, "paperclip: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
