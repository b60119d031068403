/*
 * The plugin SDK's request loop: pc_plugin_serve() reads the input as the
 * worker's stdin (newline-delimited JSON-RPC, as the host writes it) and
 * answers through hooks that return fixed results, errors, echoes and log
 * lines. Both descriptors are memfds, so a serve never blocks on a pipe;
 * it returns at end of input or on "shutdown", after joining its threads.
 *
 * Properties (include/paperclip/plugin.h): the serve returns 0; every line
 * it writes is a JSON-RPC 2.0 object, either a "log" notification or a
 * response with an id (possibly null) and exactly one of result and error,
 * whose error has an integer code and a string message; no more responses
 * than input lines (plus one per over-long line) are written.
 */
#include "fuzz_common.h"

#include <jansson.h>
#include <paperclip/plugin.h>
#include <sys/mman.h>
#include <unistd.h>

static int in_fd = -1, out_fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    in_fd = memfd_create("fuzz-sdk-in", MFD_CLOEXEC);
    out_fd = memfd_create("fuzz-sdk-out", MFD_CLOEXEC);
    if (in_fd < 0 || out_fd < 0) {
        perror("memfd_create");
        abort();
    }
    return 0;
}

static int setup(pc_plugin_ctx *ctx, pc_plugin_error *err)
{
    /* A manifest may ask setup to fail, to reach the "not initialized" paths. */
    if (json_is_true(json_object_get(pc_plugin_ctx_manifest(ctx), "failSetup")))
        return pc_plugin_error_set(err, 0, "setup refused");
    return 0;
}

static void shutdown_hook(pc_plugin_ctx *ctx) { (void)ctx; }

static int health(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)params, (void)err;
    *result = json_pack("{s:s,s:s}", "status", "ok", "message", "fuzz");
    return 0;
}

/* Fails with the params' "message" verbatim (truncated to the SDK's 1 KiB,
 * which may cut a UTF-8 sequence) and a data object. */
static int fail_with_data(pc_plugin_ctx *ctx, json_t *params, json_t **result,
                          pc_plugin_error *err)
{
    (void)ctx;
    *result = json_string("dropped on failure");
    const char *m = json_string_value(json_object_get(params, "message"));
    pc_plugin_error_set(err, (int)json_integer_value(json_object_get(params, "code")), "%s",
                        m ? m : "");
    err->data = json_pack("{s:O}", "params", params);
    return -1;
}

/* Returns an odd value: the SDK must treat anything but 0 as failure. */
static int fail_bare(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)ctx, (void)params, (void)result, (void)err;
    return 7;
}

static int echo(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)err;
    *result = json_pack("{s:O,s:O,s:O,s:s}", "params", params, "manifest",
                        pc_plugin_ctx_manifest(ctx), "config", pc_plugin_ctx_config(ctx),
                        "method", pc_plugin_ctx_method(ctx));
    return 0;
}

static int log_and_lossy(pc_plugin_ctx *ctx, json_t *params, json_t **result, pc_plugin_error *err)
{
    (void)err;
    const char *t = json_string_value(json_object_get(params, "text"));
    size_t n = json_string_length(json_object_get(params, "text"));
    pc_plugin_log(ctx, PC_PLUGIN_LOG_INFO, "probe %s", t ? t : "-");
    pc_plugin_log_meta(NULL, PC_PLUGIN_LOG_WARN, params, "from no context");
    /* Cut the text mid-sequence on purpose: the lossy conversion must cope. */
    *result = pc_plugin_json_string_lossy(t ? t : "", n > 1 ? n - 1 : n);
    return 0;
}

static const pc_plugin_hooks hooks = {
    .setup = setup,
    .shutdown = shutdown_hook,
    .health = health,
    .validate_config = fail_with_data,
    .config_changed = NULL,
    .environment_validate_config = echo,
    .environment_probe = log_and_lossy,
    .environment_acquire_lease = fail_bare,
    .environment_execute = fail_with_data,
    .environment_realize_workspace = echo,
};

static void check_output(size_t input_lines)
{
    off_t end = lseek(out_fd, 0, SEEK_CUR);
    FZ_CHECK(end >= 0, "lseek");
    char *buf = malloc((size_t)end + 1);
    FZ_CHECK(buf != NULL, "malloc");
    FZ_CHECK(pread(out_fd, buf, (size_t)end, 0) == end, "pread");
    size_t responses = 0;
    for (char *line = buf, *nl; line < buf + end; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(buf + end - line));
        FZ_CHECK(nl != NULL, "unterminated output line");
        json_error_t jerr;
        json_t *m = json_loadb(line, (size_t)(nl - line), 0, &jerr);
        FZ_CHECK(m != NULL, "output line is not JSON (%s): %.*s", jerr.text, (int)(nl - line),
                 line);
        const char *ver = json_string_value(json_object_get(m, "jsonrpc"));
        FZ_CHECK(ver && !strcmp(ver, "2.0"), "output without jsonrpc 2.0");
        json_t *method = json_object_get(m, "method");
        if (method) {
            FZ_CHECK(json_is_string(method) && !strcmp(json_string_value(method), "log"),
                     "worker sent a request other than log");
        } else {
            responses++;
            json_t *id = json_object_get(m, "id");
            json_t *res = json_object_get(m, "result"), *e = json_object_get(m, "error");
            FZ_CHECK(id && (json_is_null(id) || json_is_string(id) || json_is_number(id)),
                     "response without a valid id");
            FZ_CHECK(!res != !e, "response needs exactly one of result and error");
            if (e)
                FZ_CHECK(json_is_integer(json_object_get(e, "code")) &&
                             json_is_string(json_object_get(e, "message")),
                         "error without code or message");
        }
        json_decref(m);
    }
    FZ_CHECK(responses <= input_lines, "%zu responses to %zu lines", responses, input_lines);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FZ_CHECK(ftruncate(in_fd, 0) == 0 && ftruncate(out_fd, 0) == 0, "ftruncate");
    FZ_CHECK(pwrite(in_fd, data, size, 0) == (ssize_t)size, "pwrite");
    FZ_CHECK(lseek(in_fd, 0, SEEK_SET) == 0 && lseek(out_fd, 0, SEEK_SET) == 0, "lseek");
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    int rc = pc_plugin_serve(&hooks, NULL, in_fd, out_fd);
    FZ_CHECK(rc == 0, "pc_plugin_serve returned %d", rc);
    check_output(lines);
    return 0;
}
