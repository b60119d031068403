#include "model/secrets.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/common.h"
#include "lib/json.h"
#include "lib/util.h"

static pthread_mutex_t secrets_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char master_key[crypto_secretbox_KEYBYTES];
static bool master_loaded;

bool pc_secrets_ready(void) { return master_loaded; }

int pc_secrets_init(const char *data_dir, pc_error_t *err)
{
    pthread_mutex_lock(&secrets_mu);
    if (master_loaded) {
        pthread_mutex_unlock(&secrets_mu);
        return 0;
    }
    if (sodium_init() < 0) {
        pthread_mutex_unlock(&secrets_mu);
        return pc_error_set(err, 500, "cannot initialise libsodium");
    }
    char dir[1200], path[1300];
    snprintf(dir, sizeof dir, "%s/secrets", data_dir);
    snprintf(path, sizeof path, "%s/master.key", dir);
    int rc = 0;
    if (pc_mkdir_p(dir, 0700) < 0) {
        rc = pc_error_errno(err, errno, "cannot create %s", dir);
        goto out;
    }
    char *data = NULL;
    size_t len = 0;
    if (pc_read_file(path, 64, &data, &len) == 0) {
        if (len != sizeof master_key) {
            sodium_memzero(data, len);
            free(data);
            rc = pc_error_set(err, 500, "master key %s has %zu bytes, expected %zu", path, len,
                              sizeof master_key);
            goto out;
        }
        memcpy(master_key, data, len);
        sodium_memzero(data, len);
        free(data);
        /* Tighten a key file someone loosened; secrets must not be readable
         * by other users of the machine. */
        chmod(path, 0600);
    } else if (errno == ENOENT) {
        randombytes_buf(master_key, sizeof master_key);
        if (pc_write_file_atomic(path, master_key, sizeof master_key, 0600) < 0) {
            rc = pc_error_errno(err, errno, "cannot write %s", path);
            sodium_memzero(master_key, sizeof master_key);
            goto out;
        }
    } else {
        rc = pc_error_errno(err, errno, "cannot read %s", path);
        goto out;
    }
    master_loaded = true;
out:
    pthread_mutex_unlock(&secrets_mu);
    return rc;
}

/* Per-row key: BLAKE2b(master; "paperclip-secret\0" id "\0" company). */
static void pc_secret_row_key(const char *id, const char *company_id,
                              unsigned char key[crypto_secretbox_KEYBYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, master_key, sizeof master_key, crypto_secretbox_KEYBYTES);
    crypto_generichash_update(&st, (const unsigned char *)"paperclip-secret", 17);
    crypto_generichash_update(&st, (const unsigned char *)id, strlen(id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)company_id, strlen(company_id));
    crypto_generichash_final(&st, key, crypto_secretbox_KEYBYTES);
}

static char *pc_b64(const unsigned char *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = pc_xmalloc(cap);
    sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* Encrypts vlen bytes of value under key with a fresh nonce; *n64 and *c64
 * get the nonce and the ciphertext in base64 (caller frees both). */
static void pc_box_seal(const unsigned char key[crypto_secretbox_KEYBYTES], const char *value,
                        size_t vlen, char **n64, char **c64)
{
    unsigned char nonce[crypto_secretbox_NONCEBYTES];
    randombytes_buf(nonce, sizeof nonce);
    size_t clen = vlen + crypto_secretbox_MACBYTES;
    unsigned char *cipher = pc_xmalloc(clen);
    crypto_secretbox_easy(cipher, (const unsigned char *)value, vlen, nonce, key);
    *n64 = pc_b64(nonce, sizeof nonce);
    *c64 = pc_b64(cipher, clen);
    free(cipher);
}

/* Opens what pc_box_seal() made: the base64 nonce is the first n64len chars
 * of n64. The plaintext (NUL-terminated, caller frees) or NULL, with
 * *corrupt telling a malformed box from one the key does not open. */
static char *pc_box_open(const unsigned char key[crypto_secretbox_KEYBYTES], const char *n64,
                         size_t n64len, const char *c64, bool *corrupt)
{
    unsigned char nonce[crypto_secretbox_NONCEBYTES];
    size_t nlen = 0, clen = 0, ccap = strlen(c64);
    unsigned char *cipher = pc_xmalloc(ccap + 1);
    char *plain = NULL;
    *corrupt = true;
    if (sodium_base642bin(nonce, sizeof nonce, n64, n64len, NULL, &nlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        nlen != sizeof nonce ||
        sodium_base642bin(cipher, ccap, c64, ccap, NULL, &clen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        clen < crypto_secretbox_MACBYTES)
        goto out;
    *corrupt = false;
    size_t plen = clen - crypto_secretbox_MACBYTES;
    plain = pc_xmalloc(plen + 1);
    if (crypto_secretbox_open_easy((unsigned char *)plain, cipher, clen, nonce, key) != 0) {
        free(plain);
        plain = NULL;
        goto out;
    }
    plain[plen] = '\0';
out:
    free(cipher);
    return plain;
}

int pc_secret_create(pc_db *db, const char *company_id, const char *name,
                     const char *description, const char *value, bool environment_managed,
                     char id_out[PC_SECRET_ID_LEN + 1], pc_error_t *err)
{
    if (!master_loaded)
        return pc_error_set(err, 500, "secrets are not initialised");
    size_t vlen = strlen(value);
    if (vlen > 1024 * 1024)
        return pc_error_set(err, 422, "Secret value is too large");
    char id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_uuid_v4(id);
    pc_iso_now(ts);
    unsigned char key[crypto_secretbox_KEYBYTES];
    pc_secret_row_key(id, company_id, key);
    char *nonce64, *cipher64;
    pc_box_seal(key, value, vlen, &nonce64, &cipher64);
    sodium_memzero(key, sizeof key);
    int rc = pc_db_exec_s(db,
                          "INSERT INTO company_secrets(id,company_id,name,provider,description,"
                          "latest_version,nonce,ciphertext,environment_managed,created_at,"
                          "updated_at) VALUES(?,?,?,'local_encrypted',?,1,?,?,?,?,?)",
                          json_pack("[s,s,s,s?,s,s,b,s,s]", id, company_id, name, description,
                                    nonce64, cipher64, environment_managed, ts, ts),
                          NULL, err);
    free(nonce64);
    free(cipher64);
    if (rc < 0)
        return -1;
    memcpy(id_out, id, PC_UUID_LEN + 1);
    return 0;
}

char *pc_secret_resolve(pc_db *db, const char *company_id, const char *secret_id,
                        pc_error_t *err)
{
    if (!master_loaded) {
        pc_error_set(err, 500, "secrets are not initialised");
        return NULL;
    }
    json_t *row = pc_db_query_one_s(
        db, "SELECT nonce, ciphertext FROM company_secrets WHERE id=? AND company_id=?",
        json_pack("[s,s]", secret_id, company_id), err);
    if (!row) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "Secret not found");
        return NULL;
    }
    const char *n64 = pc_json_str(row, "nonce"), *c64 = pc_json_str(row, "ciphertext");
    char *plain = NULL;
    bool corrupt = true;
    if (n64 && c64) {
        unsigned char key[crypto_secretbox_KEYBYTES];
        pc_secret_row_key(secret_id, company_id, key);
        plain = pc_box_open(key, n64, strlen(n64), c64, &corrupt);
        sodium_memzero(key, sizeof key);
    }
    if (!plain) {
        if (corrupt)
            pc_error_set(err, 500, "secret %s is corrupt", secret_id);
        else
            pc_error_set(err, 500, "cannot decrypt secret %s (wrong master key?)", secret_id);
    }
    json_decref(row);
    return plain;
}

int pc_secret_delete(pc_db *db, const char *company_id, const char *secret_id, pc_error_t *err)
{
    return pc_db_exec_s(db, "DELETE FROM company_secrets WHERE id=? AND company_id=?",
                        json_pack("[s,s]", secret_id, company_id), NULL, err);
}

int pc_secret_delete_managed(pc_db *db, const char *company_id, const char *secret_id,
                             pc_error_t *err)
{
    return pc_db_exec_s(db,
                        "DELETE FROM company_secrets WHERE id=? AND company_id=? AND "
                        "environment_managed<>0",
                        json_pack("[s,s]", secret_id, company_id), NULL, err);
}

/* The API object: upstream's secret shape without any value material. */
static json_t *pc_secret_from_row(json_t *r)
{
    json_t *o = json_pack("{s:O,s:O,s:O,s:O,s:n,s:O,s:O?,s:b,s:n,s:n,s:O,s:O}", "id",
                          json_object_get(r, "id"), "companyId", json_object_get(r, "company_id"),
                          "name", json_object_get(r, "name"), "provider",
                          json_object_get(r, "provider"), "externalRef", "latestVersion",
                          json_object_get(r, "latest_version"), "description",
                          json_object_get(r, "description"), "environmentManaged",
                          json_integer_value(json_object_get(r, "environment_managed")) != 0,
                          "createdByAgentId", "createdByUserId", "createdAt",
                          json_object_get(r, "created_at"), "updatedAt",
                          json_object_get(r, "updated_at"));
    return o;
}

#define PC_SECRET_COLS                                                                          \
    "id, company_id, name, provider, description, latest_version, environment_managed, "      \
    "created_at, updated_at"

json_t *pc_secret_get(pc_db *db, const char *secret_id, pc_error_t *err)
{
    json_t *row = pc_db_query_one_s(db, "SELECT " PC_SECRET_COLS " FROM company_secrets WHERE id=?",
                                    json_pack("[s]", secret_id), err);
    if (!row) {
        if (!pc_error_is_set(err))
            pc_error_set(err, 404, "Secret not found");
        return NULL;
    }
    json_t *o = pc_secret_from_row(row);
    json_decref(row);
    return o;
}

json_t *pc_secret_list(pc_db *db, const char *company_id, pc_error_t *err)
{
    json_t *rows = NULL;
    if (pc_db_query_s(db,
                      "SELECT " PC_SECRET_COLS " FROM company_secrets WHERE company_id=? "
                      "ORDER BY created_at DESC, id",
                      json_pack("[s]", company_id), &rows, err) < 0)
        return NULL;
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) json_array_append_new(out, pc_secret_from_row(r));
    json_decref(rows);
    return out;
}

int pc_secret_update(pc_db *db, const char *company_id, const char *secret_id, const char *name,
                     bool set_description, const char *description, const char *value,
                     pc_error_t *err)
{
    char ts[PC_ISO_LEN + 1];
    pc_iso_now(ts);
    char *n64 = NULL, *c64 = NULL;
    if (value) {
        if (!master_loaded)
            return pc_error_set(err, 500, "secrets are not initialised");
        size_t vlen = strlen(value);
        if (vlen > 1024 * 1024)
            return pc_error_set(err, 422, "Secret value is too large");
        unsigned char key[crypto_secretbox_KEYBYTES], nonce[crypto_secretbox_NONCEBYTES];
        pc_secret_row_key(secret_id, company_id, key);
        randombytes_buf(nonce, sizeof nonce);
        size_t clen = vlen + crypto_secretbox_MACBYTES;
        unsigned char *cipher = pc_xmalloc(clen);
        crypto_secretbox_easy(cipher, (const unsigned char *)value, vlen, nonce, key);
        sodium_memzero(key, sizeof key);
        n64 = pc_b64(nonce, sizeof nonce);
        c64 = pc_b64(cipher, clen);
        free(cipher);
    }
    int rc = pc_db_exec_s(db,
                          "UPDATE company_secrets SET name=COALESCE(?,name),"
                          "description=CASE WHEN ? THEN ? ELSE description END,"
                          "nonce=COALESCE(?,nonce), ciphertext=COALESCE(?,ciphertext),"
                          "latest_version=latest_version+?, updated_at=? "
                          "WHERE id=? AND company_id=?",
                          json_pack("[s?,b,s?,s?,s?,i,s,s,s]", name, set_description, description,
                                    n64, c64, value ? 1 : 0, ts, secret_id, company_id),
                          NULL, err);
    free(n64);
    free(c64);
    return rc;
}

void pc_secret_free(char *value)
{
    if (!value)
        return;
    sodium_memzero(value, strlen(value));
    free(value);
}

/* Key of an in-place sealed value: BLAKE2b(master; "paperclip-sealed\0" context). */
static void pc_sealed_key(const char *context, unsigned char key[crypto_secretbox_KEYBYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, master_key, sizeof master_key, crypto_secretbox_KEYBYTES);
    crypto_generichash_update(&st, (const unsigned char *)"paperclip-sealed", 17);
    crypto_generichash_update(&st, (const unsigned char *)context, strlen(context));
    crypto_generichash_final(&st, key, crypto_secretbox_KEYBYTES);
}

bool pc_secret_is_sealed(const char *s)
{
    return s && !strncmp(s, PC_SEALED_PREFIX, strlen(PC_SEALED_PREFIX));
}

char *pc_secret_seal(const char *context, const char *value, pc_error_t *err)
{
    if (!master_loaded) {
        pc_error_set(err, 500, "secrets are not initialised");
        return NULL;
    }
    size_t vlen = strlen(value);
    if (vlen > 1024 * 1024) {
        pc_error_set(err, 422, "Secret value is too large");
        return NULL;
    }
    unsigned char key[crypto_secretbox_KEYBYTES];
    pc_sealed_key(context, key);
    char *n64, *c64;
    pc_box_seal(key, value, vlen, &n64, &c64);
    sodium_memzero(key, sizeof key);
    char *out = pc_xasprintf(PC_SEALED_PREFIX "%s:%s", n64, c64);
    free(n64);
    free(c64);
    return out;
}

char *pc_secret_unseal(const char *context, const char *sealed, pc_error_t *err)
{
    if (!master_loaded) {
        pc_error_set(err, 500, "secrets are not initialised");
        return NULL;
    }
    if (!pc_secret_is_sealed(sealed)) {
        pc_error_set(err, 500, "value for %s is not sealed", context);
        return NULL;
    }
    const char *n64 = sealed + strlen(PC_SEALED_PREFIX);
    const char *colon = strchr(n64, ':');
    char *plain = NULL;
    bool corrupt = true;
    if (colon) {
        unsigned char key[crypto_secretbox_KEYBYTES];
        pc_sealed_key(context, key);
        plain = pc_box_open(key, n64, (size_t)(colon - n64), colon + 1, &corrupt);
        sodium_memzero(key, sizeof key);
    }
    if (!plain) {
        if (corrupt)
            pc_error_set(err, 500, "sealed value for %s is corrupt", context);
        else
            pc_error_set(err, 500, "cannot decrypt the sealed value for %s (wrong master key?)",
                         context);
    }
    return plain;
}
