/*
 * Internal interfaces of the bubblewrap sandbox provider
 * (plugins/bwrap-sandbox). Nothing here is public API; docs/bwrap-sandbox.md
 * describes the design.
 *
 * Ownership: every char * in these structs is owned by the struct and freed
 * by the matching *_free() function. Strings handed in are copied.
 */
#ifndef PC_BWRAP_SANDBOX_H
#define PC_BWRAP_SANDBOX_H

#include <paperclip/plugin.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BW_DRIVER "bwrap"
#define BW_MAX_RO_BINDS 64
#define BW_MAX_CGROUPS 6
#define BW_MAX_BIND_ROOTS 32

enum bw_network { BW_NET_NONE, BW_NET_API_ONLY, BW_NET_HOST };

/*
 * What the operator allows, from the plugin's instance config (sent in
 * initialize; agents and environment configs cannot change it):
 *
 *   allowedBindRoots  host directories under which readOnlyBinds and rootfs
 *                     may lie (default none: no host path beyond the
 *                     built-in system directories is ever bound)
 *   seccomp           false turns the default seccomp filter off
 *
 * Roots are stored resolved (realpath). own_data_dir is the worker's data
 * directory (leases), which no bind may expose.
 */
struct bw_policy {
    char *roots[BW_MAX_BIND_ROOTS];
    size_t n_roots;
    bool seccomp;
    const char *own_data_dir;
};

/* Parses the instance config (borrowed; NULL is {}). Problems go to
 * `errors` as sentences; the policy keeps what was valid. */
int bw_policy_parse(json_t *instance, const char *own_data_dir, struct bw_policy *p,
                    json_t *errors);
void bw_policy_free(struct bw_policy *p);

/*
 * Checks a host path the config wants to expose: resolves it (realpath, so
 * symlinks and ".." cannot escape), then refuses home directories, /proc,
 * /sys, /dev, /run, sockets, any Paperclip data directory (one holding
 * secrets/master.key or paperclip.db, itself, above or directly below the
 * path) and the worker's own data directory, and finally requires the
 * result to lie under an allowed root. On success `resolved` holds the
 * path to bind; otherwise `why` holds a sentence fragment.
 */
int bw_host_path_check(const char *path, const struct bw_policy *p, char *resolved, size_t rcap,
                       char *why, size_t wcap);

/* A validated, normalized driver config. Zero values mean "not set" only
 * for the optional limits (cpu_weight, cpu_quota_percent, lease_ttl_sec). */
struct bw_config {
    enum bw_network network;
    char *rootfs;                 /* NULL: the host's /usr view; resolved */
    char *ro_binds[BW_MAX_RO_BINDS];     /* as configured: the path inside */
    char *ro_bind_src[BW_MAX_RO_BINDS];  /* resolved host path bound there */
    size_t n_ro_binds;
    int64_t memory_mb;
    int64_t pids;
    int64_t cpu_weight;           /* 0: unset */
    int64_t cpu_quota_percent;    /* 0: unset */
    int64_t timeout_ms;
    bool reuse_lease;
    int64_t lease_ttl_sec;        /* 0: no TTL */
    int64_t max_output_bytes;
};

/*
 * Parses `raw` (borrowed; NULL or a non-object is treated as {}) into `c`.
 * Each problem is appended to `errors` (a JSON array, borrowed) as one
 * precise sentence; unknown keys go to `warnings`. Returns 0 when `errors`
 * received nothing. `c` must be freed with bw_config_free() either way.
 */
int bw_config_parse(json_t *raw, const struct bw_policy *pol, struct bw_config *c, json_t *errors,
                    json_t *warnings);
void bw_config_free(struct bw_config *c);
/* The normalized config as JSON (new reference), with every default. */
json_t *bw_config_to_json(const struct bw_config *c);
const char *bw_network_name(enum bw_network n);

/* ---- seccomp (seccomp.c) ---- */

/* The default filter as BPF in a sealed memfd positioned at 0, for bwrap's
 * --seccomp FD; -1 with `why` filled when it cannot be built. */
int bw_seccomp_fd(char *why, size_t wcap);

/* ---- cgroups (cgroup.c) ----
 *
 * A lease owns a set of cgroup directories, one per hierarchy it uses: the
 * v2 directory (limits when v2 controllers are usable, and always
 * cgroup.kill where the kernel has it) and/or v1 memory, pids and cpu
 * directories. All are named paperclip-bwrap-<lease uuid> and created next to
 * the worker's own cgroup in each hierarchy, so outer limits still apply.
 */
struct bw_cgroups {
    char *paths[BW_MAX_CGROUPS];
    size_t n;
    char mode[8]; /* "v2", "v1" or "rlimit": who enforces memory/pids */
};

/* Describes what this host offers, for probe (new reference). */
json_t *bw_cg_describe(void);
/* The mode acquire would choose now: "v2", "v1" or "rlimit". */
const char *bw_cg_mode_available(void);
/* Creates (or re-creates, idempotently) the lease cgroups and applies the
 * limits of `c`. Never fails hard: on a host without usable cgroups the
 * mode is "rlimit" and n is 0. */
void bw_cg_create(const char *name, const struct bw_config *c, struct bw_cgroups *cg);
void bw_cg_free(struct bw_cgroups *cg);
/* True when `path` is a cgroup directory this plugin could have created for
 * lease `name` (under /sys/fs/cgroup, basename == name, no "..").
 * Used before trusting paths read back from disk or lease metadata. */
bool bw_cg_path_is_ours(const char *path, const char *name);
/* Kills every process in the directories and their sub-directories
 * (cgroup.kill where present, then SIGKILL loops on cgroup.procs) until
 * they are empty or `deadline_ms` passed. Returns the number of processes
 * still found at the end (0 on success). */
int bw_cg_kill_tree(char *const *paths, size_t n, int deadline_ms);
/* Removes the directories (children first) after killing their processes. */
int bw_cg_remove_tree(char *const *paths, size_t n);
/* Counts the processes in the directories and their children. */
int bw_cg_count_procs(char *const *paths, size_t n);
/* Signals every process in the directory trees except the children of
 * `spare_children_of` (0: none spared). */
void bw_cg_signal_tree(char *const *paths, size_t n, int sig, pid_t spare_children_of);
/* Reads a "key value" counter from a cgroup file, -1 when absent. */
long long bw_cg_read_key(const char *dir, const char *file, const char *key);

/* ---- forwarders (forward.c) ---- */

/* A host-side listener: accepts on a unix socket and relays each connection
 * to a TCP address, on its own thread, until bw_fwd_host_stop(). */
struct bw_fwd_host;
struct bw_fwd_host *bw_fwd_host_start(const char *unix_path, const char *tcp_host,
                                      const char *tcp_port, pc_plugin_error *err);
void bw_fwd_host_stop(struct bw_fwd_host *f);

/* `worker --forward-in UNIX_PATH ADDR PORT -- CMD ARGS...` inside the
 * sandbox: listens on ADDR:PORT, forks the relay, execs CMD. */
int bw_forward_in_main(int argc, char **argv);

#endif
