/* Unit tests for the in-place sealing of src/model/secrets.c: round trip,
 * binding to the context, tampering, and a value that only looks sealed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tap.h"
#include "model/secrets.h"

int main(void)
{
    char dir[] = "/tmp/pc-seal-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "temp dir");
        return tap_done();
    }
    pc_error_t err = PC_ERROR_INIT;
    ok(pc_secret_seal("plugin:x:env:A", "v", &err) == NULL && err.status == 500,
       "sealing before the master key is loaded fails");
    pc_error_clear(&err);
    ok(pc_secrets_init(dir, &err) == 0, "master key created");

    const char *canary = "sk-test-canary-4711";
    char *s = pc_secret_seal("plugin:p1:env:API_KEY", canary, &err);
    ok(s && pc_secret_is_sealed(s), "a sealed value carries the prefix");
    ok(s && !strstr(s, canary), "the sealed form does not contain the value");
    char *s2 = pc_secret_seal("plugin:p1:env:API_KEY", canary, &err);
    ok(s && s2 && strcmp(s, s2) != 0, "two seals of one value differ (fresh nonce)");
    char *p = s ? pc_secret_unseal("plugin:p1:env:API_KEY", s, &err) : NULL;
    is_str(p, canary, "unseal gives the value back");
    pc_secret_free(p);

    p = s ? pc_secret_unseal("plugin:p2:env:API_KEY", s, &err) : NULL;
    ok(p == NULL && err.status == 500, "another context does not open it");
    pc_error_clear(&err);
    if (s) {
        size_t n = strlen(s);
        s[n - 3] = s[n - 3] == 'A' ? 'B' : 'A';
        p = pc_secret_unseal("plugin:p1:env:API_KEY", s, &err);
        ok(p == NULL && err.status == 500, "a tampered ciphertext does not open");
        pc_error_clear(&err);
    }
    p = pc_secret_unseal("plugin:p1:env:API_KEY", "plain-value", &err);
    ok(p == NULL && strstr(err.msg, "not sealed"), "a plaintext value is not 'unsealed'");
    pc_error_clear(&err);
    p = pc_secret_unseal("c", PC_SEALED_PREFIX "!!!:???", &err);
    ok(p == NULL && strstr(err.msg, "corrupt"), "garbage after the prefix is corrupt");
    pc_error_clear(&err);
    char *e = pc_secret_seal("plugin:p1:env:E", "", &err);
    p = e ? pc_secret_unseal("plugin:p1:env:E", e, &err) : NULL;
    is_str(p, "", "an empty value round-trips");
    pc_secret_free(p);
    free(e);
    free(s);
    free(s2);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", dir);
    return tap_done();
}
