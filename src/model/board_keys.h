/*
 * Board API keys (pcb_<48 hex>). Only the sha256 of a key is stored; the key
 * itself exists once, in the caller's buffer, to be shown to the user.
 */
#ifndef PC_MODEL_BOARD_KEYS_H
#define PC_MODEL_BOARD_KEYS_H

#include "lib/error.h"
#include "store/db.h"

#define PC_BOARD_KEY_LEN 52 /* "pcb_" + 48 hex */

/* Creates a key for the board user named name (NULL: "board") and writes it
 * to token_out. 0, or -1 with the store's error. */
int pc_board_key_create(pc_db *db, const char *name, char token_out[PC_BOARD_KEY_LEN + 1],
                        pc_error_t *err);

#endif
