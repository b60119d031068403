/*
 * Plugin manifests: the bytes of a manifest.json go through the same steps
 * pc_plugin_package_load() applies to a native plugin's manifest (parse,
 * then pc_plugin_manifest_validate()), without touching the file system or
 * spawning node. The key and semver predicates also get the raw bytes.
 *
 * Properties (src/plugin/manifest.h): a rejected manifest is a 422 whose
 * message starts with "Invalid plugin manifest: " and which carries details;
 * an accepted one has a valid id and a semantic version.
 */
#include "fuzz_common.h"

#include <jansson.h>

#include "lib/error.h"
#include "lib/json.h"
#include "plugin/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstr(data, size);
    bool key_ok = pc_plugin_key_valid(s);
    if (key_ok)
        FZ_CHECK(s[0] && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789._-") == strlen(s) &&
                     strchr("._-", s[0]) == NULL,
                 "pc_plugin_key_valid accepted \"%s\"", s);
    (void)pc_plugin_semver_valid(s);
    free(s);

    pc_error_t err = PC_ERROR_INIT;
    json_t *m = pc_json_parse((const char *)data, size, &err);
    pc_error_clear(&err);
    if (!m)
        return 0;
    int rc = pc_plugin_manifest_validate(m, &err);
    FZ_CHECK(rc == 0 || rc == -1, "validate returned %d", rc);
    if (rc < 0) {
        FZ_CHECK(err.status == 422, "rejection with status %d", err.status);
        FZ_CHECK(strncmp(err.msg, "Invalid plugin manifest: ", 25) == 0, "message: %s", err.msg);
        FZ_CHECK(err.details != NULL, "rejection without details: %s", err.msg);
    } else {
        FZ_CHECK(err.status == 0, "accepted with an error set");
        FZ_CHECK(pc_plugin_key_valid(json_string_value(json_object_get(m, "id"))), "bad id");
        FZ_CHECK(pc_plugin_semver_valid(json_string_value(json_object_get(m, "version"))),
                 "bad version");
    }
    pc_error_clear(&err);
    json_decref(m);
    return 0;
}
