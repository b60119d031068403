/*
 * The CLI: every command here is a client of the HTTP API; `serve` and the
 * offline commands (daemon/offline.h) are dispatched by main() instead.
 *
 * main() parses the global options (--api-url, --api-key, --json), wherever
 * they stand on the line, into a pc_cli, and dispatches `paperclip <command> ...` to the command's entry
 * point with the global options taken out; it parses its own subcommand and flags, calls pc_cli_call() and
 * prints either a readable table or, with --json, the raw JSON.
 *
 * Exit codes: 0 success, 1 the API answered with an error (its "error" text
 * is printed on stderr), 2 usage errors, 3 the daemon could not be reached.
 */
#ifndef PC_CLI_CLI_H
#define PC_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>

typedef struct pc_cli {
    const char *api_url; /* --api-url, $PAPERCLIP_API_URL, http://127.0.0.1:3100 */
    const char *api_key; /* --api-key or $PAPERCLIP_API_KEY; sent as Bearer */
    bool json;           /* --json: print the API's JSON */
} pc_cli;

typedef int (*pc_cli_cmd_fn)(pc_cli *cli, int argc, char **argv);

typedef struct pc_cli_command {
    const char *name;
    pc_cli_cmd_fn fn;
    const char *summary;
} pc_cli_command;

/* Performs an API request. body (borrowed) may be NULL. On return *out (new
 * ref, may be NULL for empty bodies) and *status are set. Returns 0 when a
 * response arrived (any status), -1 when the daemon was unreachable (message
 * already printed). */
int pc_cli_call(pc_cli *cli, const char *method, const char *path, json_t *body, json_t **out,
                long *status);

/* Convenience: performs the request and, on a 2xx, prints the result (as JSON
 * with --json, else through print_fn or as pretty JSON), returning the exit
 * code. On an error status prints "error: <text>" and returns 1. */
int pc_cli_run(pc_cli *cli, const char *method, const char *path, json_t *body,
               void (*print_fn)(pc_cli *cli, json_t *result));

/* Prints rows (array of objects) as an aligned table of the given keys;
 * headers[i] titles keys[i]; both NULL-terminated. Nested values print as
 * compact JSON; long cells are cut at 60 characters. */
void pc_cli_table(json_t *rows, const char *const *keys, const char *const *headers);
/* Prints an object as "key: value" lines. */
void pc_cli_kv(json_t *obj);

/* Flag parsing helpers: `--name value` or `--name=value`. Returns the value
 * (pointing into argv) and removes nothing; *i advances past consumed args. */
const char *pc_cli_flag_value(int argc, char **argv, int *i, const char *name);
/* URL-encodes s for a path segment or query value; caller frees. */
char *pc_cli_urlencode(const char *s);

/* Parses an integer flag value; on anything but a whole number in [min, max]
 * prints "paperclip: FLAG must be an integer from MIN to MAX" and exits 2. */
long long pc_cli_parse_int(const char *flag, const char *v, long long min, long long max);

/* Checks a flag value against the allowed words (list: a comma-separated
 * list of them); on anything else prints the allowed words and exits 2. */
void pc_cli_check_enum(const char *flag, const char *v, const char *const *allowed, bool list);

/* Prints a command's manual page on stdout: NAME, SYNOPSIS (the command lines
 * of usage), DESCRIPTION (description, then usage's other lines), GLOBAL
 * OPTIONS and EXIT STATUS. description may be NULL. */
void pc_cli_help(const char *cmd, const char *summary, const char *usage, const char *description);

/* Names beside ids: returns a new object mapping the company's agent ids to
 * their names (empty when company_id is NULL or the request fails). */
json_t *pc_cli_agent_names(pc_cli *cli, const char *company_id);
/* For each row (array of objects of one company, read from the first row's
 * companyId), sets name_key to the name of the agent whose id is in id_key;
 * an agent that cannot be read shows as "?". Rows without id_key are left. */
void pc_cli_add_names(pc_cli *cli, json_t *rows, const char *id_key, const char *name_key);

/* Command entry points. */
int pc_cli_health(pc_cli *cli, int argc, char **argv);
int pc_cli_company(pc_cli *cli, int argc, char **argv);
int pc_cli_agent(pc_cli *cli, int argc, char **argv);
int pc_cli_env(pc_cli *cli, int argc, char **argv);
int pc_cli_secret(pc_cli *cli, int argc, char **argv);
int pc_cli_cost(pc_cli *cli, int argc, char **argv);
int pc_cli_issue(pc_cli *cli, int argc, char **argv);
int pc_cli_run_cmd(pc_cli *cli, int argc, char **argv);
int pc_cli_agent_main(pc_cli *cli, int argc, char **argv); /* agent wake, else pc_cli_agent */
int pc_cli_plugin(pc_cli *cli, int argc, char **argv); /* `plugin check` is daemon/offline.c */
int pc_cli_project(pc_cli *cli, int argc, char **argv);
int pc_cli_workspace(pc_cli *cli, int argc, char **argv);

#endif
