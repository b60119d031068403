/*
 * Unit tests of the authorization module's pure parts: which stored
 * permissions objects grant what, and the redaction of agent configs shown
 * to agent callers.
 */
#include <string.h>

#include "../lib/tap.h"
#include "api/authz.h"
#include "lib/json.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (!j)
        tap_diag("bad fixture: %s", e.text);
    return j;
}

static void test_grants(void)
{
    const struct {
        const char *perms, *perm;
        bool want;
    } cases[] = {
        {"{}", PC_PERM_AGENTS_CREATE, false},
        {"{\"canCreateAgents\":true}", PC_PERM_AGENTS_CREATE, true},
        {"{\"canCreateAgents\":true}", PC_PERM_ENVIRONMENTS_MANAGE, true},
        {"{\"canCreateAgents\":true}", PC_PERM_TASKS_ASSIGN, true},
        {"{\"canCreateAgents\":false}", PC_PERM_AGENTS_CREATE, false},
        {"{\"canCreateAgents\":\"yes\"}", PC_PERM_AGENTS_CREATE, false},
        {"{\"canAssignTasks\":true}", PC_PERM_TASKS_ASSIGN, true},
        {"{\"canAssignTasks\":true}", PC_PERM_AGENTS_CREATE, false},
        {"{\"canAssignTasks\":true}", PC_PERM_ENVIRONMENTS_MANAGE, false},
        {"{\"environments:manage\":true}", PC_PERM_ENVIRONMENTS_MANAGE, true},
        {"{\"environments:manage\":true}", PC_PERM_TASKS_ASSIGN, false},
        {"{\"grants\":[\"tasks:assign\"]}", PC_PERM_TASKS_ASSIGN, true},
        {"{\"grants\":[{\"permissionKey\":\"agents:create\"}]}", PC_PERM_AGENTS_CREATE, true},
        {"{\"grants\":[\"tasks:assign\"]}", PC_PERM_AGENTS_CREATE, false},
        {"{\"grants\":\"agents:create\"}", PC_PERM_AGENTS_CREATE, false},
        {"[\"agents:create\"]", PC_PERM_AGENTS_CREATE, false},
        {"null", PC_PERM_AGENTS_CREATE, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *p = parse(cases[i].perms);
        ok(pc_perms_grant(p, cases[i].perm) == cases[i].want, "%s grants %s: %s", cases[i].perms,
           cases[i].perm, cases[i].want ? "yes" : "no");
        json_decref(p);
    }
    ok(!pc_perms_grant(NULL, PC_PERM_AGENTS_CREATE), "no permissions object grants nothing");
}

static void test_redact(void)
{
    json_t *c = parse("{\"command\":\"sh\",\"args\":[\"-c\",\"x\"],\"env\":{\"PLAIN\":\"p\","
                      "\"MARKED\":{\"type\":\"plain\",\"value\":\"v\"},"
                      "\"REF\":{\"type\":\"secret_ref\",\"secretId\":\"abc\"}},"
                      "\"headers\":{\"Authorization\":\"Bearer t0k\",\"Accept\":\"json\"},"
                      "\"apiKey\":\"k3y\",\"timeoutSec\":30,"
                      "\"nested\":{\"password\":\"pw\",\"list\":[{\"token\":\"t\"}]}}");
    pc_redact_config(c);
    json_t *env = json_object_get(c, "env");
    is_str(json_string_value(json_object_get(c, "command")), "sh", "command kept");
    is_str(json_string_value(json_object_get(env, "PLAIN")), "***REDACTED***",
           "every env value redacted");
    is_str(json_string_value(json_object_get(json_object_get(env, "MARKED"), "value")),
           "***REDACTED***", "env object value redacted");
    is_str(json_string_value(json_object_get(json_object_get(env, "REF"), "secretId")), "abc",
           "a sealed reference is kept");
    json_t *h = json_object_get(c, "headers");
    is_str(json_string_value(json_object_get(h, "Authorization")), "***REDACTED***",
           "Authorization header redacted");
    is_str(json_string_value(json_object_get(h, "Accept")), "json", "other headers kept");
    is_str(json_string_value(json_object_get(c, "apiKey")), "***REDACTED***", "apiKey redacted");
    is_int(json_integer_value(json_object_get(c, "timeoutSec")), 30, "settings kept");
    json_t *n = json_object_get(c, "nested");
    is_str(json_string_value(json_object_get(n, "password")), "***REDACTED***",
           "nested password redacted");
    is_str(
        json_string_value(json_object_get(json_array_get(json_object_get(n, "list"), 0), "token")),
        "***REDACTED***", "tokens inside arrays redacted");
    char *dump = json_dumps(c, 0);
    ok(dump && !strstr(dump, "t0k") && !strstr(dump, "k3y") && !strstr(dump, "\"pw\""),
       "no secret value survives");
    free(dump);
    json_decref(c);
}

int main(void)
{
    test_grants();
    test_redact();
    return tap_done();
}
