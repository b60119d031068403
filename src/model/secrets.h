/*
 * Company secrets at rest: values sealed with libsodium secretbox
 * (XSalsa20-Poly1305) under one instance master key.
 *
 * The master key lives in <data-dir>/secrets/master.key (32 random bytes,
 * mode 0600, directory 0700) and is created on the first start. Losing it
 * makes every stored secret unreadable; that is the point of keeping it out
 * of the database file.
 *
 * Plaintext values exist only in memory between pc_secret_resolve() and
 * pc_secret_free(), which wipes them. No function here logs a value.
 * Rows live in the company_secrets table; each value is sealed under a
 * per-row key derived from the master key, the secret id and the company id
 * (BLAKE2b), so a ciphertext copied onto another row does not open.
 */
#ifndef PC_MODEL_SECRETS_H
#define PC_MODEL_SECRETS_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/error.h"
#include "store/db.h"

#define PC_SECRET_ID_LEN 36

/* Loads (or creates) the master key under data_dir. Idempotent per process;
 * must run before any other call. */
int pc_secrets_init(const char *data_dir, pc_error_t *err);
bool pc_secrets_ready(void);

/* Stores value as a new secret of company_id; id_out receives its uuid.
 * environment_managed marks a secret an environment's config created from a
 * plaintext value: it goes when the environment drops it
 * (pc_secret_delete_managed). Secrets created through the API are not. A
 * name already used in the company fails with the store's UNIQUE error. */
int pc_secret_create(pc_db *db, const char *company_id, const char *name,
                     const char *description, const char *value, bool environment_managed,
                     char id_out[PC_SECRET_ID_LEN + 1], pc_error_t *err);
/* Metadata of one secret as the API shows it (never the value): NULL with
 * 404 "Secret not found". */
json_t *pc_secret_get(pc_db *db, const char *secret_id, pc_error_t *err);
/* Metadata of every secret of the company, newest first. */
json_t *pc_secret_list(pc_db *db, const char *company_id, pc_error_t *err);
/* Renames, redescribes and/or replaces the value (a new value seals under a
 * fresh nonce and bumps latestVersion). NULL name/value keep them. */
int pc_secret_update(pc_db *db, const char *company_id, const char *secret_id, const char *name,
                     bool set_description, const char *description, const char *value,
                     pc_error_t *err);
/* Returns the plaintext (malloc'd; release with pc_secret_free) of a secret
 * that belongs to company_id; NULL with 404 "Secret not found" otherwise, or
 * 500 when the value does not open under the master key. */
char *pc_secret_resolve(pc_db *db, const char *company_id, const char *secret_id,
                        pc_error_t *err);
/* Deletes a secret; a missing one is not an error. */
int pc_secret_delete(pc_db *db, const char *company_id, const char *secret_id, pc_error_t *err);
/* Deletes it only when an environment's config created it (see create). */
int pc_secret_delete_managed(pc_db *db, const char *company_id, const char *secret_id,
                             pc_error_t *err);
/* Wipes and frees a resolved value (NULL is fine). */
void pc_secret_free(char *value);

/*
 * Values sealed in place, for secrets that live inside another record (a
 * plugin's env and secret config fields) rather than in company_secrets.
 * The key is derived from the master key and `context`, a string naming
 * where the value belongs ("plugin:<id>:env:<NAME>"), so a sealed value
 * copied elsewhere does not open. The sealed form is one printable string,
 * "pcsealed:v1:<nonce>:<ciphertext>" (base64).
 */
#define PC_SEALED_PREFIX "pcsealed:v1:"
bool pc_secret_is_sealed(const char *s);
/* Returns the sealed form (malloc'd) or NULL with the error. */
char *pc_secret_seal(const char *context, const char *value, pc_error_t *err);
/* Returns the plaintext (release with pc_secret_free) or NULL: 500 when
 * the value is not sealed, corrupt, or sealed for another context/key. */
char *pc_secret_unseal(const char *context, const char *sealed, pc_error_t *err);

#endif
