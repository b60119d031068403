#include "daemon/offline.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/config.h"
#include "lib/log.h"
#include "model/board_keys.h"
#include "plugin/check.h"
#include "store/db.h"

static const char auth_usage[] =
    "usage: paperclip auth create-board-key [--name NAME] [--data-dir DIR]\n"
    "\n"
    "Creates a board API key (pcb_...) and prints it once. Use it as\n"
    "'Authorization: Bearer KEY' (or --api-key) in authenticated mode.\n"
    "\n"
    "This is an offline command: it does not contact a daemon (--api-url and\n"
    "--api-key are ignored) but opens the store in the data dir directly, so it\n"
    "must run on the daemon's machine as the user owning the data dir. It works\n"
    "whether or not the daemon is running. The data dir must exist (start the\n"
    "daemon once first); it defaults to $PAPERCLIP_HOME or\n"
    "~/.local/share/paperclip.\n";

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

/* `--name value` or `--name=value` at argv[*i]; advances *i past a value.
 * A flag without its value ends the process with status 2, as in the CLI. */
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "paperclip: %s needs a value\n", name);
        exit(2);
    }
    return argv[++*i];
}

int pc_daemon_auth(int argc, char **argv)
{
    if (argc < 2 || wants_help(argc, argv)) {
        fputs(auth_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "create-board-key") != 0) {
        fprintf(stderr, "paperclip: unknown auth command '%s'\n%s", argv[1], auth_usage);
        return 2;
    }
    const char *name = "board", *dir = NULL, *v;
    for (int i = 2; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "--name")))
            name = v;
        else if ((v = flag_value(argc, argv, &i, "--data-dir")))
            dir = v;
        else {
            fprintf(stderr, "paperclip: unexpected argument '%s'\n%s", argv[i], auth_usage);
            return 2;
        }
    }
    char ddir[1024], path[1200];
    if (dir)
        snprintf(ddir, sizeof ddir, "%s", dir);
    else
        pc_config_default_data_dir(ddir, sizeof ddir);
    if (sodium_init() < 0)
        return 1;
    snprintf(path, sizeof path, "%s/paperclip.db", ddir);
    pc_error_t err = PC_ERROR_INIT;
    if (access(ddir, F_OK) != 0) {
        fprintf(stderr, "paperclip: data dir %s does not exist (start the daemon once first)\n",
                ddir);
        return 1;
    }
    pc_db *db = pc_db_open_sqlite(path, &err);
    char token[PC_BOARD_KEY_LEN + 1];
    if (!db || pc_board_key_create(db, name, token, &err) < 0) {
        fprintf(stderr, "paperclip: %s\n", err.msg);
        pc_error_clear(&err);
        pc_db_close(db);
        return 1;
    }
    pc_db_close(db);
    printf("%s\n", token);
    return 0;
}

int pc_daemon_plugin_check(int argc, char **argv)
{
    if (argc != 3) {
        fputs("usage: paperclip plugin check DIR\n", stderr);
        return 2;
    }
    char real[PATH_MAX];
    if (!realpath(argv[2], real)) {
        fprintf(stderr, "error: cannot resolve %s: %s\n", argv[2], strerror(errno));
        return 2;
    }
    pc_log_setup(0, PC_LOG_ERROR);
    return pc_plugin_check(real, stdout);
}
