/*
 * paperclip env ...: environments and their leases, through the HTTP API.
 * SSH private keys and known_hosts are read from files given on the command
 * line and sent once in the request body; the daemon stores the key as an
 * encrypted company secret and never returns it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

static const char env_description[] =
    "Environments say where an agent's runs execute: on this host (local), on a\n"
    "remote host over SSH (ssh), in a sandbox provider (sandbox) or through an\n"
    "environment plugin (plugin). Runs hold leases on them; 'leases' and 'lease'\n"
    "show those. 'probe' checks that an environment is reachable and usable;\n"
    "'probe-config' does the same for a config before it is saved.";

static const char env_usage[] =
    "usage: paperclip env list COMPANY [--status S] [--driver D]\n"
    "       paperclip env capabilities COMPANY\n"
    "       paperclip env create COMPANY --name NAME [--driver local|ssh|sandbox|plugin]\n"
    "                 [--description TEXT] [CONFIG FLAGS]\n"
    "       paperclip env get ID\n"
    "       paperclip env update ID [--name NAME] [--driver D] [--status active|archived]\n"
    "                 [--description TEXT] [CONFIG FLAGS]\n"
    "       paperclip env delete ID [--destroy-reusable-leases]\n"
    "       paperclip env probe ID\n"
    "       paperclip env probe-config COMPANY [--driver D] [CONFIG FLAGS]\n"
    "       paperclip env leases ID [--status active|released|expired|failed]\n"
    "       paperclip env lease LEASE_ID\n"
    "\n"
    "config flags (merged into the environment's config):\n"
    "  --config JSON                 a config object (other flags override its keys)\n"
    "  --host H --user U --port P    SSH target\n"
    "  --remote-path PATH            absolute remote workspace path\n"
    "  --private-key-file FILE       SSH private key (stored as an encrypted secret)\n"
    "  --private-key-secret ID       SSH private key from a company secret (paperclip secret)\n"
    "  --known-hosts-file FILE       known_hosts lines for the host\n"
    "  --no-strict-host-key-checking accept any host key (not recommended)\n"
    "  --provider KEY                sandbox provider (a plugin's driverKey); create warns\n"
    "                                when it is a test provider that isolates nothing\n"
    "  --reuse-lease                 keep one sandbox per environment across runs\n"
    "  --timeout-ms MS               sandbox command timeout\n"
    "  --plugin KEY --driver-key KEY plugin environment driver (the plugin's id and driverKey)\n"
    "  --driver-config JSON          the plugin driver's own config object\n"
    "\n"
    "delete flags:\n"
    "  --destroy-reusable-leases     destroy the environment's reusable sandbox leases\n"
    "                                (otherwise a delete is refused while they exist)\n"
    "\n"
    "Tables by default; --json (before 'env') prints the API's JSON.\n";

static void print_envs(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"id", "name", "driver", "status", "updatedAt", NULL};
    static const char *const heads[] = {"ID", "NAME", "DRIVER", "STATUS", "UPDATED", NULL};
    pc_cli_table(r, keys, heads);
}

static void print_leases(pc_cli *cli, json_t *r)
{
    (void)cli;
    static const char *const keys[] = {"id",          "status",     "leasePolicy", "provider",
                                       "heartbeatRunId", "acquiredAt", "cleanupStatus", NULL};
    static const char *const heads[] = {"ID",  "STATUS",   "POLICY",  "PROVIDER",
                                        "RUN", "ACQUIRED", "CLEANUP", NULL};
    pc_cli_table(r, keys, heads);
}

static void print_obj(pc_cli *cli, json_t *r)
{
    (void)cli;
    pc_cli_kv(r);
}

static void print_probe(pc_cli *cli, json_t *r)
{
    (void)cli;
    printf("%s: %s\n", json_is_true(json_object_get(r, "ok")) ? "ok" : "FAILED",
           pc_json_str(r, "summary") ? pc_json_str(r, "summary") : "");
}

static void print_caps(pc_cli *cli, json_t *r)
{
    (void)cli;
    const char *k;
    json_t *v;
    printf("drivers:\n");
    json_object_foreach(json_object_get(r, "drivers"), k, v)
        printf("  %-10s %s\n", k, json_string_value(v) ? json_string_value(v) : "");
    printf("sandbox providers:\n");
    json_object_foreach(json_object_get(r, "sandboxProviders"), k, v)
        printf("  %-20s %-12s %s\n", k, pc_json_str(v, "status") ? pc_json_str(v, "status") : "",
               pc_json_str(v, "displayName") ? pc_json_str(v, "displayName") : "");
}

/* Warns when the sandbox provider a new environment names isolates
 * nothing (capabilities mark it "testOnly"): its commands run on this host
 * as the daemon's user, which a name like "sandbox" would hide. */
static void warn_test_only_provider(pc_cli *cli, const char *company, json_t *body)
{
    json_t *cfg = json_object_get(body, "config");
    const char *driver = pc_json_str(body, "driver"), *prov = pc_json_str(cfg, "provider");
    if (!driver || strcmp(driver, "sandbox") != 0 || !prov)
        return;
    char path[1024];
    char *c = pc_cli_urlencode(company);
    snprintf(path, sizeof path, "/api/companies/%s/environments/capabilities", c);
    free(c);
    json_t *caps = NULL;
    long status = 0;
    if (pc_cli_call(cli, "GET", path, NULL, &caps, &status) == 0 && status == 200) {
        json_t *p = json_object_get(json_object_get(caps, "sandboxProviders"), prov);
        if (json_is_true(json_object_get(p, "testOnly")))
            fprintf(stderr,
                    "warning: sandbox provider '%s' is a test provider: it isolates nothing "
                    "(isolation: %s). Commands run on this host as the daemon's user.\n",
                    prov, pc_json_str(p, "isolation") ? pc_json_str(p, "isolation") : "none");
    }
    json_decref(caps);
}

static char *read_text_file(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (pc_read_file(path, 1024 * 1024, &text, &len) < 0) {
        fprintf(stderr, "paperclip: cannot read %s\n", path);
        return NULL;
    }
    return text;
}

/* Parses body and config flags from argv[start..]; positional arguments go
 * to *pos (at most one). Returns 0, or 2 on a usage error. */
static int parse_flags(int argc, char **argv, int start, json_t *body, const char **pos)
{
    json_t *cfg = NULL;
    const char *v;
    for (int i = start; i < argc; i++) {
        if ((v = pc_cli_flag_value(argc, argv, &i, "--name")))
            json_object_set_new(body, "name", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--description")))
            json_object_set_new(body, "description", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--driver")))
            json_object_set_new(body, "driver", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--status")))
            json_object_set_new(body, "status", json_string(v));
        else if ((v = pc_cli_flag_value(argc, argv, &i, "--config"))) {
            json_error_t je;
            json_t *c = json_loads(v, 0, &je);
            if (!json_is_object(c)) {
                fprintf(stderr, "paperclip: --config must be a JSON object (%s)\n", je.text);
                json_decref(c);
                json_decref(cfg);
                return 2;
            }
            if (!cfg)
                cfg = json_object();
            json_object_update(cfg, c);
            json_decref(c);
        } else {
            const char *key = NULL;
            json_t *val = NULL;
            if ((v = pc_cli_flag_value(argc, argv, &i, "--host")))
                key = "host", val = json_string(v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--user")))
                key = "username", val = json_string(v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--port")))
                key = "port", val = json_integer(pc_cli_parse_int("--port", v, 1, 65535));
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--remote-path")))
                key = "remoteWorkspacePath", val = json_string(v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--private-key-secret")))
                key = "privateKeySecretRef",
                val = json_pack("{s:s,s:s}", "type", "secret_ref", "secretId", v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--provider")))
                key = "provider", val = json_string(v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--plugin")))
                key = "pluginKey", val = json_string(v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--driver-key")))
                key = "driverKey", val = json_string(v);
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--driver-config"))) {
                key = "driverConfig";
                val = json_loads(v, 0, NULL);
                if (!json_is_object(val)) {
                    fprintf(stderr, "paperclip: --driver-config must be a JSON object\n");
                    json_decref(val);
                    json_decref(cfg);
                    return 2;
                }
            } else if ((v = pc_cli_flag_value(argc, argv, &i, "--timeout-ms")))
                key = "timeoutMs",
                val = json_integer(pc_cli_parse_int("--timeout-ms", v, 1, 86400000));
            else if (!strcmp(argv[i], "--reuse-lease"))
                key = "reuseLease", val = json_true();
            else if (!strcmp(argv[i], "--no-strict-host-key-checking"))
                key = "strictHostKeyChecking", val = json_false();
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--private-key-file")) ||
                     (key = "knownHosts", v = pc_cli_flag_value(argc, argv, &i, "--known-hosts-file"))) {
                /* key is still NULL when the first flag matched. */
                key = key ? key : "privateKey";
                char *text = read_text_file(v);
                if (!text) {
                    json_decref(cfg);
                    return 2;
                }
                val = json_string(text);
                memset(text, 0, strlen(text));
                free(text);
            } else if (argv[i][0] != '-' && pos && !*pos) {
                *pos = argv[i];
                continue;
            } else {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n", argv[i]);
                json_decref(cfg);
                return 2;
            }
            if (!cfg)
                cfg = json_object();
            json_object_set_new(cfg, key, val);
        }
    }
    if (cfg)
        json_object_set_new(body, "config", cfg);
    return 0;
}

static int need(int argc, int n)
{
    if (argc < n) {
        fputs(env_usage, stderr);
        return 0;
    }
    return 1;
}

int pc_cli_env(pc_cli *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pc_cli_help("env", "manage environments (local, ssh, sandbox, plugin) and their leases",
                        env_usage, env_description);
            return 0;
        }
    if (argc < 2) {
        fputs(env_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    char path[1024];
    int rc;
    if (!strcmp(sub, "list")) {
        if (!need(argc, 3))
            return 2;
        const char *status = NULL, *driver = NULL, *v;
        for (int i = 3; i < argc; i++) {
            if ((v = pc_cli_flag_value(argc, argv, &i, "--status")))
                status = v;
            else if ((v = pc_cli_flag_value(argc, argv, &i, "--driver")))
                driver = v;
            else {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n", argv[i]);
                return 2;
            }
        }
        char *c = pc_cli_urlencode(argv[2]);
        char *s = pc_cli_urlencode(status ? status : ""), *dr = pc_cli_urlencode(driver ? driver : "");
        snprintf(path, sizeof path, "/api/companies/%s/environments%s%s%s%s%s", c,
                 status || driver ? "?" : "", status ? "status=" : "", status ? s : "",
                 status && driver ? "&" : "", driver ? "driver=" : "");
        if (driver)
            strncat(path, dr, sizeof path - strlen(path) - 1);
        free(c), free(s), free(dr);
        return pc_cli_run(cli, "GET", path, NULL, print_envs);
    }
    if (!strcmp(sub, "capabilities")) {
        if (!need(argc, 3))
            return 2;
        char *c = pc_cli_urlencode(argv[2]);
        snprintf(path, sizeof path, "/api/companies/%s/environments/capabilities", c);
        free(c);
        return pc_cli_run(cli, "GET", path, NULL, print_caps);
    }
    if (!strcmp(sub, "create") || !strcmp(sub, "probe-config") || !strcmp(sub, "update")) {
        if (!need(argc, 3))
            return 2;
        json_t *body = json_object();
        if (parse_flags(argc, argv, 3, body, NULL) != 0) {
            json_decref(body);
            return 2;
        }
        char *c = pc_cli_urlencode(argv[2]);
        const char *method = "POST";
        void (*printer)(pc_cli *, json_t *) = print_obj;
        if (!strcmp(sub, "create")) {
            warn_test_only_provider(cli, argv[2], body);
            snprintf(path, sizeof path, "/api/companies/%s/environments", c);
        } else if (!strcmp(sub, "probe-config")) {
            snprintf(path, sizeof path, "/api/companies/%s/environments/probe-config", c);
            printer = print_probe;
        } else {
            snprintf(path, sizeof path, "/api/environments/%s", c);
            method = "PATCH";
        }
        free(c);
        rc = pc_cli_run(cli, method, path, body, printer);
        json_decref(body);
        return rc;
    }
    if (!strcmp(sub, "get") || !strcmp(sub, "delete") || !strcmp(sub, "probe") ||
        !strcmp(sub, "leases") || !strcmp(sub, "lease")) {
        if (!need(argc, 3))
            return 2;
        char *id = pc_cli_urlencode(argv[2]);
        const char *status = NULL, *v;
        bool destroy = false;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(sub, "leases") && (v = pc_cli_flag_value(argc, argv, &i, "--status")))
                status = v;
            else if (!strcmp(sub, "delete") && !strcmp(argv[i], "--destroy-reusable-leases"))
                destroy = true;
            else {
                fprintf(stderr, "paperclip: unexpected argument '%s'\n", argv[i]);
                free(id);
                return 2;
            }
        }
        if (!strcmp(sub, "get"))
            snprintf(path, sizeof path, "/api/environments/%s", id), rc = pc_cli_run(cli, "GET", path, NULL, print_obj);
        else if (!strcmp(sub, "delete"))
            snprintf(path, sizeof path, "/api/environments/%s%s", id,
                     destroy ? "?destroyReusableSandboxLeases=true" : ""),
                rc = pc_cli_run(cli, "DELETE", path, NULL, print_obj);
        else if (!strcmp(sub, "probe")) {
            json_t *b = json_object();
            snprintf(path, sizeof path, "/api/environments/%s/probe", id);
            rc = pc_cli_run(cli, "POST", path, b, print_probe);
            json_decref(b);
        } else if (!strcmp(sub, "leases")) {
            char *s = pc_cli_urlencode(status ? status : "");
            snprintf(path, sizeof path, "/api/environments/%s/leases%s%s", id,
                     status ? "?status=" : "", s);
            free(s);
            rc = pc_cli_run(cli, "GET", path, NULL, print_leases);
        } else {
            snprintf(path, sizeof path, "/api/environment-leases/%s", id);
            rc = pc_cli_run(cli, "GET", path, NULL, print_obj);
        }
        free(id);
        return rc;
    }
    fprintf(stderr, "paperclip: unknown env command '%s'\n%s", sub, env_usage);
    return 2;
}
