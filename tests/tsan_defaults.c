/*
 * ThreadSanitizer's options and suppressions for `make tsan`, linked into
 * every program of that build (the daemon, plugin workers, test programs).
 * They live in the binaries rather than in TSAN_OPTIONS because the daemon
 * starts plugin workers and runs with an explicit environment, which would
 * drop the variable.
 *
 * A report stops the process with exit code 66, which fails the test that
 * caused it. Only code outside this repository may be suppressed, each entry
 * with the reason it is not a bug in our use; a race in our own code is
 * fixed, never listed here.
 */
#if defined(__SANITIZE_THREAD__)

const char *__tsan_default_options(void);
const char *__tsan_default_suppressions(void);

const char *__tsan_default_options(void)
{
    return "halt_on_error=1 exitcode=66 second_deadlock_stack=1";
}

const char *__tsan_default_suppressions(void)
{
    return
        /* jansson (Debian 12, 2.14): json_incref/json_decref are inline
         * functions of <jansson.h>. json_decref first reads `refcount`
         * without an atomic load (to skip the immortal singletons, refcount
         * == -1), then decrements it with a release-only atomic, and the
         * thread that drops the last reference frees the object without an
         * acquire. Objects we share between threads (a plugin request handed
         * to a job thread, a run's JSON kept by two threads) are only read
         * and reference-counted after the hand-off, which jansson documents
         * as thread-safe; TSan reports the library's own plain read and the
         * free that follows. The last entry is the same free seen from
         * inside the uninstrumented library, whose frames have no symbol. */
        "race:json_decref\n"
        "race:json_delete\n"
        "race:libjansson.so.4\n"
        /* libuv (1.44) closes the descriptors it owns (our pipes, once handed
         * to uv_pipe_open) with syscall(SYS_close), which TSan does not
         * intercept. TSan then still believes the pipe is open, and when the
         * kernel hands the same number to a new descriptor (accept4 in
         * libmicrohttpd, another pipe) it reports the new descriptor as
         * racing with the old pipe's creation. Only descriptor bookkeeping
         * has pipe2/socketpair on a stack, so nothing else is hidden. */
        "race:pipe2\n"
        "race:socketpair\n";
}

#endif
