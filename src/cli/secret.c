/*
 * paperclip secret ...: company secrets through the HTTP API.
 *
 * A value is read from a file or from stdin, never from the command line,
 * so it does not end up in shell history or in another user's `ps`. The
 * daemon never returns a value; list and create print metadata only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

#define SECRET_VALUE_MAX (1024 * 1024)

static const char secret_usage[] =
    "usage: paperclip secret list COMPANY\n"
    "       paperclip secret create COMPANY --name NAME (--value-file FILE | --value-stdin)\n"
    "                 [--description TEXT]\n"
    "       paperclip secret delete ID\n"
    "\n"
    "Values are write-only: the daemon seals them at rest and never returns them.\n"
    "They are read from a file or stdin, never from arguments, so they stay out\n"
    "of shell history and the process list. Use a secret in an environment config\n"
    "as {\"type\":\"secret_ref\",\"secretId\":\"ID\"}. Deleting a secret an environment\n"
    "still references is refused.\n"
    "\n"
    "Tables by default; --json prints the API's JSON.\n";

static void print_secrets(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"id", "name", "latestVersion", "description", "updatedAt",
                                       NULL};
    static const char *const heads[] = {"ID", "NAME", "VERSION", "DESCRIPTION", "UPDATED", NULL};
    pc_cli_table(r, keys, heads);
}

static void print_obj(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

/* Reads all of stdin (bounded); NULL with a message on failure. */
static char *read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = pc_xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > SECRET_VALUE_MAX) {
                fprintf(stderr, "paperclip: the value on stdin is larger than %d bytes\n",
                        SECRET_VALUE_MAX);
                memset(buf, 0, len);
                free(buf);
                return NULL;
            }
            buf = pc_xrealloc(buf, cap * 2);
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, stdin);
        if (n == 0)
            break;
        len += n;
    }
    buf[len] = '\0';
    return buf;
}

/* One trailing newline (what `echo` and editors add) is not part of the value. */
static void chomp(char *s)
{
    size_t n = strlen(s);
    if (n && s[n - 1] == '\n')
        s[--n] = '\0';
    if (n && s[n - 1] == '\r')
        s[--n] = '\0';
}

static int cmd_create(pc_cli *cli, int argc, char **argv)
{
    const char *name = NULL, *desc = NULL, *file = NULL, *v;
    bool from_stdin = false;
    for (int i = 3; i < argc; i++) {
        if ((v = pc_cli_flag_value(argc, argv, &i, "--name")))
            name = v;
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--description")))
            desc = v;
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--value-file")))
            file = v;
        else if (!strcmp(argv[i], "--value-stdin"))
            from_stdin = true;
        else {
            fprintf(stderr, "paperclip: unexpected argument '%s'%s\n", argv[i],
                    !strncmp(argv[i], "--value", 7)
                        ? " (values are read from --value-file or --value-stdin only)"
                        : "");
            return 2;
        }
    }
    if (!name || (!file) == (!from_stdin)) {
        fputs(secret_usage, stderr);
        return 2;
    }
    char *value = NULL;
    size_t len = 0;
    if (file) {
        if (pc_read_file(file, SECRET_VALUE_MAX, &value, &len) < 0) {
            fprintf(stderr, "paperclip: cannot read %s\n", file);
            return 2;
        }
    } else if (!(value = read_stdin())) {
        return 2;
    }
    chomp(value);
    if (!*value) {
        free(value);
        fprintf(stderr, "paperclip: the secret value is empty\n");
        return 2;
    }
    json_t *body = json_pack("{s:s,s:s}", "name", name, "value", value);
    memset(value, 0, strlen(value));
    free(value);
    if (desc)
        json_object_set_new(body, "description", json_string(desc));
    char path[1024];
    char *c = pc_cli_urlencode(argv[2]);
    snprintf(path, sizeof path, "/api/companies/%s/secrets", c);
    free(c);
    int rc = pc_cli_run(cli, "POST", path, body, print_obj);
    /* The body held the value; wipe the copy before it is freed. */
    json_t *jv = json_object_get(body, "value");
    if (jv) {
        char *p = (char *)json_string_value(jv);
        memset(p, 0, strlen(p));
    }
    json_decref(body);
    return rc;
}

int pc_cli_secret(pc_cli *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pc_cli_help("secret", "list, create and delete company secrets", secret_usage, NULL);
            return 0;
        }
    if (argc < 3) {
        fputs(secret_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    char path[1024];
    if (!strcmp(sub, "create"))
        return cmd_create(cli, argc, argv);
    if (argc > 3) {
        fprintf(stderr, "paperclip: unexpected argument '%s'\n", argv[3]);
        return 2;
    }
    char *arg = pc_cli_urlencode(argv[2]);
    int rc;
    if (!strcmp(sub, "list")) {
        snprintf(path, sizeof path, "/api/companies/%s/secrets", arg);
        rc = pc_cli_run(cli, "GET", path, NULL, print_secrets);
    } else if (!strcmp(sub, "delete")) {
        snprintf(path, sizeof path, "/api/secrets/%s", arg);
        rc = pc_cli_run(cli, "DELETE", path, NULL, print_obj);
    } else {
        fprintf(stderr, "paperclip: unknown secret command '%s'\n%s", sub, secret_usage);
        rc = 2;
    }
    free(arg);
    return rc;
}
