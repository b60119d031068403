/*
 * The default seccomp filter of the bwrap provider, handed to bwrap with
 * --seccomp FD and loaded right before the sandboxed command is executed.
 *
 * Default allow: agents run compilers, interpreters, package managers and
 * test suites, so an allow-list would break ordinary work. What is denied
 * (with EPERM, so programs see a plain permission error instead of dying)
 * is the kernel surface a sandboxed build has no use for and that sandbox
 * escapes and kernel exploits keep using. The namespaces, dropped
 * capabilities and --disable-userns already stop most of these calls; the
 * filter keeps them out of reach even when one of those layers is missing
 * or a kernel bug makes a namespace-aware check wrong.
 *
 * Syscalls the running libseccomp does not know (older headers, another
 * architecture) are skipped: they cannot be named, and a filter that fails
 * to build would stop every execute. Calls through another ABI (32-bit
 * int 0x80 on x86_64) hit the filter's bad-architecture action, which kills
 * the process, so the list cannot be bypassed that way.
 */
#include "bwrap_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Denied outright; each line says why. */
static const char *const denied[] = {
    /* Mount table changes: a sandbox's file system view is fixed by bwrap. */
    "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    /* The kernel keyring is not namespaced: keys of other users of the
     * host's keyrings, and a long history of keyring bugs. */
    "keyctl", "add_key", "request_key",
    /* eBPF programs and perf events: kernel attack surface and a view of
     * the host's activity. */
    "bpf", "perf_event_open",
    /* Tracing and cross-process memory access. All ptrace is denied (the
     * simplest safe rule): a debugger inside a sandbox is rare, and
     * PTRACE_TRACEME/ATTACH tricks are a classic step of escapes. */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    /* Replacing or extending the running kernel. */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    /* userfaultfd stalls kernel threads at will, the usual helper to win
     * kernel races. */
    "userfaultfd",
    /* File handles bypass path lookup and so the bind layout (the
     * "shocker" container escape). */
    "open_by_handle_at", "name_to_handle_at",
    /* Host-wide state: swap, power, accounting, quotas, clock, kernel log. */
    "swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "syslog",
    /* Joining other namespaces. */
    "setns",
    /* Raw I/O port access and legacy interfaces nobody needs. */
    "iopl", "ioperm", "lookup_dcookie", "vm86", "vm86old", "uselib", "nfsservctl", "sysfs",
    "_sysctl",
};

/* Flags that create namespaces: unshare(2) and clone(2) with any of them
 * are denied (the filter can read clone's flags, it is the first argument
 * on the architectures we build for). */
static const unsigned long ns_flags[] = {
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWTIME,
};

static int build(scmp_filter_ctx f, char *why, size_t wcap)
{
    const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
    for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        int rc = seccomp_rule_add(f, deny, nr, 0);
        if (rc < 0 && rc != -EOPNOTSUPP && rc != -EDOM) {
            snprintf(why, wcap, "cannot add seccomp rule for %s: %s", denied[i], strerror(-rc));
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(ns_flags) / sizeof(*ns_flags); i++) {
        scmp_datum_t fl = ns_flags[i];
        struct scmp_arg_cmp has_flag = SCMP_A0(SCMP_CMP_MASKED_EQ, fl, fl);
        if (seccomp_rule_add(f, deny, SCMP_SYS(unshare), 1, has_flag) < 0 ||
            seccomp_rule_add(f, deny, SCMP_SYS(clone), 1, has_flag) < 0) {
            snprintf(why, wcap, "cannot add seccomp rules for namespace flags");
            return -1;
        }
    }
    /* clone3 passes its flags in memory the filter cannot read. ENOSYS
     * makes libc fall back to clone, whose flags are checked above. */
    int nr = seccomp_syscall_resolve_name("clone3");
    if (nr != __NR_SCMP_ERROR && seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), nr, 0) < 0) {
        snprintf(why, wcap, "cannot add the seccomp rule for clone3");
        return -1;
    }
    /* personality: only the default (0) and the query (0xffffffff). Other
     * domains disable ASLR (ADDR_NO_RANDOMIZE) or map page zero
     * (MMAP_PAGE_ZERO), both helpers for exploits. A rule may compare an
     * argument only once, so "neither 0 nor all ones" is written as: some
     * bit i is 1 while bit i+1 (cyclically) is 0 — every 32-bit value with
     * both a 0 and a 1 bit has such a pair, and 0 and 0xffffffff have none.
     * The kernel reads the argument as 32 bits; the mask ignores the rest. */
    for (unsigned b = 0; b < 32; b++) {
        scmp_datum_t one = 1UL << b, mask = one | 1UL << ((b + 1) % 32);
        if (seccomp_rule_add(f, deny, SCMP_SYS(personality), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, mask, one)) < 0) {
            snprintf(why, wcap, "cannot add the seccomp rules for personality");
            return -1;
        }
    }
    return 0;
}

int bw_seccomp_fd(char *why, size_t wcap)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
    if (!f) {
        snprintf(why, wcap, "cannot initialise libseccomp");
        return -1;
    }
    int fd = -1;
    /* bwrap sets no_new_privs itself; the exported program must not
     * depend on how this process is set up. */
    seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 0);
    if (build(f, why, wcap) < 0)
        goto out;
    fd = memfd_create("bwrap-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(why, wcap, "cannot create memfd: %s", strerror(errno));
        goto out;
    }
    int rc = seccomp_export_bpf(f, fd);
    if (rc < 0 || lseek(fd, 0, SEEK_SET) != 0) {
        snprintf(why, wcap, "cannot export the seccomp filter: %s", strerror(rc < 0 ? -rc : errno));
        close(fd);
        fd = -1;
        goto out;
    }
    /* The sandbox never sees this descriptor, but a sealed one cannot be
     * changed by anything else in the worker either. */
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
out:
    seccomp_release(f);
    return fd;
}
