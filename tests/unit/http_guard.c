/* Unit tests for the browser guards (src/http/guard.c) and the HTTP limit
 * settings in the daemon config. */
#include <stdlib.h>
#include <string.h>

#include "../lib/tap.h"
#include "app.h"
#include "http/internal.h"
#include "lib/config.h"

static void test_host(void)
{
    pc_config cfg = {0};
    snprintf(cfg.bind, sizeof cfg.bind, "0.0.0.0");
    snprintf(cfg.agent_bind, sizeof cfg.agent_bind, "10.0.0.5");
    snprintf(cfg.agent_bind_extra, sizeof cfg.agent_bind_extra, "10.200.0.1,fd00::1");
    snprintf(cfg.allowed_hostnames, sizeof cfg.allowed_hostnames, "box.lan, Other.Example");
    snprintf(cfg.public_url, sizeof cfg.public_url, "https://pc.example.com/app");
    ok(pc_http_host_allowed(&cfg, "127.0.0.1:3100"), "127.0.0.1 with a port");
    ok(pc_http_host_allowed(&cfg, "127.1.2.3"), "any 127/8 address");
    ok(pc_http_host_allowed(&cfg, "LOCALHOST:1"), "localhost in any case");
    ok(pc_http_host_allowed(&cfg, "[::1]:3100"), "bracketed ::1");
    ok(pc_http_host_allowed(&cfg, "box.lan:3100"), "an allowed hostname");
    ok(pc_http_host_allowed(&cfg, "other.example"), "allowed hostnames compare without case");
    ok(pc_http_host_allowed(&cfg, "pc.example.com"), "the public URL's host");
    ok(pc_http_host_allowed(&cfg, "10.0.0.5:41000"), "the ingress bind address");
    ok(pc_http_host_allowed(&cfg, "10.200.0.1:41000"), "a further ingress address");
    ok(pc_http_host_allowed(&cfg, "[fd00::1]:41000"), "a further IPv6 ingress address");
    ok(!pc_http_host_allowed(&cfg, "10.200.0.2:41000"), "not every address of that network");
    ok(!pc_http_host_allowed(&cfg, "0.0.0.0"), "a wildcard bind is not a hostname");
    ok(!pc_http_host_allowed(&cfg, "evil.example"), "a foreign name");
    ok(!pc_http_host_allowed(&cfg, "127.0.0.1.evil.example"), "a name that starts like 127/8");
    ok(!pc_http_host_allowed(&cfg, "localhost.evil.example"), "a name that starts like localhost");
    ok(!pc_http_host_allowed(&cfg, "box.lan.evil.example"), "allowed names match whole");
    ok(!pc_http_host_allowed(&cfg, NULL), "no Host");
    ok(!pc_http_host_allowed(&cfg, ""), "an empty Host");
    ok(!pc_http_host_allowed(&cfg, "[::1"), "an unclosed bracket");
}

static void test_origin(void)
{
    ok(pc_http_origin_allowed("POST", NULL, NULL, "127.0.0.1:3100"), "no Origin: the CLI");
    ok(pc_http_origin_allowed("POST", "http://127.0.0.1:3100", "same-origin", "127.0.0.1:3100"),
       "same origin");
    ok(pc_http_origin_allowed("PATCH", "http://LOCALHOST", NULL, "localhost:80"),
       "default port and case do not matter");
    ok(pc_http_origin_allowed("POST", NULL, "none", "127.0.0.1:3100"),
       "Sec-Fetch-Site: none (typed in the address bar)");
    ok(!pc_http_origin_allowed("POST", "http://evil.example", NULL, "127.0.0.1:3100"),
       "another host");
    ok(!pc_http_origin_allowed("DELETE", "http://127.0.0.1:3101", NULL, "127.0.0.1:3100"),
       "another port");
    ok(!pc_http_origin_allowed("PUT", "https://127.0.0.1:3100", NULL, "127.0.0.1"),
       "https origin against an http default port");
    ok(!pc_http_origin_allowed("POST", "null", NULL, "127.0.0.1:3100"), "Origin: null");
    ok(!pc_http_origin_allowed("POST", NULL, "cross-site", "127.0.0.1:3100"), "cross-site");
    ok(!pc_http_origin_allowed("POST", NULL, "Same-Site", "127.0.0.1:3100"), "same-site");
    ok(!pc_http_origin_allowed("POST", "http://127.0.0.1:3100", NULL, NULL), "Origin without Host");
    ok(pc_http_origin_allowed("GET", "http://evil.example", "cross-site", "127.0.0.1:3100"),
       "GET is not a mutation");
    ok(pc_http_origin_allowed("OPTIONS", "http://evil.example", NULL, "127.0.0.1:3100"),
       "OPTIONS is not a mutation");
}

static void test_config(void)
{
    pc_config cfg;
    pc_error_t err = PC_ERROR_INIT;
    char *argv[] = {"serve", "--data-dir", "/nonexistent-pc-dir", "--bind", "127.0.0.1", NULL};
    unsetenv("PAPERCLIP_AGENT_BIND");
    unsetenv("PAPERCLIP_BODY_BUDGET");
    is_int(pc_config_load(&cfg, 5, argv, &err), 0, "defaults load");
    is_str(cfg.agent_bind, "127.0.0.1", "the ingress binds where the operator listener does");
    is_int(cfg.agent_port, 0, "the ingress port is ephemeral by default");
    is_int(cfg.body_budget, 64 * 1024 * 1024, "body budget 64 MiB");
    is_int(cfg.header_timeout_s, 10, "header timeout 10 s");
    is_int(cfg.idle_timeout_s, 60, "idle timeout 60 s");
    is_int(cfg.max_connections, 1000, "1000 connections per listener");
    is_int(cfg.max_connections_per_address, 64, "64 per address");
    char *argv2[] = {"serve", "--data-dir", "/nonexistent-pc-dir", "--body-budget", "1048576", NULL};
    is_int(pc_config_load(&cfg, 5, argv2, &err), -1, "a budget below the body limit is refused");
    ok(strstr(err.msg, "body budget") != NULL, "with a message naming it");
    pc_error_clear(&err);
    char *argv3[] = {"serve", "--data-dir", "/nonexistent-pc-dir", "--header-timeout", "0", NULL};
    is_int(pc_config_load(&cfg, 5, argv3, &err), -1, "header timeout 0 is refused");
    is_int(err.status, 400, "as a usage error");
    pc_error_clear(&err);
}

int main(void)
{
    test_host();
    test_origin();
    test_config();
    return tap_done();
}
