/*
 * Run tokens: pc_jwt_verify() with a fixed secret and a fixed clock.
 *
 * Input: one byte of options, then
 *  - bit 0 clear: the token itself (up to the first NUL), as it arrives in
 *    an Authorization header;
 *  - bit 0 set: the JSON texts of a header and a payload, separated by a
 *    NUL (without one, the payload alone under {"alg":"HS256","typ":"JWT"}),
 *    which the target encodes and signs with the secret, so the claims
 *    checks behind the signature are reached too. Bit 1 then corrupts the
 *    signature's last character.
 *
 * Properties (src/run/jwt.h): a rejection is a 401; an accepted token is
 * signed with the secret, has alg HS256, and its claims have iss
 * "paperclip", aud "paperclip-api", exp after now, and string sub,
 * company_id and run_id; a token the target did not sign is never accepted.
 */
#include "fuzz_common.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <time.h>

#include "app.h"
#include "lib/error.h"
#include "lib/json.h"
#include "run/jwt.h"

/* The secret the seed tokens in fuzz/corpus/fuzz_jwt/ are signed with. */
#define FUZZ_SECRET "paperclip-fuzz-secret-0123456789"
/* 2023-11-14T22:13:20Z: seed tokens expire after it, some before. */
#define FUZZ_NOW 1700000000

static unsigned char key[crypto_hash_sha256_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0)
        abort();
    /* Only the fuzzer process reads its environment; no thread exists yet. */
    setenv("PAPERCLIP_AGENT_JWT_SECRET", FUZZ_SECRET, 1);
    static pc_app app;
    snprintf(app.cfg.data_dir, sizeof app.cfg.data_dir, "/nonexistent");
    pc_error_t err = PC_ERROR_INIT;
    if (pc_jwt_init(&app, &err) < 0) {
        fprintf(stderr, "pc_jwt_init: %s\n", err.msg);
        abort();
    }
    /* jwt.c hashes a configured secret down to the HMAC key. */
    crypto_hash_sha256(key, (const unsigned char *)FUZZ_SECRET, strlen(FUZZ_SECRET));

    /* A freshly minted token must verify, or every other check is moot. */
    char tok[PC_JWT_MAX];
    if (pc_jwt_mint("a", "c", NULL, "r", "i", tok, &err) < 0)
        abort();
    json_t *claims = pc_jwt_verify(tok, (int64_t)time(NULL), &err);
    if (!claims) {
        fprintf(stderr, "minted token does not verify: %s\n", err.msg);
        abort();
    }
    json_decref(claims);
    return 0;
}

static char *b64(const char *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    if (!out)
        abort();
    sodium_bin2base64(out, cap, (const unsigned char *)p, n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* header.payload.signature, signed with the secret. Caller frees. */
static char *sign(const char *h, size_t hn, const char *p, size_t pn, bool corrupt)
{
    char *h64 = b64(h, hn), *p64 = b64(p, pn);
    size_t sn = strlen(h64) + 1 + strlen(p64);
    char *tok = malloc(sn + 64);
    if (!tok)
        abort();
    snprintf(tok, sn + 1, "%s.%s", h64, p64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, sizeof key);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, sn);
    crypto_auth_hmacsha256_final(&st, mac);
    tok[sn] = '.';
    sodium_bin2base64(tok + sn + 1, 63, mac, sizeof mac, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (corrupt) {
        size_t l = strlen(tok);
        tok[l - 1] = tok[l - 1] == 'A' ? 'B' : 'A';
    }
    free(h64);
    free(p64);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    char *tok;
    bool signed_here = data[0] & 1, corrupt = signed_here && (data[0] & 2);
    if (signed_here) {
        static const char dflt[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        const char *nul = memchr(rest, '\0', n);
        if (nul)
            tok = sign(rest, (size_t)(nul - rest), nul + 1, n - (size_t)(nul - rest) - 1, corrupt);
        else
            tok = sign(dflt, strlen(dflt), rest, n, corrupt);
    } else {
        tok = fz_cstr((const uint8_t *)rest, n);
    }

    pc_error_t err = PC_ERROR_INIT;
    json_t *claims = pc_jwt_verify(tok, FUZZ_NOW, &err);
    if (!claims) {
        FZ_CHECK(err.status == 401, "rejected with status %d", err.status);
    } else {
        FZ_CHECK(err.status == 0, "accepted with an error set");
        FZ_CHECK(!corrupt, "accepted a token with a corrupted signature: %s", tok);
        FZ_CHECK(json_is_object(claims), "claims are not an object");
        const char *iss = pc_json_str(claims, "iss"), *aud = pc_json_str(claims, "aud");
        FZ_CHECK(iss && !strcmp(iss, "paperclip"), "accepted iss");
        FZ_CHECK(aud && !strcmp(aud, "paperclip-api"), "accepted aud");
        FZ_CHECK(pc_json_int(claims, "exp", 0) > FUZZ_NOW, "accepted an expired token");
        FZ_CHECK(pc_json_str(claims, "sub") && pc_json_str(claims, "company_id") &&
                     pc_json_str(claims, "run_id"),
                 "accepted a token without sub/company_id/run_id");
        if (!signed_here) {
            /* Only a token whose signature is the secret's may pass. */
            const char *d2 = strrchr(tok, '.');
            FZ_CHECK(d2 != NULL, "accepted a token without a signature");
            unsigned char mac[crypto_auth_hmacsha256_BYTES], got[64];
            crypto_auth_hmacsha256_state st;
            crypto_auth_hmacsha256_init(&st, key, sizeof key);
            crypto_auth_hmacsha256_update(&st, (const unsigned char *)tok, (size_t)(d2 - tok));
            crypto_auth_hmacsha256_final(&st, mac);
            size_t glen = 0;
            FZ_CHECK(sodium_base642bin(got, sizeof got, d2 + 1, strlen(d2 + 1), NULL, &glen, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
                         glen == sizeof mac && memcmp(got, mac, sizeof mac) == 0,
                     "accepted a token not signed with the secret: %s", tok);
        }
        json_decref(claims);
    }
    pc_error_clear(&err);
    free(tok);
    return 0;
}
