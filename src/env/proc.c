#include "env/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/spawn.h"

/* How long descendants may keep the leader's pipes open after it exited. */
#define PC_PROC_DRAIN_MS 1000

typedef struct pc_proc {
    atomic_int refs;
    pc_loop *loop;
    const pc_proc_opts *o;     /* valid until the waiter is signalled */
    pc_exec_result *res;
    pc_error_t err;
    pc_waiter w;
    char **envp;
    /* Children are started with pc_spawn_start() and watched through a
     * pidfd; where the kernel has none, a timer polls waitpid(). */
    bool watching; /* exitw (pidfd) or tick (no pidfd) is initialised */
    int pidfd;
    uv_poll_t exitw;
    uv_timer_t tick;
    uv_pipe_t in, out, errp;
    uv_timer_t timer;          /* timeout, then grace, then drain */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    int open_handles;
    int pid;
    bool spawned, exited, finished, out_eof, err_eof, killing;
    bool cancelled, timed_out;
    int64_t exit_status;
    int term_signal;
} pc_proc;

void pc_proc_ctl_init(pc_proc_ctl *ctl)
{
    memset(ctl, 0, sizeof *ctl);
    pthread_mutex_init(&ctl->mu, NULL);
}

void pc_proc_ctl_destroy(pc_proc_ctl *ctl) { pthread_mutex_destroy(&ctl->mu); }

static void pc_proc_unref(pc_proc *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->envp) {
        for (char **e = p->envp; *e; e++)
            free(*e);
        free(p->envp);
    }
    pc_error_clear(&p->err);
    pc_waiter_destroy(&p->w);
    free(p);
}

/* Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. */
static unsigned long long pc_proc_starttime(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    if (!p)
        return 0;
    unsigned long long st = 0;
    /* After ")": state is field 3; starttime is field 22. */
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (++field == 22) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    return st;
}

static void pc_proc_record_pid(pc_proc *p) { pc_proc_record(p->o->pid_file, p->pid); }

void pc_proc_record(const char *pid_file, int pid)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%d %llu\n", pid, pc_proc_starttime(pid));
    int fd = open(pid_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) != n) {
        /* A missing record only weakens crash clean-up; the run goes on. */
    }
    close(fd);
}

int pc_proc_kill_recorded(const char *pid_file)
{
    FILE *f = fopen(pid_file, "r");
    if (!f)
        return 0;
    int pid = 0;
    unsigned long long st = 0;
    int got = fscanf(f, "%d %llu", &pid, &st);
    fclose(f);
    unlink(pid_file);
    if (got != 2 || pid <= 1 || st == 0 || pc_proc_starttime(pid) != st)
        return 0;
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    return 1;
}

static void pc_proc_close_cb(uv_handle_t *h)
{
    pc_proc *p = h->data;
    if (--p->open_handles > 0)
        return;
    if (p->spawned && p->o->pid_file)
        unlink(p->o->pid_file);
    pc_exec_result *r = p->res;
    r->timed_out = p->timed_out;
    r->cancelled = p->cancelled;
    if (p->spawned && !p->timed_out && !p->cancelled && p->term_signal == 0) {
        r->has_exit_code = true;
        r->exit_code = (int)p->exit_status;
    }
    if (p->term_signal) {
        const char *name = p->term_signal == SIGKILL   ? "SIGKILL"
                           : p->term_signal == SIGTERM ? "SIGTERM"
                           : p->term_signal == SIGINT  ? "SIGINT"
                           : p->term_signal == SIGHUP  ? "SIGHUP"
                           : p->term_signal == SIGSEGV ? "SIGSEGV"
                           : p->term_signal == SIGABRT ? "SIGABRT"
                           : p->term_signal == SIGPIPE ? "SIGPIPE"
                                                       : NULL;
        if (name)
            snprintf(r->signal, sizeof r->signal, "%s", name);
        else
            snprintf(r->signal, sizeof r->signal, "SIG%d", p->term_signal);
    }
    pc_waiter_signal(&p->w);
    pc_proc_unref(p); /* the loop's reference: signal may still touch p->w */
}

static void pc_proc_close(pc_proc *p, uv_handle_t *h)
{
    if (uv_is_closing(h))
        return;
    p->open_handles++;
    uv_close(h, pc_proc_close_cb);
}

/* Closes every handle; the last close callback completes the run. */
static void pc_proc_finish(pc_proc *p)
{
    if (p->finished)
        return;
    p->finished = true;
    /* One extra count so the waiter cannot be signalled before every close
     * below has been queued. */
    p->open_handles++;
    pc_proc_close(p, (uv_handle_t *)&p->timer);
    pc_proc_close(p, (uv_handle_t *)&p->out);
    pc_proc_close(p, (uv_handle_t *)&p->errp);
    if (p->o->stdin_data)
        pc_proc_close(p, (uv_handle_t *)&p->in);
    if (p->watching)
        pc_proc_close(p, p->pidfd >= 0 ? (uv_handle_t *)&p->exitw : (uv_handle_t *)&p->tick);
    pc_proc_close_cb((uv_handle_t *)&p->timer);
}

static void pc_proc_kill_group(pc_proc *p, int sig)
{
    pc_spawn_kill_group(p->pid, sig);
}

static void pc_proc_drain_cb(uv_timer_t *t)
{
    pc_proc *p = t->data;
    pc_proc_kill_group(p, SIGKILL);
    pc_proc_finish(p);
}

static void pc_proc_maybe_finish(pc_proc *p)
{
    if (!p->exited)
        return;
    if (p->out_eof && p->err_eof) {
        /* Whatever the command left running in its group goes with it. */
        pc_proc_kill_group(p, SIGKILL);
        pc_proc_finish(p);
    }
}

static void pc_proc_sigkill_cb(uv_timer_t *t)
{
    pc_proc *p = t->data;
    pc_proc_kill_group(p, SIGKILL);
}

/* Starts the SIGTERM -> grace -> SIGKILL sequence (once). */
static void pc_proc_stop(pc_proc *p)
{
    if (p->killing || p->exited || !p->spawned)
        return;
    p->killing = true;
    pc_proc_kill_group(p, SIGTERM);
    int64_t grace = p->o->grace_ms > 0 ? p->o->grace_ms : PC_PROC_DEFAULT_GRACE_MS;
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->timer, pc_proc_sigkill_cb, (uint64_t)grace, 0);
}

static void pc_proc_timeout_cb(uv_timer_t *t)
{
    pc_proc *p = t->data;
    p->timed_out = true;
    pc_proc_stop(p);
}

static void pc_proc_exited(pc_proc *p, int64_t status, int sig)
{
    p->exited = true;
    p->exit_status = status;
    p->term_signal = sig;
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->timer, pc_proc_drain_cb, PC_PROC_DRAIN_MS, 0);
    pc_proc_maybe_finish(p);
}

/* Reaps the child if it has exited and completes its exit. libuv's SIGCHLD
 * handler only waits for the pids of uv_spawn(), so it never takes this one
 * away. The watcher is stopped first: completing may close it. */
static void pc_proc_reap(pc_proc *p)
{
    if (p->exited)
        return;
    int ws = 0;
    pid_t r;
    do
        r = waitpid(p->pid, &ws, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return;
    if (p->pidfd >= 0)
        uv_poll_stop(&p->exitw);
    else
        uv_timer_stop(&p->tick);
    if (r < 0) /* reaped by someone else: the status is lost */
        pc_proc_exited(p, -1, 0);
    else
        pc_proc_exited(p, WIFEXITED(ws) ? WEXITSTATUS(ws) : 0, WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

/* The pidfd turns readable when the child has exited. */
static void pc_proc_pidfd_cb(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    pc_proc_reap(h->data);
}

/* Without a pidfd (kernels before 5.3, or filtered by seccomp) the exit is
 * noticed by polling; the loop never blocks on it. */
static void pc_proc_tick_cb(uv_timer_t *t) { pc_proc_reap(t->data); }

static void pc_proc_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    static _Thread_local char chunk[65536];
    (void)suggested;
    buf->base = chunk;
    buf->len = sizeof chunk;
}

static void pc_proc_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pc_proc *p = s->data;
    bool is_out = s == (uv_stream_t *)&p->out;
    if (n > 0) {
        pc_buf_append_trunc(is_out ? &p->res->out : &p->res->err, buf->base, (size_t)n);
        if (p->o->on_output)
            p->o->on_output(p->o->ud, is_out ? "stdout" : "stderr", buf->base, (size_t)n);
        return;
    }
    if (n == 0)
        return;
    uv_read_stop(s);
    if (is_out)
        p->out_eof = true;
    else
        p->err_eof = true;
    pc_proc_maybe_finish(p);
}

static void pc_proc_shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)req, (void)status;
}

static void pc_proc_write_cb(uv_write_t *req, int status)
{
    pc_proc *p = req->data;
    /* EPIPE (the command did not read its input) is not a failure of ours. */
    if (status == 0 && !uv_is_closing((uv_handle_t *)&p->in)) {
        p->sreq.data = p;
        uv_shutdown(&p->sreq, (uv_stream_t *)&p->in, pc_proc_shutdown_cb);
    }
}

static char **pc_proc_envp(json_t *env)
{
    size_t n = env ? json_object_size(env) : 0;
    char **envp = pc_xcalloc(n + 2, sizeof *envp);
    size_t i = 0;
    bool has_path = false;
    const char *k;
    json_t *v;
    if (env) {
        json_object_foreach(env, k, v) {
            if (!json_is_string(v) || !*k || strchr(k, '='))
                continue;
            if (!strcmp(k, "PATH"))
                has_path = true;
            envp[i++] = pc_xasprintf("%s=%s", k, json_string_value(v));
        }
    }
    if (!has_path)
        envp[i++] = pc_xstrdup("PATH=" PC_PROC_DEFAULT_PATH);
    envp[i] = NULL;
    return envp;
}

/*
 * pc_spawn_start() makes the descriptors: stdout and stderr are pipes;
 * stdin is a socket pair, because uv_shutdown() ends the command's input
 * with shutdown(SHUT_WR), which a pipe does not support, while the handle
 * stays open until the run ends. The parent ends go to libuv with
 * uv_pipe_open(). Returns 0 or a libuv error; on error nothing is left
 * running and no descriptor is leaked.
 */
static int pc_proc_spawn(pc_proc *p, uv_loop_t *uv)
{
    const pc_proc_opts *o = p->o;
    pc_spawn_opts so = {
        .file = o->file,
        .argv = o->argv,
        .envp = p->envp,
        .cwd = o->cwd,
        .stdio = {o->stdin_data ? PC_SPAWN_IO_SOCKET : PC_SPAWN_IO_NULL, PC_SPAWN_IO_PIPE,
                  PC_SPAWN_IO_PIPE},
    };
    pc_spawn_proc sp;
    int e = pc_spawn_start(&so, &sp, NULL);
    if (e)
        return uv_translate_sys_error(e);
    p->pid = sp.pid;
    p->pidfd = sp.pidfd;
    sp.pidfd = -1; /* closed when p is freed */
    int rc;
    if (p->pidfd >= 0) {
        rc = uv_poll_init(uv, &p->exitw, p->pidfd);
    } else {
        rc = uv_timer_init(uv, &p->tick);
    }
    p->watching = rc == 0;
    if (rc == 0 && (rc = uv_pipe_open(&p->out, sp.fd[1])) == 0)
        sp.fd[1] = -1;
    if (rc == 0 && (rc = uv_pipe_open(&p->errp, sp.fd[2])) == 0)
        sp.fd[2] = -1;
    if (rc == 0 && o->stdin_data && (rc = uv_pipe_open(&p->in, sp.fd[0])) == 0)
        sp.fd[0] = -1;
    if (rc == 0)
        rc = p->pidfd >= 0 ? uv_poll_start(&p->exitw, UV_READABLE, pc_proc_pidfd_cb)
                           : uv_timer_start(&p->tick, pc_proc_tick_cb, 10, 10);
    if (rc < 0) {
        /* Started but cannot be watched: stop it before reporting. */
        pc_spawn_proc_close(&sp);
        pc_spawn_kill_group(sp.pid, SIGKILL);
        while (waitpid(sp.pid, NULL, 0) < 0 && errno == EINTR) {
        }
        p->pid = 0;
        return rc;
    }
    return 0;
}

typedef struct pc_proc_start {
    pc_proc *p;
    pc_proc_ctl *ctl;
} pc_proc_start;

static void pc_proc_start_on_loop(pc_loop *loop, void *arg)
{
    pc_proc *p = arg;
    uv_loop_t *uv = pc_loop_uv(loop);
    const pc_proc_opts *o = p->o;
    uv_timer_init(uv, &p->timer);
    uv_pipe_init(uv, &p->out, 0);
    uv_pipe_init(uv, &p->errp, 0);
    if (o->stdin_data)
        uv_pipe_init(uv, &p->in, 0);
    p->timer.data = p->out.data = p->errp.data = p->in.data = p;
    p->exitw.data = p;
    p->tick.data = p;

    int rc = pc_proc_spawn(p, uv);
    if (rc < 0) {
        pc_error_set(&p->err, 500, "cannot run %s: %s", o->file, uv_strerror(rc));
        p->exited = true;
        pc_proc_finish(p);
        return;
    }
    p->spawned = true;
    if (o->pid_file)
        pc_proc_record_pid(p);
    uv_read_start((uv_stream_t *)&p->out, pc_proc_alloc_cb, pc_proc_read_cb);
    uv_read_start((uv_stream_t *)&p->errp, pc_proc_alloc_cb, pc_proc_read_cb);
    if (o->stdin_data) {
        uv_buf_t b = uv_buf_init((char *)o->stdin_data, (unsigned)o->stdin_len);
        p->wreq.data = p;
        if (uv_write(&p->wreq, (uv_stream_t *)&p->in, &b, 1, pc_proc_write_cb) < 0)
            pc_proc_close(p, (uv_handle_t *)&p->in);
    }
    if (o->timeout_ms > 0)
        uv_timer_start(&p->timer, pc_proc_timeout_cb, (uint64_t)o->timeout_ms, 0);
    if (p->cancelled)
        pc_proc_stop(p);
}

static void pc_proc_cancel_on_loop(pc_loop *loop, void *arg)
{
    (void)loop;
    pc_proc *p = arg;
    if (!p->finished) {
        p->cancelled = true;
        pc_proc_stop(p);
    }
    pc_proc_unref(p);
}

void pc_proc_cancel(pc_proc_ctl *ctl)
{
    pthread_mutex_lock(&ctl->mu);
    ctl->cancelled = true;
    pc_proc *p = ctl->active;
    if (p) {
        atomic_fetch_add(&p->refs, 1);
        if (pc_loop_post(ctl->loop, pc_proc_cancel_on_loop, p) < 0)
            atomic_fetch_sub(&p->refs, 1);
    }
    pthread_mutex_unlock(&ctl->mu);
}

int pc_proc_run(pc_loop *loop, const pc_proc_opts *opts, pc_proc_ctl *ctl, pc_exec_result *res,
                pc_error_t *err)
{
    size_t cap = opts->output_cap ? opts->output_cap : PC_PROC_DEFAULT_CAP;
    memset(res, 0, sizeof *res);
    pc_buf_init(&res->out, cap);
    pc_buf_init(&res->err, cap);
    if (pc_loop_on_thread(loop))
        return pc_error_set(err, 500, "cannot run %s on the runtime loop thread", opts->file);
    pc_proc *p = pc_xcalloc(1, sizeof *p);
    atomic_init(&p->refs, 2); /* the caller's and the loop's */
    p->loop = loop;
    p->o = opts;
    p->res = res;
    p->envp = pc_proc_envp(opts->env);
    p->pidfd = -1;
    pc_waiter_init(&p->w);
    if (ctl) {
        pthread_mutex_lock(&ctl->mu);
        ctl->loop = loop;
        p->cancelled = ctl->cancelled;
        ctl->active = p;
        pthread_mutex_unlock(&ctl->mu);
    }
    int rc = 0;
    if (pc_loop_post(loop, pc_proc_start_on_loop, p) < 0) {
        pc_proc_unref(p); /* the loop will never see it */
        rc = pc_error_set(err, 503, "cannot run %s: the runtime is stopping", opts->file);
    } else {
        pc_waiter_wait(&p->w, -1);
        if (pc_error_is_set(&p->err)) {
            pc_error_move(err, &p->err);
            rc = -1;
        }
    }
    if (ctl) {
        pthread_mutex_lock(&ctl->mu);
        ctl->active = NULL;
        pthread_mutex_unlock(&ctl->mu);
    }
    pc_proc_unref(p);
    return rc;
}

void pc_exec_result_free(pc_exec_result *res)
{
    pc_buf_release(&res->out);
    pc_buf_release(&res->err);
}
