#include "lib/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* IPv4 blocks that are not public unicast (IANA special-purpose registry).
 * Order matters only for the more specific metadata entry. */
static const struct {
    uint32_t net;
    int bits;
    const char *rule;
} v4_blocks[] = {
    {0xA9FEA9FE, 32, "cloud metadata address"},          /* 169.254.169.254 */
    {0x00000000, 32, "unspecified address"},             /* 0.0.0.0 */
    {0x00000000, 8, "reserved address (this network)"},  /* 0/8 */
    {0x7F000000, 8, "loopback address"},                 /* 127/8 */
    {0x0A000000, 8, "private address (RFC 1918)"},       /* 10/8 */
    {0xAC100000, 12, "private address (RFC 1918)"},      /* 172.16/12 */
    {0xC0A80000, 16, "private address (RFC 1918)"},      /* 192.168/16 */
    {0xA9FE0000, 16, "link-local address"},              /* 169.254/16 */
    {0x64400000, 10, "carrier-grade NAT address"},       /* 100.64/10 */
    {0xC0000000, 24, "reserved address (IETF protocol assignments)"}, /* 192.0.0/24 */
    {0xC0000200, 24, "reserved address (documentation)"},             /* 192.0.2/24 */
    {0xC6336400, 24, "reserved address (documentation)"},             /* 198.51.100/24 */
    {0xCB007100, 24, "reserved address (documentation)"},             /* 203.0.113/24 */
    {0xC0586300, 24, "reserved address (6to4 relay)"},                /* 192.88.99/24 */
    {0xC6120000, 15, "reserved address (benchmarking)"},              /* 198.18/15 */
    {0xFFFFFFFF, 32, "broadcast address"},               /* 255.255.255.255 */
    {0xE0000000, 4, "multicast address"},                /* 224/4 */
    {0xF0000000, 4, "reserved address"},                 /* 240/4 */
};

static const char *v4_rule(uint32_t a)
{
    for (size_t i = 0; i < sizeof v4_blocks / sizeof *v4_blocks; i++) {
        uint32_t mask = v4_blocks[i].bits ? 0xFFFFFFFFu << (32 - v4_blocks[i].bits) : 0;
        if ((a & mask) == v4_blocks[i].net)
            return v4_blocks[i].rule;
    }
    return NULL;
}

static uint32_t v4_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static const char *v6_rule(const uint8_t *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (zero(a, 16))
        return "unspecified address";
    if (zero(a, 15) && a[15] == 1)
        return "loopback address";
    /* Embedded IPv4 forms reach the IPv4 address they carry: judge that. */
    if (!memcmp(a, mapped, 12) || zero(a, 12) || !memcmp(a, nat64, 12)) {
        const char *r = v4_rule(v4_at(a + 12));
        return r ? r : zero(a, 12) ? "reserved address (IPv4-compatible)" : NULL;
    }
    if (a[0] == 0x20 && a[1] == 0x02) /* 2002::/16 6to4 */
        return v4_rule(v4_at(a + 2));
    if ((a[0] & 0xfe) == 0xfc)
        return "unique local address";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local address";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return "site-local address";
    if (a[0] == 0xff)
        return "multicast address";
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
        return "reserved address (documentation)";
    /* Teredo tunnels to an address we cannot judge from here. */
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0)
        return "reserved address (Teredo)";
    /* Only 2000::/3 is allocated as global unicast; the rest is reserved
     * (discard-only 100::/64 and the deprecated ranges included). */
    if ((a[0] & 0xe0) != 0x20)
        return "reserved address";
    return NULL;
}

const char *pc_net_addr_private_rule(const struct sockaddr *sa)
{
    if (!sa)
        return "non-IP address";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return v4_rule(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return v6_rule(in6->sin6_addr.s6_addr);
    }
    return "non-IP address";
}

bool pc_net_addr_is_private(const struct sockaddr *sa)
{
    return pc_net_addr_private_rule(sa) != NULL;
}

const char *pc_net_text_private_rule(const char *addr)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    memset(&in, 0, sizeof in);
    memset(&in6, 0, sizeof in6);
    if (inet_pton(AF_INET, addr, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        return pc_net_addr_private_rule((const struct sockaddr *)&in);
    }
    if (inet_pton(AF_INET6, addr, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        return pc_net_addr_private_rule((const struct sockaddr *)&in6);
    }
    return "not a numeric address";
}
