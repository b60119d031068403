/*
 * Classification of network addresses for server-side fetches.
 *
 * The daemon fetches URLs that board users and agents configure (the http
 * adapter). Without a check, such a URL reaches what only the daemon's host
 * can reach: its own API on loopback, the LAN, the cloud metadata service.
 * pc_net_addr_private_rule() names the rule that makes an address
 * non-public, or returns NULL for a globally routable unicast address.
 * IPv4-mapped, IPv4-compatible, NAT64 and 6to4 IPv6 forms are judged by the
 * IPv4 address they carry. Pure functions: no I/O, thread-safe.
 */
#ifndef PC_LIB_NET_H
#define PC_LIB_NET_H

#include <stdbool.h>
#include <sys/socket.h>

/* A static description such as "loopback address" (NULL: public). An
 * address family other than AF_INET/AF_INET6 is "non-IP address". */
const char *pc_net_addr_private_rule(const struct sockaddr *sa);
bool pc_net_addr_is_private(const struct sockaddr *sa);

/* Same for a numeric address string ("10.0.0.1", "::1"); a string that is
 * not a numeric address gives "not a numeric address". */
const char *pc_net_text_private_rule(const char *addr);

#endif
