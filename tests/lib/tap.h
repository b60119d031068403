/*
 * Minimal TAP producer for the in-tree test programs.
 *
 * Every test program prints "ok N - name" or "not ok N - name" per check and
 * "1..N" at the end; tests/run.sh counts those lines across all programs and
 * prints the closing "N passed, N failed" line. A program that exits non-zero
 * or dies without printing its plan counts as one extra failure, so a crash
 * can never pass silently.
 */
#ifndef PC_TESTS_TAP_H
#define PC_TESTS_TAP_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int tap_ok_(bool cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the plan and returns the exit status for main(). */
int tap_done(void);
int tap_failures(void);

#define ok(cond, ...) tap_ok_((cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                                          \
    do {                                                                                \
        long long g_ = (long long)(got), w_ = (long long)(want);                        \
        if (!tap_ok_(g_ == w_, __FILE__, __LINE__, __VA_ARGS__))                        \
            tap_diag("  got %lld, want %lld", g_, w_);                                  \
    } while (0)
#define is_str(got, want, ...)                                                          \
    do {                                                                                \
        const char *g_ = (got), *w_ = (want);                                           \
        bool same_ = g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_;                         \
        if (!tap_ok_(same_, __FILE__, __LINE__, __VA_ARGS__))                           \
            tap_diag("  got \"%s\", want \"%s\"", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
    } while (0)

#endif
