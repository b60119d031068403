/*
 * The two halves of the api-only network path (docs/bwrap-sandbox.md):
 *
 *   sandbox process --TCP 127.0.0.1:PORT--> forward-in (inside the sandbox's
 *   own network namespace) --unix socket bound into the sandbox--> host
 *   forwarder thread (in the worker) --TCP--> the control-plane API.
 *
 * The sandbox's network namespace has only loopback, so the unix socket is
 * its single way out, and the host side connects to exactly one address:
 * the one in PAPERCLIP_API_URL. Both halves relay bytes blindly; HTTP is
 * never parsed.
 */
#include "bwrap_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CONNS 64
#define RELAY_BUF 65536

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copies bytes both ways until both directions reached end of file (or an
 * error), half-closing as each direction ends so HTTP/1.0-style "send,
 * shut down, read the answer" clients work. */
static void relay(int a, int b)
{
    char *buf = malloc(RELAY_BUF);
    bool open_ab = true, open_ba = true;
    while (buf && (open_ab || open_ba)) {
        struct pollfd p[2] = { { .fd = open_ab ? a : -1, .events = POLLIN },
                               { .fd = open_ba ? b : -1, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int from = i ? b : a, to = i ? a : b;
            ssize_t n = read(from, buf, RELAY_BUF);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || write_all(to, buf, (size_t)n) < 0) {
                shutdown(to, SHUT_WR);
                if (i)
                    open_ba = false;
                else
                    open_ab = false;
            }
        }
    }
    free(buf);
}

/* ---- host side ---- */

struct bw_fwd_host {
    int listen_fd;
    int stop_pipe[2];
    char *unix_path;
    char *host, *port;
    pthread_t thread;
    atomic_int conns;
};

struct conn {
    struct bw_fwd_host *f;
    int fd;
};

static int tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void *conn_thread(void *arg)
{
    struct conn *c = arg;
    int up = tcp_connect(c->f->host, c->f->port);
    if (up >= 0) {
        relay(c->fd, up);
        close(up);
    }
    close(c->fd);
    atomic_fetch_sub(&c->f->conns, 1);
    free(c);
    return NULL;
}

static void *accept_thread(void *arg)
{
    struct bw_fwd_host *f = arg;
    for (;;) {
        struct pollfd p[2] = { { .fd = f->listen_fd, .events = POLLIN },
                               { .fd = f->stop_pipe[0], .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        /* Bounded: a sandbox opening connections in a loop gets refused
         * rather than making the worker spawn threads without end. */
        if (atomic_fetch_add(&f->conns, 1) >= MAX_CONNS) {
            atomic_fetch_sub(&f->conns, 1);
            close(fd);
            continue;
        }
        struct conn *c = malloc(sizeof(*c));
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (!c || (c->f = f, c->fd = fd, pthread_create(&t, &at, conn_thread, c) != 0)) {
            free(c);
            close(fd);
            atomic_fetch_sub(&f->conns, 1);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

struct bw_fwd_host *bw_fwd_host_start(const char *unix_path, const char *tcp_host,
                                      const char *tcp_port, pc_plugin_error *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(unix_path) >= sizeof(sa.sun_path)) {
        pc_plugin_error_set(err, 0, "cannot listen on %s: path too long", unix_path);
        return NULL;
    }
    struct bw_fwd_host *f = calloc(1, sizeof(*f));
    if (!f) {
        pc_plugin_error_set(err, 0, "out of memory");
        return NULL;
    }
    f->listen_fd = -1;
    f->stop_pipe[0] = f->stop_pipe[1] = -1;
    strcpy(sa.sun_path, unix_path);
    unlink(unix_path);
    f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(f->listen_fd, 64) < 0 || pipe2(f->stop_pipe, O_CLOEXEC) < 0) {
        pc_plugin_error_set(err, 0, "cannot listen on %s: %s", unix_path, strerror(errno));
        goto fail;
    }
    /* The sandboxed uid maps to the worker's uid, but be explicit: only the
     * owner may connect. */
    chmod(unix_path, 0600);
    f->unix_path = strdup(unix_path);
    f->host = strdup(tcp_host);
    f->port = strdup(tcp_port);
    if (!f->unix_path || !f->host || !f->port ||
        pthread_create(&f->thread, NULL, accept_thread, f) != 0) {
        pc_plugin_error_set(err, 0, "cannot start the api forwarder");
        goto fail;
    }
    return f;
fail:
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    if (f->stop_pipe[0] >= 0) {
        close(f->stop_pipe[0]);
        close(f->stop_pipe[1]);
    }
    unlink(unix_path);
    free(f->unix_path);
    free(f->host);
    free(f->port);
    free(f);
    return NULL;
}

void bw_fwd_host_stop(struct bw_fwd_host *f)
{
    if (!f)
        return;
    (void)!write(f->stop_pipe[1], "x", 1);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    close(f->stop_pipe[0]);
    close(f->stop_pipe[1]);
    unlink(f->unix_path);
    /* Connection threads still relaying hold `f`: they end when the
     * sandbox (already dead here) closed its side, which is promptly; wait
     * a bounded time rather than freeing memory under them. */
    for (int i = 0; i < 2000 && atomic_load(&f->conns) > 0; i++)
        usleep(1000);
    if (atomic_load(&f->conns) > 0)
        return; /* leak the small struct rather than risk a use-after-free */
    free(f->unix_path);
    free(f->host);
    free(f->port);
    free(f);
}

/* ---- sandbox side: worker --forward-in UNIX ADDR PORT -- CMD ARGS ---- */

static int unix_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -1;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

int bw_forward_in_main(int argc, char **argv)
{
    if (argc < 7 || strcmp(argv[5], "--") != 0) {
        fprintf(stderr, "usage: worker --forward-in UNIX_PATH ADDR PORT -- CMD [ARGS...]\n");
        return 127;
    }
    const char *upath = argv[2], *addr = argv[3], *port = argv[4];
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int lfd = -1, one = 1;
    if (getaddrinfo(addr, port, &hints, &ai) == 0) {
        lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd >= 0)
            setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (lfd >= 0 && (bind(lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(lfd, 64) < 0)) {
            close(lfd);
            lfd = -1;
        }
        freeaddrinfo(ai);
    }
    if (lfd < 0) {
        fprintf(stderr, "paperclip api forwarder: cannot listen on %s:%s: %s\n", addr, port,
                strerror(errno));
    } else {
        /* Listen before forking, so the command can connect at once. The
         * relay dies with the sandbox's pid namespace when the command
         * ends. */
        pid_t pid = fork();
        if (pid == 0 && fork() != 0)
            _exit(0);
        if (pid == 0) {
            /* The grandchild: re-parented to bwrap's reaper (pid 1), so the
             * command never sees an unexpected child of its own. */
            signal(SIGCHLD, SIG_IGN); /* connection children are not waited for */
            for (;;) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0) {
                    if (errno == EINTR || errno == ECONNABORTED)
                        continue;
                    _exit(1);
                }
                if (fork() == 0) {
                    int u = unix_connect(upath);
                    if (u >= 0)
                        relay(c, u);
                    _exit(0);
                }
                close(c);
            }
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
        close(lfd);
    }
    execvp(argv[6], argv + 6);
    fprintf(stderr, "cannot exec %s: %s\n", argv[6], strerror(errno));
    return 127;
}
