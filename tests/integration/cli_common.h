/* Shared by the CLI tests: runs the paperclip binary and captures both
 * streams, so a test can assert on the exit code, what was printed and the
 * error text a user sees. */
#ifndef PC_TESTS_CLI_COMMON_H
#define PC_TESTS_CLI_COMMON_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../lib/harness.h"
#include "../lib/tap.h"

/* Reads a whole fd (up to 1 MiB) into a new NUL-terminated string. */
static char *cli_slurp(int fd)
{
    size_t cap = 1u << 20, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    return buf;
}

/* Runs `paperclip ARGS...` (NULL-terminated) with PAPERCLIP_API_URL and
 * PAPERCLIP_API_KEY unset, so only the line decides where it goes. Returns the
 * exit status (-1 if it did not exit); *out and *err (each may be NULL) get
 * stdout and stderr. */
static __attribute__((unused)) int cli_run(char **out, char **err, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)pc_test_bin();
    va_list ap;
    va_start(ap, err);
    const char *a;
    while (n < 63 && (a = va_arg(ap, const char *)))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char errpath[] = "/tmp/pc-cli-err-XXXXXX";
    int efd = mkstemp(errpath);
    int p[2];
    if (efd < 0 || pipe(p) < 0)
        return -1;
    unlink(errpath);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(efd, 2);
        close(p[0]);
        close(p[1]);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        unsetenv("PAPERCLIP_API_URL");
        unsetenv("PAPERCLIP_API_KEY");
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    char *o = cli_slurp(p[0]);
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    lseek(efd, 0, SEEK_SET);
    char *e = cli_slurp(efd);
    close(efd);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A string field of obj, or "" when absent, so tests can compare directly. */
static __attribute__((unused)) const char *cli_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* POSTs body to path and returns the new object's id (or NULL). */
static __attribute__((unused)) char *cli_create(const pc_daemon *d, const char *path,
                                                const char *body)
{
    pc_http_res r = pc_http(d, "POST", path, body);
    char *id = (r.status == 201 || r.status == 202) && *pc_res_str(&r, "id")
                   ? strdup(pc_res_str(&r, "id"))
                   : NULL;
    if (!id)
        tap_diag("POST %s: %ld %s", path, r.status, r.body ? r.body : "");
    pc_http_res_free(&r);
    return id;
}

#endif
