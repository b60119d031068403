/*
 * A real sshd on a free loopback port, for tests of the SSH environment
 * driver: generates ed25519 keys, writes an sshd_config and runs
 * /usr/sbin/sshd -D in the foreground as a child of the test.
 *
 * Everything lives in a directory the caller owns (and removes): host_key,
 * user_key (authorized for root), wrong_key (a key sshd does not accept),
 * authorized_keys, sshd_config, sshd.pid and sshd.log (sshd's stderr).
 * pc_test_sshd_stop() only stops the daemon; the directory stays.
 */
#ifndef PC_TESTS_SSHD_H
#define PC_TESTS_SSHD_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct pc_test_sshd {
    char dir[512]; /* a copy of the directory given to start */
    char addr[64]; /* the address sshd listens on (127.0.0.1 by default) */
    int port;
    pid_t pid; /* 0 when not running */
} pc_test_sshd;

/* True when sshd, ssh-keygen and ssh are all installed. */
bool pc_test_sshd_available(void);
/* Makes the keys and config in dir, starts sshd and waits up to 5 s for it
 * to accept connections; 0, or -1 (see sshd.log). */
int pc_test_sshd_start(pc_test_sshd *s, const char *dir);
/* Like pc_test_sshd_start, but sshd runs inside the network namespace
 * `netns` (`ip netns exec`) listening on addr, an address of that namespace
 * the caller can reach. */
int pc_test_sshd_start_in(pc_test_sshd *s, const char *dir, const char *netns, const char *addr);
/* SIGTERM and wait; safe on a server that never started. */
void pc_test_sshd_stop(pc_test_sshd *s);
/* Prints sshd.log as a TAP diagnostic. */
void pc_test_sshd_dump_log(const pc_test_sshd *s);
/* The content of the file `name` in the directory (a key), as a JSON
 * string literal (malloc'd). */
char *pc_test_sshd_file_json(const pc_test_sshd *s, const char *name);
/* A known_hosts line for the host key, as a JSON string literal (malloc'd). */
char *pc_test_sshd_known_hosts_json(const pc_test_sshd *s);

#endif
