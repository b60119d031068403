/*
 * The browser guards (src/http/guard.c): Host, Origin and Sec-Fetch-Site
 * header values straight from the network.
 *
 * Input: one byte of options (bit 0-1: the method, GET/POST/DELETE/PATCH),
 * then the Host value, a NUL, the Origin value, a NUL, the Sec-Fetch-Site
 * value; a missing part is an absent header.
 *
 * Properties (src/http/internal.h): GET is never refused by the origin
 * guard; Sec-Fetch-Site cross-site or same-site always refuses a mutation;
 * a mutation whose Origin is "http://" followed by the Host value itself is
 * accepted when that Host is a plain host[:port] without "/?#" or spaces;
 * a Host accepted under one configuration is a loopback name or
 * `allowed.example` (the only configured name).
 */
#include "fuzz_common.h"

#include <ctype.h>
#include <strings.h>

#include "app.h"
#include "http/internal.h"

static const char *part(const uint8_t *data, size_t size, size_t *off)
{
    if (*off >= size)
        return NULL;
    const char *p = (const char *)data + *off;
    const void *nul = memchr(p, 0, size - *off);
    *off = nul ? (size_t)((const char *)nul - (const char *)data) + 1 : size;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const char *const methods[] = {"GET", "POST", "DELETE", "PATCH"};
    const char *method = methods[data[0] & 3];
    /* Keep the parts NUL-terminated: copy with a terminator appended. */
    uint8_t *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t off = 1;
    const char *host = part(buf, size, &off);
    const char *origin = part(buf, size, &off);
    const char *site = part(buf, size, &off);

    pc_config cfg = {0};
    snprintf(cfg.bind, sizeof cfg.bind, "0.0.0.0");
    snprintf(cfg.agent_bind, sizeof cfg.agent_bind, "::");
    snprintf(cfg.allowed_hostnames, sizeof cfg.allowed_hostnames, "allowed.example");

    bool ok = pc_http_origin_allowed(method, origin, site, host);
    if (!strcmp(method, "GET"))
        FZ_CHECK(ok, "GET refused");
    if (strcmp(method, "GET") && site &&
        (!strcasecmp(site, "cross-site") || !strcasecmp(site, "same-site")))
        FZ_CHECK(!ok, "cross-site mutation accepted");
    if (strcmp(method, "GET") && host && *host && strlen(host) < 200 &&
        !strpbrk(host, "/?# ") && !(site && (!strcasecmp(site, "cross-site") ||
                                             !strcasecmp(site, "same-site")))) {
        char same[256];
        snprintf(same, sizeof same, "http://%s", host);
        FZ_CHECK(pc_http_origin_allowed(method, same, site, host), "same origin refused: %s",
                 host);
    }

    if (host && pc_http_host_allowed(&cfg, host)) {
        char name[256] = "";
        const char *h = host;
        while (*h == ' ')
            h++;
        size_t n = *h == '[' ? strcspn(h + 1, "]") : strcspn(h, ":/?# ");
        if (*h == '[')
            h++;
        snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), h);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        bool quad = !strncmp(name, "127.", 4) && strspn(name, "0123456789.") == strlen(name);
        FZ_CHECK(quad || !strcmp(name, "localhost") || !strcmp(name, "::1") ||
                     !strcmp(name, "allowed.example"),
                 "host accepted: %s", host);
    }
    free(buf);
    return 0;
}
