/*
 * Test plugin: on initialize, writes {"config": <instance config>, "env":
 * {"ECHO_SECRET": ...}} to the file named by $PAPERCLIP_ECHO_FILE, so a
 * black-box test can see what the host handed to the worker after the
 * values were sealed at rest and opened again.
 */
#include <paperclip/plugin.h>

#include <stdio.h>
#include <stdlib.h>

static int echo_setup(pc_plugin_ctx *ctx, pc_plugin_error *err)
{
    const char *path = getenv("PAPERCLIP_ECHO_FILE");
    if (!path || !*path)
        return 0;
    const char *secret = getenv("ECHO_SECRET");
    json_t *o = json_pack("{s:O, s:{s:s?}}", "config", pc_plugin_ctx_config(ctx), "env",
                          "ECHO_SECRET", secret);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%.4000s.tmp", path);
    int rc = o ? json_dump_file(o, tmp, 0) : -1;
    json_decref(o);
    if (rc != 0 || rename(tmp, path) != 0)
        return pc_plugin_error_set(err, 0, "cannot write %s", path);
    return 0;
}

static const pc_plugin_hooks hooks = {
    .setup = echo_setup,
};

int main(void)
{
    return pc_plugin_run(&hooks, NULL);
}
