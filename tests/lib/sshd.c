/* The loopback sshd fixture of sshd.h. */
#include "sshd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "tap.h"

#define SSHD "/usr/sbin/sshd"

bool pc_test_sshd_available(void)
{
    return access(SSHD, X_OK) == 0 && pc_test_sh("command -v ssh-keygen >/dev/null") == 0 &&
           pc_test_sh("command -v ssh >/dev/null") == 0;
}

static int write_config(const pc_test_sshd *s, const char *conf)
{
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "Port %d\nListenAddress %s\nHostKey %s/host_key\n"
            "AuthorizedKeysFile %s/authorized_keys\nStrictModes no\nPidFile %s/sshd.pid\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nPubkeyAuthentication yes\n"
            "LogLevel ERROR\n",
            s->port, s->addr, s->dir, s->dir, s->dir);
    return fclose(f) == 0 ? 0 : -1;
}

int pc_test_sshd_start(pc_test_sshd *s, const char *dir)
{
    return pc_test_sshd_start_in(s, dir, NULL, "127.0.0.1");
}

/* True once addr:port accepts a TCP connection. */
static bool port_open_at(const char *addr, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

int pc_test_sshd_start_in(pc_test_sshd *s, const char *dir, const char *netns, const char *addr)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->addr, sizeof s->addr, "%s", addr);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "ssh-keygen -q -t ed25519 -N '' -f %s/host_key && "
             "ssh-keygen -q -t ed25519 -N '' -f %s/user_key && "
             "ssh-keygen -q -t ed25519 -N '' -f %s/wrong_key && "
             "cp %s/user_key.pub %s/authorized_keys && mkdir -p /run/sshd",
             s->dir, s->dir, s->dir, s->dir, s->dir);
    if (pc_test_sh(cmd) != 0)
        return -1;
    s->port = pc_test_free_port();
    char conf[600], log[600];
    snprintf(conf, sizeof conf, "%s/sshd_config", s->dir);
    snprintf(log, sizeof log, "%s/sshd.log", s->dir);
    if (s->port < 0 || write_config(s, conf) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (!freopen(log, "w", stderr))
            _exit(126);
        if (netns)
            execl("/usr/sbin/ip", "ip", "netns", "exec", netns, SSHD, "-D", "-e", "-f", conf,
                  (char *)NULL);
        else
            execl(SSHD, SSHD, "-D", "-e", "-f", conf, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 200; i++) {
        if (port_open_at(s->addr, s->port))
            return 0;
        pc_test_sleep_ms(25);
    }
    return -1;
}

void pc_test_sshd_stop(pc_test_sshd *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

void pc_test_sshd_dump_log(const pc_test_sshd *s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/sshd.log", s->dir);
    char *log = pc_test_read_file(path, 65536);
    tap_diag("sshd: %s", log);
    free(log);
}

char *pc_test_sshd_file_json(const pc_test_sshd *s, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    char *text = pc_test_read_file(path, 65536);
    char *out = pc_test_json_quote(text);
    free(text);
    return out;
}

char *pc_test_sshd_known_hosts_json(const pc_test_sshd *s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/host_key.pub", s->dir);
    char *pub = pc_test_read_file(path, 65536);
    char line[2048];
    snprintf(line, sizeof line, "[%s]:%d %s", s->addr, s->port, pub);
    free(pub);
    return pc_test_json_quote(line);
}
