/* paperclip plugin install|list|get|health|logs|enable|disable|uninstall|check */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"


static const char plugin_usage[] =
    "usage: paperclip plugin install DIR\n"
    "       paperclip plugin list\n"
    "       paperclip plugin get ID|KEY\n"
    "       paperclip plugin health ID|KEY\n"
    "       paperclip plugin logs ID|KEY\n"
    "       paperclip plugin enable ID|KEY\n"
    "       paperclip plugin disable ID|KEY\n"
    "       paperclip plugin uninstall ID|KEY\n"
    "       paperclip plugin check DIR\n"
    "\n"
    "install registers a local plugin package (a directory whose package.json has\n"
    "\"paperclipPlugin\": {\"manifest\", \"worker\"}) with the daemon and starts it.\n"
    "check needs no daemon: it runs the plugin in a scratch host and drives it\n"
    "through the environment lifecycle (validate, probe, acquire, realize,\n"
    "execute with stdin, env isolation, timeout and large output, then\n"
    "resume/release/destroy when supported), printing PASS/FAIL per check;\n"
    "it exits 0 only if every check passed.\n";

static void print_list(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"id", "pluginKey", "version", "status", "lastError", NULL};
    static const char *const heads[] = {"ID", "KEY", "VERSION", "STATUS", "LAST ERROR", NULL};
    pc_cli_table(r, keys, heads);
}

static void print_plugin(pc_cli *cli, json_t *r)
{
    (void)cli;
    json_t *copy = json_deep_copy(r);
    json_object_del(copy, "manifestJson");
    pc_cli_kv(copy);
    json_decref(copy);
}

static void print_health(pc_cli *cli, json_t *r)
{
    (void)cli;
    printf("status: %s\nhealthy: %s\n", pc_json_str(r, "status") ? pc_json_str(r, "status") : "?",
           json_is_true(json_object_get(r, "healthy")) ? "yes" : "no");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r, "checks"), i, c)
    {
        const char *m = pc_json_str(c, "message");
        printf("  %s %s%s%s\n", json_is_true(json_object_get(c, "passed")) ? "PASS" : "FAIL",
               pc_json_str(c, "name"), m ? ": " : "", m ? m : "");
    }
    if (pc_json_str(r, "lastError"))
        printf("last error: %s\n", pc_json_str(r, "lastError"));
}

static void print_logs(pc_cli *cli, json_t *r)
{
    (void)cli;
    for (size_t i = json_array_size(r); i > 0; i--) {
        json_t *l = json_array_get(r, i - 1);
        printf("%s %-5s [%s] %s\n", pc_json_str(l, "createdAt"), pc_json_str(l, "level"),
               pc_json_str(json_object_get(l, "meta"), "source"), pc_json_str(l, "message"));
    }
}

int pc_cli_plugin(pc_cli *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pc_cli_help("plugin", "install, list, inspect, enable/disable, uninstall and check plugins",
                        plugin_usage, NULL);
            return 0;
        }
    }
    if (argc < 2) {
        fputs(plugin_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "list") && argc == 2)
        return pc_cli_run(cli, "GET", "/api/plugins", NULL, print_list);
    if (!strcmp(sub, "install") && argc == 3) {
        /* The daemon wants an absolute path; resolve ours so `install .`
         * means the directory the user is in, not the daemon's. */
        char real[PATH_MAX];
        if (!realpath(argv[2], real)) {
            fprintf(stderr, "error: cannot resolve %s: %s\n", argv[2], strerror(errno));
            return 2;
        }
        json_t *body = json_pack("{s:s,s:b}", "packageName", real, "isLocalPath", 1);
        int rc = pc_cli_run(cli, "POST", "/api/plugins/install", body, print_plugin);
        json_decref(body);
        return rc;
    }
    static const struct {
        const char *sub, *method, *suffix;
        void (*print)(pc_cli *, json_t *);
    } simple[] = {
        {"get", "GET", "", print_plugin},
        {"health", "GET", "/health", print_health},
        {"logs", "GET", "/logs", print_logs},
        {"enable", "POST", "/enable", print_plugin},
        {"disable", "POST", "/disable", print_plugin},
        {"uninstall", "DELETE", "", print_plugin},
    };
    for (size_t i = 0; i < PC_ARRAY_LEN(simple); i++) {
        if (strcmp(sub, simple[i].sub) || argc != 3)
            continue;
        _cleanup_free_ char *id = pc_cli_urlencode(argv[2]);
        _cleanup_free_ char *path = pc_xasprintf("/api/plugins/%s%s", id, simple[i].suffix);
        return pc_cli_run(cli, simple[i].method, path, NULL, simple[i].print);
    }
    fprintf(stderr, "paperclip: bad plugin command\n%s", plugin_usage);
    return 2;
}
