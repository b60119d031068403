/*
 * Files compiled into the binary at build time (tools/embed.c): the web UI
 * under "ui/" and SQL migrations under "src/store/migrations/". The table ends
 * with a NULL path; each data array is NUL-terminated beyond `len`.
 */
#ifndef PC_LIB_EMBEDDED_H
#define PC_LIB_EMBEDDED_H

#include <stddef.h>

typedef struct pc_embedded_file {
    const char *path;
    const unsigned char *data;
    size_t len;
} pc_embedded_file;

extern const pc_embedded_file pc_embedded_files[];

#endif
