/*
 * Workspace sync archives coming back from a target: the bytes are a tar
 * archive applied with pc_sync_apply() to a small workspace in a private
 * temporary directory. The workspace holds a file (sent, so in the
 * manifest) and a symlink to a sibling directory `outside`.
 *
 * Properties (src/env/sync.h): nothing is ever written outside the
 * workspace (`outside` stays empty and the parent holds only the two
 * directories); no temporary tree is left behind; a rejected archive leaves
 * the workspace exactly as it was; every symlink an accepted archive
 * created is relative.
 */
#include "fuzz_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "env/sync.h"
#include "lib/error.h"

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st, (void)type, (void)f;
    return remove(p);
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static char *ws_for_check;
static bool leftover_tmp, absolute_link;

static int check_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st, (void)type;
    const char *base = p + f->base;
    if (!strncmp(base, PC_SYNC_TMP_PREFIX, strlen(PC_SYNC_TMP_PREFIX)))
        leftover_tmp = true;
    if (type == FTW_SL && strcmp(base, "link") != 0) {
        char t[4096];
        ssize_t n = readlink(p, t, sizeof t - 1);
        if (n > 0 && t[0] == '/')
            absolute_link = true;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char root[] = "/tmp/fuzz-sync-XXXXXX";
    if (!mkdtemp(root))
        abort();
    char ws[256], out[256], p[300];
    snprintf(ws, sizeof ws, "%s/ws", root);
    snprintf(out, sizeof out, "%s/outside", root);
    mkdir(ws, 0700);
    mkdir(out, 0700);
    snprintf(p, sizeof p, "%s/file", ws);
    FILE *f = fopen(p, "w");
    if (!f)
        abort();
    fputs("seed", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/link", ws);
    if (symlink(out, p) < 0)
        abort();

    json_t *manifest = json_pack("{s:{s:s,s:i,s:i}}", "file", "t", "f", "s", 4, "m", 0);
    FILE *in = fmemopen((void *)data, size ? size : 1, "rb");
    if (!in)
        abort();
    if (!size)
        fseek(in, 1, SEEK_SET);
    pc_error_t err = PC_ERROR_INIT;
    pc_sync_stats st = {0};
    int rc = pc_sync_apply(ws, in, 1 << 20, manifest, 0, &st, &err);
    fclose(in);
    json_decref(manifest);

    FZ_CHECK(rc == 0 || rc == -1, "apply returned %d", rc);
    FZ_CHECK(entries(out) == 0, "something was written outside the workspace (%s)", err.msg);
    FZ_CHECK(entries(root) == 2, "something was written next to the workspace");
    ws_for_check = ws;
    leftover_tmp = absolute_link = false;
    nftw(ws, check_one, 16, FTW_PHYS);
    FZ_CHECK(!leftover_tmp, "a temporary tree was left behind");
    if (rc < 0) {
        FZ_CHECK(pc_error_is_set(&err), "rejected without an error");
        FZ_CHECK(entries(ws) == 2, "a rejected archive changed the workspace: %s", err.msg);
        char buf[16] = "";
        snprintf(p, sizeof p, "%s/file", ws);
        f = fopen(p, "r");
        FZ_CHECK(f != NULL, "a rejected archive removed the file");
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        FZ_CHECK(!strcmp(buf, "seed"), "a rejected archive changed the file");
    } else {
        FZ_CHECK(!absolute_link, "an accepted archive created an absolute symlink");
    }
    pc_error_clear(&err);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
