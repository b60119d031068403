/*
 * HS256 run tokens (see jwt.h). Signatures are compared in constant time;
 * the header must say HS256 so a token cannot downgrade to "none".
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/util.h"
#include "run/jwt.h"

static unsigned char jwt_secret[32];
static size_t jwt_secret_len;
static int jwt_ready;

static int pc_jwt_load_secret(pc_app *app, pc_error_t *err)
{
    const char *envsec = getenv("PAPERCLIP_AGENT_JWT_SECRET");
    if (envsec && strlen(envsec) >= 16) {
        /* A configured secret of any length is hashed down to 32 bytes. */
        crypto_hash_sha256(jwt_secret, (const unsigned char *)envsec, strlen(envsec));
        jwt_secret_len = sizeof jwt_secret;
        return 0;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/agent-jwt-secret", app->cfg.data_dir);
    char *text = NULL;
    size_t len = 0;
    if (pc_read_file(path, 256, &text, &len) == 0) {
        text[strcspn(text, "\r\n")] = '\0';
        size_t bin_len = 0;
        int rc = sodium_hex2bin(jwt_secret, sizeof jwt_secret, text, strlen(text), NULL, &bin_len,
                                NULL);
        sodium_memzero(text, len);
        free(text);
        if (rc == 0 && bin_len == sizeof jwt_secret) {
            jwt_secret_len = bin_len;
            return 0;
        }
        return pc_error_set(err, 500, "invalid agent JWT secret in %s", path);
    }
    if (errno != ENOENT)
        return pc_error_errno(err, errno, "cannot read %s", path);
    randombytes_buf(jwt_secret, sizeof jwt_secret);
    char hex[sizeof jwt_secret * 2 + 2];
    sodium_bin2hex(hex, sizeof hex, jwt_secret, sizeof jwt_secret);
    size_t n = strlen(hex);
    hex[n++] = '\n';
    int rc = pc_write_file_atomic(path, hex, n, 0600);
    sodium_memzero(hex, sizeof hex);
    if (rc < 0)
        return pc_error_errno(err, errno, "cannot write %s", path);
    jwt_secret_len = sizeof jwt_secret;
    return 0;
}

static void b64url(const unsigned char *in, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int pc_jwt_mint(const char *agent_id, const char *company_id, const char *adapter_type,
                const char *run_id, const char *instance_id, char out[PC_JWT_MAX],
                pc_error_t *err)
{
    if (!jwt_ready)
        return pc_error_set(err, 500, "agent JWT secret not initialised");
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    int64_t now = pc_now_ms() / 1000;
    json_t *claims = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:s}", "sub", agent_id,
                               "company_id", company_id, "adapter_type",
                               adapter_type ? adapter_type : "process", "run_id", run_id, "iat",
                               (json_int_t)now, "exp", (json_int_t)(now + PC_JWT_TTL_SEC), "iss",
                               "paperclip", "aud", "paperclip-api", "instance_id",
                               instance_id ? instance_id : "");
    if (!claims)
        return pc_error_set(err, 500, "cannot build JWT claims");
    _cleanup_free_ char *payload = pc_json_dumps(claims);
    json_decref(claims);
    size_t plen = strlen(payload);
    char h64[128], p64[1400];
    if (sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_URLSAFE_NO_PADDING) > sizeof p64)
        return pc_error_set(err, 500, "JWT claims too long");
    b64url((const unsigned char *)header, strlen(header), h64, sizeof h64);
    b64url((const unsigned char *)payload, plen, p64, sizeof p64);
    char signing[1600];
    int n = snprintf(signing, sizeof signing, "%s.%s", h64, p64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, jwt_secret, jwt_secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)signing, (size_t)n);
    crypto_auth_hmacsha256_final(&st, mac);
    char s64[64];
    b64url(mac, sizeof mac, s64, sizeof s64);
    if ((size_t)snprintf(out, PC_JWT_MAX, "%s.%s", signing, s64) >= PC_JWT_MAX)
        return pc_error_set(err, 500, "JWT too long");
    return 0;
}

/* Decodes one base64url segment into a NUL-terminated buffer. */
static int b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    if (sodium_base642bin(out, cap - 1, in, n, NULL, outlen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    out[*outlen] = '\0';
    return 0;
}

json_t *pc_jwt_verify(const char *token, int64_t now_sec, pc_error_t *err)
{
    if (!jwt_ready) {
        pc_error_set(err, 401, "Invalid API key");
        return NULL;
    }
    size_t tlen = strlen(token);
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (tlen >= PC_JWT_MAX || !d1 || !d2 || strchr(d2 + 1, '.')) {
        pc_error_set(err, 401, "Invalid API key");
        return NULL;
    }
    unsigned char mac[crypto_auth_hmacsha256_BYTES], got[64];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, jwt_secret, jwt_secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)token, (size_t)(d2 - token));
    crypto_auth_hmacsha256_final(&st, mac);
    size_t glen = 0;
    if (b64url_decode(d2 + 1, strlen(d2 + 1), got, sizeof got, &glen) < 0 || glen != sizeof mac ||
        sodium_memcmp(mac, got, sizeof mac) != 0) {
        pc_error_set(err, 401, "Invalid API key");
        return NULL;
    }
    unsigned char hbuf[256], pbuf[PC_JWT_MAX];
    size_t hlen = 0, plen = 0;
    if (b64url_decode(token, (size_t)(d1 - token), hbuf, sizeof hbuf, &hlen) < 0 ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), pbuf, sizeof pbuf, &plen) < 0) {
        pc_error_set(err, 401, "Invalid API key");
        return NULL;
    }
    pc_error_t perr = PC_ERROR_INIT;
    _cleanup_json_ json_t *h = pc_json_parse((const char *)hbuf, hlen, &perr);
    json_t *claims = pc_json_parse((const char *)pbuf, plen, &perr);
    pc_error_clear(&perr);
    const char *alg = h ? pc_json_str(h, "alg") : NULL;
    if (!claims || !json_is_object(claims) || !alg || strcmp(alg, "HS256") != 0) {
        json_decref(claims);
        pc_error_set(err, 401, "Invalid API key");
        return NULL;
    }
    const char *iss = pc_json_str(claims, "iss"), *aud = pc_json_str(claims, "aud");
    int64_t exp = pc_json_int(claims, "exp", 0);
    if (!iss || strcmp(iss, "paperclip") || !aud || strcmp(aud, "paperclip-api") ||
        exp <= now_sec || !pc_json_str(claims, "sub") || !pc_json_str(claims, "company_id") ||
        !pc_json_str(claims, "run_id")) {
        json_decref(claims);
        pc_error_set(err, 401, exp && exp <= now_sec ? "Token expired" : "Invalid API key");
        return NULL;
    }
    return claims;
}

int pc_jwt_auth(pc_jwt_req *req, const char *token, pc_error_t *err)
{
    _cleanup_json_ json_t *claims = pc_jwt_verify(token, pc_now_ms() / 1000, err);
    if (!claims)
        return -1;
    const char *sub = pc_json_str(claims, "sub"), *cid = pc_json_str(claims, "company_id"),
               *run = pc_json_str(claims, "run_id");
    if (!pc_uuid_valid(sub) || !pc_uuid_valid(cid) || !pc_uuid_valid(run))
        return pc_error_set(err, 401, "Invalid API key");
    _cleanup_json_ json_t *row = pc_db_query_one_s(
        req->app->db, "SELECT company_id, status FROM agents WHERE id=?", json_pack("[s]", sub),
        err);
    if (!row)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 401, "Agent not found");
    const char *status = pc_json_str(row, "status");
    if (strcmp(pc_json_str(row, "company_id"), cid) != 0)
        return pc_error_set(err, 401, "Invalid API key");
    if (status && (!strcmp(status, "terminated") || !strcmp(status, "pending_approval")))
        return pc_error_set(err, 401, "Agent is not active");
    if (req->run_id_header && *req->run_id_header && strcmp(req->run_id_header, run) != 0)
        return pc_error_set(err, 422, "Run id header does not match the agent token");
    /* A run token is worth exactly as much as its run: once the run has
     * ended, whatever it left behind (a copied token in a file, a child that
     * outlived it) holds no credential, though the signature is good for
     * 48 hours. Checked on every request. */
    _cleanup_json_ json_t *run_row = pc_db_query_one_s(
        req->app->db, "SELECT agent_id, status FROM heartbeat_runs WHERE id=?",
        json_pack("[s]", run), err);
    if (!run_row)
        return pc_error_is_set(err) ? -1 : pc_error_set(err, 401, "Run token is no longer valid");
    const char *run_status = pc_json_str(run_row, "status");
    if (strcmp(pc_json_str(run_row, "agent_id"), sub) != 0 || !run_status ||
        (strcmp(run_status, "queued") != 0 && strcmp(run_status, "running") != 0))
        return pc_error_set(err, 401, "Run token is no longer valid");
    req->actor.type = PC_ACTOR_AGENT;
    snprintf(req->actor.source, sizeof req->actor.source, "agent_jwt");
    snprintf(req->actor.agent_id, sizeof req->actor.agent_id, "%s", sub);
    snprintf(req->actor.company_id, sizeof req->actor.company_id, "%s", cid);
    snprintf(req->actor.run_id, sizeof req->actor.run_id, "%s", run);
    return 0;
}

int pc_jwt_init(pc_app *app, pc_error_t *err)
{
    if (pc_jwt_load_secret(app, err) < 0)
        return -1;
    jwt_ready = 1;
    return 0;
}
