/* The CLI as a new user types it: global options anywhere on the line, names
 * beside ids in tables, man-style --help for every command, exit code 2 with a
 * clear message for bad option values, and the project/workspace commands. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "cli_common.h"

#define S(x) ((x) ? (x) : "")

static pc_daemon d;

static void test_options_anywhere(void)
{
    char *out = NULL, *err = NULL;
    is_int(cli_run(&out, &err, "company", "create", "Opt Co", "--api-url", d.url, NULL), 0,
           "--api-url after the subcommand is honoured");
    ok(out && strstr(out, "issuePrefix: OPT"), "create printed the company: %s", S(out));
    free(out);
    free(err);

    is_int(cli_run(&out, NULL, "company", "list", "--json", "--api-url", d.url, NULL), 0,
           "company list --json --api-url exits 0");
    json_t *j = json_loads(out ? out : "", 0, NULL);
    ok(json_is_array(j) && json_array_size(j) == 1, "--json after the command prints JSON");
    json_decref(j);
    free(out);

    is_int(cli_run(&out, NULL, "company", "--json", "list", "--api-url=http://127.0.0.1:1",
                   "--api-url", d.url, NULL),
           0, "--json between command and subcommand, the last --api-url wins");
    j = json_loads(out ? out : "", 0, NULL);
    ok(json_is_array(j), "output is JSON");
    json_decref(j);
    free(out);

    is_int(cli_run(&out, NULL, "--api-url", d.url, "company", "list", NULL), 0,
           "options before the command still work");
    ok(out && strstr(out, "PREFIX") && strstr(out, "Opt Co") && !strchr(out, '{'),
       "without --json a table is printed: %s", S(out));
    free(out);

    /* "--" ends option parsing: a literal "--json" reaches the command. */
    is_int(cli_run(&out, &err, "company", "create", "--api-url", d.url, "--", "--json", NULL), 2,
           "after --, --json is an argument (here an unexpected one)");
    ok(err && strstr(err, "unexpected argument '--json'"), "the command saw it: %s", S(err));
    free(out);
    free(err);
}

static void test_names_in_tables(void)
{
    char path[256];
    pc_http_res r = pc_http(&d, "GET", "/api/companies", NULL);
    char *cid = strdup(cli_str(json_array_get(r.json, 0), "id"));
    pc_http_res_free(&r);
    snprintf(path, sizeof path, "/api/companies/%s/agents", cid);
    char *ada = cli_create(&d, path,
                           "{\"name\":\"Ada Lovelace\",\"adapterType\":\"process\","
                           "\"adapterConfig\":{\"command\":\"true\"}}");
    char *bob = cli_create(&d, path,
                           "{\"name\":\"Bob Builder\",\"adapterType\":\"process\","
                           "\"adapterConfig\":{\"command\":\"true\"}}");
    ok(ada && bob, "two agents created");
    if (!ada || !bob)
        return;
    char body[512];
    snprintf(path, sizeof path, "/api/companies/%s/issues", cid);
    snprintf(body, sizeof body,
             "{\"title\":\"Write the notes\",\"status\":\"backlog\",\"assigneeAgentId\":\"%s\"}",
             ada);
    free(cli_create(&d, path, body));
    free(cli_create(&d, path, "{\"title\":\"Nobody's job\",\"status\":\"backlog\"}"));

    char *out = NULL;
    is_int(cli_run(&out, NULL, "issue", "list", cid, "--api-url", d.url, NULL), 0,
           "issue list exits 0");
    ok(out && strstr(out, "ASSIGNEE") && strstr(out, "Ada Lovelace") && strstr(out, ada),
       "issues table shows the assignee's name beside its id: %s", S(out));
    ok(out && !strstr(out, "Bob Builder"), "only assignees are named");
    free(out);

    snprintf(path, sizeof path, "/api/agents/%s/wakeup", bob);
    free(cli_create(&d, path, "{\"reason\":\"names\"}"));
    is_int(cli_run(&out, NULL, "run", "list", cid, "--api-url", d.url, NULL), 0,
           "run list exits 0");
    ok(out && strstr(out, "Bob Builder") && strstr(out, bob),
       "runs table shows the agent's name beside its id: %s", S(out));
    free(out);

    /* --json stays the API's answer, with no added fields. */
    is_int(cli_run(&out, NULL, "run", "list", cid, "--json", "--api-url", d.url, NULL), 0,
           "run list --json exits 0");
    ok(out && !strstr(out, "agentName"), "--json output is untouched");
    free(out);
    free(ada);
    free(bob);
    free(cid);
}

static void test_bad_values(void)
{
    static const struct {
        const char *args[8];
        const char *message;
    } cases[] = {
        {{"company", "create", "X", "--budget", "ten", NULL}, "--budget must be an integer"},
        {{"company", "create", "X", "--budget=-5", NULL}, "--budget must be an integer"},
        {{"run", "list", "c", "--limit", "0", NULL}, "--limit must be an integer"},
        {{"env", "create", "c", "--name", "n", "--port", "99999", NULL},
         "--port must be an integer"},
        {{"--api-url", "ftp://127.0.0.1", "health", NULL}, "--api-url must be an http"},
        {{"health", "--api-url", "localhost:3100", NULL}, "--api-url must be an http"},
        {{"company", "list", "--api-url", NULL}, "--api-url needs a value"},
        {{"company", "frobnicate", NULL}, "bad company command"},
        {{"project", "create", "c", NULL}, "create needs --name"},
        {{"project", "update", "p", NULL}, "update needs at least one option"},
        {{"project", "create", "c", "--name", "n", "--workspace-policy", "[1]", NULL},
         "--workspace-policy must be a JSON object"},
        {{"workspace", "list", "c", "--bogus", NULL}, "unexpected argument '--bogus'"},
        {{"issue", "create", "c", "--title", "t", "--status", "doing", NULL},
         "--status must be one of backlog, todo"},
        {{"issue", "list", "c", "--status", "todo,later", NULL}, "not 'later'"},
        {{"issue", "update", "i", "--priority", "urgent", NULL}, "--priority must be one of"},
        {{"run", "list", "c", "--status", "done", NULL}, "--status must be one of queued"},
        {{"project", "update", "p", "--status", "active", NULL}, "--status must be one of"},
        {{"workspace", "archive", "w", NULL}, "bad workspace command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        char *out = NULL, *err = NULL;
        /* The daemon URL goes first so a case that wrongly reached the API
         * would get an answer (and exit 0 or 1), not a connection error. */
        int rc = cli_run(&out, &err, "--api-url", d.url, a[0], a[1], a[2], a[3], a[4], a[5],
                         a[6], a[7]);
        is_int(rc, 2, "case %zu (%s %s ...) exits 2", i, a[0], a[1]);
        ok(err && strstr(err, cases[i].message), "case %zu says '%s': %s", i, cases[i].message,
           err);
        free(out);
        free(err);
    }
}

static void test_help(void)
{
    static const char *const cmds[] = {"health", "company", "agent",   "env",     "secret",
                                       "issue",  "run",     "plugin",  "project", "workspace",
                                       "cost"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out = NULL;
        is_int(cli_run(&out, NULL, cmds[i], "--help", NULL), 0, "%s --help exits 0", cmds[i]);
        ok(out && strstr(out, "NAME\n    paperclip ") && strstr(out, "\nSYNOPSIS\n    paperclip ") &&
               strstr(out, "\nDESCRIPTION\n") && strstr(out, "\nGLOBAL OPTIONS\n") &&
               strstr(out, "\nEXIT STATUS\n"),
           "%s --help is a manual page", cmds[i]);
        free(out);
    }
    char *out = NULL;
    is_int(cli_run(&out, NULL, "agent", "wake", "--help", NULL), 0, "agent wake --help exits 0");
    ok(out && strstr(out, "paperclip agent wake AGENT_ID"), "agent wake has its own page");
    free(out);
}

/* A one-shot loopback server that answers every request with upstream's 404
 * for an unknown route, standing in for a daemon older than the CLI. */
typedef struct {
    int fd;
    atomic_int served; /* counted before answering, so the client sees it */
} old_daemon;

static void *old_daemon_serve(void *ud)
{
    old_daemon *o = ud;
    for (;;) {
        int c = accept(o->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[8192];
        ssize_t n = read(c, buf, sizeof buf);
        (void)n;
        atomic_fetch_add(&o->served, 1);
        static const char resp[] = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                   "Content-Length: 31\r\nConnection: close\r\n\r\n"
                                   "{\"error\":\"API route not found\"}";
        if (write(c, resp, sizeof resp - 1) < 0)
            tap_diag("old daemon: write failed");
        close(c);
    }
}

static void test_route_missing(void)
{
    old_daemon o = {socket(AF_INET, SOCK_STREAM, 0), 0};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (o.fd < 0 || bind(o.fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(o.fd, 8) < 0 ||
        getsockname(o.fd, (struct sockaddr *)&a, &al) < 0) {
        ok(0, "a loopback listener for the old daemon");
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    pthread_t th;
    pthread_create(&th, NULL, old_daemon_serve, &o);
    char *out = NULL, *err = NULL;
    is_int(cli_run(&out, &err, "project", "list", "c1", "--api-url", url, NULL), 1,
           "project list against a daemon without the route exits 1");
    ok(err && strstr(err, "does not serve GET /api/companies/c1/projects (HTTP 404)"),
       "and says the daemon lacks the route: %s", S(err));
    free(out);
    free(err);
    is_int(cli_run(&out, &err, "workspace", "show", "w1", "--api-url", url, NULL), 1,
           "workspace show against it exits 1");
    ok(err && strstr(err, "does not serve GET /api/execution-workspaces/w1"), "and says so: %s",
       S(err));
    free(out);
    free(err);
    int served = atomic_load(&o.served);
    ok(served == 2, "both requests reached the stand-in (%d)", served);
    /* shutdown() makes the blocked accept() fail, which ends the thread. */
    shutdown(o.fd, SHUT_RDWR);
    pthread_join(th, NULL);
    close(o.fd);
}

/* project and workspace against the daemon's routes. */
static void test_projects(void)
{
    pc_http_res r = pc_http(&d, "GET", "/api/companies", NULL);
    char *cid = strdup(cli_str(json_array_get(r.json, 0), "id"));
    pc_http_res_free(&r);
    char path[256];
    char *out = NULL, *err = NULL;
    snprintf(path, sizeof path, "/api/companies/%s/agents", cid);
    r = pc_http(&d, "GET", path, NULL);
    const char *lead = cli_str(json_array_get(r.json, 0), "id");
    const char *lead_name = cli_str(json_array_get(r.json, 0), "name");
    is_int(cli_run(&out, &err, "project", "create", cid, "--name", "Apollo", "--lead", lead,
                   "--json", "--api-url", d.url, NULL),
           0, "project create exits 0: %s", S(err));
    json_t *p = json_loads(out ? out : "", 0, NULL);
    char *pid = strdup(cli_str(p, "id"));
    is_str(cli_str(p, "name"), "Apollo", "project created with its name");
    is_str(cli_str(p, "leadAgentId"), lead, "and its lead");
    json_decref(p);
    free(out);
    free(err);
    is_int(cli_run(&out, NULL, "project", "list", cid, "--api-url", d.url, NULL), 0,
           "project list exits 0");
    ok(out && strstr(out, "Apollo") && strstr(out, lead_name) && strstr(out, lead),
       "projects table names the lead beside its id: %s", S(out));
    free(out);
    is_int(cli_run(&out, NULL, "project", "update", pid, "--status", "in_progress", "--api-url",
                   d.url, NULL),
           0, "project update exits 0");
    ok(out && strstr(out, "status: in_progress"), "update printed the new status: %s", S(out));
    free(out);
    is_int(cli_run(&out, NULL, "project", "show", pid, "--api-url", d.url, NULL), 0,
           "project show exits 0");
    ok(out && strstr(out, "name: Apollo"), "show prints the project");
    free(out);
        pc_http_res g = pc_http(&d, "GET", "/api/companies", NULL);
    pc_http_res_free(&g);
    snprintf(path, sizeof path, "/api/projects/%s", pid);
    g = pc_http(&d, "GET", path, NULL);
    is_str(cli_str(g.json, "status"), "in_progress", "the daemon kept the update");
    pc_http_res_free(&g);
    is_int(cli_run(&out, &err, "project", "show", "00000000-0000-7000-8000-000000000000",
                   "--api-url", d.url, NULL),
           1, "an unknown project exits 1");
    ok(err && strstr(err, "HTTP 404") && !strstr(err, "does not serve"),
       "with the daemon's own 404: %s", S(err));
    free(out);
    free(err);
    is_int(cli_run(&out, NULL, "workspace", "list", cid, "--project", pid, "--status", "active",
                   "--api-url", d.url, NULL),
           0, "workspace list with filters exits 0");
    ok(out && strstr(out, "STATUS") && strstr(out, "PROJECT"), "workspace list prints a table: %s",
       S(out));
    free(out);
    is_int(cli_run(&out, &err, "workspace", "show", "00000000-0000-7000-8000-000000000000",
                   "--api-url", d.url, NULL),
           1, "an unknown workspace exits 1");
    ok(err && strstr(err, "HTTP 404") && !strstr(err, "does not serve"),
       "with the daemon's own 404: %s", S(err));
    free(out);
    free(err);
    pc_http_res_free(&r);
    free(pid);
    free(cid);
}

int main(void)
{
    if (pc_daemon_start(&d, NULL) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    test_options_anywhere();
    test_names_in_tables();
    test_bad_values();
    test_help();
    test_projects();
    test_route_missing();
    if (tap_failures())
        pc_daemon_dump_log(&d);
    pc_daemon_stop(&d);
    return tap_done();
}
