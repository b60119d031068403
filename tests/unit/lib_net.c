/* Unit tests for src/lib/net.c: which addresses a server-side fetch refuses,
 * over a table of IPv4 and IPv6 addresses (with the rule each one hits),
 * and the allowPrivateFetchTargets switch of the config loader. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tap.h"
#include "app.h"
#include "lib/config.h"
#include "lib/net.h"

static const struct {
    const char *addr;
    const char *rule; /* substring of the rule; NULL: public */
} cases[] = {
    {"127.0.0.1", "loopback"},
    {"127.255.255.254", "loopback"},
    {"0.0.0.0", "unspecified"},
    {"0.1.2.3", "reserved"},
    {"10.0.0.1", "RFC 1918"},
    {"10.255.255.255", "RFC 1918"},
    {"172.16.0.1", "RFC 1918"},
    {"172.31.255.255", "RFC 1918"},
    {"192.168.1.1", "RFC 1918"},
    {"169.254.169.254", "metadata"},
    {"169.254.1.1", "link-local"},
    {"100.64.0.1", "carrier-grade NAT"},
    {"100.127.255.255", "carrier-grade NAT"},
    {"224.0.0.1", "multicast"},
    {"239.255.255.250", "multicast"},
    {"255.255.255.255", "broadcast"},
    {"240.0.0.1", "reserved"},
    {"192.0.2.10", "documentation"},
    {"198.18.0.1", "benchmarking"},
    {"::1", "loopback"},
    {"::", "unspecified"},
    {"fe80::1", "link-local"},
    {"febf:ffff::1", "link-local"},
    {"fc00::1", "unique local"},
    {"fd12:3456::1", "unique local"},
    {"ff02::1", "multicast"},
    {"::ffff:127.0.0.1", "loopback"},
    {"::ffff:10.1.2.3", "RFC 1918"},
    {"::ffff:169.254.169.254", "metadata"},
    {"::127.0.0.1", "loopback"},
    {"::8.8.8.8", "IPv4-compatible"},
    {"64:ff9b::a9fe:a9fe", "metadata"},
    {"2002:7f00:1::1", "loopback"},
    {"2001:db8::1", "documentation"},
    {"2001:0:4136:e378::1", "Teredo"},
    {"100::1", "reserved"},
    /* Public addresses: the neighbours of each blocked range. */
    {"8.8.8.8", NULL},
    {"1.1.1.1", NULL},
    {"11.0.0.1", NULL},
    {"126.255.255.255", NULL},
    {"128.0.0.1", NULL},
    {"172.15.255.255", NULL},
    {"172.32.0.1", NULL},
    {"192.167.255.255", NULL},
    {"192.169.0.1", NULL},
    {"169.253.255.255", NULL},
    {"100.63.255.255", NULL},
    {"100.128.0.1", NULL},
    {"223.255.255.255", NULL},
    {"2606:4700:4700::1111", NULL},
    {"2a00:1450:4001::1", NULL},
    {"::ffff:8.8.8.8", NULL},
    {"64:ff9b::808:808", NULL},
    {"2002:808:808::1", NULL},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *rule = pc_net_text_private_rule(cases[i].addr);
        if (cases[i].rule)
            ok(rule && strstr(rule, cases[i].rule), "%s refused as %s (got %s)", cases[i].addr,
               cases[i].rule, rule ? rule : "public");
        else
            ok(rule == NULL, "%s is public (got %s)", cases[i].addr, rule ? rule : "public");
    }
    ok(pc_net_text_private_rule("localhost") != NULL, "a name is not judged as an address");
    struct sockaddr_un_like {
        sa_family_t family;
        char path[16];
    } un = {.family = AF_UNIX};
    ok(pc_net_addr_is_private((const struct sockaddr *)&un), "a non-IP family is refused");
    ok(pc_net_addr_is_private(NULL), "NULL is refused");
}

static void test_config_switch(void)
{
    pc_config cfg;
    pc_error_t err = PC_ERROR_INIT;
    char dir[] = "/tmp/pc-netcfg-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "temp dir");
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *argv[] = {"serve", "--data-dir", dir, NULL};
    unsetenv("PAPERCLIP_ALLOW_PRIVATE_FETCH");
    ok(pc_config_load(&cfg, 3, argv, &err) == 0 && !cfg.allow_private_fetch,
       "private fetch targets are refused by default");
    FILE *f = fopen(path, "w");
    fputs("{\"allowPrivateFetchTargets\": true}", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv, &err) == 0 && cfg.allow_private_fetch,
       "config.json allowPrivateFetchTargets turns them on");
    setenv("PAPERCLIP_ALLOW_PRIVATE_FETCH", "0", 1);
    ok(pc_config_load(&cfg, 3, argv, &err) == 0 && !cfg.allow_private_fetch,
       "PAPERCLIP_ALLOW_PRIVATE_FETCH=0 beats the file");
    setenv("PAPERCLIP_ALLOW_PRIVATE_FETCH", "maybe", 1);
    ok(pc_config_load(&cfg, 3, argv, &err) < 0 && strstr(err.msg, "PAPERCLIP_ALLOW_PRIVATE_FETCH"),
       "a bad value is a clear error");
    pc_error_clear(&err);
    unsetenv("PAPERCLIP_ALLOW_PRIVATE_FETCH");
    f = fopen(path, "w");
    fputs("{\"allowPrivateFetchTargets\": \"yes\"}", f);
    fclose(f);
    ok(pc_config_load(&cfg, 3, argv, &err) < 0 && strstr(err.msg, "allowPrivateFetchTargets"),
       "a non-boolean in config.json is a clear error");
    pc_error_clear(&err);
    setenv("PAPERCLIP_ALLOW_PRIVATE_FETCH", "1", 1);
    unlink(path);
    ok(pc_config_load(&cfg, 3, argv, &err) == 0 && cfg.allow_private_fetch,
       "PAPERCLIP_ALLOW_PRIVATE_FETCH=1 turns them on");
    unsetenv("PAPERCLIP_ALLOW_PRIVATE_FETCH");
    rmdir(dir);
}

int main(void)
{
    test_table();
    test_config_switch();
    return tap_done();
}
