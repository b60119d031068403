#include "model/board_keys.h"

#include <stdio.h>
#include <string.h>

#include "lib/util.h"

int pc_board_key_create(pc_db *db, const char *name, char token_out[PC_BOARD_KEY_LEN + 1],
                        pc_error_t *err)
{
    char hex[49], hash[65], id[PC_UUID_LEN + 1], ts[PC_ISO_LEN + 1];
    pc_random_hex(hex, 24);
    snprintf(token_out, PC_BOARD_KEY_LEN + 1, "pcb_%s", hex);
    pc_sha256_hex(token_out, strlen(token_out), hash);
    pc_uuid_v7(id);
    pc_iso_now(ts);
    return pc_db_exec_s(db,
                        "INSERT INTO board_api_keys(id,user_id,name,key_hash,created_at) "
                        "VALUES(?,?,?,?,?)",
                        json_pack("[s,s,s,s,s]", id, "board", name ? name : "board", hash, ts),
                        NULL, err);
}
