/*
 * Workspace sync for remote runs. An agent whose host workspace (its
 * absolute adapterConfig.cwd) holds a few files runs in a bwrap sandbox and
 * over SSH (a real sshd on loopback): it checks the files arrived, edits
 * one, creates some, deletes one; after the run the host workspace has
 * exactly those changes.
 *
 * The same with the fake sandbox provider, which serves
 * environmentSyncIn/Out, so the archive moves through those instead.
 *
 * A host workspace over workspaceSyncMaxBytes fails the run at sync-in,
 * before the command runs.
 *
 * Then hostile targets over SSH: the run's PATH puts a fake `tar` first,
 * which answers the sync's archive request with a crafted archive (a
 * symlink to /etc/passwd, a `../escape` entry, a file over
 * workspaceSyncMaxBytes, a file below a symlink the host workspace has).
 * Each run fails with workspace_sync_failed naming the sync step, and
 * nothing is written inside or outside the workspace.
 *
 * The sandbox part skips without bwrap, the SSH parts without sshd.
 */
#include <sys/stat.h>

#include "../lib/sshd.h"
#include "heartbeat_common.h"

#define SYNC_MAX "2097152"

static char *cid, *tmp;
static pc_test_sshd sshd;

static bool bwrap_usable(void)
{
    return pc_test_sh("command -v bwrap >/dev/null 2>&1 && "
                      "bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr "
                      "--symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
                      "--proc /proc --dev /dev -- /usr/bin/true >/dev/null 2>&1") == 0;
}

static char *create_env(const char *name, const char *driver, const char *cfg)
{
    char *body = NULL;
    if (asprintf(&body, "{\"name\":\"%s\",\"driver\":\"%s\",\"config\":%s}", name, driver, cfg) <
        0)
        return strdup("");
    pc_http_res r = req("POST", body, "/api/companies/%s/environments", cid);
    if (r.status != 201)
        tap_diag("create %s: %ld %s", name, r.status, r.body);
    char *id = strdup(pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    free(body);
    return id;
}

/* An ssh environment whose remote workspace is <tmp>/remote-<tag>/ws. */
static char *ssh_env(const char *tag)
{
    char *key = pc_test_sshd_file_json(&sshd, "user_key");
    char *cfg = NULL, name[64];
    snprintf(name, sizeof name, "ssh %s", tag);
    if (asprintf(&cfg,
                 "{\"host\":\"127.0.0.1\",\"port\":%d,\"username\":\"root\","
                 "\"remoteWorkspacePath\":\"%s/remote-%s/ws\",\"privateKey\":%s,"
                 "\"strictHostKeyChecking\":false}",
                 sshd.port, tmp, tag, key) < 0)
        cfg = NULL;
    char *id = create_env(name, "ssh", cfg ? cfg : "{}");
    free(cfg), free(key);
    return id;
}

/* A host workspace with known content: <tmp>/host-<tag>. */
static void seed(const char *hws)
{
    char cmd[2400];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s/sub' && cd '%s' && printf old > edit.txt && "
             "echo keep > keep.txt && echo bye > gone.txt && echo deep > sub/deep.txt && "
             "printf aaaa > same.txt && "
             "touch -d '2020-01-01 00:00:00' edit.txt keep.txt gone.txt sub/deep.txt same.txt",
             hws, hws, hws);
    if (pc_test_sh(cmd) != 0)
        tap_diag("cannot seed %s", hws);
}

static char *file(const char *hws, const char *name)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", hws, name);
    return pc_test_read_file(p, 1 << 20);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Runs `sh -c script` as a new agent in env_id with host workspace hws and
 * extra adapterConfig.env entries; returns the finished run (new ref). */
static json_t *run_agent(const char *label, const char *env_id, const char *hws,
                         const char *script, const char *env_json, char *run_out, size_t cap)
{
    char *enc = pc_test_json_quote(script);
    char *hq = pc_test_json_quote(hws);
    char *body = NULL;
    if (asprintf(&body,
                 "{\"name\":\"%s\",\"adapterType\":\"process\","
                 "\"adapterConfig\":{\"command\":\"sh\",\"args\":[\"-c\",%s],\"cwd\":%s,"
                 "\"timeoutSec\":120,\"env\":%s},\"defaultEnvironmentId\":\"%s\"}",
                 label, enc, hq, env_json ? env_json : "{}", env_id) < 0)
        body = NULL;
    pc_http_res r = req("POST", body ? body : "{}", "/api/companies/%s/agents", cid);
    if (r.status != 201)
        tap_diag("agent %s: %ld %s", label, r.status, r.body);
    char agent[64];
    snprintf(agent, sizeof agent, "%s", pc_res_str(&r, "id"));
    pc_http_res_free(&r);
    free(body), free(enc), free(hq);
    char *run = hb_wake(agent, NULL);
    snprintf(run_out, cap, "%s", run);
    json_t *j = hb_wait_run(run, NULL, 180000);
    free(run);
    return j ? j : json_object();
}

#define AGENT_EDITS                                                                           \
    "test \"$(cat edit.txt)\" = old || { echo \"edit.txt did not arrive in $(pwd)\"; exit 3; }; " \
    "test \"$(cat sub/deep.txt)\" = deep || exit 4; "                                         \
    "test \"$(wc -c < blob.bin)\" -eq 1500000 || exit 5; "                                     \
    "echo new > edit.txt && echo created > new.txt && rm gone.txt && mkdir -p made/dir && "   \
    "echo x > made/dir/f && "                                                                 \
    "printf bbbb > same.txt && touch -d '2020-01-01 00:00:00' same.txt && echo edits done"

static void good_run(const char *label, const char *env_id, bool provider_sync)
{
    char hws[1024], run[64], cmd[5000];
    snprintf(hws, sizeof hws, "%s/host-%s", tmp, label);
    seed(hws);
    /* Larger than one transfer chunk, so both directions take several. */
    snprintf(cmd, sizeof cmd,
             "head -c 1500000 /dev/urandom > '%s/blob.bin' && touch -d '2020-01-01' "
             "'%s/blob.bin' && sha256sum < '%s/blob.bin' > '%s.sum'",
             hws, hws, hws, hws);
    pc_test_sh(cmd);
    json_t *j = run_agent(label, env_id, hws, AGENT_EDITS, NULL, run, sizeof run);
    is_str(js(j, "status"), "succeeded", "%s: run succeeded", label);
    if (strcmp(js(j, "status"), "succeeded") != 0) {
        tap_diag("%s: error %s (%s)", label, js(j, "error"), js(j, "errorCode"));
        char *log = hb_log(run);
        tap_diag("%s: log %s", label, log);
        free(log);
    }
    char *s = file(hws, "edit.txt");
    is_str(s ? s : "(missing)", "new\n", "%s: the edited file came back", label);
    free(s);
    s = file(hws, "new.txt");
    is_str(s ? s : "(missing)", "created\n", "%s: the new file came back", label);
    free(s);
    s = file(hws, "made/dir/f");
    is_str(s ? s : "(missing)", "x\n", "%s: a file in new directories came back", label);
    free(s);
    s = file(hws, "keep.txt");
    is_str(s ? s : "(missing)", "keep\n", "%s: an untouched file is unchanged", label);
    free(s);
    s = file(hws, "same.txt");
    is_str(s ? s : "(missing)", "bbbb",
           "%s: a rewrite with the same size and mtime second came back", label);
    free(s);
    char p[1200];
    snprintf(p, sizeof p, "%s/gone.txt", hws);
    ok(!exists(p), "%s: the deleted file is gone from the host", label);
    snprintf(cmd, sizeof cmd, "sha256sum < '%s/blob.bin' | cmp -s - '%s.sum'", hws, hws);
    is_int(pc_test_sh(cmd), 0, "%s: the large file is intact on the host", label);
    char *log = hb_log(run);
    ok(strstr(log, "workspace synced in") && strstr(log, "workspace synced out"),
       "%s: the log records both sync steps", label);
    ok((strstr(log, "(provider sync)") != NULL) == provider_sync,
       "%s: moved by %s", label,
       provider_sync ? "the provider's environmentSyncIn/Out" : "chunks through execute");
    ok(strstr(log, "6 written, 1 deleted") != NULL,
       "%s: only the changed entries were written (6) and one deleted", label);
    free(log);
    json_decref(j);
}

/* A tar that answers the sync's archive request (`tar -C DIR -cf OUT .`)
 * with a crafted archive chosen by $HOSTILE; any other call is the real
 * tar. */
static const char *FAKE_TAR =
    "#!/bin/sh\n"
    "if [ \"$3\" != \"-cf\" ]; then exec /usr/bin/tar \"$@\"; fi\n"
    "out=\"$4\"; st=\"$(dirname \"$2\")/stage\"; rm -rf \"$st\"; mkdir -p \"$st/in\"\n"
    "cd \"$st/in\" || exit 1\n"
    "echo changed > edit.txt\n"
    "case \"$HOSTILE\" in\n"
    "symlink) ln -s /etc/passwd passwd-link; exec /usr/bin/tar -cf \"$out\" edit.txt passwd-link;;\n"
    "escape) echo pwned > ../escape; exec /usr/bin/tar -P -cf \"$out\" edit.txt ../escape;;\n"
    "huge) head -c 4000000 /dev/zero > big; exec /usr/bin/tar -cf \"$out\" edit.txt big;;\n"
    "bigcontent) head -c 2500000 /dev/zero > big; exec /usr/bin/tar -cf \"$out\" edit.txt big;;\n"
    "through) mkdir link; echo pwned > link/owned; exec /usr/bin/tar -cf \"$out\" edit.txt "
    "link/owned;;\n"
    "hardlink) ln edit.txt hl; exec /usr/bin/tar -cf \"$out\" edit.txt hl;;\n"
    "esac\n"
    "exit 1\n";

static void hostile_run(const char *mode, const char *want)
{
    char label[64], hws[1024], run[64], envj[1400];
    snprintf(label, sizeof label, "hostile-%s", mode);
    snprintf(hws, sizeof hws, "%s/host-%s", tmp, label);
    seed(hws);
    /* A symlink the user keeps in the workspace, pointing outside it. */
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/outside' && ln -s '%s/outside' '%s/link'", tmp, tmp,
             hws);
    pc_test_sh(cmd);
    char *env_id = ssh_env(label);
    snprintf(envj, sizeof envj, "{\"PATH\":\"%s/faketar:/usr/bin:/bin\",\"HOSTILE\":\"%s\"}", tmp,
             mode);
    json_t *j = run_agent(label, env_id, hws, "echo agent ran", envj, run, sizeof run);
    is_str(js(j, "status"), "failed", "%s: the run failed", label);
    is_str(js(j, "errorCode"), "workspace_sync_failed", "%s: error code names the sync", label);
    ok(strstr(js(j, "error"), "workspace sync out") != NULL, "%s: error names the step: %s",
       label, js(j, "error"));
    ok(strstr(js(j, "error"), want) != NULL, "%s: error says why (%s)", label, want);
    char *s = file(hws, "edit.txt");
    is_str(s ? s : "(missing)", "old", "%s: nothing in the workspace changed", label);
    free(s);
    char p[1400];
    snprintf(p, sizeof p, "%s/escape", tmp);
    ok(!exists(p), "%s: nothing written next to the workspace", label);
    snprintf(p, sizeof p, "%s/outside/owned", tmp);
    ok(!exists(p), "%s: nothing written through the workspace's symlink", label);
    snprintf(p, sizeof p, "%s/passwd-link", hws);
    ok(!exists(p), "%s: no symlink to /etc/passwd in the workspace", label);
    snprintf(p, sizeof p, "%s/big", hws);
    ok(!exists(p), "%s: no oversized file in the workspace", label);
    snprintf(p, sizeof p, "%s/hl", hws);
    ok(!exists(p), "%s: no hard link in the workspace", label);
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q '^\\.paperclip-sync-'", hws);
    ok(pc_test_sh(cmd) != 0, "%s: no temporary tree left behind", label);
    json_decref(j);
    free(env_id);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *env[] = {"PAPERCLIP_WORKSPACE_SYNC_MAX_BYTES=" SYNC_MAX, NULL};
    pc_daemon_opts o = {.env = env};
    if (pc_daemon_start(&d, &o) < 0) {
        ok(0, "daemon starts");
        return tap_done();
    }
    tmp = pc_test_tmpdir("envsync");
    cid = hb_company("Sync Co");

    /* The fake provider serves environmentSyncIn/Out, so the archive moves
     * as a file mapping instead of through execute. */
    char fbody[1200];
    snprintf(fbody, sizeof fbody,
             "{\"packageName\":\"%s/plugins/fake-sandbox\",\"isLocalPath\":true}",
             pc_test_root());
    pc_http_res fr = req("POST", fbody, "/api/plugins/install");
    ok(fr.status == 200 || fr.status == 201, "fake sandbox plugin installed (%ld)", fr.status);
    pc_http_res_free(&fr);
    char *fake = create_env("Fake box", "sandbox",
                            "{\"provider\":\"fake-plugin\",\"image\":\"fake:test\"}");
    good_run("fake", fake, true);
    free(fake);

    if (!bwrap_usable()) {
        tap_skip("bwrap is missing or the kernel refuses user namespaces", "sync with bwrap");
    } else {
        char body[2000];
        snprintf(body, sizeof body,
                 "{\"packageName\":\"%s/plugins/bwrap-sandbox\",\"isLocalPath\":true,"
                 "\"env\":{\"PAPERCLIP_PLUGIN_DATA_DIR\":\"%s/plugin-data\"}}",
                 pc_test_root(), tmp);
        pc_http_res r = req("POST", body, "/api/plugins/install");
        ok(r.status == 200 || r.status == 201, "bwrap plugin installed (%ld)", r.status);
        pc_http_res_free(&r);
        char *sbx = create_env("Bwrap box", "sandbox",
                               "{\"provider\":\"bwrap\",\"network\":\"none\"}");
        good_run("bwrap", sbx, false);
        free(sbx);
    }

    if (!pc_test_sshd_available()) {
        tap_skip("sshd/ssh/ssh-keygen not installed", "sync over ssh");
    } else {
        char sdir[1100];
        snprintf(sdir, sizeof sdir, "%s/sshd", tmp);
        mkdir(sdir, 0700);
        if (pc_test_sshd_start(&sshd, sdir) < 0) {
            ok(0, "sshd starts");
            pc_test_sshd_dump_log(&sshd);
        } else {
            char *ssh = ssh_env("good");
            good_run("ssh", ssh, false);

            /* The remote workspace outlives the run: what another run left
             * there (older than this run) does not come back to this one. */
            char hws[1024], cmd[3000], run[64];
            snprintf(hws, sizeof hws, "%s/host-second", tmp);
            seed(hws);
            snprintf(cmd, sizeof cmd,
                     "echo old > '%s/remote-good/ws/stale.txt' && "
                     "touch -d '2021-01-01' '%s/remote-good/ws/stale.txt'",
                     tmp, tmp);
            pc_test_sh(cmd);
            json_t *j = run_agent("second", ssh, hws, "echo fresh > fresh.txt", NULL, run,
                                  sizeof run);
            is_str(js(j, "status"), "succeeded", "second run on the kept ssh workspace succeeded");
            char *s = file(hws, "fresh.txt");
            is_str(s ? s : "(missing)", "fresh\n", "second: its new file came back");
            free(s);
            snprintf(cmd, sizeof cmd, "%s/stale.txt", hws);
            ok(!exists(cmd), "second: an older file it did not make stays on the target");
            json_decref(j);
            free(ssh);

            /* A host workspace over the limit never leaves the host, and
             * the command does not run. */
            snprintf(hws, sizeof hws, "%s/host-toolarge", tmp);
            seed(hws);
            snprintf(cmd, sizeof cmd, "head -c 2500000 /dev/zero > '%s/big'", hws);
            pc_test_sh(cmd);
            char *ssh2 = ssh_env("toolarge");
            j = run_agent("toolarge", ssh2, hws, "echo ran > ran.txt", NULL, run, sizeof run);
            is_str(js(j, "status"), "failed", "toolarge: the run failed");
            is_str(js(j, "errorCode"), "workspace_sync_failed", "toolarge: error code");
            ok(!strncmp(js(j, "error"), "workspace sync in: ", 19) &&
                   strstr(js(j, "error"), "workspaceSyncMaxBytes"),
               "toolarge: error names the step and the limit: %s", js(j, "error"));
            snprintf(cmd, sizeof cmd, "%s/remote-toolarge/ws/ran.txt", tmp);
            ok(!exists(cmd), "toolarge: the command did not run");
            snprintf(cmd, sizeof cmd, "ls /tmp/.paperclip-sync-%s.tar >/dev/null 2>&1", run);
            ok(pc_test_sh(cmd) != 0, "toolarge: no partial archive left on the target");
            json_decref(j);
            free(ssh2);

            char fdir[1100], fpath[1200];
            snprintf(fdir, sizeof fdir, "%s/faketar", tmp);
            snprintf(fpath, sizeof fpath, "%s/tar", fdir);
            mkdir(fdir, 0755);
            FILE *f = fopen(fpath, "w");
            if (f) {
                fputs(FAKE_TAR, f);
                fclose(f);
            }
            chmod(fpath, 0755);
            hostile_run("symlink", "leaves the workspace");
            hostile_run("escape", "`..`");
            hostile_run("huge", "workspaceSyncMaxBytes");
            hostile_run("bigcontent", "workspaceSyncMaxBytes");
            hostile_run("through", "is a symlink");
            hostile_run("hardlink", "hard links are refused");
        }
        pc_test_sshd_stop(&sshd);
    }
    is_int(db_count("SELECT COUNT(*) FROM environment_leases WHERE status='active'"), 0,
           "no lease left active");
    free(cid);
    is_int(pc_daemon_stop(&d), 0, "daemon stops cleanly");
    pc_test_rmrf(tmp);
    free(tmp);
    return tap_done();
}
