/*
 * `paperclip serve`: the daemon's lifecycle.
 *
 * Start-up order: config -> data dir + lock -> log -> store (migrations) ->
 * secrets/instance id -> runtime loop -> services (plugin host, runtime) ->
 * HTTP. Shut-down runs the same list backwards on SIGTERM/SIGINT: drain the
 * services (running heartbeat runs get their grace period while the API they
 * call back into is still up), stop accepting, finish in-flight requests,
 * stop services, close the store.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait(), so no handler ever runs inside library code.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "daemon/services.h"
#include "http/http.h"
#include "lib/common.h"
#include "lib/config.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"

static int pc_lock_data_dir(const char *dir, pc_error_t *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/paperclip.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return pc_error_errno(err, errno, "cannot open lock file %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0)
            pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        return pc_error_set(err, 409,
                            "another paperclip daemon%s%s%s is already using data dir %s",
                            pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "", dir);
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        close(fd);
        return pc_error_errno(err, errno, "cannot write lock file %s", path);
    }
    return fd;
}

/* The instance id survives restarts: it is part of every run token. */
static int pc_instance_id(pc_app *app, pc_error_t *err)
{
    char path[1200], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "%s/instance-id", app->cfg.data_dir);
    if (pc_read_file(path, 128, &text, &len) == 0) {
        text[strcspn(text, "\n")] = '\0';
        if (pc_uuid_valid(text)) {
            snprintf(app->instance_id, sizeof app->instance_id, "%s", text);
            free(text);
            return 0;
        }
        free(text);
    }
    pc_uuid_v7(app->instance_id);
    char line[64];
    int n = snprintf(line, sizeof line, "%s\n", app->instance_id);
    if (pc_write_file_atomic(path, line, (size_t)n, 0600) < 0)
        return pc_error_errno(err, errno, "cannot write %s", path);
    return 0;
}

static void pc_write_daemon_json(pc_app *app, int port, int agent_port)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/daemon.json", app->cfg.data_dir);
    json_t *j = json_pack("{s:i,s:i,s:s,s:s,s:i,s:s,s:s}", "pid", (int)getpid(), "port", port,
                          "url", app->listen_url, "apiUrl", app->listen_url, "agentPort",
                          agent_port, "agentApiUrl", app->agent_listen_url, "instanceId",
                          app->instance_id);
    char *s = pc_json_dumps(j);
    json_decref(j);
    if (pc_write_file_atomic(path, s, strlen(s), 0600) < 0)
        pc_warn("cannot write %s: %s", path, strerror(errno));
    free(s);
}

static void pc_url_of(char *out, size_t cap, const char *host, int port)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, cap, "http://%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static int pc_serve_fail(pc_error_t *err)
{
    fprintf(stderr, "paperclip: %s\n", err->msg);
    int code = err->status == 400 ? 2 : 1;
    pc_error_clear(err);
    return code;
}

static void pc_loop_noop_stop(pc_loop *loop, void *arg)
{
    (void)loop, (void)arg;
}

int pc_daemon_serve(int argc, char **argv)
{
    pc_error_t err = PC_ERROR_INIT;
    static pc_app app;
    memset(&app, 0, sizeof app);
    int rc = pc_config_load(&app.cfg, argc, argv, &err);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return pc_serve_fail(&err);
    pc_log_setup(app.cfg.log_json, PC_LOG_INFO);
    if (sodium_init() < 0) {
        fprintf(stderr, "paperclip: cannot initialise libsodium\n");
        return 1;
    }
    if (pc_mkdir_p(app.cfg.data_dir, 0700) < 0) {
        fprintf(stderr, "paperclip: cannot create data dir %s: %s\n", app.cfg.data_dir,
                strerror(errno));
        return 1;
    }
    int lock_fd = pc_lock_data_dir(app.cfg.data_dir, &err);
    if (lock_fd < 0)
        return pc_serve_fail(&err);

    /* Block the stop signals before any thread exists so all inherit it. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    char dbpath[1200];
    snprintf(dbpath, sizeof dbpath, "%s/paperclip.db", app.cfg.data_dir);
    app.db = pc_db_open_sqlite(dbpath, &err);
    if (!app.db || pc_instance_id(&app, &err) < 0) {
        close(lock_fd);
        return pc_serve_fail(&err);
    }
    app.loop = pc_loop_new(&err);
    if (!app.loop || pc_loop_start(app.loop, &err) < 0) {
        pc_db_close(app.db);
        close(lock_fd);
        return pc_serve_fail(&err);
    }

    int started = 0;
    for (; pc_services[started].name; started++) {
        if (pc_services[started].start(&app, &err) < 0) {
            pc_err("cannot start %s: %s", pc_services[started].name, err.msg);
            goto stop_services;
        }
    }

    pc_http_set_routes(pc_daemon_routes);
    pc_http *http = pc_http_start(&app, &err);
    if (!http) {
        pc_err("%s", err.msg);
        goto stop_services;
    }
    int port = pc_http_port(http), agent_port = pc_http_agent_port(http);
    pc_url_of(app.listen_url, sizeof app.listen_url, app.cfg.bind, port);
    pc_url_of(app.agent_listen_url, sizeof app.agent_listen_url, app.cfg.agent_bind, agent_port);
    pc_write_daemon_json(&app, port, agent_port);
    pc_info("paperclip %s listening on %s, agent ingress on %s (data dir %s, %s)", PC_VERSION,
            app.listen_url, app.agent_listen_url, app.cfg.data_dir,
            app.cfg.auth_mode == PC_AUTH_LOCAL_TRUSTED ? "local_trusted" : "authenticated");
    for (int i = 0; pc_services[i].name; i++)
        if (pc_services[i].ready)
            pc_services[i].ready(&app);

    int sig = 0;
    sigwait(&stop, &sig);
    pc_info("received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&app.stopping, true);
    for (int i = started - 1; i >= 0; i--)
        if (pc_services[i].drain)
            pc_services[i].drain(&app);
    pc_http_stop(http);
    pc_error_clear(&err);

stop_services:
    for (int i = started - 1; i >= 0; i--)
        if (pc_services[i].stop)
            pc_services[i].stop(&app);
    pc_loop_stop(app.loop, pc_loop_noop_stop, NULL);
    pc_loop_join(app.loop);
    pc_loop_free(app.loop);
    pc_db_close(app.db);
    char path[1200];
    snprintf(path, sizeof path, "%s/daemon.json", app.cfg.data_dir);
    unlink(path);
    close(lock_fd);
    int code = pc_error_is_set(&err) ? 1 : 0;
    if (code)
        fprintf(stderr, "paperclip: %s\n", err.msg);
    pc_error_clear(&err);
    pc_info("stopped");
    return code;
}
