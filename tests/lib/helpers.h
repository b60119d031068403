/*
 * Small helpers shared by the test programs: waiting, processes, files,
 * loopback ports, and formatted requests and store queries against a
 * pc_daemon (harness.h).
 *
 * Every char * a function returns is malloc'd and owned by the caller;
 * every pc_http_res must be freed with pc_http_res_free(). None of these
 * keeps state between calls, so they are safe to use from any test.
 */
#ifndef PC_TESTS_HELPERS_H
#define PC_TESTS_HELPERS_H

#include <stdbool.h>
#include <stddef.h>

#include "harness.h"

void pc_test_sleep_ms(int ms);
/* True once the process is gone: kill() fails, or it is a zombie nobody
 * reaped. Polls for up to 5 s, so a false answer means it survived. */
bool pc_test_pid_gone(long pid);
/* Runs `cmd` with /bin/sh; returns its exit status, or -1. */
int pc_test_sh(const char *cmd);

/* The first max-1 bytes of the file, NUL-terminated; "" when it cannot
 * be read. */
char *pc_test_read_file(const char *path, size_t max);
/* True when the file's first 8 MiB contain needle. */
bool pc_test_file_contains(const char *path, const char *needle);
/* `s` as a JSON string literal, quotes and escapes included. */
char *pc_test_json_quote(const char *s);

/* A loopback TCP port nobody listens on right now, or -1. */
int pc_test_free_port(void);
/* True when something accepts connections on the loopback port. */
bool pc_test_port_open(int port);

/* pc_http (or pc_http_auth when token is not NULL) with a printf-style path. */
pc_http_res pc_test_req(const pc_daemon *d, const char *token, const char *method, const char *body,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* One integer from the daemon's store, read-only behind its back (WAL
 * allows it); -1 on any error. */
long long pc_test_db_count(const pc_daemon *d, const char *sql);
/* Runs one statement on the daemon's store behind its back (WAL and a busy
 * timeout make that safe), to simulate damage such as a lost secret;
 * returns 0 or -1. */
int pc_test_db_exec(const pc_daemon *d, const char *sql);

#endif
