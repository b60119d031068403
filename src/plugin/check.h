/*
 * The plugin contract check behind `paperclip plugin check DIR`: loads the
 * package, runs its worker in a scratch host on a private loop (no daemon)
 * and drives it through the environment lifecycle, printing one PASS/FAIL
 * line per check and a closing "N passed, N failed" to out. Returns 0 only
 * when every check passed.
 */
#ifndef PC_PLUGIN_CHECK_H
#define PC_PLUGIN_CHECK_H

#include <stdio.h>

int pc_plugin_check(const char *dir, FILE *out);

#endif
