/*
 * Black-box test harness: starts a real `paperclip serve` on a free loopback
 * port with a temporary data dir, and talks to it over HTTP (libcurl).
 *
 *   pc_daemon d;
 *   pc_daemon_start(&d, NULL);               // or with extra args/env
 *   pc_http_res r = pc_http(&d, "POST", "/api/companies", "{\"name\":\"X\"}");
 *   is_int(r.status, 201, "created");
 *   pc_http_res_free(&r);
 *   pc_daemon_stop(&d);                      // SIGTERM, waits, removes the dir
 *
 * The daemon's stderr goes to <data-dir>/daemon.log; it is printed as TAP
 * diagnostics when a test fails. PC_ROOT (set by tests/run.sh) locates the
 * binary; it falls back to the current directory.
 */
#ifndef PC_TESTS_HARNESS_H
#define PC_TESTS_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct pc_daemon {
    pid_t pid;
    int port;
    char url[128];
    int agent_port;       /* the agent ingress (runs' PAPERCLIP_API_URL) */
    char agent_url[128];
    char data_dir[512];
    char log_path[600];
    bool keep_dir; /* keep the data dir on stop (for restart tests) */
} pc_daemon;

typedef struct pc_daemon_opts {
    const char *const *args; /* extra serve args, NULL-terminated */
    const char *const *env;  /* extra "K=V" env entries, NULL-terminated */
    const char *data_dir;    /* reuse this data dir instead of a new temp one */
} pc_daemon_opts;

typedef struct pc_http_res {
    long status;
    json_t *json;  /* parsed body or NULL */
    char *body;    /* raw body, NUL-terminated */
    size_t len;
} pc_http_res;

const char *pc_test_root(void);
/* Path of the paperclip binary. */
const char *pc_test_bin(void);
/* Creates a fresh temp dir (mkdtemp) under /tmp; caller frees. */
char *pc_test_tmpdir(const char *tag);
void pc_test_rmrf(const char *path);

int pc_daemon_start(pc_daemon *d, const pc_daemon_opts *opts);
/* SIGTERM and wait; returns the daemon's exit status (or -1). */
int pc_daemon_stop(pc_daemon *d);
/* SIGKILL (crash simulation); keeps the data dir. */
void pc_daemon_kill9(pc_daemon *d);
void pc_daemon_dump_log(const pc_daemon *d);

pc_http_res pc_http(const pc_daemon *d, const char *method, const char *path, const char *body);
/* Full control: headers is a NULL-terminated list of "Name: value". */
pc_http_res pc_http_ex(const char *url, const char *method, const char *body, size_t body_len,
                       const char *const *headers);
/* Like pc_http with a Bearer token. */
pc_http_res pc_http_auth(const pc_daemon *d, const char *token, const char *method,
                         const char *path, const char *body);
void pc_http_res_free(pc_http_res *r);
/* Convenience: string field of the JSON body (or ""). */
const char *pc_res_str(const pc_http_res *r, const char *key);

/* Runs argv (NULL-terminated) and captures stdout (up to 1 MiB); returns
 * the exit status, or -1. */
int pc_run_capture(char *const argv[], char **out);

#endif
